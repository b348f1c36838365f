//! Records as the proxy writes them: through the audited body, from a ledger the phases
//! filled, into the queue.

use std::sync::Arc;

use bytes::Bytes;
use conduit_proto::v1::AuditRecord;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::caller::Caller;
use crate::deadline::DeadlineExceeded;
use crate::http::BodyError;
use crate::http::ProxyBody;
use crate::jsonrpc::{self, RequestId};
use crate::mcp::Target;
use crate::runtime::{Applied, ConfigSource, Runtime};
use crate::trace_context::TraceContext;
use crate::verdict::{Admitted, GuardrailOutcome};

/// An answer the gateway makes itself, as the request path makes it (a refusal).
fn error(http: StatusCode, id: &RequestId, code: i64, message: &str) -> http::Response<ProxyBody> {
    let cause = crate::refusal::Cause::Client;
    let metrics = crate::metrics::Metrics::new();
    crate::refusal::Refusal::new(cause, http, code, message).respond(id, &metrics)
}

fn runtime(observability: &str) -> Arc<Runtime> {
    let text = format!("servers:\n  - id: crm\n    url: http://127.0.0.1:1/mcp\n{observability}");
    let document = conduit_config::Document::from_text(&text).expect("valid document");
    let applied = Applied {
        version: 7,
        hash: "h".into(),
        source: ConfigSource::ControlPlane,
        applied_at: chrono::Utc::now(),
    };
    Arc::new(Runtime::compile(&document, applied).expect("compiles"))
}

struct Harness {
    auditor: Arc<Auditor>,
    queue: Arc<Queue>,
    metrics: Metrics,
}

impl Harness {
    fn new() -> Harness {
        let metrics = Metrics::new();
        let queue = Arc::new(Queue::new(&metrics));
        let auditor = Arc::new(Auditor::to_queue(
            "dp-1".into(),
            Arc::clone(&queue),
            &metrics,
        ));
        Harness {
            auditor,
            queue,
            metrics,
        }
    }

    /// A ledger for one request with `body` served by `runtime` to `caller`.
    fn ledger(&self, runtime: &Arc<Runtime>, body: &str) -> (Ledger, http::request::Parts) {
        let trace = TraceContext::from_headers(&HeaderMap::new());
        let ledger = Ledger::start(trace.trace_id(), Instant::now());
        ledger.profile(runtime.audit_profile());
        ledger.caller(&Caller::authenticated("agent-1", Some("acme")));
        let (mut parts, ()) = http::Request::post("/mcp/crm")
            .body(())
            .unwrap()
            .into_parts();
        parts.extensions.insert(ledger.clone());
        let body = Bytes::from(body.to_owned());
        let envelope = jsonrpc::check(&body);
        begin(&mut parts, &body, Some(&envelope));
        (ledger, parts)
    }

    /// Send `response` to a client that reads it all; the records it wrote.
    async fn answer(&self, ledger: Ledger, response: Response<ProxyBody>) -> Vec<AuditRecord> {
        let response = self.auditor.watch(response, Some(ledger), "crm");
        response.into_body().collect().await.expect("body");
        self.records()
    }

    /// The records queued since the last call, as a control plane that stores (acks) every
    /// batch would get them.
    fn records(&self) -> Vec<AuditRecord> {
        std::iter::from_fn(|| self.queue.next_batch(true))
            .flat_map(|batch| {
                self.queue.ack(batch.sequence);
                batch.records
            })
            .collect()
    }
}

fn json_answer(status: u16, body: Value) -> Response<ProxyBody> {
    json_chunks(status, vec![Bytes::from(body.to_string())])
}

/// A JSON answer sent in `chunks`, as a streamed upstream body would come.
fn json_chunks(status: u16, chunks: Vec<Bytes>) -> Response<ProxyBody> {
    let frames = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|chunk| Ok::<_, BodyError>(Frame::data(chunk))),
    );
    let mut response = Response::new(StreamBody::new(frames).boxed());
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    response
}

