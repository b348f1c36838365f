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
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::Scheme;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::aggregate::Aggregator;
use crate::answer_check;
use crate::apply::SharedRuntime;
use crate::audit::{AuditedBody, Auditor};
use crate::balancer::{Leased, Outcome};
use crate::deadline::DeadlineBody;
use crate::http::{ProxyBody, error, is_event_stream, pass_back};
use crate::jsonrpc::{self, RequestId};
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::runtime::HttpUpstream;
use crate::session::{KeyRing, ServerSession};
use crate::telemetry::{self, Telemetry};
use crate::trace_context::TraceContext;
use crate::upstream::{UpstreamClient, upstream_client};
use context::RequestContext;

/// Default for `--body-read-timeout`.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Request headers passed to the upstream besides every `Mcp-*` header.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("last-event-id"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];

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
        transport::authenticate(ctx, &self.metrics).await?;
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
    ) -> Response<ProxyBody> {
        let session = parts.extensions.get::<ServerSession>();
        let mut lease = match upstream
            .replicas
            .pick(session.and_then(ServerSession::replica))
        {
            Ok(lease) => lease,
            Err(no_replica) => {
                let message = no_replica.to_string();
                return error(no_replica.status(), id, jsonrpc::INTERNAL_ERROR, message);
            }
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = lease.uri().clone();
        *request.headers_mut() = upstream_headers(&parts.headers, upstream);
        if let Some(session) = session {
            session.to_upstream(request.headers_mut());
        }
        let span = telemetry::upstream(parts, server_id, Some(lease.uri()));
        if let Some(trace) = parts.extensions.get::<TraceContext>() {
            telemetry::upstream_context(trace, span.as_ref()).propagate(request.headers_mut());
        }
        if let Some(host) = plain_http_host(lease.uri()) {
            request.headers_mut().entry(header::HOST).or_insert(host);
        }

        // One deadline for the whole exchange: response headers, and for a POST the body
        // too (see `deadline`); a GET event stream stays open as long as both sides want.
        let deadline = Instant::now() + upstream.timeout;
        let sent = tokio::time::timeout_at(deadline, self.client.request(request)).await;
        lease.report(match &sent {
            Ok(Ok(response)) => Outcome::of_status(response.status()),
            Ok(Err(_)) | Err(_) => Outcome::Failure,
        });
        if let Some(span) = span {
            span.upstream_outcome(match &sent {
                Ok(Ok(response)) => Ok(response.status()),
                Ok(Err(_)) => Err("unreachable"),
                Err(_) => Err("timeout"),
            });
        }
        let mut response = match sent {
            Ok(Ok(response))
                if parts.method == Method::POST && !is_event_stream(response.headers()) =>
            {
                answer_check::checked(response, deadline, id, server_id).await
            }
            Ok(Ok(response)) if parts.method == Method::POST => pass_back(response, |body| {
                DeadlineBody::new(body, deadline, id, server_id, upstream.timeout).boxed()
            }),
            Ok(Ok(response)) => pass_back(response, |body| body.map_err(Into::into).boxed()),
            Ok(Err(failure)) => {
                let cause = crate::error_chain(&failure);
                tracing::warn!(server = server_id, error = %cause, "upstream request failed");
                error(
                    StatusCode::BAD_GATEWAY,
                    id,
                    jsonrpc::INTERNAL_ERROR,
                    format!("upstream server {server_id} is unreachable: {cause}"),
                )
            }
            Err(_) => {
                let timeout = humantime::format_duration(upstream.timeout);
                tracing::warn!(server = server_id, %timeout, "upstream request timed out");
                error(
                    StatusCode::GATEWAY_TIMEOUT,
                    id,
                    jsonrpc::INTERNAL_ERROR,
                    format!("upstream server {server_id} did not respond within {timeout}"),
                )
            }
        };
        if let Some(session) = session {
            // The replica is only worth naming when there is a choice.
            let replica = (upstream.replicas.replicas().len() > 1).then(|| lease.url());
            session.to_client(response.headers_mut(), replica);
        }
        // The replica counts the request in flight until its answer has been streamed.
        response.map(|body| Leased::new(body, lease).boxed())
    }
}

/// The headers sent upstream: the caller's MCP and tracing headers, its `Authorization`
/// only when the server opts in, then the server's static headers (which win).
fn upstream_headers(incoming: &HeaderMap, upstream: &HttpUpstream) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(incoming.len() + upstream.headers.len());
    for (name, value) in incoming {
        let forwarded = FORWARDED_REQUEST_HEADERS.contains(name)
            || name.as_str().starts_with("mcp-")
            || (*name == header::AUTHORIZATION && upstream.forward_authorization);
        if forwarded {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in &upstream.headers {
        headers.insert(name.clone(), value.clone());
    }
    headers
}

/// The `Host` of a request to a plain-HTTP upstream (always HTTP/1.1): `host[:port]`
/// without credentials or the default port, as the client would write it. Set here because
/// the client formats it anew for every request (a tenth of the proxy's own instructions).
/// `None` for https, where the client may speak HTTP/2 and send `:authority` instead.
fn plain_http_host(uri: &Uri) -> Option<HeaderValue> {
    if uri.scheme() != Some(&Scheme::HTTP) {
        return None;
    }
    let authority = uri.authority()?.as_str();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    HeaderValue::from_str(host.strip_suffix(":80").unwrap_or(host)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(forward_authorization: bool) -> HttpUpstream {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        headers.insert("accept", HeaderValue::from_static("application/json"));
        HttpUpstream {
            replicas: crate::balancer::ReplicaSet::new(
                "s",
                vec![(
                    "http://127.0.0.1:1/mcp".into(),
                    "http://127.0.0.1:1/mcp".parse().unwrap(),
                )],
                None,
            ),
            headers,
            timeout: Duration::from_secs(1),
            forward_authorization,
        }
    }

    #[test]
    fn plain_http_host_is_what_the_client_would_send() {
        let host = |url: &str| plain_http_host(&url.parse().unwrap());
        assert_eq!(host("http://127.0.0.1:3001/mcp").unwrap(), "127.0.0.1:3001");
        assert_eq!(host("http://user:pw@mcp.local/mcp").unwrap(), "mcp.local");
        assert_eq!(host("http://mcp.local:80/mcp").unwrap(), "mcp.local");
        assert_eq!(host("http://[::1]:8080/").unwrap(), "[::1]:8080");
        assert!(host("https://mcp.example.com/mcp").is_none());
    }

    #[test]
    fn forwards_mcp_headers_and_guards_authorization() {
        let mut incoming = HeaderMap::new();
        for (name, value) in [
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
            ("mcp-session-id", "s1"),
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-method", "tools/call"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("authorization", "Bearer caller"),
            ("cookie", "session=1"),
            ("host", "gateway"),
        ] {
            incoming.insert(name, HeaderValue::from_static(value));
        }

        let headers = upstream_headers(&incoming, &upstream(false));
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["mcp-session-id"], "s1");
        assert_eq!(headers["mcp-protocol-version"], "2025-11-25");
        assert_eq!(headers["mcp-method"], "tools/call");
        assert!(headers.contains_key("traceparent"));
        assert_eq!(headers["x-api-key"], "k");
        // Static headers win over the caller's.
        assert_eq!(headers["accept"], "application/json");
        for dropped in ["authorization", "cookie", "host"] {
            assert!(!headers.contains_key(dropped), "{dropped} was forwarded");
        }

        let headers = upstream_headers(&incoming, &upstream(true));
        assert_eq!(headers["authorization"], "Bearer caller");
    }
}
