//! Aggregate endpoints: `POST|GET|DELETE /mcp` (every server) and `/mcp/profile/{id}` (the
//! servers of a profile). Here the gateway terminates MCP itself and fans out to the member
//! servers, each over its own upstream session.
//!
//! - `initialize` initializes every member (`handshake`); the client's `Mcp-Session-Id` is a
//!   sealed [`SessionState`] holding each member's session id and protocol version, so any
//!   replica can continue the session. The session's protocol version is negotiated over
//!   all members as `merge` describes. A member that fails to initialize is left out of the
//!   session with a warning (one broken server should not take the others down); when every
//!   member fails, `initialize` fails naming each.
//! - Lists are fanned out concurrently and merged (`lists`); names are prefixed
//!   `<server_id>.<name>` under `router.namespace_strategy: prefix`.
//! - Calls are routed to one member (`route`) and its answer streamed back, with the ids of
//!   server→client requests rewritten (`ids`, `stream`).
//! - GET merges the members' event streams; DELETE ends every member session.
//!
//! Session-less requests (stateless 2026-07-28 clients after `server/discover`) go to every
//! member without a session id. A session keeps the members it was initialized with: a
//! server added to the endpoint later joins with the client's next session, a server
//! removed from it is gone at once. A member session lives on the replica that created it.
//! A stdio member is its process (`stdio`), which has no session: it is reached the same
//! way on every request and replica.

mod events;
mod fanout;
mod handshake;
mod ids;
mod inflight;
mod lists;
mod member_error;
mod merge;
mod route;
mod stream;
mod upstream_headers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::future::join_all;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

pub(crate) use crate::catalog::Scope;
use crate::catalog::routes;

use crate::caller::Caller;
use crate::http::{MCP_SESSION_ID, ProxyBody};
use crate::jsonrpc::{self, RequestId};
use crate::refusal::{Cause, Refusal};
use crate::runtime::Runtime;
use crate::services::Services;
use crate::session::{Principal, SESSION_NOT_FOUND, SessionKeys, SessionState};
use crate::upstream::UpstreamClient;
use fanout::{Fanout, Member};

/// What a message's handler gives: its answer, or the refusal the caller answers with the
/// message's id.
type Handled = Result<Response<ProxyBody>, Refusal>;

/// Invalid method parameter(s).
const INVALID_PARAMS: i64 = -32602;
/// MCP's "resource not found".
const RESOURCE_NOT_FOUND: i64 = -32002;

/// Serves the aggregate endpoints; one per proxy.
#[derive(Debug)]
pub(crate) struct Aggregator {
    fanout: Fanout,
    /// What admission decides with besides the runtime (metrics, approvals, webhooks).
    services: Services,
    inflight: inflight::InFlight,
    next_id: AtomicU64,
}

/// One request on an aggregate endpoint, with everything its handlers need.
struct Call<'a> {
    runtime: &'a Runtime,
    services: &'a Services,
    scope: &'a Scope,
    /// The caller's request (its headers and trace context).
    caller: &'a Parts,
    /// The members taking part: every member of the endpoint on a session-less request,
    /// else those in the session (config order).
    members: Vec<Member>,
    /// The client's session token.
    token: Option<&'a str>,
    /// The keys that open and seal session tokens.
    keys: &'a SessionKeys,
    id: RequestId,
}

impl Call<'_> {
    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|member| member.id == id)
    }

    fn member_ids(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.id.as_str()).collect()
    }
}

impl Aggregator {
    /// An aggregator sending over the proxy's connection pool, deciding with `services`.
    pub(crate) fn new(client: UpstreamClient, services: Services) -> Aggregator {
        Aggregator {
            fanout: Fanout::new(client),
            services,
            inflight: inflight::InFlight::default(),
            next_id: AtomicU64::new(rand::random::<u32>().into()),
        }
    }

    /// A request id for messages the gateway sends on its own (never the client's).
    fn gateway_id(&self) -> Value {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        Value::String(format!("conduit-{n}"))
    }

