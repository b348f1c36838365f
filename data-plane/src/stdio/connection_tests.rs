//! The remapping tables, driven the way the process and callers drive them: lines written
//! to the process are read from its input queue, its messages are fed to `dispatch`.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::stdio::sse::EventBody;

impl EventBody {
    /// The next event already queued, if any.
    fn events_now(&mut self) -> Option<Bytes> {
        use http_body_util::BodyExt;
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        match std::pin::pin!(self.frame()).poll(&mut context) {
            std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().ok(),
            _ => None,
        }
    }
}

struct Harness {
    connection: Arc<Connection>,
    /// What the gateway wrote to the process's stdin.
    input: mpsc::Receiver<Bytes>,
    listeners: Arc<Listeners>,
    metrics: Metrics,
}

fn harness() -> Harness {
    let (outbox, input) = mpsc::channel(64);
    let listeners = Arc::new(Listeners::default());
    let metrics = Metrics::new();
    Harness {
        connection: Connection::new(
            "srv".into(),
            Arc::clone(&listeners),
            outbox,
            Unrouted::new(&metrics, "srv"),
        ),
        input,
        listeners,
        metrics,
    }
}

/// Client `c` of tenant `tenant`.
fn principal(tenant: &str) -> Principal {
    Principal {
        tenant: tenant.into(),
        client: "c".into(),
    }
}

impl Harness {
    /// Register `request` of tenant `a`'s client as a caller would; returns the call and
    /// the message as the process sees it.
    fn call(&mut self, request: Value, events: Option<&mpsc::Sender<Bytes>>) -> (Call, Value) {
        self.call_as("a", request, events)
    }

    /// The same for tenant `tenant`'s client.
    fn call_as(
        &mut self,
        tenant: &str,
        request: Value,
        events: Option<&mpsc::Sender<Bytes>>,
    ) -> (Call, Value) {
        let mut request = request;
        let call = self
            .connection
            .register(&mut request, events, &principal(tenant))
            .expect("open");
        (call, request)
    }

    /// `conduit_dp_stdio_unrouted_total` for `message`.
    fn unrouted(&self, message: &str) -> u64 {
        self.metrics
            .stdio_unrouted
            .with_label_values(&["srv", message])
            .get()
    }

    /// The next message written to the process.
    fn written(&mut self) -> Value {
        let line = self.input.try_recv().expect("a line was written");
        assert_eq!(line.last(), Some(&b'\n'));
        serde_json::from_slice(&line).expect("JSON line")
    }

    fn nothing_written(&mut self) -> bool {
        self.input.try_recv().is_err()
    }
}

fn request(id: Value, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": message}}
    })
}

fn answer(call: &mut Call) -> Value {
    match call.done.try_recv() {
        Ok(Outcome::Answer(message)) => message,
        other => panic!("expected an answer, got {other:?}"),
    }
}

/// Decode an SSE frame back into its message.
fn event_message(frame: &Bytes) -> Value {
    let text = std::str::from_utf8(frame).expect("UTF-8");
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .expect("a data line");
    serde_json::from_str(data).expect("JSON")
}

#[test]
fn callers_reusing_an_id_each_get_their_own_answer() {
    let mut h = harness();
    let (mut first, sent_first) = h.call(request(json!(1), "a"), None);
    let (mut second, sent_second) = h.call(request(json!(1), "b"), None);
    let (mut third, sent_third) = h.call(request(json!("1"), "c"), None);
    let gids = [&sent_first, &sent_second, &sent_third].map(|m| m["id"].as_u64().unwrap());
    assert!(
        gids[0] != gids[1] && gids[1] != gids[2] && gids[0] != gids[2],
        "{gids:?}"
    );
    assert_eq!(sent_second["params"]["arguments"]["message"], "b");

    // The process answers out of order.
    for (gid, text) in [(gids[2], "c"), (gids[0], "a"), (gids[1], "b")] {
        h.connection
            .dispatch(json!({"jsonrpc": "2.0", "id": gid, "result": {"text": text}}));
    }
    let first = answer(&mut first);
    let second = answer(&mut second);
    let third = answer(&mut third);
    assert_eq!(
        (&first["id"], &first["result"]["text"]),
        (&json!(1), &json!("a"))
    );
    assert_eq!(
        (&second["id"], &second["result"]["text"]),
        (&json!(1), &json!("b"))
    );
    assert_eq!(
        (&third["id"], &third["result"]["text"]),
        (&json!("1"), &json!("c"))
    );
    assert_eq!(h.connection.outstanding(), 0);
}