fn call(arguments: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "lookup", "arguments": arguments}})
    .to_string()
}

#[tokio::test]
async fn an_ok_call_records_who_what_where_with_secrets_redacted() {
    let harness = Harness::new();
    let runtime = runtime("");
    let long = "x".repeat(600);
    let arguments = json!({
        "query": "acme",
        "password": "hunter2-password",
        "api_key": "sk-live-api-key",
        "accessToken": "eyJ-access-token",
        "nested": {"deeper": [{"client_secret": "nested-secret"}], "note": long},
    });
    let (ledger, _parts) = harness.ledger(&runtime, &call(arguments));
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}});
    let records = harness
        .answer(ledger, json_answer(200, answer.clone()))
        .await;

    let [record] = records.as_slice() else {
        panic!("one record: {records:?}")
    };
    assert_eq!(record.status, "ok");
    assert_eq!(record.method, "tools/call");
    assert_eq!(record.target, "lookup");
    assert_eq!(
        (record.client_id.as_str(), record.tenant_id.as_str()),
        ("agent-1", "acme")
    );
    assert_eq!(
        (record.node_id.as_str(), record.server_id.as_str()),
        ("dp-1", "crm")
    );
    assert_eq!(record.config_version, 7);
    assert_eq!(record.http_status, 200);
    assert_eq!(record.response_bytes, answer.to_string().len() as u64);
    assert_eq!(record.error_code, None);
    for hex in [&record.id, &record.trace_id] {
        assert_eq!(hex.len(), 32, "{hex}");
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
    assert!(record.time_unix_ms > 1_600_000_000_000);
    assert_eq!(record.response_json, "", "log_responses is off by default");

    let arguments: Value = serde_json::from_str(&record.arguments_json).unwrap();
    assert_eq!(arguments["query"], "acme");
    for redacted in [
        &arguments["password"],
        &arguments["api_key"],
        &arguments["accessToken"],
        &arguments["nested"]["deeper"][0]["client_secret"],
    ] {
        assert_eq!(redacted, "[REDACTED]");
    }
    let note = arguments["nested"]["note"].as_str().unwrap();
    assert!(note.starts_with(&"x".repeat(MAX_STRING_CHARS)));
    assert!(note.ends_with("[100 characters truncated]"), "{note}");
    let everything = format!("{record:?}");
    for secret in ["hunter2", "sk-live", "eyJ-access", "nested-secret"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    assert_eq!(harness.metrics.audit_records.get(), 1);
}

#[tokio::test]
async fn a_json_rpc_error_in_the_answer_is_found_even_across_chunks() {
    let harness = Harness::new();
    let runtime = runtime("");
    let (ledger, _) = harness.ledger(&runtime, &call(json!({})));
    let answer = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32042,"message":"boom"}}"#;
    let (head, tail) = answer.split_at(30);
    let chunks = vec![Bytes::from_static(head), Bytes::from_static(tail)];
    let [record] = harness
        .answer(ledger, json_chunks(200, chunks))
        .await
        .try_into()
        .unwrap();
    assert_eq!(record.status, "error");
    assert_eq!(record.error_code, Some(-32042));
    assert_eq!(record.error_message, "boom");

    // The word inside a result is not an error.
    let (ledger, _) = harness.ledger(&runtime, &call(json!({})));
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"text": "an \"error\": none"}});
    let [record] = harness
        .answer(ledger, json_answer(200, answer))
        .await
        .try_into()
        .unwrap();
    assert_eq!((record.status.as_str(), record.error_code), ("ok", None));
}

