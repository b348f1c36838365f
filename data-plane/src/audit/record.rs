//! Building the audit records of a request once its answer has ended: one per message (a
//! batch entry each), or one for a request refused before any message was read.
//!
//! Everything costly happens here, after the answer: the message is parsed for its method,
//! target and arguments (arguments only with `observability.log_args`, and never for a
//! caller that failed authentication), arguments and responses are redacted with the
//! configuration's redactor and their strings cut to [`MAX_STRING_CHARS`], and a JSON answer is
//! parsed for a JSON-RPC error only when its bytes contain `"error"`.
//!
//! Last, every string of a record is cut to its cap (`conduit_proto::limits`, with a
//! visible `…[N bytes truncated]`): method, target and error message are the client's own
//! text, also for a request that failed authentication, and one unbounded record could
//! otherwise outgrow any batch the control plane accepts.

use std::borrow::Cow;

use bytes::Bytes;
use conduit_policy::truncate_strings;
use conduit_proto::limits::bound_audit_record;
use conduit_proto::v1::AuditRecord;
use http::StatusCode;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::Profile;
use super::ledger::{Facts, MessageFacts, Reply, Shared};
use crate::http::status::{Answered, Status};

/// Longest string kept in recorded arguments and responses.
pub const MAX_STRING_CHARS: usize = 500;

/// How the answer to the request ended, as the response body saw it.
#[derive(Debug)]
pub(super) struct Ending {
    pub http: StatusCode,
    pub answered: Option<Answered>,
    pub event_stream: bool,
    pub bytes: u64,
    /// The body broke off: why (upstream_error or upstream_timeout) and how.
    pub failure: Option<(Status, String)>,
    /// The client went away before the end.
    pub client_closed: bool,
    /// The answer's bytes, when it is JSON and small enough to look into.
    pub captured: Option<Vec<Bytes>>,
    /// The JSON-RPC error of the response an event stream carried, if it carried one.
    pub stream_error: Option<(i64, String)>,
    pub duration_micros: u64,
}

/// Who wrote the records.
pub(super) struct Origin<'a> {
    pub node_id: &'a str,
    /// The server label of the request (empty when the server is unknown).
    pub server: &'a str,
}

/// The records of one request, every string within its cap.
pub(super) fn build(
    origin: &Origin<'_>,
    shared: &Shared,
    facts: Facts,
    ending: &Ending,
) -> Vec<AuditRecord> {
    let mut records = assemble(origin, shared, facts, ending);
    for record in &mut records {
        bound_audit_record(record);
    }
    records
}

fn assemble(
    origin: &Origin<'_>,
    shared: &Shared,
    facts: Facts,
    ending: &Ending,
) -> Vec<AuditRecord> {
    let profile = facts.profile.as_deref();
    let base = AuditRecord {
        id: record_id(),
        time_unix_ms: shared.time_unix_ms,
        trace_id: shared.trace_id.to_string(),
        node_id: origin.node_id.to_owned(),
        config_version: profile.map_or(0, |p| p.version),
        client_id: facts
            .caller
            .as_ref()
            .map(|c| c.client_id.to_string())
            .unwrap_or_default(),
        tenant_id: facts
            .caller
            .as_ref()
            .map(|c| c.tenant_id.to_string())
            .unwrap_or_default(),
        server_id: origin.server.to_owned(),
        method: facts.http_method.unwrap_or_default().to_owned(),
        duration_micros: ending.duration_micros,
        http_status: u32::from(ending.http.as_u16()),
        response_bytes: ending.bytes,
        ..AuditRecord::default()
    };
    if facts.messages.is_empty() {
        let mut record = base;
        let (status, error) = answer_status(ending);
        set_outcome(&mut record, status, error);
        return vec![record];
    }
    if !facts.batch {
        let mut record = base;
        let (status, error) = answer_status(ending);
        describe(&mut record, &facts.messages[0], profile, status);
        set_outcome(&mut record, status, error);
        if let (Some(profile), Status::Ok | Status::Error) = (profile, status) {
            record.response_json = response_json(profile, ending).unwrap_or_default();
        }
        return vec![record];
    }
    let mut records = Vec::with_capacity(facts.messages.len());
    for (index, message) in facts.messages.iter().enumerate() {
        let mut record = base.clone();
        if index > 0 {
            record.id = record_id();
        }
        let (status, error) = match (&message.reply, ending.client_closed) {
            (_, true) | (None, false) => (Status::ClientClosed, None),
            (Some(reply), false) => reply_status(reply),
        };
        if let Some(reply) = &message.reply {
            record.http_status = u32::from(reply.http.as_u16());
            record.response_bytes = reply.bytes;
        }
        describe(&mut record, message, profile, status);
        set_outcome(&mut record, status, error);
        records.push(record);
    }
    records
}

