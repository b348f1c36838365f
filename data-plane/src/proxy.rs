//! The public MCP routes: `POST|GET|DELETE /mcp/{server_id}`, a streaming pass-through to
//! the server's streamable-HTTP endpoint or to the process of a stdio server (`stdio`), and
//! the aggregate endpoints `/mcp` and `/mcp/profile/{profile_id}` (`aggregate`), which
//! share the transport checks.
//!
//! A request takes one `Arc<Runtime>` at its start and uses it to the end, so a config swap
//! never changes a request midway. What the request head decides comes first, before any
//! of the body is read: the `Host`/`Origin` guard against DNS rebinding (403), then the
//! caller is authenticated (`auth`: 401). Only then is a POST body read, bounded in size
//! and in time (`--body-read-timeout`, 408), so that later gateway errors can carry the
//! JSON-RPC request id, and checked: the JSON-RPC envelope (400) and batch limits (counted
//! before any entry is parsed). Responses, SSE included, stream back as they arrive. Every
//! request ends in [`Proxy::finish`], the one place that records it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::admission::{self, Message, OwnedView, Target, Unreadable};
use crate::aggregate::{self, Aggregator, Scope};
use crate::apply::SharedRuntime;
use crate::audit::{self, AuditedBody, Auditor, Ledger};
use crate::auth;
use crate::deadline::DeadlineBody;
use crate::http::{MAX_BODY_BYTES, ProxyBody, SERVER_ID_HEADER, error, is_event_stream, pass_back};
use crate::jsonrpc::{self, RequestId};
use crate::metrics::{Metrics, status_class};
use crate::routing_headers::{self, Carrying};
use crate::runtime::{HttpUpstream, Runtime, Server, Upstream};
use crate::session::{self, KeyRing, ServerSession};
use crate::telemetry::{self, Telemetry};
use crate::trace_context::TraceContext;
use crate::upstream::exchange::{Answered, Exchange, ExchangeError, upstream_headers};
use crate::upstream::{UpstreamClient, upstream_client};
use crate::{answer_check, batch};

/// Default for `--body-read-timeout`.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The public request handler and its upstream connection pool.
#[derive(Debug)]
pub struct Proxy {
    runtime: SharedRuntime,
    client: UpstreamClient,
    aggregate: Aggregator,
    metrics: Arc<Metrics>,
    /// Session keys not named by the config (the applier's ring).
    key_ring: Arc<KeyRing>,
    /// Trace export (off unless the config enables it).
    telemetry: Telemetry,
    /// Writes every request's audit records.
    audit: Arc<Auditor>,
    /// Time a client has to send a whole request body once it is being read.
    body_read_timeout: Duration,
}

impl Proxy {
    pub fn new(runtime: SharedRuntime, metrics: Arc<Metrics>) -> Proxy {
        let client = upstream_client();
        Proxy {
            runtime,
            aggregate: Aggregator::new(client.clone()),
            client,
            audit: Arc::new(Auditor::to_log(String::new(), &metrics)),
            metrics,
            key_ring: Arc::new(KeyRing::new()),
            telemetry: Telemetry::new(""),
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
        }
    }

    /// Give clients `timeout` to send a whole request body (408 after it).
    pub fn with_body_read_timeout(mut self, timeout: Duration) -> Proxy {
        self.body_read_timeout = timeout;
        self
    }

    /// Export the spans of requests through `telemetry` (the applier's).
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Proxy {
        self.telemetry = telemetry;
        self
    }

    /// Write audit records with `audit` (by default they go to the log).
    pub fn with_audit(mut self, audit: Arc<Auditor>) -> Proxy {
        self.audit = audit;
        self
    }

    /// Use `key_ring` (the applier's) for session tokens.
    pub fn with_key_ring(mut self, key_ring: Arc<KeyRing>) -> Proxy {
        self.key_ring = key_ring;
        self
    }