#[test]
fn error_detection_parses_only_answers_that_mention_an_error() {
    let result = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    assert_eq!(record::json_rpc_error(&[result]), None);
    let error = Bytes::from_static(br#"{"id":1,"error":{"code":-1,"message":"m"}}"#);
    assert_eq!(record::json_rpc_error(&[error]), Some((-1, "m".into())));
    let nested = Bytes::from_static(br#"{"id":1,"result":{"error":{"code":5}}}"#);
    assert_eq!(
        record::json_rpc_error(&[nested]),
        None,
        "only a top-level error"
    );
}

#[tokio::test]
async fn gateway_answers_record_why_they_were_given() {
    let harness = Harness::new();
    let runtime = runtime("");
    let id = RequestId(json!(1));
    let cases = [
        (
            StatusCode::UNAUTHORIZED,
            jsonrpc::AUTHENTICATION_FAILED,
            "auth_failed",
        ),
        (StatusCode::OK, jsonrpc::ACCESS_DENIED, "acl_denied"),
        (
            StatusCode::OK,
            jsonrpc::GOVERNANCE_DENIED,
            "governance_denied",
        ),
        (
            StatusCode::OK,
            jsonrpc::GUARDRAIL_BLOCKED,
            "guardrail_blocked",
        ),
        (
            StatusCode::OK,
            jsonrpc::APPROVAL_REQUIRED,
            "approval_required",
        ),
        (StatusCode::OK, jsonrpc::RATE_LIMITED, "rate_limited"),
        (
            StatusCode::BAD_REQUEST,
            jsonrpc::PARSE_ERROR,
            "invalid_request",
        ),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            "invalid_request",
        ),
        (
            StatusCode::FORBIDDEN,
            jsonrpc::INVALID_REQUEST,
            "invalid_request",
        ),
        (
            StatusCode::NOT_FOUND,
            jsonrpc::METHOD_NOT_FOUND,
            "not_found",
        ),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::INTERNAL_ERROR,
            "unavailable",
        ),
        (
            StatusCode::BAD_GATEWAY,
            jsonrpc::INTERNAL_ERROR,
            "upstream_error",
        ),
        (
            StatusCode::GATEWAY_TIMEOUT,
            jsonrpc::INTERNAL_ERROR,
            "upstream_timeout",
        ),
    ];
    for (http, code, expected) in cases {
        let (ledger, _) = harness.ledger(&runtime, &call(json!({"password": "pw-secret"})));
        let response = error(http, &id, code, "refused here");
        let [record] = harness.answer(ledger, response).await.try_into().unwrap();
        assert_eq!(record.status, expected, "{http} {code}");
        assert_eq!(record.error_code, Some(code));
        assert_eq!(record.error_message, "refused here");
        assert_eq!(record.http_status, u32::from(http.as_u16()));
        assert_eq!(record.target, "lookup");
        if expected == "auth_failed" {
            assert_eq!(
                record.arguments_json, "",
                "no arguments of an unauthenticated caller"
            );
        } else {
            assert!(record.arguments_json.contains("[REDACTED]"));
        }
    }
}

#[tokio::test]
async fn a_request_refused_before_its_body_was_read_still_gets_a_record() {
    let harness = Harness::new();
    let trace = TraceContext::from_headers(&HeaderMap::new());
    let ledger = Ledger::start(trace.trace_id(), Instant::now());
    let response = error(
        StatusCode::NOT_FOUND,
        &RequestId::null(),
        jsonrpc::METHOD_NOT_FOUND,
        "not found",
    );
    let response = harness.auditor.watch(response, Some(ledger), "none");
    response.into_body().collect().await.unwrap();
    let [record] = harness.records().try_into().unwrap();
    assert_eq!(record.status, "not_found");
    assert_eq!(
        (record.method.as_str(), record.server_id.as_str()),
        ("", "")
    );
    assert_eq!(record.config_version, 0);
}

