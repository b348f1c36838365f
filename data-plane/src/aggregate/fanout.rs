//! How an aggregate talks to one member: send one JSON-RPC message with the member's side
//! of the client's session and get its answer as JSON-RPC messages, whatever the
//! transport. [`Link`] is the per-transport seam: HTTP members are reached with the
//! proxy's pooled client on a replica chosen by the balancer (the one holding the member's
//! session, once it has one); stdio members through their process (`stdio`), which needs no
//! session; `managed_runtime` servers are not run by this data plane yet.
//!
//! Answers are messages, not HTTP bodies: a JSON body is one message, an event stream is a
//! stream of them ([`Messages`]), so the aggregate can rewrite and merge them without
//! caring where they came from.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tokio::time::Instant;

pub(super) use super::member_error::MemberError;

use super::events::messages;
use super::upstream_headers::member_headers;
use crate::caller::Caller;
use crate::http::{MAX_BODY_BYTES, MCP_SESSION_ID, ProxyBody, is_event_stream};
use crate::runtime::{HttpUpstream, Server, Upstream};
use crate::session::UpstreamSession;
use crate::stdio::StdioServer;
use crate::telemetry::{self, ChildSpan};
use crate::trace_context::TraceContext;
use crate::upstream::UpstreamClient;
use crate::upstream::exchange::{Answered, Exchange as HttpExchange};

/// JSON-RPC messages as they arrive on a member's event stream, each the text of one
/// message.
pub(super) type Messages = Pin<Box<dyn Stream<Item = Result<Bytes, MemberError>> + Send + Sync>>;

/// One member of an aggregate request: its server and its side of the client's session.
#[derive(Debug, Clone)]
pub(super) struct Member {
    /// The server id.
    pub id: String,
    /// The server as the runtime compiled it.
    pub server: Arc<Server>,
    /// `None` on a session-less request (stateless clients).
    pub session: Option<UpstreamSession>,
}

/// The transport of a member.
enum Link<'a> {
    Http(&'a HttpUpstream),
    Stdio(&'a StdioServer),
    /// Not run by this data plane yet.
    Managed,
}

impl Member {
    fn link(&self) -> Link<'_> {
        match &self.server.upstream {
            Upstream::Http(upstream) => Link::Http(upstream),
            Upstream::Stdio(stdio) => Link::Stdio(stdio),
            Upstream::Managed => Link::Managed,
        }
    }

    /// The member's `timeout_ms`.
    pub(super) fn timeout(&self) -> Duration {
        match self.link() {
            Link::Http(upstream) => upstream.timeout,
            Link::Stdio(stdio) => stdio.timeout(),
            Link::Managed => crate::runtime::DEFAULT_UPSTREAM_TIMEOUT,
        }
    }

    /// The member's upstream session id, if it has one.
    pub(super) fn session_id(&self) -> Option<&str> {
        self.session.as_ref()?.session_id.as_deref()
    }
}

/// What a member answered to one message.
pub(super) struct Exchange {
    /// The member's `Mcp-Session-Id`, when it sent one (on `initialize`).
    pub session_id: Option<String>,
    /// The replica that answered, when the server has several (a session stays on it).
    pub replica: Option<String>,
    /// What it answered.
    pub answer: Answer,
}

/// A member's answer as JSON-RPC messages.
pub(super) enum Answer {
    /// Nothing to read (a notification or response was accepted).
    Accepted,
    /// One JSON-RPC message (or batch), as text.
    Message(Bytes),
    /// An event stream; it ends after the response to the request.
    Stream(Messages),
}

/// The JSON-RPC method and name of a message, for the 2026-07-28 routing headers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Routing<'a> {
    /// The JSON-RPC method (`Mcp-Method`).
    pub method: Option<&'a str>,
    /// The tool or prompt name or resource URI the member sees (`Mcp-Name`).
    pub name: Option<&'a str>,
}

/// Sends messages to members.
#[derive(Debug, Clone)]
pub(super) struct Fanout {
    client: UpstreamClient,
}

impl Fanout {
    /// Fan out over the proxy's connection pool.
    pub(super) fn new(client: UpstreamClient) -> Fanout {
        Fanout { client }
    }

