//! The public MCP route: `POST|GET|DELETE /mcp/{server_id}`, a streaming pass-through to
//! the server's streamable-HTTP endpoint.
//!
//! A request takes one `Arc<Runtime>` at its start and uses it to the end, so a config swap
//! never changes a request midway. POST bodies are read (bounded) before forwarding so that
//! gateway errors can carry the JSON-RPC request id, then checked: the `Host`/`Origin` guard
//! against DNS rebinding (403), the JSON-RPC envelope (400) and batch limits. Responses,
//! SSE included, stream back as they arrive. Every request ends in [`Proxy::finish`], the one place that records it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;
use tokio::time::Instant;

use crate::apply::SharedRuntime;
use crate::deadline::{BodyError, DeadlineBody};
use crate::jsonrpc::{self, RequestId};
use crate::metrics::{Metrics, status_class};
use crate::runtime::{HttpUpstream, Upstream};

/// Largest request body accepted (the original gateway's limit).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Response header naming the server that handled the request.
pub const SERVER_ID_HEADER: &str = "x-conduit-server-id";
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub type ProxyBody = BoxBody<Bytes, BodyError>;
type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Request headers passed to the upstream besides every `Mcp-*` header.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("last-event-id"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];
const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// The public request handler and its upstream connection pool.
#[derive(Debug)]
pub struct Proxy {
    runtime: SharedRuntime,
    client: UpstreamClient,
    metrics: Arc<Metrics>,
}

