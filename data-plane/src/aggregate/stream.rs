//! Members' event streams as the client sees them: every message re-sent as a `message`
//! event, with the ids of server→client requests rewritten (see `ids`) so the client's
//! answer can be routed back to the member. Notifications and responses pass unchanged.
//!
//! A POST's stream ends at the member's deadline with a JSON-RPC error carrying the
//! request id, like the single-server path; a broken stream ends the same way. The GET
//! stream of an aggregate is the merge of every member's GET stream; a member whose stream
//! ends or breaks leaves the others running. Members' event ids are not passed on: one
//! client stream mixes several members' id sequences, so resuming with `Last-Event-ID` is
//! not offered on aggregates.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use tokio::time::{Instant, Sleep};

use super::fanout::Messages;
use super::ids;
use super::inflight::Tracked;
use crate::http::BodyError;
use crate::http::ProxyBody;
use crate::jsonrpc::{self, RequestId};
use crate::sse;

/// `message` from member `server` as the client must see it.
pub(super) fn rewrite(server: &str, message: Bytes) -> Bytes {
    // Only requests change; most messages are responses and notifications, and a request
    // always names its method.
    if !contains(&message, b"\"method\"") {
        return message;
    }
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(&message) else {
        return message;
    };
    match (object.get("method"), object.get("id")) {
        (Some(Value::String(_)), Some(id @ (Value::String(_) | Value::Number(_)))) => {
            let id = ids::client_request_id(server, id);
            object.insert("id".into(), id);
            Bytes::from(Value::Object(object).to_string())
        }
        _ => message,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// How a POST stream is bounded.
pub(super) struct Deadline {
    /// When the member's answer must be complete.
    pub at: Instant,
    /// The client's request id, carried by the error that ends the stream.
    pub id: RequestId,
    /// For the message: the member's timeout as text.
    pub timeout: String,
}

/// The answer stream of one member to one client request. `tracked` is kept until the
/// stream ends.
pub(super) fn answer(
    server: String,
    messages: Messages,
    deadline: Deadline,
    tracked: Option<Tracked>,
) -> ProxyBody {
    BodyExt::boxed(StreamBody::new(AnswerStream {
        server,
        messages,
        sleep: Box::pin(tokio::time::sleep_until(deadline.at)),
        deadline,
        done: false,
        _tracked: tracked,
    }))
}

struct AnswerStream {
    server: String,
    messages: Messages,
    sleep: Pin<Box<Sleep>>,
    deadline: Deadline,
    done: bool,
    _tracked: Option<Tracked>,
}

impl Stream for AnswerStream {
    type Item = Result<Frame<Bytes>, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let event = match self.messages.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(message))) => event(&self.server, message),
            Poll::Ready(None) => {
                self.done = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(error))) => {
                tracing::warn!(server = %self.server, %error, "member stream broken");
                self.done = true;
                error_event(&self.deadline.id, &error.to_string())
            }
            Poll::Pending => {
                if self.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                tracing::warn!(server = %self.server, "member answer cut at its deadline");
                self.done = true;
                let message = format!(
                    "upstream server {} did not finish its answer within {}",
                    self.server, self.deadline.timeout
                );
                error_event(&self.deadline.id, &message)
            }
        };
        Poll::Ready(Some(Ok(Frame::data(event))))
    }
}

/// One message from `server` as an event for the client.
fn event(server: &str, message: Bytes) -> Bytes {
    sse::message_event(&String::from_utf8_lossy(&rewrite(server, message)))
}

fn error_event(id: &RequestId, message: &str) -> Bytes {
    let error = jsonrpc::error_object(id, jsonrpc::INTERNAL_ERROR, message);
    sse::message_event(&error.to_string())
}

