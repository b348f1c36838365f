//! One exchange with an MCP server's HTTP upstream, the same for `/mcp/{id}` (the proxy's
//! pass-through) and the aggregate endpoints (one per member):
//!
//! 1. [`Exchange::pick`] a replica: the one holding the caller's session when it names
//!    one, else the balancer's choice. None may be able to take the request.
//! 2. The caller makes the request's headers ([`request_headers`] is the selection both
//!    paths share) and, knowing the replica, starts its trace span.
//! 3. [`Exchange::send`] sets the replica's URI and the plain-HTTP `Host`, waits for the
//!    answer's head until the caller's deadline and reports the outcome to the replica's
//!    breaker and health. The answer comes back with its [`Lease`]; the caller puts the
//!    lease around the body it makes of the answer, so the replica counts the request in
//!    flight until the client has the answer.
//!
//! What each path says about a failure stays with it: `/mcp/{id}` words its JSON-RPC
//! errors, logs and ends its span, the aggregate makes `MemberError`s. This module only
//! types the failure ([`ExchangeError`]). It takes the pieces of a compiled server it
//! needs (replicas, static headers), not the server itself, so it sits just above
//! `balancer` and below `runtime`.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Scheme;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Incoming};
use tokio::time::Instant;

use super::UpstreamClient;
use crate::balancer::{Leased, NoReplica, Outcome, ReplicaLease, ReplicaSet};
use crate::http::{BodyError, ProxyBody};

/// Request headers `/mcp/{id}` passes to the upstream besides every `Mcp-*` header.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("last-event-id"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];

/// Why an exchange brought no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// No replica can take the request (the message names the server).
    #[error(transparent)]
    NoReplica(#[from] NoReplica),
    /// The request could not be sent or the answer's head not read; `cause` is the
    /// client's error chain.
    #[error("unreachable: {cause}")]
    Unreachable { cause: String },
    /// The answer's head had not arrived at the deadline.
    #[error("no answer before the deadline")]
    TimedOut,
}

impl ExchangeError {
    /// The HTTP status of the gateway's answer when this failure is the whole answer:
    /// the balancer's for no replica (503, or 404 for a session whose replica is gone),
    /// 502 unreachable, 504 timed out.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ExchangeError::NoReplica(no_replica) => no_replica.status(),
            ExchangeError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
            ExchangeError::TimedOut => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The bounded word a trace span gives as its error.
    pub(crate) fn span_reason(&self) -> &'static str {
        match self {
            ExchangeError::NoReplica(_) => "unavailable",
            ExchangeError::Unreachable { .. } => "unreachable",
            ExchangeError::TimedOut => "timeout",
        }
    }
}

/// A request to a server with its replica chosen, not sent yet.
#[derive(Debug)]
pub(crate) struct Exchange {
    lease: Lease,
}

/// The upstream's answer (its head; the body is still to be read) and the lease of the
/// replica that gave it.
#[derive(Debug)]
pub(crate) struct Answered {
    pub(crate) response: Response<Incoming>,
    pub(crate) lease: Lease,
}

/// The replica that answered, counting the request in flight (for least-connections and
/// the in-flight gauge) until it is dropped: [`Lease::hold`] ties it to the answer's body.
#[derive(Debug)]
#[must_use = "a dropped lease stops counting the request on its replica"]
pub(crate) struct Lease {
    lease: ReplicaLease,
    /// Whether the server has several replicas (then a session is pinned to this one).
    several: bool,
}

impl Exchange {
    /// Choose one of the server's `replicas`: `pinned` (the one holding the caller's
    /// session) when given, else the balancer's choice among those that are in.
    pub(crate) fn pick(
        replicas: &ReplicaSet,
        pinned: Option<&str>,
    ) -> Result<Exchange, ExchangeError> {
        let lease = Lease {
            lease: replicas.pick(pinned)?,
            several: replicas.replicas().len() > 1,
        };
        Ok(Exchange { lease })
    }

    /// Where the request goes.
    pub(crate) fn uri(&self) -> &Uri {
        self.lease.lease.uri()
    }

    /// Send the request with `headers` (the caller's path chose them) and `body`, and wait
    /// for the answer's head until `deadline`. The outcome (an answer below 500, or not)
    /// goes to the replica's breaker and health before this returns.
    pub(crate) async fn send(
        self,
        client: &UpstreamClient,
        method: Method,
        headers: HeaderMap,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Answered, ExchangeError> {
        let Exchange { mut lease } = self;
        let uri = lease.lease.uri();
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        if let Some(host) = plain_http_host(uri) {
            request.headers_mut().entry(header::HOST).or_insert(host);
        }
        let sent = tokio::time::timeout_at(deadline, client.request(request)).await;
        lease.lease.report(match &sent {
            Ok(Ok(response)) => Outcome::of_status(response.status()),
            Ok(Err(_)) | Err(_) => Outcome::Failure,
        });
        match sent {
            Ok(Ok(response)) => Ok(Answered { response, lease }),
            Ok(Err(failure)) => Err(ExchangeError::Unreachable {
                cause: crate::error_chain(&failure),
            }),
            Err(_) => Err(ExchangeError::TimedOut),
        }
    }
}

impl Lease {
    /// The URL of the replica that answered when the server has several, so a session can
    /// stay on it; `None` when there is no choice to remember.
    pub(crate) fn replica(&self) -> Option<&str> {
        self.several.then(|| self.lease.url())
    }

    /// `response`, made by the caller from the answer, with a body that holds the lease
    /// until it ends.
    pub(crate) fn hold<B>(self, response: Response<B>) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        response.map(|body| Leased::new(body, self.lease).map_err(Into::into).boxed())
    }
}

/// The headers of a request to a server as both paths select them: `headers`, made by the
/// caller's path, then those of the caller's request headers (`caller`) that `forward`
/// selects, and its `Authorization` only when the server opts in (`forward_authorization`),
/// every value as sent, in the caller's order; then the server's static headers (`fixed`),
/// which win.
///
/// `forward` is what differs between the paths: `/mcp/{id}` passes the caller's MCP and
/// tracing headers through ([`upstream_headers`]); an aggregate writes each member's
/// session, version and routing headers itself and forwards only a tool call's argument
/// headers.
pub(crate) fn request_headers(
    mut headers: HeaderMap,
    caller: &HeaderMap,
    forward: impl Fn(&HeaderName) -> bool,
    fixed: &HeaderMap,
    forward_authorization: bool,
) -> HeaderMap {
    for (name, value) in caller {
        if forward(name) || (forward_authorization && *name == header::AUTHORIZATION) {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in fixed {
        headers.insert(name.clone(), value.clone());
    }
    headers
}

/// The headers `/mcp/{id}` sends upstream: the caller's MCP and tracing headers, its
/// `Authorization` only when the server opts in, then the server's static headers
/// (`fixed`, which win).
pub(crate) fn upstream_headers(
    incoming: &HeaderMap,
    fixed: &HeaderMap,
    forward_authorization: bool,
) -> HeaderMap {
    let headers = HeaderMap::with_capacity(incoming.len() + fixed.len());
    let passed = |name: &HeaderName| {
        FORWARDED_REQUEST_HEADERS.contains(name) || name.as_str().starts_with("mcp-")
    };
    request_headers(headers, incoming, passed, fixed, forward_authorization)
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
#[path = "exchange_tests.rs"]
mod tests;