    /// Serve one message (or a GET/DELETE) on the aggregate endpoint `scope`. The caller
    /// has done the transport checks; `id` is the message's request id; `keys` open and
    /// seal session tokens.
    pub(crate) async fn handle(
        &self,
        runtime: &Runtime,
        scope: &Scope,
        parts: &Parts,
        message: Bytes,
        id: &RequestId,
        keys: &SessionKeys,
    ) -> Handled {
        let Some(member_ids) = runtime.aggregates().members(scope) else {
            return Err(unknown_profile(scope));
        };
        let parsed = if parts.method == Method::POST {
            match serde_json::from_slice::<Value>(&message) {
                Ok(parsed) => Some(parsed),
                Err(failure) => {
                    let message = format!("request body is not valid JSON: {failure}");
                    return Err(client(
                        StatusCode::BAD_REQUEST,
                        jsonrpc::PARSE_ERROR,
                        message,
                    ));
                }
            }
        } else {
            None
        };
        let method = parsed
            .as_ref()
            .and_then(|m| m.get("method"))
            .and_then(Value::as_str);
        let token = parts
            .headers
            .get(&MCP_SESSION_ID)
            .and_then(|value| value.to_str().ok());
        // A new session ignores whatever the client held before.
        let fresh = matches!(method, Some("initialize" | "server/discover"));
        let session = match token {
            Some(token) if !fresh => {
                match keys.open_for(token, &scope.label(), &principal(parts)) {
                    Ok(state) => Some(state),
                    Err(reason) => {
                        let message =
                            format!("session not found ({reason}): initialize a new session");
                        return Err(client(StatusCode::NOT_FOUND, SESSION_NOT_FOUND, message));
                    }
                }
            }
            _ => None,
        };
        let call = Call {
            runtime,
            services: &self.services,
            scope,
            caller: parts,
            members: members(runtime, member_ids, session.as_ref(), fresh),
            token: token.filter(|_| session.is_some()),
            keys,
            id: id.clone(),
        };
        match (&parts.method, parsed) {
            (&Method::GET, _) => self.listen(&call).await,
            (&Method::DELETE, _) => self.close(&call).await,
            (_, Some(message)) => self.post(&call, message).await,
            (_, None) => Err(client(
                StatusCode::METHOD_NOT_ALLOWED,
                jsonrpc::INVALID_REQUEST,
                format!("method {} is not allowed on {}", parts.method, scope.path()),
            )),
        }
    }

    async fn post(&self, call: &Call<'_>, message: Value) -> Handled {
        let Some(method) = message.get("method").and_then(Value::as_str) else {
            return route::client_response(self, call, message).await;
        };
        let notification = message.get("id").is_none();
        if call.runtime.admission_enabled() && !crate::admission::known_method(method, notification)
        {
            return Err(crate::admission::unknown_method(
                call.services,
                method,
                notification,
            ));
        }
        if notification {
            return Ok(route::notification(self, call, method, &message).await);
        }
        // Calls, reads, gets and completions count in the rate limits when admitted (on the
        // member that serves them); every other request counts here.
        let admitted_on_a_member = matches!(
            method,
            "tools/call"
                | "prompts/get"
                | "completion/complete"
                | "resources/read"
                | "resources/subscribe"
                | "resources/unsubscribe"
        );
        if !admitted_on_a_member {
            crate::admission::admit_request(call.runtime, call.caller, None).await?;
        }
        match method {
            "initialize" => handshake::initialize(self, call, &message).await,
            "server/discover" => handshake::discover(self, call, &message).await,
            "ping" => Ok(result(&call.id, json!({}))),
            "tools/call" => route::by_name(self, call, routes::Kind::Tool, message).await,
            "prompts/get" => route::by_name(self, call, routes::Kind::Prompt, message).await,
            "completion/complete" => route::completion(self, call, message).await,
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                route::by_uri(self, call, message).await
            }
            "logging/setLevel" => route::broadcast_request(self, call, &message).await,
            _ => match crate::mcp::ListKind::of_method(method) {
                Some(kind) => lists::list(self, call, kind, &message).await,
                None => Err(client(
                    StatusCode::OK,
                    jsonrpc::METHOD_NOT_FOUND,
                    format!(
                        "method {method} is not supported on the aggregate endpoint {}",
                        call.scope.path()
                    ),
                )),
            },
        }
    }

    /// GET: the merged event streams of the members; 405 when none offers one.
    async fn listen(&self, call: &Call<'_>) -> Handled {
        let opened =
            join_all(call.members.iter().map(|member| async move {
                (member, self.fanout.listen(member, call.caller).await)
            }))
            .await;
        let mut streams = Vec::new();
        for (member, outcome) in opened {
            match outcome {
                Ok(Some(messages)) => streams.push((member.id.clone(), messages)),
                Ok(None) => {}
                Err(gone) if gone.ends_session() => return Err(member_error(&gone)),
                Err(error) => tracing::warn!(%error, "a member's event stream is not available"),
            }
        }
        if streams.is_empty() {
            return Err(client(
                StatusCode::METHOD_NOT_ALLOWED,
                jsonrpc::INVALID_REQUEST,
                format!("no server of {} offers an event stream", call.scope.path()),
            )
            .with_header(
                http::header::ALLOW,
                http::HeaderValue::from_static("POST, DELETE"),
            ));
        }
        let mut response = Response::new(stream::merged(streams));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/event-stream"),
        );
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache"),
        );
        Ok(response)
    }

    /// DELETE: end every member session. Members that cannot be reached are logged: the
    /// client's session is over either way.
    async fn close(&self, call: &Call<'_>) -> Handled {
        if call.token.is_none() {
            return Err(client(
                StatusCode::BAD_REQUEST,
                jsonrpc::INVALID_REQUEST,
                "DELETE needs the Mcp-Session-Id of the session to end",
            ));
        }
        let closed = join_all(
            call.members
                .iter()
                .map(|member| self.fanout.close(member, call.caller)),
        )
        .await;
        for error in closed.into_iter().filter_map(Result::err) {
            tracing::warn!(%error, "a member session could not be ended");
        }
        Ok(empty(StatusCode::NO_CONTENT))
    }
}

