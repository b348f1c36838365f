//! The phases of the request path that judge the HTTP request before any of its messages:
//! in the order the README documents, each a function of the [`RequestContext`] that
//! returns a [`Refusal`] when the request may not go on.
//!
//! What the request head decides comes first, before any of the body is read: the MCP
//! endpoint, the HTTP method, the `Host`/`Origin` guard against DNS rebinding (403), then
//! the caller is authenticated (`auth`: 401). Only then is a POST body read, bounded in size
//! and in time (`--body-read-timeout`, 408), so that later refusals can carry the JSON-RPC
//! request id, and checked: the JSON-RPC envelope (400) and batch limits (counted before any
//! entry is parsed). Then the gateway needs a configuration, the endpoint must be one it
//! has, and on `/mcp/{id}` the client's session token is opened and the routing headers
//! checked against the message.
//!
//! Every refusal before authentication has passed is marked so ([`Refusal::before_auth`]):
//! with `auth` configured its answer does not name the server.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::context::{Endpoint, RequestContext};
use crate::aggregate::Scope;
use crate::audit;
use crate::auth;
use crate::http::MAX_BODY_BYTES;
use crate::jsonrpc::{self, Envelope};
use crate::metrics::Metrics;
use crate::refusal::{Cause, Refusal};
use crate::routing_headers::{self, Carrying};
use crate::runtime::Upstream;
use crate::session::{self, KeyRing, ServerSession};
use crate::telemetry;

/// A client error with HTTP `http` and JSON-RPC `code`.
fn client(http: StatusCode, code: i64, message: impl Into<String>) -> Refusal {
    Refusal::new(Cause::Client, http, code, message)
}

/// The path names an MCP endpoint (`/mcp`, `/mcp/profile/{id}`, `/mcp/{id}`).
pub(super) fn resolve_endpoint(ctx: &RequestContext) -> Result<(), Refusal> {
    match ctx.endpoint {
        Endpoint::None => Err(client(
            StatusCode::NOT_FOUND,
            jsonrpc::METHOD_NOT_FOUND,
            "not found: MCP is served at /mcp, /mcp/profile/{profile_id} and /mcp/{server_id}",
        )),
        _ => Ok(()),
    }
}

/// MCP's streamable HTTP has POST, GET and DELETE.
pub(super) fn check_method(ctx: &RequestContext) -> Result<(), Refusal> {
    let parts = &ctx.parts;
    if matches!(parts.method, Method::POST | Method::GET | Method::DELETE) {
        return Ok(());
    }
    let message = format!(
        "method {} is not allowed on {}",
        parts.method,
        parts.uri.path()
    );
    Err(client(
        StatusCode::METHOD_NOT_ALLOWED,
        jsonrpc::INVALID_REQUEST,
        message,
    )
    .with_header(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"))
    .before_auth())
}

/// DNS rebinding: refused before anything else is said about the request.
pub(super) fn guard_host(ctx: &RequestContext) -> Result<(), Refusal> {
    let parts = &ctx.parts;
    ctx.runtime
        .host_policy()
        .check(&parts.headers, &parts.uri, ctx.local)
        .map_err(|reason| {
            let message = format!("forbidden: {reason}");
            client(StatusCode::FORBIDDEN, jsonrpc::INVALID_REQUEST, message).before_auth()
        })
}

/// Authentication: on the headers alone, before the body is read (a caller without
/// credentials costs no memory for it), before a session is opened or anything is routed,
/// and before an unknown server or profile is reported, so unauthenticated callers learn
/// nothing about the configuration. Its refusal carries no request id: the body that holds
/// it is never read.
pub(super) async fn authenticate(
    ctx: &mut RequestContext,
    metrics: &Metrics,
) -> Result<(), Refusal> {
    let Some(auth) = ctx.runtime.auth() else {
        return Ok(());
    };
    let span = telemetry::child(&ctx.parts, telemetry::AUTH);
    match auth.authenticate(&ctx.parts.headers).await {
        Ok(caller) => {
            telemetry::authenticated(span, &ctx.parts, &caller);
            ctx.authenticated(caller);
            Ok(())
        }
        Err(reason) => {
            telemetry::failed(span, &ctx.parts, reason.as_str());
            let message = format!("authentication failed: {reason}");
            Err(client(
                StatusCode::UNAUTHORIZED,
                jsonrpc::AUTHENTICATION_FAILED,
                message,
            )
            .with_header(header::WWW_AUTHENTICATE, auth::challenge(reason))
            .before_auth()
            .counting(metrics.auth_failures.with_label_values(&[reason.as_str()])))
        }
    }
}

/// Read a POST body, bounded in size and in time: a client that sends it slower than
/// `timeout` allows (a trickle holding the connection) gets 408. Other methods carry no
/// body. The body is read before anything else can fail, so later refusals carry the id.
pub(super) async fn read_body(
    ctx: &mut RequestContext,
    body: Incoming,
    timeout: Duration,
) -> Result<(), Refusal> {
    if ctx.parts.method != Method::POST {
        return Ok(());
    }
    ctx.body = collect(&ctx.parts.headers, body, timeout)
        .await
        .map_err(Refusal::before_auth)?;
    Ok(())
}

async fn collect(
    headers: &http::HeaderMap,
    body: Incoming,
    timeout: Duration,
) -> Result<Bytes, Refusal> {
    let too_large = || {
        client(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let collected = tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect());
    match collected.await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(failure)) if failure.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(failure)) => Err(client(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            format!("cannot read the request body: {failure}"),
        )),
        Err(_) => {
            let timeout = humantime::format_duration(timeout);
            Err(client(
                StatusCode::REQUEST_TIMEOUT,
                jsonrpc::INVALID_REQUEST,
                format!("the request body did not arrive within {timeout}"),
            ))
        }
    }
}