    /// Serve one request; `local` is the address the client connected to.
    ///
    /// The request's [`TraceContext`] travels in its extensions to whatever forwards it,
    /// with the [`Ledger`] its phases write the audit facts in; the answer's body writes
    /// the audit records when it ends.
    pub async fn handle(
        &self,
        mut request: Request<Incoming>,
        local: SocketAddr,
    ) -> Response<AuditedBody> {
        let started = Instant::now();
        let trace = TraceContext::from_headers(request.headers());
        request.extensions_mut().insert(trace);
        let exported = self.telemetry.start(&trace, request.method());
        if let Some(exported) = &exported {
            request.extensions_mut().insert(exported.clone());
        }
        let ledger = Ledger::start(trace.trace_id(), started);
        request.extensions_mut().insert(ledger.clone());
        let span = tracing::info_span!("mcp", trace_id = %trace.trace_id());
        let (label, mut response) = self.route(request, local).instrument(span.clone()).await;
        if let Some(exported) = exported {
            exported.end(&label, &response);
        }
        trace.tag(response.headers_mut());
        let method = ledger.noted_method_label();
        span.in_scope(|| self.finish(&label, method, &response, started));
        self.audit.watch(response, Some(ledger), &label)
    }

    /// Returns the metrics label for the request and its response.
    async fn route(
        &self,
        request: Request<Incoming>,
        local: SocketAddr,
    ) -> (String, Response<ProxyBody>) {
        let path = request.uri().path();
        let scope = Scope::from_path(path);
        // On aggregates the "server id" is the endpoint's label (`aggregate`, `profile:<id>`).
        let endpoint = match &scope {
            Some(scope) => Some(scope.label()),
            None => mcp_server_id(path).map(str::to_owned),
        };
        let Some(server_id) = endpoint else {
            if let Some(ledger) = Ledger::of(request.extensions()) {
                ledger.profile(self.runtime.load().audit_profile());
            }
            let response = error(
                StatusCode::NOT_FOUND,
                &RequestId::null(),
                jsonrpc::METHOD_NOT_FOUND,
                "not found: MCP is served at /mcp, /mcp/profile/{profile_id} and /mcp/{server_id}",
            );
            return ("none".into(), response);
        };
        let runtime = self.runtime.load_full();
        if let Some(ledger) = Ledger::of(request.extensions()) {
            ledger.profile(runtime.audit_profile());
        }
        let server = match scope {
            None => runtime.server(&server_id).cloned(),
            Some(_) => None,
        };
        let known = match &scope {
            Some(scope) => runtime.aggregates().members(scope).is_some(),
            None => server.is_some(),
        };
        if !matches!(
            *request.method(),
            Method::POST | Method::GET | Method::DELETE
        ) {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                &RequestId::null(),
                jsonrpc::INVALID_REQUEST,
                format!(
                    "method {} is not allowed on {}",
                    request.method(),
                    request.uri().path()
                ),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            return before_auth(&runtime, known, server_id, response);
        }

        // DNS rebinding: refused before anything else is said about the request.
        if let Err(reason) = runtime
            .host_policy()
            .check(request.headers(), request.uri(), local)
        {
            tracing::debug!(%reason, "request refused");
            let response = error(
                StatusCode::FORBIDDEN,
                &RequestId::null(),
                jsonrpc::INVALID_REQUEST,
                format!("forbidden: {reason}"),
            );
            return before_auth(&runtime, known, server_id, response);
        }
        let (mut parts, body) = request.into_parts();
        // Authentication: on the headers alone, before the body is read (a caller without
        // credentials costs no memory for it), before a session is opened or anything is
        // routed, and before an unknown server or profile is reported, so unauthenticated
        // callers learn nothing about the configuration. Its refusal carries no request
        // id: the body that holds it is never read.
        if let Some(auth) = runtime.auth() {
            let span = telemetry::child(&parts, telemetry::AUTH);
            match auth.authenticate(&parts.headers).await {
                Ok(caller) => {
                    telemetry::authenticated(span, &parts, &caller);
                    if let Some(ledger) = Ledger::of(&parts.extensions) {
                        ledger.caller(&caller);
                    }
                    parts.extensions.insert(caller);
                }
                Err(reason) => {
                    telemetry::failed(span, &parts, reason.as_str());
                    let response = self.refuse(reason, &RequestId::null());
                    return (metrics_label(known, server_id), response);
                }
            }
        }

        // The body is read before anything else can fail, so later errors carry the id.
        let body = match read_body(&parts, body, self.body_read_timeout).await {
            Ok(body) => body,
            Err(response) => return before_auth(&runtime, known, server_id, response),
        };
        let envelope = if parts.method == Method::POST {
            Some(jsonrpc::check(&body))
        } else {
            None
        };
        let id = match &envelope {
            Some(Ok(jsonrpc::Envelope::Single(id, _))) => id.clone(),
            Some(Err(rejection)) => rejection.id.clone(),
            _ => RequestId::null(),
        };
        audit::begin(&mut parts, &body, envelope.as_ref());
        if let Some(Err(rejection)) = envelope {
            let response = error(
                StatusCode::BAD_REQUEST,
                &rejection.id,
                rejection.code,
                rejection.message,
            );
            return before_auth(&runtime, known, server_id, response);
        }
        if runtime.applied().is_none() {
            let response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                &id,
                jsonrpc::INTERNAL_ERROR,
                "the gateway has no configuration yet",
            );
            return ("none".into(), response);
        }
        if let Some(scope) = scope {
            let keys = self.key_ring.keys(runtime.session_keys());
            let response = match envelope {
                _ if !known => aggregate::unknown_profile(&scope, &id),
                Some(Ok(jsonrpc::Envelope::Batch(batch))) => {
                    let (runtime, scope, parts, keys) = (&runtime, &scope, &parts, &keys);
                    batch::answer(batch.entries, |message, id| async move {
                        let parts = audit::entry(parts, &message);
                        let response = self
                            .aggregate
                            .handle(runtime, scope, &parts, message, &id, keys)
                            .await;
                        audit::entry_answer(&parts, response)
                    })
                    .await
                }
                _ => {
                    self.aggregate
                        .handle(&runtime, &scope, &parts, body, &id, &keys)
                        .await
                }
            };
            return label_and_tag(known, server_id, response);
        }
        let Some(server) = server else {
            let response = error(
                StatusCode::NOT_FOUND,
                &id,
                jsonrpc::METHOD_NOT_FOUND,
                format!("unknown server: {server_id}"),
            );
            return label_and_tag(false, server_id, response);
        };