impl Proxy {
    pub fn new(runtime: SharedRuntime, metrics: Arc<Metrics>) -> Proxy {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(UPSTREAM_CONNECT_TIMEOUT));
        // The TLS layer below handles https URLs.
        http.enforce_http(false);
        let builder = HttpsConnectorBuilder::new();
        let builder = match builder.with_native_roots() {
            Ok(builder) => builder,
            Err(error) => {
                tracing::warn!(
                    %error,
                    "no usable system trust store; https upstreams are verified against the bundled Mozilla roots"
                );
                HttpsConnectorBuilder::new().with_webpki_roots()
            }
        };
        let connector = builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(UPSTREAM_IDLE_TIMEOUT)
            .build(connector);
        Proxy {
            runtime,
            client,
            metrics,
        }
    }

    /// Serve one request; `local` is the address the client connected to.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        local: SocketAddr,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let (label, response) = self.route(request, local).await;
        self.finish(&label, &response, started);
        response
    }

    /// Returns the metrics label for the request and its response.
    async fn route(
        &self,
        request: Request<Incoming>,
        local: SocketAddr,
    ) -> (String, Response<ProxyBody>) {
        let Some(server_id) = mcp_server_id(request.uri().path()).map(str::to_owned) else {
            let response = error(
                StatusCode::NOT_FOUND,
                &RequestId::null(),
                jsonrpc::METHOD_NOT_FOUND,
                "not found: MCP servers are served at /mcp/{server_id}",
            );
            return ("none".into(), response);
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
                    "method {} is not allowed on /mcp/{{server_id}}",
                    request.method()
                ),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            return ("none".into(), response);
        }

        let runtime = self.runtime.load_full();
        let server = runtime.server(&server_id).cloned();
        // The body is read before anything can fail, so every error carries the request id.
        let (parts, body) = request.into_parts();
        let body = match read_body(&parts, body).await {
            Ok(body) => body,
            Err(response) => return label_and_tag(server.is_some(), server_id, response),
        };
        let envelope = if parts.method == Method::POST {
            Some(jsonrpc::check(&body))
        } else {
            None
        };
        let id = match &envelope {
            Some(Ok(jsonrpc::Envelope::Single(id))) => id.clone(),
            Some(Err(rejection)) => rejection.id.clone(),
            _ => RequestId::null(),
        };
        // DNS rebinding: refused before anything else is said about the request.
        if let Err(reason) = runtime
            .host_policy()
            .check(&parts.headers, &parts.uri, local)
        {
            tracing::debug!(%reason, "request refused");
            let response = error(
                StatusCode::FORBIDDEN,
                &id,
                jsonrpc::INVALID_REQUEST,
                format!("forbidden: {reason}"),
            );
            return label_and_tag(server.is_some(), server_id, response);
        }
        let (body, batch_errors) = match envelope {
            Some(Err(rejection)) => {
                let response = error(
                    StatusCode::BAD_REQUEST,
                    &rejection.id,
                    rejection.code,
                    rejection.message,
                );
                return label_and_tag(server.is_some(), server_id, response);
            }
            Some(Ok(jsonrpc::Envelope::Batch(batch))) => match batch.forward {
                Some(forward) => (forward, batch.errors),
                // Not one valid entry: nothing to forward, the errors are the whole answer.
                None => {
                    let response = json(StatusCode::BAD_REQUEST, &Value::Array(batch.errors));
                    return label_and_tag(server.is_some(), server_id, response);
                }
            },
            _ => (body, Vec::new()),
        };
        if runtime.applied().is_none() {
            let response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                &id,
                jsonrpc::INTERNAL_ERROR,
                "the gateway has no configuration yet",
            );
            return ("none".into(), response);
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

        let response = match &server.upstream {
            Upstream::Http(upstream) => {
                let response = self.forward(&server_id, upstream, &parts, body, &id).await;
                if batch_errors.is_empty() {
                    response
                } else {
                    merge_batch_errors(response, batch_errors, upstream.timeout).await
                }
            }
            Upstream::Stdio => error(
                StatusCode::NOT_IMPLEMENTED,
                &id,
                jsonrpc::INTERNAL_ERROR,
                "stdio transport is not supported by this data plane yet",
            ),
        };
        label_and_tag(true, server_id, response)
    }

    async fn forward(
        &self,
        server_id: &str,
        upstream: &HttpUpstream,
        parts: &Parts,
        body: Bytes,
        id: &RequestId,
    ) -> Response<ProxyBody> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = upstream.uri.clone();
        *request.headers_mut() = upstream_headers(&parts.headers, upstream);

        // One deadline for the whole exchange: response headers, and for a POST the body
        // too (see `deadline`); a GET event stream stays open as long as both sides want.
        let deadline = Instant::now() + upstream.timeout;
        match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) if parts.method == Method::POST => {
                let event_stream = is_event_stream(response.headers());
                pass_back(response, |body| {
                    DeadlineBody::new(
                        body,
                        deadline,
                        event_stream,
                        id,
                        server_id,
                        upstream.timeout,
                    )
                    .boxed()
                })
            }
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
        }
    }

    /// The single place where every request is recorded.
    fn finish(&self, label: &str, response: &Response<ProxyBody>, started: Instant) {
        let status = response.status();
        let elapsed = started.elapsed();
        self.metrics
            .requests
            .with_label_values(&[label, status_class(status)])
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

/// `Some(id)` for `/mcp/{id}` (one non-empty segment), else `None`.
fn mcp_server_id(path: &str) -> Option<&str> {
    path.strip_prefix("/mcp/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// Read a POST body (bounded); other methods carry no body.
async fn read_body(parts: &Parts, body: Incoming) -> Result<Bytes, Response<ProxyBody>> {
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
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(failure) if failure.is::<LengthLimitError>() => Err(too_large()),
        Err(failure) => Err(error(
            StatusCode::BAD_REQUEST,
            &RequestId::null(),
            jsonrpc::INVALID_REQUEST,
            format!("cannot read the request body: {failure}"),
        )),
    }
}

/// Add the gateway's errors for the invalid entries of a batch to the upstream's answer to
/// the valid ones.
///
/// - JSON answer (2xx): read (bounded, within the server's timeout), and the errors are
///   appended to its array (a single object becomes an array first).
/// - No answer (202/204, the valid entries were all notifications or responses): the errors
///   alone, as a 200 JSON array.
/// - Event stream: the errors are sent first, one `message` event each, then the upstream's
///   stream as it arrives. This keeps streaming intact and needs no parsing of events;
///   every message is a plain JSON-RPC response, valid in every protocol version.
/// - Any other answer (an upstream or gateway error) is passed back unchanged: it already
///   says the batch failed.
async fn merge_batch_errors(
    response: Response<ProxyBody>,
    errors: Vec<Value>,
    timeout: Duration,
) -> Response<ProxyBody> {
    let status = response.status();
    if !status.is_success() {
        return response;
    }
    if is_event_stream(response.headers()) {
        let mut prefix = String::new();
        for error in &errors {
            prefix.push_str("event: message\ndata: ");
            prefix.push_str(&error.to_string());
            prefix.push_str("\n\n");
        }
        return response.map(|body| {
            Prefixed {
                prefix: Some(Bytes::from(prefix)),
                inner: body,
            }
            .boxed()
        });
    }
    if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
        return with_headers_of(&response, json(StatusCode::OK, &Value::Array(errors)));
    }
    let (parts, body) = response.into_parts();
    // Read by hand rather than through `Limited`: its boxed error type defeats the
    // compiler's proof that the caller's future is `Send`.
    let collected = tokio::time::timeout(timeout, collect_bounded(body)).await;
    let replies = match collected {
        Ok(Ok(bytes)) => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                Ok(Vec::new())
            } else {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Array(replies)) => Ok(replies),
                    Ok(reply @ Value::Object(_)) => Ok(vec![reply]),
                    Ok(_) | Err(_) => Err("the upstream's answer to the batch is not JSON-RPC"),
                }
            }
        }
        Ok(Err(_)) => Err("cannot read the upstream's answer to the batch"),
        Err(_) => Err("the upstream did not finish its answer to the batch in time"),
    };
    let mut merged = match replies {
        Ok(replies) => replies,
        Err(reason) => {
            tracing::warn!(reason, "batch answer cannot be merged");
            return error(
                StatusCode::BAD_GATEWAY,
                &RequestId::null(),
                jsonrpc::INTERNAL_ERROR,
                reason,
            );
        }
    };
    merged.extend(errors);
    let original = Response::from_parts(parts, ());
    let mut response = json(StatusCode::OK, &Value::Array(merged));
    *response.status_mut() = original.status();
    with_headers_of(&original, response)
}