    /// POST one message. The timeout covers the answer's head; reading an event stream
    /// is bounded by the caller.
    pub(super) async fn post(
        &self,
        member: &Member,
        caller: &Parts,
        message: Bytes,
        routing: Routing<'_>,
    ) -> Result<Exchange, MemberError> {
        let target = target(member, caller, &Method::POST, routing)?;
        let Sent { response, replica } = self.send(member, target, Method::POST, message).await?;
        let session_id = response
            .headers()
            .get(&MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = response.status();
        if !status.is_success() {
            return Err(failure(member, response).await);
        }
        let answer = if is_event_stream(response.headers()) {
            Answer::Stream(messages(&member.id, response.into_body()))
        } else if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            Answer::Accepted
        } else {
            let body = read_bounded(response.into_body(), member).await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                Answer::Accepted
            } else {
                Answer::Message(body)
            }
        };
        Ok(Exchange {
            session_id,
            replica,
            answer,
        })
    }

    /// Open the member's server event stream (GET). `Ok(None)` when it offers none (405).
    pub(super) async fn listen(
        &self,
        member: &Member,
        caller: &Parts,
    ) -> Result<Option<Messages>, MemberError> {
        let target = target(member, caller, &Method::GET, Routing::default())?;
        let sent = self.send(member, target, Method::GET, Bytes::new());
        let response = sent.await?.response;
        match response.status() {
            StatusCode::METHOD_NOT_ALLOWED => Ok(None),
            status if status.is_success() && is_event_stream(response.headers()) => {
                Ok(Some(messages(&member.id, response.into_body())))
            }
            _ => Err(failure(member, response).await),
        }
    }

    /// End the member's session (DELETE). A member that has no session, or does not
    /// support ending one, has nothing to end.
    pub(super) async fn close(&self, member: &Member, caller: &Parts) -> Result<(), MemberError> {
        if member.session_id().is_none() {
            return Ok(());
        }
        let target = target(member, caller, &Method::DELETE, Routing::default())?;
        let sent = self.send(member, target, Method::DELETE, Bytes::new());
        let response = sent.await?.response;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Ok(()),
            _ => Err(failure(member, response).await),
        }
    }

    /// One request to the member over its transport, answered as HTTP would be.
    async fn send(
        &self,
        member: &Member,
        target: Target<'_>,
        method: Method,
        body: Bytes,
    ) -> Result<Sent, MemberError> {
        match target {
            Target::Http(upstream, headers, span) => {
                let sent = self
                    .send_http(member, upstream, method, headers, body)
                    .await;
                if let Some(span) = span {
                    span.upstream_outcome(match &sent {
                        Ok(sent) => Ok(sent.response.status()),
                        Err(_) => Err("failed"),
                    });
                }
                sent
            }
            // The process answers within the server's timeout itself.
            Target::Stdio(stdio, _span, caller) => {
                let request = stdio_request(method, caller);
                let response = stdio.handle(&request, body).await;
                Ok(Sent {
                    response,
                    replica: None,
                })
            }
        }
    }

    /// Send one request to a replica of the member: the one holding its session, else one
    /// chosen by the balancer (the exchange `/mcp/{id}` uses too). The replica's outcome is
    /// reported once the head is in.
    async fn send_http(
        &self,
        member: &Member,
        upstream: &HttpUpstream,
        method: Method,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Sent, MemberError> {
        let failed = |failure| MemberError::of_exchange(&member.id, upstream.timeout, failure);
        let pinned = member.session.as_ref().and_then(|s| s.replica.as_deref());
        let exchange = HttpExchange::pick(&upstream.replicas, pinned).map_err(failed)?;
        let deadline = Instant::now() + upstream.timeout;
        let sent = exchange.send(&self.client, method, headers, body, deadline);
        let Answered { response, lease } = sent.await.map_err(failed)?;
        // Only a server with several replicas needs its sessions pinned.
        let replica = lease.replica().map(str::to_owned);
        Ok(Sent {
            response: lease.hold(response),
            replica,
        })
    }
}

/// Where a request to a member goes, with what it needs there, and the trace span of the
/// call when traces are exported.
enum Target<'a> {
    /// The server and the request's headers.
    Http(&'a HttpUpstream, HeaderMap, Option<ChildSpan>),
    /// The server and the caller, whose principal picks and tags its process's messages.
    Stdio(&'a StdioServer, Option<ChildSpan>, Caller),
}

/// The target of a request to `member` (`Err` for a member this data plane cannot reach).
fn target<'a>(
    member: &'a Member,
    caller: &Parts,
    method: &Method,
    routing: Routing<'_>,
) -> Result<Target<'a>, MemberError> {
    match member.link() {
        Link::Http(upstream) => {
            let mut headers = member_headers(caller, upstream, member, method.clone(), routing);
            let span = telemetry::upstream(caller, &member.id, None);
            // The member hears the exported span as its parent.
            if let (Some(trace), Some(span)) = (caller.extensions.get::<TraceContext>(), &span) {
                telemetry::upstream_context(trace, Some(span)).propagate(&mut headers);
            }
            Ok(Target::Http(upstream, headers, span))
        }
        Link::Stdio(stdio) => Ok(Target::Stdio(
            stdio,
            telemetry::upstream(caller, &member.id, None),
            Caller::of(caller),
        )),
        Link::Managed => Err(MemberError::Managed {
            server: member.id.clone(),
        }),
    }
}