#[test]
fn progress_tokens_are_remapped_and_restored_for_their_caller_only() {
    let mut h = harness();
    let (events_a, mut stream_a) = mpsc::channel(8);
    let (events_b, mut stream_b) = mpsc::channel(8);
    let with_token = |id: i64| {
        let mut message = request(json!(id), "x");
        message["params"]["_meta"] = json!({"progressToken": "same-token"});
        message
    };
    let (_a, sent_a) = h.call(with_token(1), Some(&events_a));
    let (_b, sent_b) = h.call(with_token(2), Some(&events_b));
    let token_b = sent_b["params"]["_meta"]["progressToken"].clone();
    assert_eq!(
        token_b, sent_b["id"],
        "the process sees the gateway id as the token"
    );
    assert_ne!(sent_a["params"]["_meta"]["progressToken"], token_b);

    h.connection.dispatch(json!({
        "jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": token_b, "progress": 50, "total": 100}
    }));
    let delivered = event_message(&stream_b.try_recv().expect("b got its progress"));
    assert_eq!(delivered["params"]["progressToken"], "same-token");
    assert_eq!(delivered["params"]["progress"], 50);
    assert!(stream_a.try_recv().is_err(), "a got b's progress");

    // A token nobody holds goes nowhere.
    h.connection.dispatch(json!({
        "jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": 999_999, "progress": 1}
    }));
    assert!(stream_a.try_recv().is_err() && stream_b.try_recv().is_err());
}

#[test]
fn server_requests_go_to_the_caller_with_requests_outstanding_and_come_back_remapped() {
    let mut h = harness();
    let (_plain, _) = h.call(request(json!(1), "json only"), None);
    let (events_old, mut old) = mpsc::channel(8);
    let (events_new, mut new) = mpsc::channel(8);
    let (_older, _) = h.call(request(json!(2), "old"), Some(&events_old));
    let (_newer, _) = h.call(request(json!(3), "new"), Some(&events_new));
    // Another tenant listening on a GET stream is nobody's recipient here.
    let mut other = h.listeners.open(principal("b"));

    h.connection.dispatch(json!({
        "jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage",
        "params": {"messages": [], "maxTokens": 10}
    }));
    let relayed = event_message(&old.try_recv().expect("the oldest streaming request"));
    assert!(new.try_recv().is_err());
    assert!(other.events_now().is_none(), "another tenant got it");
    assert_eq!(relayed["method"], "sampling/createMessage");
    let gateway_id = relayed["id"].as_str().expect("a string id").to_owned();
    assert!(gateway_id.starts_with("conduit-"), "{gateway_id}");

    // Only the recipient's answer is taken; another's leaves the request waiting.
    let reply = json!({"jsonrpc": "2.0", "id": gateway_id, "result": {"ok": true}});
    assert!(
        h.connection
            .client_response(reply.clone(), &principal("b"))
            .is_err()
    );
    let line = h
        .connection
        .client_response(reply, &principal("a"))
        .expect("awaited");
    let to_process: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(
        to_process,
        json!({"jsonrpc": "2.0", "id": 0, "result": {"ok": true}})
    );

    // Answered once; a second answer, or a guessed id, is refused.
    for id in [
        json!(gateway_id),
        json!("conduit-1-0000000000000000"),
        json!(0),
    ] {
        let refused = h.connection.client_response(
            json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            &principal("a"),
        );
        assert!(refused.is_err(), "{id}");
    }
}