/// The merged server event streams of several members (GET).
pub(super) fn merged(streams: Vec<(String, Messages)>) -> ProxyBody {
    type Events = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, BodyError>> + Send + Sync>>;
    let streams = streams.into_iter().map(|(server, messages)| {
        let events = messages
            .take_while(|item| {
                if let Err(error) = item {
                    tracing::info!(%error, "a member's event stream ended");
                }
                std::future::ready(item.is_ok())
            })
            .filter_map(|item| std::future::ready(item.ok()))
            .map(move |message| Ok::<_, BodyError>(Frame::data(event(&server, message))));
        Box::pin(events) as Events
    });
    BodyExt::boxed(StreamBody::new(futures_util::stream::select_all(streams)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt as _;
    use serde_json::json;

    use super::*;
    use crate::aggregate::fanout::MemberError;

    fn bytes(value: Value) -> Bytes {
        Bytes::from(value.to_string())
    }

    #[test]
    fn only_server_requests_are_rewritten() {
        let request = json!({"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}});
        let rewritten: Value = serde_json::from_slice(&rewrite("alpha", bytes(request))).unwrap();
        assert_eq!(rewritten["id"], "alpha:0");
        assert_eq!(rewritten["method"], "sampling/createMessage");

        for unchanged in [
            json!({"jsonrpc":"2.0","id":5,"result":{"content":[]}}),
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}),
            json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}),
        ] {
            let message = bytes(unchanged.clone());
            assert_eq!(rewrite("alpha", message.clone()), message, "{unchanged}");
        }
        let text = Bytes::from_static(b"not json \"method\"");
        assert_eq!(rewrite("alpha", text.clone()), text);
    }

    fn messages(items: Vec<Result<Value, MemberError>>) -> Messages {
        Box::pin(futures_util::stream::iter(
            items.into_iter().map(|item| item.map(bytes)),
        ))
    }

    async fn events(body: ProxyBody) -> Vec<Value> {
        let bytes = body.collect().await.unwrap().to_bytes();
        let events = sse::Parser::new().feed(&bytes).unwrap();
        events
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect()
    }

    fn deadline(after: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + after,
            id: RequestId(json!(9)),
            timeout: "1s".into(),
        }
    }

    #[tokio::test]
    async fn an_answer_stream_rewrites_and_ends_with_the_member() {
        let body = answer(
            "beta".into(),
            messages(vec![
                Ok(json!({"jsonrpc":"2.0","id":"s1","method":"elicitation/create"})),
                Ok(json!({"jsonrpc":"2.0","id":9,"result":{}})),
            ]),
            deadline(Duration::from_secs(5)),
            None,
        );
        let events = events(body).await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["id"], "beta:\"s1\"");
        assert_eq!(events[1], json!({"jsonrpc":"2.0","id":9,"result":{}}));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_member_is_cut_at_its_deadline_with_the_request_id() {
        let silent: Messages = Box::pin(futures_util::stream::pending());
        let body = answer(
            "alpha".into(),
            silent,
            deadline(Duration::from_secs(1)),
            None,
        );
        let events = events(body).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["id"], 9);
        assert_eq!(events[0]["error"]["code"], jsonrpc::INTERNAL_ERROR);
        let message = events[0]["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("alpha") && message.contains("1s"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_broken_member_stream_ends_with_an_error_event() {
        let broken = MemberError::Malformed {
            server: "alpha".into(),
            reason: "event stream broken".into(),
        };
        let body = answer(
            "alpha".into(),
            messages(vec![Err(broken)]),
            deadline(Duration::from_secs(5)),
            None,
        );
        let events = events(body).await;
        assert_eq!(events[0]["id"], 9);
        assert!(
            events[0]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("alpha")
        );
    }

    #[tokio::test]
    async fn merged_streams_keep_every_member_and_survive_a_broken_one() {
        let alpha = messages(vec![
            Ok(json!({"jsonrpc":"2.0","id":1,"method":"roots/list"})),
            Ok(json!({"jsonrpc":"2.0","method":"notifications/message","params":{}})),
        ]);
        let beta = messages(vec![
            Err(MemberError::Malformed {
                server: "beta".into(),
                reason: "gone".into(),
            }),
            Ok(json!({"jsonrpc":"2.0","method":"never/seen"})),
        ]);
        let gamma = messages(vec![Ok(
            json!({"jsonrpc":"2.0","id":1,"method":"roots/list"}),
        )]);
        let events = events(merged(vec![
            ("alpha".into(), alpha),
            ("beta".into(), beta),
            ("gamma".into(), gamma),
        ]))
        .await;
        let mut ids: Vec<String> = events
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        assert_eq!(ids, ["alpha:1", "gamma:1"]);
        assert_eq!(events.len(), 3, "{events:?}");
    }
}
