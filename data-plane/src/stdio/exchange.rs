//! The HTTP side of a stdio server: what `POST`, `GET` and `DELETE` on `/mcp/{server_id}`
//! answer.
//!
//! A `POST` carries one message (the proxy splits batches, see `crate::batch`):
//! `initialize` is answered from the process's kept result, `notifications/initialized` is
//! absorbed, other requests go to the process (remapped), notifications and a client's
//! answers to server→client requests are written to it. A caller accepting
//! `text/event-stream` gets an event stream carrying what the process sends for its
//! request, then the answer; otherwise plain JSON with the answer. Every request is bounded
//! by the server's `timeout_ms`.
//!
//! Each message is handled for the [`Principal`] of its caller, on that principal's
//! process (see `group`): the principal marks its requests, its `GET` streams, and is the
//! only one whose cancellations and answers match them.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::connection::{Call, Failure, Outcome};
use super::handshake;
use super::remap::{self, Kind};
use super::sse::{self, EventBody};
use super::supervisor::Ready;
use super::{Principal, StdioServer};
use crate::caller::Caller;
use crate::http::ProxyBody;
use crate::jsonrpc;

/// Events (progress, logging, server→client requests) buffered per request; beyond it an
/// event for a caller that does not read is dropped rather than stalling the process.
const EVENT_BUFFER: usize = 64;
/// Frames buffered towards the client of an event stream.
const BODY_BUFFER: usize = 16;

/// The answer to the message of a `POST`.
enum Reply {
    /// Known already: the gateway's own answer, or an error.
    Now { message: Value, status: StatusCode },
    /// Waiting for the process.
    Pending { client_id: Value, call: Call },
}

impl StdioServer {
    /// Serve one request on `/mcp/{server_id}`; a POST `body` is one checked message.
    pub async fn handle(&self, parts: &Parts, body: Bytes) -> Response<ProxyBody> {
        let principal = Principal::of(&Caller::of(parts));
        match parts.method {
            Method::GET => self.listen(&parts.headers, &principal),
            // No session was issued, so there is nothing upstream to end.
            Method::DELETE => empty(StatusCode::NO_CONTENT),
            _ => self.post(&parts.headers, &body, &principal).await,
        }
    }

    fn listen(&self, headers: &HeaderMap, principal: &Principal) -> Response<ProxyBody> {
        if !accepts_event_stream(headers) {
            return json(
                StatusCode::NOT_ACCEPTABLE,
                &jsonrpc::error_object(
                    &jsonrpc::RequestId::null(),
                    jsonrpc::INVALID_REQUEST,
                    "GET serves server messages as text/event-stream; accept it to listen",
                ),
            );
        }
        match self.group().lease(principal) {
            Ok(lease) => event_stream(lease.process().listeners().open(principal.clone())),
            Err(failure) => failure_reply(&Value::Null, &failure),
        }
    }

    async fn post(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        principal: &Principal,
    ) -> Response<ProxyBody> {
        let deadline = Instant::now() + self.timeout();
        let message = match serde_json::from_slice::<Value>(body) {
            Ok(message) => message,
            // `jsonrpc::check` parsed this body already.
            Err(error) => {
                let failure = Failure {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("request body is not valid JSON: {error}"),
                };
                return failure_reply(&Value::Null, &failure);
            }
        };
        // Only the gateway answers `notifications/initialized`: no need for the process.
        if remap::kind(&message) == Kind::Notification
            && remap::method(&message) == Some("notifications/initialized")
        {
            return empty(StatusCode::ACCEPTED);
        }
        let id = remap::id(&message);
        // Held until the message is registered with the process (see `group`).
        let lease = match self.group().lease(principal) {
            Ok(lease) => lease,
            Err(failure) => return failure_reply(&id, &failure),
        };
        let ready = match lease.process().ready(deadline).await {
            Ok(ready) => ready,
            Err(failure) => return failure_reply(&id, &failure),
        };
        let streaming = accepts_event_stream(headers);
        let (events, event_receiver) = mpsc::channel(EVENT_BUFFER);
        let submitted = self
            .submit(
                &ready,
                message,
                streaming.then_some(&events),
                principal,
                deadline,
            )
            .await;
        drop((events, lease));
        match submitted {
            Ok(None) => empty(StatusCode::ACCEPTED),
            Ok(Some(Reply::Pending { client_id, call })) if streaming => {
                stream(self.waiting(client_id, call, deadline), event_receiver)
            }
            Ok(Some(reply)) => match settle(reply, self, deadline).await {
                (Some(answer), status) => json(status, &answer),
                (None, status) => empty(status),
            },
            // A client's answer nobody waits for.
            Err(refusal) => json(StatusCode::BAD_REQUEST, &refusal),
        }
    }

