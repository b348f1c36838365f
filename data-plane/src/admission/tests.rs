//! Admission decisions on a runtime compiled from a config document.

use http::request::Parts;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use super::*;
use crate::jsonrpc::RequestId;
use crate::runtime::{Applied, ConfigSource};

/// A compiled configuration with the services a data plane hands the request path.
struct Served {
    runtime: Runtime,
    services: Services,
}

impl std::ops::Deref for Served {
    type Target = Runtime;

    fn deref(&self) -> &Runtime {
        &self.runtime
    }
}

impl Served {
    fn metrics(&self) -> &crate::metrics::Metrics {
        &self.services.metrics
    }

    fn approvals(&self) -> &crate::approvals::Approvals {
        &self.services.approvals
    }
}

/// [`super::admit`] with the runtime and services of `served`.
async fn admit(served: &Served, parts: &Parts, target: &Target<'_>) -> Result<Admitted, Refusal> {
    super::admit(&served.runtime, &served.services, parts, target).await
}

fn runtime(policies: &str) -> Served {
    let text = format!(
        "servers:\n  - id: crm\n    url: http://127.0.0.1:1/mcp\n  - id: wiki\n    url: http://127.0.0.1:2/mcp\n{policies}"
    );
    let document = conduit_config::Document::from_text(&text).expect("valid document");
    let applied = Applied {
        version: 1,
        hash: "h".into(),
        source: ConfigSource::File,
        applied_at: chrono::Utc::now(),
    };
    Served {
        runtime: Runtime::compile(&document, applied).expect("compiles"),
        services: Services::new(std::sync::Arc::new(crate::metrics::Metrics::new())),
    }
}

fn parts(client: Option<(&str, &str)>) -> Parts {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    if let Some((client, tenant)) = client {
        parts
            .extensions
            .insert(Caller::authenticated(client, Some(tenant)));
    }
    parts
}

async fn refusal(result: Result<Admitted, Refusal>) -> Value {
    let response = result
        .expect_err("refused")
        .respond(&ID(), &crate::metrics::Metrics::new());
    assert_eq!(response.status(), http::StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["id"], json!(7), "{value}");
    value["error"].clone()
}

fn tool<'a>(server: &'a str, tool: &'a str, args: &'a Value) -> Target<'a> {
    Target::ToolCall { server, tool, args }
}

const ID: fn() -> RequestId = || RequestId(json!(7));

#[tokio::test]
async fn the_acl_decides_per_client_server_and_kind() {
    let runtime = runtime(
        "acl:\n  default_action: deny\n  policies:\n    - name: support\n      clients: [\"agent-*\"]\n      allow:\n        - server: crm\n          tools: [\"get_*\"]\n          resources: [\"crm://*\"]\n",
    );
    let args = json!({});
    let agent = parts(Some(("agent-1", "acme")));
    let admitted = admit(&runtime, &agent, &tool("crm", "get_contact", &args))
        .await
        .unwrap();
    assert_eq!(admitted.acl_policy.as_deref(), Some("support"));
    let error = refusal(admit(&runtime, &agent, &tool("wiki", "get_page", &args)).await).await;
    assert_eq!(
        error,
        json!({"code": -32003, "message": "access denied: client 'agent-1' may not call tool 'get_page' on server 'wiki'"})
    );
    let read = Target::ResourceRead {
        server: "crm",
        uri: "crm://contacts/1",
    };
    assert!(admit(&runtime, &agent, &read).await.is_ok());
    // Only resources were granted, not prompts.
    let prompt = Target::PromptGet {
        server: "crm",
        name: "p",
    };
    let error = refusal(admit(&runtime, &agent, &prompt).await).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("may not get prompt 'p'")
    );
    // No policy names the anonymous caller: default deny.
    let error = refusal(admit(&runtime, &parts(None), &read).await).await;
    assert_eq!(
        error["message"],
        "access denied: client 'anonymous' may not read resource 'crm://contacts/1' on server 'crm'"
    );
    // Messages that name nothing pass.
    assert!(admit(&runtime, &parts(None), &Target::Other).await.is_ok());
    let metrics = runtime.metrics().encode();
    assert!(metrics.contains("conduit_acl_denials_total{kind=\"tool\",server=\"wiki\"} 1"));
    assert!(metrics.contains("conduit_acl_denials_total{kind=\"resource\",server=\"crm\"} 1"));
}