/// The request a stdio member's process is given: the method, the caller (its tenant and
/// client keep its messages apart from other callers'), and an `Accept` that takes event
/// streams so the process can send server→client requests on them. The process needs
/// nothing else of the caller (it has no session and no headers upstream).
fn stdio_request(method: Method, caller: Caller) -> Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.extensions.insert(caller);
    parts.headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    parts
}

/// A member's answer while its body is still to be read (an HTTP body holds its replica's
/// lease until it ends).
struct Sent {
    response: Response<ProxyBody>,
    /// The replica that answered, when the server has several.
    replica: Option<String>,
}

/// A member's response to a request the gateway sent.
pub(super) struct Reply {
    /// The member's `Mcp-Session-Id`, when it sent one (on `initialize`).
    pub session_id: Option<String>,
    /// The replica that answered, when the server has several.
    pub replica: Option<String>,
    /// The JSON-RPC response.
    pub message: Value,
}

/// Send `message` (a request with id `id`) and return the member's response to it: the
/// JSON body, or the message carrying `id` on the event stream (anything else on that
/// stream, such as progress, is dropped). The whole exchange ends at `deadline`.
pub(super) async fn request(
    fanout: &Fanout,
    member: &Member,
    caller: &Parts,
    message: Bytes,
    id: &Value,
    routing: Routing<'_>,
) -> Result<Reply, MemberError> {
    let timeout = member.timeout();
    let exchange = tokio::time::timeout(timeout, async {
        let exchange = fanout.post(member, caller, message, routing).await?;
        let response = match exchange.answer {
            Answer::Message(body) => serde_json::from_slice::<Value>(&body)
                .map_err(|error| malformed(member, format!("invalid JSON: {error}")))?,
            Answer::Stream(mut stream) => loop {
                match stream.next().await {
                    Some(Ok(data)) => {
                        let Ok(message) = serde_json::from_slice::<Value>(&data) else {
                            continue;
                        };
                        if message.get("id") == Some(id) && message.get("method").is_none() {
                            break message;
                        }
                    }
                    Some(Err(error)) => return Err(error),
                    None => {
                        return Err(malformed(
                            member,
                            "the event stream ended without a response".into(),
                        ));
                    }
                }
            },
            Answer::Accepted => {
                return Err(malformed(member, "no response to a request".into()));
            }
        };
        Ok(Reply {
            session_id: exchange.session_id,
            replica: exchange.replica,
            message: response,
        })
    })
    .await;
    exchange.unwrap_or_else(|_| Err(MemberError::timeout(&member.id, timeout)))
}

fn malformed(member: &Member, reason: String) -> MemberError {
    MemberError::Malformed {
        server: member.id.clone(),
        reason,
    }
}

/// The error for a non-2xx answer, with what its body says.
async fn failure(member: &Member, response: Response<ProxyBody>) -> MemberError {
    let status = response.status();
    if status == StatusCode::NOT_FOUND && member.session_id().is_some() {
        return MemberError::SessionGone {
            server: member.id.clone(),
        };
    }
    // A short look at the body is enough to explain the failure.
    let body = read_bounded(response.into_body(), member)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned();
    let error = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").cloned());
    let detail = match error.as_ref().and_then(|e| e.get("message")) {
        Some(Value::String(message)) => message.clone(),
        _ if text.trim().is_empty() => status
            .canonical_reason()
            .unwrap_or("no explanation")
            .to_owned(),
        _ => text.trim().to_owned(),
    };
    MemberError::Status {
        server: member.id.clone(),
        status: status.as_u16(),
        detail,
        error,
    }
}

async fn read_bounded(mut body: ProxyBody, member: &Member) -> Result<Bytes, MemberError> {
    // Read by hand rather than through `Limited`: its boxed error type defeats the
    // compiler's proof that the caller's future is `Send`.
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|error| malformed(member, format!("cannot read the answer: {error}")))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_BODY_BYTES {
                let reason = format!("the answer exceeds {MAX_BODY_BYTES} bytes");
                return Err(malformed(member, reason));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(bytes))
}