    /// Hand one message to the process (or answer it); `Err` is a JSON-RPC error for a
    /// client's answer the gateway cannot place.
    async fn submit(
        &self,
        ready: &Ready,
        mut message: Value,
        events: Option<&mpsc::Sender<Bytes>>,
        principal: &Principal,
        deadline: Instant,
    ) -> Result<Option<Reply>, Value> {
        let connection = &ready.connection;
        let line = match remap::kind(&message) {
            Kind::Request if remap::method(&message) == Some("initialize") => {
                return Ok(Some(Reply::Now {
                    message: handshake::answer(&ready.initialized, &message),
                    status: StatusCode::OK,
                }));
            }
            Kind::Request => {
                let client_id = remap::id(&message);
                let registered = connection.register(&mut message, events, principal);
                let sent = match registered {
                    Ok(call) => connection
                        .send(remap::line(&message), deadline)
                        .await
                        .map(|()| Reply::Pending {
                            client_id: client_id.clone(),
                            call,
                        }),
                    Err(failure) => Err(failure),
                };
                return Ok(Some(sent.unwrap_or_else(|failure| Reply::Now {
                    message: error(&client_id, &failure),
                    status: failure.status,
                })));
            }
            Kind::Notification => match remap::method(&message) {
                Some("notifications/cancelled") => {
                    match connection.client_cancel(message, principal) {
                        Some(line) => line,
                        None => return Ok(None),
                    }
                }
                _ => remap::line(&message),
            },
            Kind::Response => connection
                .client_response(message.clone(), principal)
                .map_err(|reason| {
                    jsonrpc::error_object(
                        &jsonrpc::RequestId(remap::id(&message)),
                        jsonrpc::INVALID_REQUEST,
                        reason,
                    )
                })?,
            Kind::Invalid => return Ok(None),
        };
        if let Err(failure) = connection.send(line, deadline).await {
            tracing::debug!(message = %failure.message, "a message for the stdio server was not delivered");
        }
        Ok(None)
    }
}

/// A request sent to the process, waiting for its answer until `deadline`.
struct Waiting {
    client_id: Value,
    call: Call,
    deadline: Instant,
    /// What a timeout tells the client.
    timeout: Failure,
}

impl StdioServer {
    fn waiting(&self, client_id: Value, call: Call, deadline: Instant) -> Waiting {
        Waiting {
            client_id,
            call,
            deadline,
            timeout: Failure::timeout(format!(
                "the stdio server {} did not answer within {}",
                self.group().server_id(),
                humantime::format_duration(self.timeout())
            )),
        }
    }
}

impl Waiting {
    /// The answer (`None` for a request its client cancelled) and the HTTP status of a
    /// plain JSON reply.
    async fn outcome(&mut self) -> (Option<Value>, StatusCode) {
        let waited = tokio::time::timeout_at(self.deadline, &mut self.call.done).await;
        let failure = match waited {
            Ok(Ok(Outcome::Answer(message))) => return (Some(message), StatusCode::OK),
            Ok(Ok(Outcome::Cancelled)) => return (None, StatusCode::ACCEPTED),
            Ok(Ok(Outcome::Failed(failure))) => failure,
            Ok(Err(_)) => Failure::bad_gateway("the stdio server's answer was lost"),
            Err(_) => self.timeout.clone(),
        };
        (Some(error(&self.client_id, &failure)), failure.status)
    }
}

/// Wait for the reply.
async fn settle(
    reply: Reply,
    server: &StdioServer,
    deadline: Instant,
) -> (Option<Value>, StatusCode) {
    match reply {
        Reply::Now { message, status } => (Some(message), status),
        Reply::Pending { client_id, call } => {
            server.waiting(client_id, call, deadline).outcome().await
        }
    }
}

/// Answer with an event stream: the events attributed to the request as they come, then
/// its answer.
fn stream(mut waiting: Waiting, mut events: mpsc::Receiver<Bytes>) -> Response<ProxyBody> {
    let (sink, body) = mpsc::channel(BODY_BUFFER);
    tokio::spawn(async move {
        let (answer, _) = loop {
            tokio::select! {
                // Events first: a progress notification sent before the answer must reach
                // the client before it.
                biased;
                Some(event) = events.recv() => {
                    if sink.send(event).await.is_err() {
                        return;
                    }
                }
                outcome = waiting.outcome() => break outcome,
                // The client went away: dropping `waiting` abandons the request.
                () = sink.closed() => return,
            }
        };
        if let Some(answer) = answer {
            let _ = sink.send(sse::event(&answer)).await;
        }
    });
    event_stream(EventBody::new(body))
}

fn failure_reply(id: &Value, failure: &Failure) -> Response<ProxyBody> {
    let mut response = json(failure.status, &error(id, failure));
    crate::http::tag(&mut response, jsonrpc::INTERNAL_ERROR, &failure.message);
    response
}

fn error(id: &Value, failure: &Failure) -> Value {
    jsonrpc::error_object(
        &jsonrpc::RequestId(id.clone()),
        jsonrpc::INTERNAL_ERROR,
        failure.message.clone(),
    )
}

/// Whether the `Accept` headers name `text/event-stream`.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let media = range.split(';').next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("text/event-stream")
        })
}

fn event_stream(body: EventBody) -> Response<ProxyBody> {
    let mut response = Response::new(body.boxed());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json(status: StatusCode, body: &Value) -> Response<ProxyBody> {
    jsonrpc::json_response(status, body).map(|body| body.map_err(|never| match never {}).boxed())
}

fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_is_recognised_in_any_accept_form() {
        let accepts = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
            }
            accepts_event_stream(&headers)
        };
        assert!(accepts(&["application/json, text/event-stream"]));
        assert!(accepts(&["application/json", "Text/Event-Stream;q=0.9"]));
        assert!(!accepts(&["application/json"]));
        assert!(!accepts(&["*/*"]));
        assert!(!accepts(&[]));
    }
}