#[tokio::test]
async fn guardrails_block_alert_and_shadow() {
    let runtime = runtime(
        "guardrails:\n  default_action: allow\n  rules:\n    - name: shadow-all\n      mode: shadow\n      action: block\n    - name: big\n      tools: [\"transfer\"]\n      conditions:\n        - field: amount\n          operator: gt\n          value: 1000\n      action: block\n      severity: critical\n    - name: watch\n      tools: [\"transfer\"]\n      action: alert\n",
    );
    let anonymous = parts(None);
    let big = json!({"amount": 5000});
    let error = refusal(admit(&runtime, &anonymous, &tool("crm", "transfer", &big)).await).await;
    assert_eq!(
        error,
        json!({"code": -32004, "message": "blocked by guardrail rule \"big\"",
               "data": {"rule": "big", "severity": "critical"}})
    );
    let small = json!({"amount": 5});
    let admitted = admit(&runtime, &anonymous, &tool("crm", "transfer", &small))
        .await
        .unwrap();
    assert_eq!(
        admitted.guardrail,
        Some(GuardrailOutcome {
            rule: "watch".into(),
            action: "alert"
        })
    );
    assert_eq!(
        admitted.shadow,
        [GuardrailOutcome {
            rule: "shadow-all".into(),
            action: "block"
        }]
    );
    // Guardrails only look at tool calls.
    let read = Target::ResourceRead {
        server: "crm",
        uri: "x",
    };
    assert_eq!(
        admit(&runtime, &anonymous, &read).await.unwrap(),
        Admitted::default()
    );
}

#[tokio::test]
async fn governance_denies_and_a_standalone_data_plane_cannot_take_approvals() {
    let runtime = runtime(
        "governance:\n  tool_policies:\n    - name: no-delete\n      tools: [\"delete_*\"]\n      effect: deny\n      reason: deleting is not allowed here\n    - name: hold-transfers\n      tools: [\"transfer\"]\n      effect: require_approval\n",
    );
    let anonymous = parts(None);
    let args = json!({});
    let error = refusal(admit(&runtime, &anonymous, &tool("crm", "delete_all", &args)).await).await;
    assert_eq!(
        error,
        json!({"code": -32010, "message": "deleting is not allowed here", "data": {"policy": "no-delete"}})
    );
    let error = refusal(admit(&runtime, &anonymous, &tool("crm", "transfer", &args)).await).await;
    assert_eq!(error["code"], -32011);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("approval required by governance policy \"hold-transfers\""),
        "{message}"
    );
    assert!(
        message.contains("approvals need a control plane"),
        "{message}"
    );
    assert_eq!(error["data"]["status"], "unavailable");
    assert_eq!(error["data"]["approval_request_id"], Value::Null);
    assert!(
        admit(&runtime, &anonymous, &tool("crm", "read", &args))
            .await
            .is_ok()
    );
    assert!(
        runtime
            .metrics()
            .encode()
            .contains("conduit_governance_denials_total{policy=\"no-delete\"} 1")
    );
}

#[test]
fn lists_show_what_the_acl_and_governance_allow() {
    let runtime = runtime(
        "acl:\n  default_action: deny\n  policies:\n    - name: p\n      clients: [\"*\"]\n      allow:\n        - server: crm\n          tools: [\"*\"]\n          prompts: [\"greet\"]\ngovernance:\n  tool_policies:\n    - name: hide\n      tools: [\"delete\"]\n      effect: deny\n",
    );
    let view = View {
        policies: runtime.policies(),
        client: "c",
        workspace: "default",
        server: "crm",
    };
    let mut tools = vec![json!({"name": "read"}), json!({"name": "delete"})];
    filter::filter_items(ListKind::Tools, &mut tools, &view);
    assert_eq!(tools, [json!({"name": "read"})]);
    let mut prompts = vec![json!({"name": "greet"}), json!({"name": "other"})];
    filter::filter_items(ListKind::Prompts, &mut prompts, &view);
    assert_eq!(prompts, [json!({"name": "greet"})]);
    assert!(runtime.admission_enabled());
    assert!(runtime.policies().inspects(ListKind::Resources));
}

#[test]
fn without_policy_sections_nothing_is_read() {
    let runtime = runtime("");
    assert!(!runtime.admission_enabled());
    let runtime = runtime_with_disabled();
    assert!(!runtime.admission_enabled());
}

fn runtime_with_disabled() -> Served {
    runtime(
        "acl:\n  enabled: false\n  default_action: deny\nguardrails:\n  enabled: false\n  default_action: block\n",
    )
}

#[test]
fn engines_that_cannot_compile_reject_the_config_with_their_paths() {
    // Validation refuses these first; the runtime must not rely on it, so the document is
    // built directly.
    let mut document = conduit_config::Document::from_text(
        "servers:\n  - id: crm\n    url: http://127.0.0.1:1/mcp\nacl:\n  default_action: deny\n  policies:\n    - name: p\n      clients: [\"ok\"]\n      allow:\n        - server: crm\n          tools: [\"*\"]\n",
    )
    .unwrap();
    document.acl.as_mut().unwrap().policies[0].clients = vec!["a*b".into()];
    let applied = Applied {
        version: 1,
        hash: "h".into(),
        source: ConfigSource::File,
        applied_at: chrono::Utc::now(),
    };
    let errors = Runtime::compile(&document, applied)
        .expect_err("rejected")
        .0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].path.starts_with("acl.policies[0].clients"),
        "{errors:?}"
    );
    assert!(errors[0].message.contains("a*b"), "{errors:?}");
}