        // The client's session token is opened once; forwarding translates with it.
        if let Upstream::Http(_) = &server.upstream {
            let keys = self.key_ring.keys(runtime.session_keys());
            let principal = session::Principal::of(&crate::caller::Caller::of(&parts));
            match ServerSession::open(&parts.headers, &server_id, keys, principal) {
                Ok(session) => {
                    parts.extensions.insert(session);
                }
                Err(refused) => {
                    tracing::debug!(server = %server_id, reason = %refused, "session token refused");
                    let response = error(
                        StatusCode::NOT_FOUND,
                        &id,
                        session::SESSION_NOT_FOUND,
                        format!("session not found ({refused}): initialize a new session"),
                    );
                    return label_and_tag(true, server_id, response);
                }
            }
        }
        // What the upstream may route by must be what admission read (`routing_headers`).
        let carrying = match &envelope {
            Some(Ok(jsonrpc::Envelope::Batch(_))) => Carrying::Batch,
            Some(_) => Carrying::Message(&body),
            None => Carrying::NoMessage,
        };
        if let Err(mismatch) = routing_headers::check(&parts.headers, carrying) {
            tracing::debug!(server = %server_id, %mismatch, "routing headers refused");
            let response = error(
                StatusCode::BAD_REQUEST,
                &id,
                jsonrpc::HEADER_MISMATCH,
                mismatch.to_string(),
            );
            return label_and_tag(true, server_id, response);
        }
        if let Some(Ok(jsonrpc::Envelope::Batch(_))) = &envelope {
            telemetry::note_batch(&mut parts);
        }
        let response = match envelope {
            Some(Ok(jsonrpc::Envelope::Batch(batch))) => {
                let (runtime, server_id, server, parts) = (&runtime, &server_id, &server, &parts);
                batch::answer(batch.entries, |message, id| async move {
                    let parts = audit::entry(parts, &message);
                    let response = self
                        .dispatch(runtime, server_id, server, &parts, message, &id)
                        .await;
                    audit::entry_answer(&parts, response)
                })
                .await
            }
            _ => {
                self.dispatch(&runtime, &server_id, &server, &parts, body, &id)
                    .await
            }
        };
        label_and_tag(true, server_id, response)
    }

    /// Run one message (or a GET/DELETE) through admission, then to the server's upstream;
    /// a list's answer comes back filtered to what the caller may use. Without any policy
    /// section the message is not even parsed.
    async fn dispatch(
        &self,
        runtime: &Arc<Runtime>,
        server_id: &str,
        server: &Server,
        parts: &Parts,
        body: Bytes,
        id: &RequestId,
    ) -> Response<ProxyBody> {
        if !runtime.admission_enabled() {
            telemetry::describe_body(parts, &body);
            return self.send(server_id, server, parts, body, id).await;
        }
        if parts.method != Method::POST {
            let response = self.send(server_id, server, parts, body, id).await;
            if parts.method == Method::GET && runtime.policies().filters_lists() {
                // A resumed stream (`Last-Event-ID`) may replay the answer to a list.
                let view = OwnedView::new(Arc::clone(runtime), parts, server_id);
                return admission::filter::filter_any_lists(response, Box::new(view));
            }
            return response;
        }
        let message = match Message::parse(&body) {
            Ok(message) => message,
            Err(unreadable) => return unreadable_message(id, &unreadable),
        };
        telemetry::describe(parts, &message);
        if let (false, Some(method)) = (message.known(), message.method.as_deref()) {
            return admission::unknown_method(runtime, method, message.notification, id);
        }
        let target = message.target_on(server_id);
        let admitted = match target {
            // Every other request counts in the rate limits; notifications and responses
            // do not.
            Target::Other if message.method.is_some() && !message.notification => {
                admission::admit_request(runtime, parts, Some(server_id), id).await
            }
            _ => admission::admit(runtime, parts, &target, id)
                .await
                .map(drop),
        };
        if let Err(refused) = admitted {
            return refused;
        }
        let response = self.send(server_id, server, parts, body, id).await;
        match message.list() {
            Some(kind) if runtime.policies().inspects(kind) => {
                let view = OwnedView::new(Arc::clone(runtime), parts, server_id);
                admission::filter::filter_response(response, id.clone(), kind, Box::new(view)).await
            }
            _ => response,
        }
    }

    /// Send one message (or a GET/DELETE) to the server's upstream.
    async fn send(
        &self,
        server_id: &str,
        server: &Server,
        parts: &Parts,
        body: Bytes,
        id: &RequestId,
    ) -> Response<ProxyBody> {
        match &server.upstream {
            Upstream::Http(upstream) => self.forward(server_id, upstream, parts, body, id).await,
            Upstream::Stdio(stdio) => {
                let _span = telemetry::upstream(parts, server_id, None);
                stdio.handle(parts, body).await
            }
            Upstream::Managed => error(
                StatusCode::NOT_IMPLEMENTED,
                id,
                jsonrpc::INTERNAL_ERROR,
                "managed_runtime servers are not run by this data plane yet",
            ),
        }
    }

    async fn forward(
        &self,
        server_id: &str,
        upstream: &HttpUpstream,
        parts: &Parts,
        body: Bytes,
        id: &RequestId,
    ) -> Response<ProxyBody> {
        let session = parts.extensions.get::<ServerSession>();
        let exchange =
            match Exchange::pick(&upstream.replicas, session.and_then(ServerSession::replica)) {
                Ok(exchange) => exchange,
                Err(failure) => return upstream_failure(server_id, upstream, id, failure),
            };
        let mut headers = upstream_headers(
            &parts.headers,
            &upstream.headers,
            upstream.forward_authorization,
        );
        if let Some(session) = session {
            session.to_upstream(&mut headers);
        }
        let span = telemetry::upstream(parts, server_id, Some(exchange.uri()));
        if let Some(trace) = parts.extensions.get::<TraceContext>() {
            telemetry::upstream_context(trace, span.as_ref()).propagate(&mut headers);
        }

        // One deadline for the whole exchange: response headers, and for a POST the body
        // too (see `deadline`); a GET event stream stays open as long as both sides want.
        let deadline = Instant::now() + upstream.timeout;
        let method = parts.method.clone();
        let sent = exchange
            .send(&self.client, method, headers, body, deadline)
            .await;
        if let Some(span) = span {
            span.upstream_outcome(match &sent {
                Ok(answered) => Ok(answered.response.status()),
                Err(failure) => Err(failure.span_reason()),
            });
        }
        let Answered { response, lease } = match sent {
            Ok(answered) => answered,
            Err(failure) => return upstream_failure(server_id, upstream, id, failure),
        };
        let mut response = match response {
            response if parts.method == Method::POST && !is_event_stream(response.headers()) => {
                answer_check::checked(response, deadline, id, server_id).await
            }
            response if parts.method == Method::POST => pass_back(response, |body| {
                DeadlineBody::new(body, deadline, id, server_id, upstream.timeout).boxed()
            }),
            response => pass_back(response, |body| body.map_err(Into::into).boxed()),
        };
        if let Some(session) = session {
            // The replica is only worth naming when there is a choice.
            session.to_client(response.headers_mut(), lease.replica());
        }
        // The replica counts the request in flight until its answer has been streamed.
        lease.hold(response)
    }

    /// The answer to a request that failed authentication: 401 with a Bearer challenge and
    /// a JSON-RPC error carrying the request id, never the credential.
    fn refuse(&self, reason: auth::Reason, id: &RequestId) -> Response<ProxyBody> {
        self.metrics
            .auth_failures
            .with_label_values(&[reason.as_str()])
            .inc();
        tracing::debug!(reason = reason.as_str(), "authentication failed");
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            id,
            jsonrpc::AUTHENTICATION_FAILED,
            format!("authentication failed: {reason}"),
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, auth::challenge(reason));
        response
    }

    /// The single place where every request is recorded: its metrics here, its audit
    /// records when the answer's body ends (`audit`).
    fn finish(&self, label: &str, method: &str, response: &Response<ProxyBody>, started: Instant) {
        let status = response.status();
        let elapsed = started.elapsed();
        self.metrics
            .requests
            .with_label_values(&[label, method, status_class(status)])
            .inc();
        self.metrics
            .request_duration
            .with_label_values(&[label])
            .observe(elapsed.as_secs_f64());
        tracing::debug!(
            server = label,
            status = status.as_u16(),
            ?elapsed,
            "request"
        );
    }
}