/// 128 random bits as 32 lowercase hex characters.
pub(super) fn record_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn set_outcome(record: &mut AuditRecord, status: Status, error: Option<(i64, String)>) {
    record.status = status.as_str().to_owned();
    if let Some((code, message)) = error {
        record.error_code = Some(code);
        record.error_message = message;
    }
}

/// Method, target, arguments and admission facts of one message.
fn describe(
    record: &mut AuditRecord,
    message: &MessageFacts,
    profile: Option<&Profile>,
    status: Status,
) {
    let log_args = profile.is_some_and(|p| p.settings.log_args);
    // An unauthenticated caller's arguments are not worth keeping (nor trusting).
    let with_args = log_args && status != Status::AuthFailed;
    if !message.body.is_empty() {
        let read = read_message(&message.body, with_args);
        record.method = read.method;
        record.target = read.target;
        if let (Some(arguments), Some(profile)) = (read.arguments, profile) {
            record.arguments_json = redacted_json(profile, &arguments);
        }
    }
    if let Some(server) = &message.server {
        record.server_id = server.clone();
    }
    if let Some(target) = &message.target {
        record.target = target.clone();
    }
    record.acl_policy = message.acl_policy.clone().unwrap_or_default();
    if let Some((rule, action)) = &message.guardrail {
        record.guardrail_rule = rule.clone();
        record.guardrail_action = action.clone();
    }
}

/// `value` redacted with the configuration's redactor, strings cut, as JSON.
pub(super) fn redacted_json(profile: &Profile, value: &Value) -> String {
    let redacted = profile.redactor.redact(value);
    truncate_strings(&redacted, MAX_STRING_CHARS).to_string()
}

/// What a message names, read from its bytes.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ReadMessage {
    pub method: String,
    pub target: String,
    pub arguments: Option<Value>,
}

#[derive(Deserialize)]
struct Probe<'a, A> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<Params<'a, A>>,
}

#[derive(Deserialize)]
struct Params<'a, A> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
    arguments: Option<A>,
}

/// Read method, target and (with `with_args`) the arguments of one message. A message
/// that does not read this way (params as an array, a repeated key) names nothing.
pub(super) fn read_message(body: &[u8], with_args: bool) -> ReadMessage {
    if with_args {
        match serde_json::from_slice::<Probe<'_, Value>>(body) {
            Ok(probe) => {
                let arguments = probe.params.as_ref().and_then(|p| p.arguments.clone());
                let mut read = named(probe);
                if matches!(read.method.as_str(), "tools/call" | "prompts/get") {
                    read.arguments = Some(arguments.unwrap_or(Value::Object(Default::default())));
                }
                read
            }
            Err(_) => method_only(body),
        }
    } else {
        match serde_json::from_slice::<Probe<'_, IgnoredAny>>(body) {
            Ok(probe) => named(probe),
            Err(_) => method_only(body),
        }
    }
}