/// The members of a request: with a session, those in it; without one (or for a new
/// session), every member of the endpoint. Servers removed from the config since the
/// session began are gone from it.
fn members(
    runtime: &Runtime,
    member_ids: &[String],
    session: Option<&SessionState>,
    fresh: bool,
) -> Vec<Member> {
    member_ids
        .iter()
        .filter_map(|id| {
            let server = Arc::clone(runtime.server(id)?);
            let session = match session {
                Some(state) if !fresh => Some(state.upstreams.get(id)?.clone()),
                _ => None,
            };
            Some(Member {
                id: id.clone(),
                server,
                session,
            })
        })
        .collect()
}

/// The 404 of an unknown profile.
fn unknown_profile(scope: &Scope) -> Refusal {
    let message = match scope {
        Scope::Profile(profile) => format!("unknown profile: {profile}"),
        Scope::All => "unknown endpoint".to_owned(),
    };
    client(StatusCode::NOT_FOUND, jsonrpc::METHOD_NOT_FOUND, message)
}

/// A refusal of the client's message (its transport, envelope or session).
fn client(http: StatusCode, code: i64, message: impl Into<String>) -> Refusal {
    Refusal::new(Cause::Client, http, code, message)
}

/// The session principal of the request with these parts: tokens are sealed for it and
/// open only for it.
fn principal(parts: &Parts) -> Principal {
    Principal::of(&Caller::of(parts))
}

fn result(id: &RequestId, result: Value) -> Response<ProxyBody> {
    let body = json!({"jsonrpc": "2.0", "id": id.0, "result": result});
    jsonrpc::json_response(StatusCode::OK, &body).map(|b| b.map_err(|never| match never {}).boxed())
}

/// The refusal when a member failed: the member's own JSON-RPC error code when it sent
/// one, else −32603.
fn member_error(failure: &fanout::MemberError) -> Refusal {
    let code = match failure {
        fanout::MemberError::Status {
            error: Some(error), ..
        }
        | fanout::MemberError::Refused { error, .. } => error
            .get("code")
            .and_then(Value::as_i64)
            .unwrap_or(jsonrpc::INTERNAL_ERROR),
        _ => jsonrpc::INTERNAL_ERROR,
    };
    Refusal::new(Cause::Upstream, failure.status(), code, failure.to_string())
}

fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}