#[test]
fn server_requests_that_could_be_anyones_are_refused_unless_they_name_their_request() {
    let mut h = harness();
    let (events_a, mut a) = mpsc::channel(8);
    let (events_b, mut b) = mpsc::channel(8);
    // B's request is the older one: the old rule gave B what A's call caused.
    let (_b_call, _) = h.call_as("b", request(json!(7), "b"), Some(&events_b));
    let (_a_call, sent_a) = h.call_as("a", request(json!("a-7"), "a"), Some(&events_a));

    let elicit = |id: i64, meta: Option<Value>| {
        let mut message = json!({
            "jsonrpc": "2.0", "id": id, "method": "elicitation/create",
            "params": {"message": "confirm wire transfer", "requestedSchema": {}}
        });
        if let Some(meta) = meta {
            message["params"]["_meta"] = meta;
        }
        message
    };
    h.connection.dispatch(elicit(1, None));
    let refusal = h.written();
    assert_eq!(refusal["id"], 1);
    assert_eq!(refusal["error"]["code"], crate::jsonrpc::INTERNAL_ERROR);
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not guess"),
        "{refusal}"
    );
    assert!(a.try_recv().is_err() && b.try_recv().is_err());
    assert_eq!(h.unrouted("request"), 1);

    // The process's own progress token is no link to a request.
    h.connection
        .dispatch(elicit(2, Some(json!({"progressToken": sent_a["id"]}))));
    assert!(h.written()["error"].is_object());
    assert!(a.try_recv().is_err() && b.try_recv().is_err());

    // Naming A's request by the id the process was given for it is exact, and A sees its
    // own id there.
    h.connection
        .dispatch(elicit(3, Some(json!({"relatedRequestId": sent_a["id"]}))));
    let relayed = event_message(&a.try_recv().expect("A's own request"));
    assert_eq!(relayed["method"], "elicitation/create");
    assert_eq!(relayed["params"]["_meta"]["relatedRequestId"], "a-7");
    assert!(b.try_recv().is_err());
    assert!(h.nothing_written());
    // An id of no outstanding request is not a licence to guess.
    h.connection
        .dispatch(elicit(4, Some(json!({"relatedRequestId": 999_999}))));
    assert!(h.written()["error"].is_object());
    assert_eq!(h.unrouted("request"), 3);

    // Log messages follow the same rule, and are dropped and counted when unknown.
    h.connection.dispatch(json!({
        "jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": "info", "data": "whose?"}
    }));
    assert!(a.try_recv().is_err() && b.try_recv().is_err());
    assert_eq!(h.unrouted("notification"), 1);
}

#[test]
fn server_requests_without_a_streaming_caller_use_its_get_stream_or_get_an_error() {
    let mut h = harness();
    let roots = json!({"jsonrpc": "2.0", "id": "r1", "method": "roots/list"});
    h.connection.dispatch(roots.clone());
    let refusal = h.written();
    assert_eq!(refusal["id"], "r1");
    assert_eq!(refusal["error"]["code"], crate::jsonrpc::INTERNAL_ERROR);

    let mut listener = h.listeners.open(principal("a"));
    h.connection.dispatch(roots.clone());
    assert!(h.nothing_written());
    let frame = listener_next(&mut listener);
    assert_eq!(event_message(&frame)["method"], "roots/list");

    // With GET streams of two tenants open and no request, it could be either's.
    let mut other = h.listeners.open(principal("b"));
    h.connection.dispatch(roots.clone());
    assert!(h.written()["error"].is_object());
    assert!(other.events_now().is_none() && listener.events_now().is_none());

    // A's request outstanding without a stream of its own: A's GET stream takes it.
    let (_call, _) = h.call(request(json!(1), "x"), None);
    h.connection.dispatch(roots);
    assert!(h.nothing_written());
    assert_eq!(
        event_message(&listener_next(&mut listener))["method"],
        "roots/list"
    );
    assert!(other.events_now().is_none());

    // A ping from the process is the gateway's to answer.
    h.connection
        .dispatch(json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}));
    assert_eq!(
        h.written(),
        json!({"jsonrpc": "2.0", "id": 5, "result": {}})
    );
}

fn listener_next(body: &mut crate::stdio::sse::EventBody) -> Bytes {
    use http_body_util::BodyExt;
    let frame = futures_now(body.frame())
        .expect("a frame")
        .expect("no error");
    frame.into_data().expect("data")
}

/// Poll a future that is ready at once.
fn futures_now<F: std::future::Future>(future: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    match std::pin::pin!(future).poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("not ready"),
    }
}

#[test]
fn notifications_not_tied_to_a_request_reach_every_get_stream() {
    let h = harness();
    let mut first = h.listeners.open(principal("a"));
    let mut second = h.listeners.open(principal("b"));
    h.connection.dispatch(json!({
        "jsonrpc": "2.0", "method": "notifications/tools/list_changed"
    }));
    for listener in [&mut first, &mut second] {
        let message = event_message(&listener_next(listener));
        assert_eq!(message["method"], "notifications/tools/list_changed");
    }
}

#[test]
fn logging_follows_its_callers_request_else_its_get_streams() {
    let mut h = harness();
    let mut listener = h.listeners.open(principal("a"));
    let mut other = h.listeners.open(principal("b"));
    let log = json!({
        "jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": "info", "data": "hello"}
    });
    let (events, mut stream) = mpsc::channel(8);
    let call = h.call(request(json!(1), "x"), Some(&events));
    h.connection.dispatch(log.clone());
    assert_eq!(
        event_message(&stream.try_recv().unwrap())["params"]["data"],
        "hello"
    );
    drop(call);
    // No request: the GET streams are of two tenants, so it is nobody's.
    h.connection.dispatch(log.clone());
    assert!(listener.events_now().is_none() && other.events_now().is_none());
    assert_eq!(h.unrouted("notification"), 1);

    let (_plain, _) = h.call(request(json!(2), "y"), None);
    h.connection.dispatch(log);
    assert_eq!(
        event_message(&listener_next(&mut listener))["params"]["data"],
        "hello"
    );
    assert!(other.events_now().is_none());
}