/// The answer to a message admission cannot read: a missing or malformed parameter is
/// −32602 (as the server would say), a body it cannot trust is refused as invalid.
fn unreadable_message(id: &RequestId, unreadable: &Unreadable) -> Response<ProxyBody> {
    match unreadable {
        Unreadable::MissingParam { .. } | Unreadable::Arguments { .. } => error(
            StatusCode::OK,
            id,
            jsonrpc::INVALID_PARAMS,
            unreadable.to_string(),
        ),
        Unreadable::Invalid(_) => error(
            StatusCode::BAD_REQUEST,
            id,
            jsonrpc::INVALID_REQUEST,
            unreadable.to_string(),
        ),
    }
}

/// `Some(id)` for `/mcp/{id}` (one non-empty segment), else `None`.
fn mcp_server_id(path: &str) -> Option<&str> {
    path.strip_prefix("/mcp/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// Read a POST body, bounded in size and in time: a client that sends it slower than
/// `timeout` allows (a trickle holding the connection) gets 408. Other methods carry no
/// body.
async fn read_body(
    parts: &Parts,
    body: Incoming,
    timeout: Duration,
) -> Result<Bytes, Response<ProxyBody>> {
    if parts.method != Method::POST {
        return Ok(Bytes::new());
    }
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &RequestId::null(),
            jsonrpc::INVALID_REQUEST,
            format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = parts
        .headers
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
        Ok(Err(failure)) => Err(error(
            StatusCode::BAD_REQUEST,
            &RequestId::null(),
            jsonrpc::INVALID_REQUEST,
            format!("cannot read the request body: {failure}"),
        )),
        Err(_) => {
            let timeout = humantime::format_duration(timeout);
            tracing::debug!(%timeout, "request body not received in time");
            Err(error(
                StatusCode::REQUEST_TIMEOUT,
                &RequestId::null(),
                jsonrpc::INVALID_REQUEST,
                format!("the request body did not arrive within {timeout}"),
            ))
        }
    }
}

/// The answer when the exchange with the upstream of `server_id` brought none: a JSON-RPC
/// error with the exchange's status (503/404 no replica, 502 unreachable, 504 timed out).
fn upstream_failure(
    server_id: &str,
    upstream: &HttpUpstream,
    id: &RequestId,
    failure: ExchangeError,
) -> Response<ProxyBody> {
    let message = match &failure {
        ExchangeError::NoReplica(no_replica) => no_replica.to_string(),
        ExchangeError::Unreachable { cause } => {
            tracing::warn!(server = server_id, error = %cause, "upstream request failed");
            format!("upstream server {server_id} is unreachable: {cause}")
        }
        ExchangeError::TimedOut => {
            let timeout = humantime::format_duration(upstream.timeout);
            tracing::warn!(server = server_id, %timeout, "upstream request timed out");
            format!("upstream server {server_id} did not respond within {timeout}")
        }
    };
    error(failure.status(), id, jsonrpc::INTERNAL_ERROR, message)
}

/// The metrics label of a request: the server id when it is configured, else `unknown`
/// (unknown ids share one label to bound metric cardinality).
fn metrics_label(known: bool, server_id: String) -> String {
    if known { server_id } else { "unknown".into() }
}

/// [`label_and_tag`] for answers given before authentication: with `auth` configured the
/// response does not name the server, which would tell an unauthenticated caller that it
/// exists.
fn before_auth(
    runtime: &crate::runtime::Runtime,
    known: bool,
    server_id: String,
    response: Response<ProxyBody>,
) -> (String, Response<ProxyBody>) {
    if runtime.auth().is_some() {
        return (metrics_label(known, server_id), response);
    }
    label_and_tag(known, server_id, response)
}

/// The metrics label of a request on `/mcp/{server_id}` and its response, which names the
/// server when it is configured. Unknown ids share one label to bound metric cardinality.
fn label_and_tag(
    known: bool,
    server_id: String,
    mut response: Response<ProxyBody>,
) -> (String, Response<ProxyBody>) {
    if !known {
        return ("unknown".into(), response);
    }
    if let Ok(value) = HeaderValue::from_str(&server_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(SERVER_ID_HEADER), value);
    }
    (server_id, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_single_segment_mcp_paths() {
        assert_eq!(mcp_server_id("/mcp/alpha"), Some("alpha"));
        assert_eq!(mcp_server_id("/mcp/"), None);
        assert_eq!(mcp_server_id("/mcp"), None);
        assert_eq!(mcp_server_id("/mcp/a/b"), None);
        assert_eq!(mcp_server_id("/metrics"), None);
    }
}