#[tokio::test]
async fn a_broken_or_abandoned_answer_says_so() {
    let harness = Harness::new();
    let runtime = runtime("");
    // The upstream stopped before the deadline ran out.
    let (ledger, _) = harness.ledger(&runtime, &call(json!({})));
    let failing = futures_util::stream::iter([
        Ok(Frame::data(Bytes::from_static(b"{\"jsonrpc\""))),
        Err::<Frame<Bytes>, BodyError>(Box::new(DeadlineExceeded {
            server_id: "crm".into(),
            timeout: "1s".into(),
        })),
    ]);
    let response = Response::new(StreamBody::new(failing).boxed());
    let response = harness.auditor.watch(response, Some(ledger), "crm");
    assert!(response.into_body().collect().await.is_err());
    let [record] = harness.records().try_into().unwrap();
    assert_eq!(record.status, "upstream_timeout");
    assert_eq!(record.response_bytes, 10);

    // The client went away before the end.
    let (ledger, _) = harness.ledger(&runtime, &call(json!({})));
    let endless = futures_util::stream::pending::<Result<Frame<Bytes>, BodyError>>();
    let response = Response::new(StreamBody::new(endless).boxed());
    drop(harness.auditor.watch(response, Some(ledger), "crm"));
    let [record] = harness.records().try_into().unwrap();
    assert_eq!(record.status, "client_closed");

    // An empty answer dropped unpolled is complete, not abandoned.
    let (ledger, _) = harness.ledger(&runtime, &call(json!({})));
    let mut empty = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *empty.status_mut() = StatusCode::ACCEPTED;
    drop(harness.auditor.watch(empty, Some(ledger), "crm"));
    let [record] = harness.records().try_into().unwrap();
    assert_eq!((record.status.as_str(), record.http_status), ("ok", 202));
}

/// An event stream answer in `chunks`.
fn event_stream(chunks: Vec<&'static str>) -> Response<ProxyBody> {
    let mut response = json_chunks(200, chunks.into_iter().map(Bytes::from).collect());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "text/event-stream".parse().unwrap(),
    );
    response
}

#[tokio::test]
async fn the_response_inside_an_event_stream_decides_its_status() {
    let harness = Harness::new();
    let runtime = runtime("");
    // A progress notification that mentions an error, then the error response, split
    // across chunks in the middle of its data line.
    let (ledger, _) = harness.ledger(&runtime, &call(json!({})));
    let response = event_stream(vec![
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",",
        "\"params\":{\"message\":\"retrying after an \\\"error\\\"\",\"error\":1}}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"err",
        "or\":{\"code\":-32602,\"message\":\"Tool nope not found\"}}\n\n",
    ]);
    let [record] = harness.answer(ledger, response).await.try_into().unwrap();
    assert_eq!(record.status, "error");
    assert_eq!(record.error_code, Some(-32602));
    assert_eq!(record.error_message, "Tool nope not found");

    // A result ends the reading: what follows (a later error of something else) is not the
    // request's outcome.
    let (ledger, _) = harness.ledger(&runtime, &call(json!({})));
    let response = event_stream(vec![
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-1,\"message\":\"m\"}}\n\n",
    ]);
    let [record] = harness.answer(ledger, response).await.try_into().unwrap();
    assert_eq!((record.status.as_str(), record.error_code), ("ok", None));
}

