//! The body of every answer the data plane gives, its error, the request size limit and
//! the header names shared by several layers.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http_body_util::combinators::BoxBody;

/// Largest request body accepted (the original gateway's limit).
pub(crate) const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Response header naming the server that handled the request.
pub(crate) const SERVER_ID_HEADER: &str = "x-conduit-server-id";
/// The MCP session header, on requests and answers alike.
pub(crate) const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// Errors a proxied response body can end with.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every answer: streamed from the upstream or made by the gateway.
pub(crate) type ProxyBody = BoxBody<Bytes, BodyError>;

/// Whether `headers` announce a server-sent event stream.
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/event-stream"))
}