/// A whole response body of at most [`MAX_BODY_BYTES`].
async fn collect_bounded(mut body: ProxyBody) -> Result<Vec<u8>, ()> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(drop)?.into_data() {
            if bytes.len() + data.len() > MAX_BODY_BYTES {
                return Err(());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// `response` with the session header of `original` (the content type is JSON).
fn with_headers_of<B>(
    original: &Response<B>,
    mut response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    if let Some(session) = original.headers().get(&MCP_SESSION_ID) {
        response
            .headers_mut()
            .insert(MCP_SESSION_ID, session.clone());
    }
    response
}

/// A body that sends `prefix` first, then everything of `inner`.
struct Prefixed {
    prefix: Option<Bytes>,
    inner: ProxyBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.inner.is_end_stream()
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

/// The upstream's response as the caller sees it: status, the headers MCP clients need,
/// and the body streamed as it arrives.
fn pass_back(
    upstream: Response<Incoming>,
    body: impl FnOnce(Incoming) -> ProxyBody,
) -> Response<ProxyBody> {
    let (parts, upstream_body) = upstream.into_parts();
    let mut response = Response::new(body(upstream_body));
    *response.status_mut() = parts.status;
    for name in [header::CONTENT_TYPE, MCP_SESSION_ID] {
        if let Some(value) = parts.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/event-stream"))
}

fn json(status: StatusCode, body: &Value) -> Response<ProxyBody> {
    jsonrpc::json_response(status, body).map(|body| body.map_err(|never| match never {}).boxed())
}

fn error(
    status: StatusCode,
    id: &RequestId,
    code: i64,
    message: impl Into<String>,
) -> Response<ProxyBody> {
    jsonrpc::error_response(status, id, code, message)
        .map(|body| body.map_err(|never| match never {}).boxed())
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

    fn upstream(forward_authorization: bool) -> HttpUpstream {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        headers.insert("accept", HeaderValue::from_static("application/json"));
        HttpUpstream {
            uri: "http://127.0.0.1:1/mcp".parse().unwrap(),
            headers,
            timeout: Duration::from_secs(1),
            forward_authorization,
        }
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