#[tokio::test]
async fn log_args_and_log_responses_decide_what_is_kept() {
    let harness = Harness::new();
    let quiet = runtime("observability:\n  log_args: false\n");
    let (ledger, _) = harness.ledger(&quiet, &call(json!({"query": "acme"})));
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"token": "t-secret"}});
    let [record] = harness
        .answer(ledger, json_answer(200, answer.clone()))
        .await
        .try_into()
        .unwrap();
    assert_eq!(
        (record.target.as_str(), record.arguments_json.as_str()),
        ("lookup", "")
    );
    assert_eq!(record.response_json, "");

    let verbose = runtime("observability:\n  log_responses: true\n");
    let (ledger, _) = harness.ledger(&verbose, &call(json!({"query": "acme"})));
    let [record] = harness
        .answer(ledger, json_answer(200, answer))
        .await
        .try_into()
        .unwrap();
    assert_eq!(record.response_json, r#"{"token":"[REDACTED]"}"#);
    assert_eq!(record.arguments_json, r#"{"query":"acme"}"#);
}

#[tokio::test]
async fn admission_facts_name_the_policy_and_the_rule() {
    let harness = Harness::new();
    let runtime = runtime("");
    let (ledger, parts) = harness.ledger(&runtime, &call(json!({"amount": 5})));
    let admitted = Admitted {
        acl_policy: Some("support".into()),
        shadow: vec![GuardrailOutcome {
            rule: "shadow-all".into(),
            action: "block",
        }],
        ..Admitted::default()
    };
    let args = json!({"amount": 5});
    let target = Target::ToolCall {
        server: "crm-member",
        tool: "lookup-local",
        args: &args,
    };
    Note::of(&parts).unwrap().admission(&target, &admitted);
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
    let [record] = harness
        .answer(ledger, json_answer(200, answer))
        .await
        .try_into()
        .unwrap();
    assert_eq!(record.acl_policy, "support");
    assert_eq!(
        (
            record.guardrail_rule.as_str(),
            record.guardrail_action.as_str()
        ),
        ("shadow-all", "shadow:block")
    );
    // What admission saw wins: the member and the name it knows.
    assert_eq!(
        (record.server_id.as_str(), record.target.as_str()),
        ("crm-member", "lookup-local")
    );
}

#[tokio::test]
async fn every_batch_entry_gets_its_own_record() {
    let harness = Harness::new();
    let runtime = runtime("");
    let body = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a"}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "b"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "1.0", "id": 4, "method": "ping"},
    ])
    .to_string();
    let (ledger, parts) = harness.ledger(&runtime, &body);
    assert_eq!(ledger.noted_method_label(), "batch");
    let Ok(jsonrpc::Envelope::Batch(batch)) = jsonrpc::check(body.as_bytes()) else {
        panic!("a batch");
    };
    let answer = crate::batch::answer(batch.entries, |message, id| {
        let parts = entry(&parts, &message);
        async move {
            let response = if id.0 == json!(2) {
                error(StatusCode::OK, &id, jsonrpc::ACCESS_DENIED, "denied")
            } else if id.0.is_null() {
                let mut accepted = json_chunks(202, vec![]);
                accepted.headers_mut().remove(http::header::CONTENT_TYPE);
                accepted
            } else {
                json_answer(200, json!({"jsonrpc": "2.0", "id": id.0, "result": {}}))
            };
            entry_answer(&parts, response)
        }
    })
    .await;
    let mut records = harness.answer(ledger, answer).await;
    records.sort_by(|a, b| a.target.cmp(&b.target).then(a.method.cmp(&b.method)));
    let summary: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| (r.method.as_str(), r.target.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("", "", "invalid_request"),
            ("notifications/initialized", "", "ok"),
            ("tools/call", "a", "ok"),
            ("tools/call", "b", "acl_denied"),
        ]
    );
    let ids: std::collections::BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "distinct record ids");
    assert!(records.iter().all(|r| r.trace_id == records[0].trace_id));
}

#[test]
fn reading_a_message_takes_only_what_the_settings_allow() {
    let body = call(json!({"q": 1}));
    let read = record::read_message(body.as_bytes(), false);
    assert_eq!(
        (read.method.as_str(), read.target.as_str()),
        ("tools/call", "lookup")
    );
    assert_eq!(read.arguments, None);
    let read = record::read_message(body.as_bytes(), true);
    assert_eq!(read.arguments, Some(json!({"q": 1})));
    let resource = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read",
        "params": {"uri": "crm://a"}})
    .to_string();
    let read = record::read_message(resource.as_bytes(), true);
    assert_eq!((read.target.as_str(), read.arguments), ("crm://a", None));
    // Params as an array name nothing, but the method is still known.
    let positional = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["x"]}"#;
    let read = record::read_message(positional.as_bytes(), true);
    assert_eq!(
        (read.method.as_str(), read.target.as_str()),
        ("tools/call", "")
    );
}
