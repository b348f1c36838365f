//! The public MCP routes: `POST|GET|DELETE /mcp/{server_id}`, a streaming pass-through to
//! the server's streamable-HTTP endpoint or to the process of a stdio server (`stdio`), and
//! the aggregate endpoints `/mcp` and `/mcp/profile/{profile_id}` (`aggregate`), which go
//! down the same phases.
//!
//! [`Proxy::handle`] runs a request as named phases over one [`RequestContext`]
//! (`context`): the transport phases (`transport`: endpoint, HTTP method, host guard,
//! authentication, body, envelope, configuration, session, routing headers), then each
//! message (`answer`: one batch handler for both kinds of endpoint; admission, the upstream
//! exchange, list filtering). A phase that will not let the request go on returns a
//! `Refusal`; the first one ends the request. Whatever happened, the request ends in
//! [`Proxy::record`] (`record`), the one place that records it. Responses, SSE included,
//! stream back as they arrive.

mod answer;
mod context;
mod record;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::aggregate::Aggregator;
use crate::answer_check;
use crate::apply::SharedRuntime;
use crate::audit::{AuditedBody, Auditor};
use crate::deadline::DeadlineBody;
use crate::http::{ProxyBody, is_event_stream, pass_back};
use crate::jsonrpc::{self, RequestId};
use crate::refusal::{Cause, Refusal};
use crate::runtime::HttpUpstream;
use crate::services::Services;
use crate::session::{KeyRing, ServerSession};
use crate::telemetry::{self, Telemetry};
use crate::trace_context::TraceContext;
use crate::upstream::exchange::{Answered, Exchange, ExchangeError, upstream_headers};
use crate::upstream::{UpstreamClient, upstream_client};
use context::RequestContext;

/// Default for `--body-read-timeout`.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The public request handler and its upstream connection pool.
#[derive(Debug)]
pub struct Proxy {
    runtime: SharedRuntime,
    client: UpstreamClient,
    aggregate: Aggregator,
    /// The process's long-lived services (metrics, approvals, webhooks).
    services: Services,
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
    pub fn new(runtime: SharedRuntime, services: Services) -> Proxy {
        let client = upstream_client();
        Proxy {
            runtime,
            aggregate: Aggregator::new(client.clone(), services.clone()),
            client,
            audit: Arc::new(Auditor::to_log(String::new(), &services.metrics)),
            services,
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

    /// Serve one request; `local` is the address the client connected to. The request
    /// path, phase by phase (README: "The data plane decides every message..."); the first
    /// refusal ends it, and [`Proxy::record`] records it whatever happened.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        local: SocketAddr,
    ) -> Response<AuditedBody> {
        let (parts, body) = request.into_parts();
        let runtime = self.runtime.load_full();
        let mut ctx = RequestContext::start(runtime, parts, local, &self.telemetry);
        let span = tracing::info_span!("mcp", trace_id = %ctx.trace.trace_id());
        let outcome = self.phases(&mut ctx, body).instrument(span.clone()).await;
        span.in_scope(|| self.record(ctx, outcome))
    }

    /// The phases of one request, in order.
    async fn phases(
        &self,
        ctx: &mut RequestContext,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, Refusal> {
        transport::resolve_endpoint(ctx)?;
        transport::check_method(ctx)?;
        transport::guard_host(ctx)?;
        transport::authenticate(ctx, &self.services.metrics).await?;
        transport::read_body(ctx, body, self.body_read_timeout).await?;
        transport::check_envelope(ctx)?;
        transport::require_configuration(ctx)?;
        transport::require_known(ctx)?;
        transport::open_session(ctx, &self.key_ring)?;
        transport::check_routing_headers(ctx)?;
        // Per message: admit, send upstream, filter lists on the way back.
        self.answer(ctx).await
    }

    async fn forward(
        &self,
        server_id: &str,
        upstream: &HttpUpstream,
        parts: &Parts,
        body: Bytes,
        id: &RequestId,
    ) -> Result<Response<ProxyBody>, Refusal> {
        let session = parts.extensions.get::<ServerSession>();
        let exchange =
            match Exchange::pick(&upstream.replicas, session.and_then(ServerSession::replica)) {
                Ok(exchange) => exchange,
                Err(failure) => return Err(upstream_failure(server_id, upstream, failure)),
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
            Err(failure) => return Err(upstream_failure(server_id, upstream, failure)),
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
        Ok(lease.hold(response))
    }
}

/// The refusal when the exchange with the upstream of `server_id` brought no answer: the
/// exchange's status (503/404 no replica, 502 unreachable, 504 timed out) with a JSON-RPC
/// error that says which server and why.
fn upstream_failure(server_id: &str, upstream: &HttpUpstream, failure: ExchangeError) -> Refusal {
    let message = match &failure {
        ExchangeError::NoReplica(no_replica) => no_replica.to_string(),
        ExchangeError::Unreachable { cause } => {
            format!("upstream server {server_id} is unreachable: {cause}")
        }
        ExchangeError::TimedOut => {
            let timeout = humantime::format_duration(upstream.timeout);
            format!("upstream server {server_id} did not respond within {timeout}")
        }
    };
    Refusal::new(
        Cause::Upstream,
        failure.status(),
        jsonrpc::INTERNAL_ERROR,
        message,
    )
}
