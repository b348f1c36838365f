//! Deliveries to a real HTTP server on 127.0.0.1.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::*;

#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<Value>>>,
    /// Statuses to answer with, in order; 200 when exhausted. 0 = never answer.
    script: Arc<Mutex<VecDeque<u16>>>,
}

async fn receive(State(receiver): State<Receiver>, body: axum::body::Bytes) -> StatusCode {
    receiver
        .bodies
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    let status = receiver.script.lock().unwrap().pop_front().unwrap_or(200);
    if status == 0 {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(status).unwrap()
}

async fn serve(script: &[u16]) -> (String, Receiver) {
    let receiver = Receiver::default();
    receiver.script.lock().unwrap().extend(script);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

fn fast() -> DeliveryOptions {
    DeliveryOptions {
        timeout: Duration::from_millis(300),
        attempts: 3,
        backoff: Duration::from_millis(1),
    }
}

async fn send(url: &str, allow_private: bool) -> Delivery {
    deliver::deliver(
        &tls_config(),
        url,
        Bytes::from_static(b"{}"),
        allow_private,
        &fast(),
    )
    .await
}

#[tokio::test]
async fn delivers_and_retries_server_errors() {
    let (url, receiver) = serve(&[500, 503]).await;
    assert_eq!(send(&url, true).await, Delivery::Delivered);
    assert_eq!(receiver.bodies.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn gives_up_after_the_last_attempt_and_on_client_errors() {
    let (url, receiver) = serve(&[500, 500, 500, 500]).await;
    assert_eq!(
        send(&url, true).await,
        Delivery::Failed("HTTP 500 Internal Server Error".into())
    );
    assert_eq!(receiver.bodies.lock().unwrap().len(), 3);
    let (url, receiver) = serve(&[404]).await;
    assert!(matches!(send(&url, true).await, Delivery::Failed(_)));
    assert_eq!(receiver.bodies.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unanswered_attempt_times_out() {
    let (url, receiver) = serve(&[0, 0, 0]).await;
    let outcome = send(&url, true).await;
    assert!(
        matches!(&outcome, Delivery::Failed(reason) if reason.starts_with("no answer")),
        "{outcome:?}"
    );
    assert_eq!(receiver.bodies.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let (url, receiver) = serve(&[]).await;
    assert!(matches!(
        send(&url, false).await,
        Delivery::RefusedAddress(_)
    ));
    let localhost = url.replace("127.0.0.1", "localhost");
    assert!(matches!(
        send(&localhost, false).await,
        Delivery::RefusedAddress(_)
    ));
    assert!(
        receiver.bodies.lock().unwrap().is_empty(),
        "nothing was sent"
    );
    let mapped = url.replace("127.0.0.1", "[::ffff:127.0.0.1]");
    assert!(matches!(
        send(&mapped, false).await,
        Delivery::RefusedAddress(_)
    ));
}

fn event(arguments: Value) -> WebhookEvent {
    let document = conduit_config::Document::from_text(
        "guardrails:\n  default_action: allow\n  rules:\n  - {name: r, action: block, severity: high, webhook: 'http://h/x'}\n",
    )
    .unwrap();
    let guardrails =
        conduit_policy::Guardrails::try_from(document.guardrails.as_ref().unwrap()).unwrap();
    let call = CallFacts {
        client_id: "c",
        tenant_id: "t",
        server_id: "s",
        tool: "delete",
        arguments: &arguments,
        trace_id: "trace-1",
    };
    let redactor = Redactor::new(conduit_config::model::DEFAULT_REDACT_FIELDS);
    WebhookEvent::guardrail(
        EventKind::GuardrailBlock,
        &guardrails.rules()[0],
        call,
        &redactor,
    )
}

async fn until(condition: impl Fn() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn notify_posts_the_redacted_event() {
    let (url, receiver) = serve(&[]).await;
    let webhooks = Webhooks::spawn(
        IntCounterVec::new(Opts::new("t", "t"), &["outcome"]).unwrap(),
        WebhookOptions::default(),
    );
    let target = WebhookTarget {
        url: url.clone(),
        allow_private_networks: true,
    };
    webhooks.notify(
        target,
        &event(json!({"path": "/x", "api_key": "k", "nested": [{"password": 1}]})),
    );
    until(|| webhooks.count("delivered") == 1).await;
    let body = receiver.bodies.lock().unwrap()[0].clone();
    assert_eq!(body["event"], "guardrail_block");
    assert_eq!(body["rule"], "r");
    assert_eq!(body["severity"], "high");
    assert_eq!(
        (
            &body["client_id"],
            &body["tenant_id"],
            &body["server_id"],
            &body["tool"]
        ),
        (&json!("c"), &json!("t"), &json!("s"), &json!("delete"))
    );
    assert_eq!(
        body["arguments"],
        json!({"path": "/x", "api_key": "[REDACTED]", "nested": [{"password": "[REDACTED]"}]})
    );
    assert_eq!(body["message"], "blocked by guardrail rule \"r\"");
    assert_eq!(body["trace_id"], "trace-1");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));

    // Refused: counted, not sent.
    let refused = WebhookTarget {
        url,
        allow_private_networks: false,
    };
    webhooks.notify(refused, &event(json!({})));
    until(|| webhooks.count("refused_address") == 1).await;
    assert_eq!(receiver.bodies.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_full_queue_drops_without_waiting() {
    // The current-thread runtime does not run the delivery task until this test awaits, so
    // the queue of one holds the first event and the next two are dropped.
    let webhooks = Webhooks::spawn(
        IntCounterVec::new(Opts::new("t", "t"), &["outcome"]).unwrap(),
        WebhookOptions {
            queue: 1,
            ..WebhookOptions::default()
        },
    );
    let target = WebhookTarget {
        url: "http://127.0.0.1:9/x".into(),
        allow_private_networks: false,
    };
    for _ in 0..3 {
        webhooks.notify(target.clone(), &event(json!({})));
    }
    assert_eq!(webhooks.count("dropped"), 2);
    until(|| webhooks.count("refused_address") == 1).await;
}

#[tokio::test]
async fn decisions_notify_only_blocks_and_alerts_with_a_webhook() {
    let (url, receiver) = serve(&[]).await;
    let document = conduit_config::Document::from_text(&format!(
        "guardrails:\n  default_action: block\n  rules:\n  - {{name: quiet, tools: [q], action: block}}\n  - {{name: loud, tools: [l], action: alert, webhook: '{url}'}}\n"
    ))
    .unwrap();
    let guardrails =
        conduit_policy::Guardrails::try_from(document.guardrails.as_ref().unwrap()).unwrap();
    let webhooks = Webhooks::spawn(
        IntCounterVec::new(Opts::new("t", "t"), &["outcome"]).unwrap(),
        WebhookOptions::default(),
    );
    let redactor = Redactor::for_document(&document);
    let args = json!({"token": "t"});
    for tool in ["q", "other", "l"] {
        let annotations = conduit_policy::ToolAnnotations::UNKNOWN;
        let call = conduit_policy::CallContext {
            client_id: "c",
            server_id: "s",
            tool,
            annotations: &annotations,
            args: &args,
        };
        let verdict = guardrails.evaluate(&call);
        let facts = CallFacts {
            client_id: "c",
            tenant_id: "t",
            server_id: "s",
            tool,
            arguments: &args,
            trace_id: "x",
        };
        webhooks.notify_decision(&verdict.decision, facts, &redactor, true);
    }
    until(|| webhooks.count("delivered") == 1).await;
    let bodies = receiver.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(
        (&bodies[0]["event"], &bodies[0]["rule"]),
        (&json!("guardrail_alert"), &json!("loud"))
    );
    assert_eq!(bodies[0]["arguments"], json!({"token": "[REDACTED]"}));
}