/// A POST is one JSON-RPC message or a batch within the limits (`jsonrpc::check`); what
/// it is goes on the ledger, whether it passes or not.
pub(super) fn check_envelope(ctx: &mut RequestContext) -> Result<(), Refusal> {
    if ctx.parts.method != Method::POST {
        audit::begin(&mut ctx.parts, &ctx.body, None);
        return Ok(());
    }
    let envelope = jsonrpc::check(&ctx.body);
    audit::begin(&mut ctx.parts, &ctx.body, Some(&envelope));
    match envelope {
        Ok(envelope) => {
            if let Envelope::Single(id, _) = &envelope {
                ctx.id = id.clone();
            }
            ctx.envelope = Some(envelope);
            Ok(())
        }
        Err(rejection) => {
            ctx.id = rejection.id;
            Err(client(StatusCode::BAD_REQUEST, rejection.code, rejection.message).before_auth())
        }
    }
}

/// The gateway serves nothing before its first configuration.
pub(super) fn require_configuration(ctx: &mut RequestContext) -> Result<(), Refusal> {
    if ctx.runtime.applied().is_some() {
        return Ok(());
    }
    // No configuration: the request is counted under `none`, whatever it named.
    ctx.endpoint = Endpoint::None;
    Err(Refusal::new(
        Cause::Internal,
        StatusCode::SERVICE_UNAVAILABLE,
        jsonrpc::INTERNAL_ERROR,
        "the gateway has no configuration yet",
    ))
}

/// The configuration has the server or profile the path names.
pub(super) fn require_known(ctx: &RequestContext) -> Result<(), Refusal> {
    match ctx.endpoint.known() {
        true => Ok(()),
        false => Err(unknown_endpoint(ctx)),
    }
}

/// The refusal of a server or profile the configuration does not have.
pub(super) fn unknown_endpoint(ctx: &RequestContext) -> Refusal {
    let message = match &ctx.endpoint {
        Endpoint::Server { id, .. } => format!("unknown server: {id}"),
        Endpoint::Aggregate {
            scope: Scope::Profile(profile),
            ..
        } => format!("unknown profile: {profile}"),
        _ => "unknown endpoint".to_owned(),
    };
    client(StatusCode::NOT_FOUND, jsonrpc::METHOD_NOT_FOUND, message)
}

/// `/mcp/{id}` of an HTTP server: the client's session token is opened once; forwarding
/// translates with it.
pub(super) fn open_session(ctx: &mut RequestContext, key_ring: &KeyRing) -> Result<(), Refusal> {
    let Endpoint::Server {
        id,
        server: Some(server),
    } = &ctx.endpoint
    else {
        return Ok(());
    };
    if !matches!(server.upstream, Upstream::Http(_)) {
        return Ok(());
    }
    let keys = key_ring.keys(ctx.runtime.session_keys());
    let principal = session::Principal::of(&crate::caller::Caller::of(&ctx.parts));
    match ServerSession::open(&ctx.parts.headers, id, keys, principal) {
        Ok(session) => {
            ctx.parts.extensions.insert(session);
            Ok(())
        }
        Err(refused) => Err(client(
            StatusCode::NOT_FOUND,
            session::SESSION_NOT_FOUND,
            format!("session not found ({refused}): initialize a new session"),
        )),
    }
}

/// `/mcp/{id}`: what the upstream may route by must be what admission read
/// (`routing_headers`).
pub(super) fn check_routing_headers(ctx: &RequestContext) -> Result<(), Refusal> {
    if !matches!(ctx.endpoint, Endpoint::Server { .. }) {
        return Ok(());
    }
    let carrying = match &ctx.envelope {
        Some(Envelope::Batch(_)) => Carrying::Batch,
        Some(Envelope::Single(..)) => Carrying::Message(&ctx.body),
        None => Carrying::NoMessage,
    };
    routing_headers::check(&ctx.parts.headers, carrying).map_err(|mismatch| {
        client(
            StatusCode::BAD_REQUEST,
            jsonrpc::HEADER_MISMATCH,
            mismatch.to_string(),
        )
    })
}