fn named<A>(probe: Probe<'_, A>) -> ReadMessage {
    let method = probe.method.map(Cow::into_owned).unwrap_or_default();
    let target = match (method.as_str(), &probe.params) {
        ("tools/call" | "prompts/get", Some(params)) => params.name.as_deref(),
        ("resources/read" | "resources/subscribe" | "resources/unsubscribe", Some(params)) => {
            params.uri.as_deref()
        }
        _ => None,
    };
    ReadMessage {
        target: target.unwrap_or_default().to_owned(),
        method,
        arguments: None,
    }
}

fn method_only(body: &[u8]) -> ReadMessage {
    #[derive(Deserialize)]
    struct Method<'a> {
        #[serde(borrow, default)]
        method: Option<Cow<'a, str>>,
    }
    let method = serde_json::from_slice::<Method<'_>>(body)
        .ok()
        .and_then(|m| m.method)
        .map(Cow::into_owned)
        .unwrap_or_default();
    ReadMessage {
        method,
        ..ReadMessage::default()
    }
}

/// The status of a single answer, with its JSON-RPC error when it has one.
pub(super) fn answer_status(ending: &Ending) -> (Status, Option<(i64, String)>) {
    let tagged = ending
        .answered
        .as_ref()
        .map(|tag| (tag.status, Some((tag.code, tag.message.clone()))));
    if ending.client_closed {
        return (Status::ClientClosed, tagged.and_then(|(_, error)| error));
    }
    if let Some(tagged) = tagged {
        return tagged;
    }
    if let Some((status, message)) = &ending.failure {
        return (
            *status,
            Some((crate::jsonrpc::INTERNAL_ERROR, message.clone())),
        );
    }
    let error = match (&ending.captured, ending.event_stream) {
        (Some(chunks), false) => json_rpc_error(chunks),
        (_, true) => ending.stream_error.clone(),
        (None, false) => None,
    };
    let status = match ending.http.as_u16() {
        200..=399 if error.is_some() => Status::Error,
        200..=399 => Status::Ok,
        504 => Status::UpstreamTimeout,
        _ => Status::UpstreamError,
    };
    (status, error)
}

/// The status of a batch entry's reply.
fn reply_status(reply: &Reply) -> (Status, Option<(i64, String)>) {
    if let Some(tag) = &reply.answered {
        return (tag.status, Some((tag.code, tag.message.clone())));
    }
    let status = match reply.http.as_u16() {
        200..=399 if reply.error.is_some() => Status::Error,
        200..=399 => Status::Ok,
        504 => Status::UpstreamTimeout,
        _ => Status::UpstreamError,
    };
    (status, reply.error.clone())
}

/// The top-level JSON-RPC `error` of a JSON answer. Only answers whose bytes contain
/// `"error"` are parsed: a result never pays for the check.
pub(super) fn json_rpc_error(chunks: &[Bytes]) -> Option<(i64, String)> {
    const NEEDLE: &[u8] = b"\"error\"";
    let joined;
    let bytes: &[u8] = match chunks {
        [] => return None,
        [one] => one,
        many => {
            joined = many.concat();
            &joined
        }
    };
    if !bytes.windows(NEEDLE.len()).any(|window| window == NEEDLE) {
        return None;
    }
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        error: Option<ErrorObject<'a>>,
    }
    #[derive(Deserialize)]
    struct ErrorObject<'a> {
        #[serde(default)]
        code: i64,
        #[serde(borrow, default)]
        message: Cow<'a, str>,
    }
    let answer = serde_json::from_slice::<Answer<'_>>(bytes).ok()?;
    let error = answer.error?;
    Some((error.code, error.message.into_owned()))
}

/// The redacted `result` of a JSON answer (with `observability.log_responses`).
fn response_json(profile: &Profile, ending: &Ending) -> Option<String> {
    if !profile.settings.log_responses || ending.event_stream {
        return None;
    }
    let chunks = ending.captured.as_ref()?;
    let bytes = chunks.concat();
    let answer = serde_json::from_slice::<Value>(&bytes).ok()?;
    let result = answer.get("result")?;
    Some(redacted_json(profile, result))
}
