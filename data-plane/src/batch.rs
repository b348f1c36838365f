//! JSON-RPC batches. MCP dropped batching in 2025-06-18 and current servers refuse it, so
//! the gateway splits a batch: every valid entry runs concurrently as a message of its own,
//! down the same path as a single message, and the replies are put back together in the
//! order of the batch. Invalid entries are answered by the gateway with their own ids;
//! notifications and responses get no reply; a batch of only those is answered `202`.

use std::future::Future;

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::audit::EntryWatch;
use crate::http::{MAX_BODY_BYTES, MCP_SESSION_ID, ProxyBody, is_event_stream};
use crate::jsonrpc::{self, BatchEntry, RequestId};
use crate::sse;

/// Answer a batch; `send` runs one message and returns the response it got.
pub(crate) async fn answer<F, Fut>(entries: Vec<BatchEntry>, send: F) -> Response<ProxyBody>
where
    F: Fn(Bytes, RequestId) -> Fut,
    Fut: Future<Output = Response<ProxyBody>>,
{
    let outcomes = join_all(entries.into_iter().map(|entry| async {
        match entry {
            BatchEntry::Invalid(error) => (Some(error), None),
            BatchEntry::Valid { message, id } => {
                let response = send(message, id.clone().unwrap_or_else(RequestId::null)).await;
                let session = response.headers().get(&MCP_SESSION_ID).cloned();
                // The entry's audit record takes its own reply.
                let watch = EntryWatch::of(&response);
                match id {
                    Some(id) => {
                        let reply = reply_of(response, &id).await;
                        watch.replied(Some(&reply));
                        (Some(reply), session)
                    }
                    // Nothing to wait for: dropping the response ends its body.
                    None => {
                        watch.replied(None);
                        (None, session)
                    }
                }
            }
        }
    }))
    .await;

    let mut session: Option<HeaderValue> = None;
    let mut replies = Vec::with_capacity(outcomes.len());
    for (reply, entry_session) in outcomes {
        replies.extend(reply);
        session = session.or(entry_session);
    }
    let mut response = if replies.is_empty() {
        let mut accepted = Response::new(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
        );
        *accepted.status_mut() = StatusCode::ACCEPTED;
        accepted
    } else {
        jsonrpc::json_response(StatusCode::OK, &Value::Array(replies))
            .map(|body| body.map_err(|never| match never {}).boxed())
    };
    if let Some(session) = session {
        response.headers_mut().insert(MCP_SESSION_ID, session);
    }
    response
}

/// The reply to request `id` in `response`: the JSON body, or the matching message of an
/// event stream (other messages on it, such as progress, have no place in a batch answer
/// and are dropped). Anything else becomes a JSON-RPC error carrying `id`.
async fn reply_of(response: Response<ProxyBody>, id: &RequestId) -> Value {
    let status = response.status();
    let event_stream = is_event_stream(response.headers());
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/json"));
    let mut body = response.into_body();
    let found = if event_stream {
        reply_in_event_stream(&mut body, id).await
    } else if json {
        reply_in_json(&mut body, id).await
    } else {
        Err(format!(
            "the upstream answered HTTP {status} without a JSON-RPC reply"
        ))
    };
    found.unwrap_or_else(|reason| jsonrpc::error_object(id, jsonrpc::INTERNAL_ERROR, reason))
}

async fn reply_in_event_stream(body: &mut ProxyBody, id: &RequestId) -> Result<Value, String> {
    let mut parser = sse::Parser::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|error| format!("the upstream's event stream failed: {error}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let events = parser
            .feed(&data)
            .map_err(|error| format!("the upstream's event stream is invalid: {error}"))?;
        for event in events {
            let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            if is_reply_to(&message, id) {
                return Ok(message);
            }
        }
    }
    Err("the upstream's event stream ended without a reply".into())
}

async fn reply_in_json(body: &mut ProxyBody, id: &RequestId) -> Result<Value, String> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| format!("cannot read the upstream's answer: {error}"))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_BODY_BYTES {
                return Err(format!(
                    "the upstream's answer exceeds {MAX_BODY_BYTES} bytes"
                ));
            }
            bytes.extend_from_slice(&data);
        }
    }
    let message: Value = serde_json::from_slice(&bytes)
        .map_err(|error| format!("the upstream's answer is not JSON: {error}"))?;
    let candidates = match &message {
        Value::Array(messages) => messages.iter().collect(),
        _ => vec![&message],
    };
    candidates
        .into_iter()
        .find(|message| is_reply_to(message, id))
        .cloned()
        .ok_or_else(|| "the upstream's answer holds no reply to this request".into())
}

fn is_reply_to(message: &Value, id: &RequestId) -> bool {
    message.get("id") == Some(&id.0)
        && message.get("method").is_none()
        && (message.get("result").is_some() || message.get("error").is_some())
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;
    use serde_json::json;

    use super::*;

    fn response(status: u16, content_type: &str, body: &str) -> Response<ProxyBody> {
        let mut response = Response::new(
            Full::new(Bytes::from(body.to_owned()))
                .map_err(|never| match never {})
                .boxed(),
        );
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        response
    }

    async fn body_of(response: Response<ProxyBody>) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn replies_come_back_in_batch_order_without_notifications() {
        let entries = vec![
            BatchEntry::Valid {
                message: Bytes::from_static(b"sse"),
                id: Some(RequestId(json!(1))),
            },
            BatchEntry::Invalid(
                json!({"jsonrpc":"2.0","id":"bad","error":{"code":-32600,"message":"x"}}),
            ),
            BatchEntry::Valid {
                message: Bytes::from_static(b"notification"),
                id: None,
            },
            BatchEntry::Valid {
                message: Bytes::from_static(b"json"),
                id: Some(RequestId(json!("two"))),
            },
            BatchEntry::Valid {
                message: Bytes::from_static(b"broken"),
                id: Some(RequestId(json!(3))),
            },
        ];
        let answer = answer(entries, |message, id| async move {
            match &message[..] {
                b"sse" => response(
                    200,
                    "text/event-stream",
                    &format!(
                        "event: message\ndata: {}\n\nevent: message\ndata: {}\n\n",
                        json!({"jsonrpc":"2.0","method":"notifications/progress","params":{}}),
                        json!({"jsonrpc":"2.0","id":id.0,"result":{"n":1}}),
                    ),
                ),
                b"json" => response(
                    200,
                    "application/json",
                    &json!({"jsonrpc":"2.0","id":id.0,"result":{"n":2}}).to_string(),
                ),
                b"notification" => response(202, "text/plain", ""),
                _ => response(500, "text/plain", "boom"),
            }
        })
        .await;
        assert_eq!(answer.status(), StatusCode::OK);
        let replies = body_of(answer).await;
        let ids: Vec<&Value> = replies
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["id"])
            .collect();
        assert_eq!(ids, [&json!(1), &json!("bad"), &json!("two"), &json!(3)]);
        assert_eq!(replies[0]["result"]["n"], 1);
        assert_eq!(replies[2]["result"]["n"], 2);
        assert_eq!(replies[3]["error"]["code"], jsonrpc::INTERNAL_ERROR);
    }

    #[tokio::test]
    async fn a_batch_of_notifications_is_accepted() {
        let entries = vec![BatchEntry::Valid {
            message: Bytes::from_static(b"n"),
            id: None,
        }];
        let answer = answer(entries, |_, _| async { response(202, "text/plain", "") }).await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
    }
}