#[test]
fn a_clients_cancellation_is_remapped_when_unambiguous() {
    let mut h = harness();
    let (mut only, sent) = h.call(request(json!("solo"), "x"), None);
    let (_one, _) = h.call(request(json!(7), "x"), None);
    let (_two, _) = h.call(request(json!(7), "y"), None);
    let cancel = |id: Value| {
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
               "params": {"requestId": id, "reason": "user"}})
    };
    let a = principal("a");

    // Another tenant's cancellation names nothing of A's, even with A's id.
    assert!(
        h.connection
            .client_cancel(cancel(json!("solo")), &principal("b"))
            .is_none()
    );
    assert_eq!(h.connection.outstanding(), 3);

    let line = h
        .connection
        .client_cancel(cancel(json!("solo")), &a)
        .expect("unique");
    let to_process: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(to_process["params"]["requestId"], sent["id"]);
    assert_eq!(to_process["params"]["reason"], "user");
    assert!(matches!(only.done.try_recv(), Ok(Outcome::Cancelled)));

    // Two outstanding requests of A carry id 7: which one is meant cannot be known.
    assert!(h.connection.client_cancel(cancel(json!(7)), &a).is_none());
    assert!(h.connection.client_cancel(cancel(json!(8)), &a).is_none());
    assert_eq!(h.connection.outstanding(), 2);

    // B's own id 7 is B's alone.
    let (mut b_call, b_sent) = h.call_as("b", request(json!(7), "b"), None);
    let line = h
        .connection
        .client_cancel(cancel(json!(7)), &principal("b"))
        .expect("B has one request 7");
    let to_process: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(to_process["params"]["requestId"], b_sent["id"]);
    assert!(matches!(b_call.done.try_recv(), Ok(Outcome::Cancelled)));
    assert_eq!(h.connection.outstanding(), 2);
}

#[test]
fn an_abandoned_request_is_cancelled_upstream_and_its_late_answer_dropped() {
    let mut h = harness();
    let (call, sent) = h.call(request(json!(1), "slow"), None);
    drop(call);
    let cancelled = h.written();
    assert_eq!(cancelled["method"], "notifications/cancelled");
    assert_eq!(cancelled["params"]["requestId"], sent["id"]);
    assert_eq!(h.connection.outstanding(), 0);

    // The late answer has nowhere to go; a new caller is not confused by it.
    let (mut next, next_sent) = h.call(request(json!(1), "next"), None);
    h.connection
        .dispatch(json!({"jsonrpc": "2.0", "id": sent["id"], "result": {"late": true}}));
    assert!(next.done.try_recv().is_err());
    h.connection
        .dispatch(json!({"jsonrpc": "2.0", "id": next_sent["id"], "result": {}}));
    assert_eq!(answer(&mut next)["id"], 1);
}

#[tokio::test]
async fn closing_fails_every_pending_caller_and_refuses_new_ones() {
    let mut h = harness();
    let (mut a, _) = h.call(request(json!(1), "a"), None);
    let (mut b, _) = h.call(request(json!("b"), "b"), None);
    let failure = Failure::bad_gateway("the process died");
    h.connection.close(failure.clone());
    for call in [&mut a, &mut b] {
        match call.done.try_recv() {
            Ok(Outcome::Failed(got)) => assert_eq!(got, failure),
            other => panic!("{other:?}"),
        }
    }
    let mut late = request(json!(3), "c");
    assert_eq!(
        h.connection
            .register(&mut late, None, &principal("a"))
            .unwrap_err(),
        failure
    );
    assert_eq!(late["id"], 3, "a refused request is left as it was");
    tokio::time::timeout(Duration::from_secs(5), h.connection.wait_idle())
        .await
        .expect("idle");
    drop((a, b));
    assert!(
        h.nothing_written(),
        "no cancellation is sent to a dead process"
    );
}

#[test]
fn an_abandoned_initialize_is_not_cancelled() {
    let mut h = harness();
    let (call, _) = h.call(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}),
        None,
    );
    drop(call);
    assert_eq!(h.connection.outstanding(), 0);
    assert!(h.nothing_written(), "MCP forbids cancelling initialize");
}