#[tokio::test]
async fn a_held_call_gets_a_pending_request_and_a_bad_approval_id_is_refused() {
    let runtime = runtime(
        "guardrails:\n  default_action: allow\n  rules:\n    - name: hold-refunds\n      tools: [refund]\n      action: require_approval\n      message: refunds need a second pair of eyes\ngovernance:\n  approvals:\n    ttl_seconds: 60\n",
    );
    let approvals = runtime.approvals();
    approvals.use_control_plane("dp-1");
    let agent = parts(Some(("agent-1", "acme")));
    let args = json!({"order": 42});
    let error = refusal(admit(&runtime, &agent, &tool("crm", "refund", &args)).await).await;
    assert_eq!(error["code"], -32011);
    assert_eq!(error["message"], "refunds need a second pair of eyes");
    assert_eq!(error["data"]["status"], "pending");
    let request_id = error["data"]["approval_request_id"].as_str().unwrap();
    let queued = approvals
        .outbox()
        .pop()
        .expect("queued for the control plane");
    assert_eq!(queued.id, request_id);
    assert_eq!(
        (queued.rule.as_str(), queued.source.as_str()),
        ("hold-refunds", "guardrail")
    );
    assert_eq!(
        (queued.client_id.as_str(), queued.tenant_id.as_str()),
        ("agent-1", "acme")
    );
    assert_eq!(queued.expires_at - queued.created_at, 60);

    // Retried with the id before any grant: refused, and no new request.
    let mut retry = parts(Some(("agent-1", "acme")));
    retry.headers.insert(
        crate::approvals::APPROVAL_HEADER,
        http::HeaderValue::from_str(request_id).unwrap(),
    );
    let error = refusal(admit(&runtime, &retry, &tool("crm", "refund", &args)).await).await;
    assert_eq!(
        error["message"],
        "approval is invalid, expired, or does not match this request"
    );
    assert!(approvals.outbox().is_empty());
    // Calls no rule holds are not touched by the approval phase.
    assert!(
        admit(&runtime, &agent, &tool("crm", "lookup", &args))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn rate_limits_run_before_approvals_so_a_limited_caller_queues_no_request() {
    let runtime = runtime(
        "guardrails:\n  default_action: allow\n  rules:\n    - name: hold-refunds\n      tools: [refund]\n      action: require_approval\ngovernance:\n  approvals:\n    ttl_seconds: 60\nrate_limits:\n  per_client: {requests_per_minute: 1}\n",
    );
    let approvals = runtime.approvals();
    approvals.use_control_plane("dp-1");
    let agent = parts(Some(("agent-1", "acme")));
    let args = json!({"order": 42});
    let error = refusal(admit(&runtime, &agent, &tool("crm", "refund", &args)).await).await;
    assert_eq!(error["code"], -32011);
    assert!(approvals.outbox().pop().is_some());
    // Over the limit: refused by the rate limit, and nothing new waits for an approver.
    for _ in 0..5 {
        let error = refusal(admit(&runtime, &agent, &tool("crm", "refund", &args)).await).await;
        assert_eq!(error["code"], -32029, "{error}");
    }
    assert!(approvals.outbox().is_empty());
}

#[tokio::test]
async fn every_request_counts_in_the_client_bucket() {
    let runtime = runtime("rate_limits:\n  per_client: {requests_per_minute: 2}\n");
    let agent = parts(Some(("agent-1", "acme")));
    assert!(admit_request(&runtime, &agent, Some("crm")).await.is_ok());
    assert!(admit_request(&runtime, &agent, None).await.is_ok());
    let error = refusal(
        admit_request(&runtime, &agent, Some("wiki"))
            .await
            .map(|()| Admitted::default()),
    )
    .await;
    assert_eq!(error["data"]["bucket"], "client");
    // Calls share the bucket.
    let args = json!({});
    let error = refusal(admit(&runtime, &agent, &tool("crm", "t", &args)).await).await;
    assert_eq!(error["code"], -32029);
}

#[tokio::test]
async fn ambiguous_resource_uris_are_refused_before_the_acl() {
    let runtime = runtime(
        "acl:\n  default_action: deny\n  policies:\n    - name: p\n      clients: [\"*\"]\n      allow:\n        - server: crm\n          resources: [\"test://template/*\"]\n",
    );
    let anonymous = parts(None);
    fn read(uri: &str) -> Target<'_> {
        Target::ResourceRead { server: "crm", uri }
    }
    assert!(
        admit(&runtime, &anonymous, &read("TEST://template/%34%32"))
            .await
            .is_ok()
    );
    for uri in [
        "test://template/../static-text",
        "test://template/%2F..%2Fstatic-text",
    ] {
        let error = refusal(admit(&runtime, &anonymous, &read(uri)).await).await;
        assert_eq!(error["code"], -32602, "{uri}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("resource URI refused: "),
            "{error}"
        );
    }
    assert!(
        !runtime
            .metrics()
            .encode()
            .contains("conduit_acl_denials_total{")
    );
}
