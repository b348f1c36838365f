//! The headers of a request to a member. The client's `Mcp-Session-Id` is the gateway's
//! token and never travels: each member gets its own session id, and the protocol version
//! it negotiated. Members speaking 2026-07-28 or later get the routing headers
//! (`Mcp-Method`, `Mcp-Name`) of the message as the member sees it, so a prefixed name
//! arrives unprefixed there too.

use base64::Engine as _;
use http::Method;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;

use super::fanout::{Member, Routing};
use crate::http::MCP_SESSION_ID;
use crate::runtime::HttpUpstream;
use crate::trace_context::TraceContext;
use crate::upstream::exchange::request_headers;

/// First protocol version whose servers require the `Mcp-Method` / `Mcp-Name` headers.
const STANDARD_HEADERS_VERSION: &str = "2026-07-28";
const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

/// The headers of a request to `member`: its session and protocol version (the client's
/// version on session-less requests), the trace context (a span of the gateway's in the
/// caller's trace), the routing headers, then what every upstream request gets
/// (`request_headers`): a tool call's argument headers, the caller's `Authorization` only
/// when the server opts in, and the server's static headers, which win.
pub(super) fn member_headers(
    caller: &Parts,
    upstream: &HttpUpstream,
    member: &Member,
    method: Method,
    routing: Routing<'_>,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(8 + upstream.headers.len());
    let accept = if method == Method::GET {
        "text/event-stream"
    } else {
        "application/json, text/event-stream"
    };
    headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
    if method == Method::POST {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let version = match member
        .session
        .as_ref()
        .and_then(|s| s.protocol_version.as_deref())
    {
        Some(version) => HeaderValue::from_str(version).ok(),
        None => caller.headers.get(&MCP_PROTOCOL_VERSION).cloned(),
    };
    let standard_headers = version
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= STANDARD_HEADERS_VERSION);
    if let Some(version) = version {
        headers.insert(MCP_PROTOCOL_VERSION, version);
    }
    if let Some(session) = member
        .session_id()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        headers.insert(MCP_SESSION_ID, session);
    }
    if let Some(trace) = caller.extensions.get::<TraceContext>() {
        trace.propagate(&mut headers);
    }
    if standard_headers && let Some(rpc_method) = routing.method {
        if let Ok(value) = HeaderValue::from_str(rpc_method) {
            headers.insert(MCP_METHOD, value);
        }
        if let Some(value) = routing.name.and_then(|n| header_value(n).ok()) {
            headers.insert(MCP_NAME, value);
        }
    }
    // Argument headers mirror tool arguments, which the gateway passes unchanged.
    let arguments = standard_headers && routing.method == Some("tools/call");
    let forward = |name: &HeaderName| arguments && name.as_str().starts_with("mcp-param-");
    let (fixed, authorization) = (&upstream.headers, upstream.forward_authorization);
    request_headers(headers, &caller.headers, forward, fixed, authorization)
}

/// A 2026-07-28 header value: as is when it is plain visible ASCII, else wrapped as
/// `=?base64?<base64>?=` (the protocol's encoding for anything else).
fn header_value(value: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let padded = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let visible_ascii = value.chars().all(|c| (' '..='~').contains(&c));
    let looks_encoded = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = visible_ascii && !padded && !looks_encoded;
    if plain {
        HeaderValue::from_str(value)
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        HeaderValue::from_str(&format!("=?base64?{encoded}?="))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::balancer::ReplicaSet;
    use crate::runtime::{Server, Upstream};
    use crate::session::UpstreamSession;

    fn member(session: Option<UpstreamSession>, forward_authorization: bool) -> Member {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        Member {
            id: "alpha".into(),
            server: Arc::new(Server {
                id: "alpha".into(),
                upstream: Upstream::Http(Box::new(HttpUpstream {
                    replicas: ReplicaSet::new(
                        "alpha",
                        vec![(
                            "http://127.0.0.1:1/mcp".into(),
                            "http://127.0.0.1:1/mcp".parse().unwrap(),
                        )],
                        None,
                    ),
                    headers,
                    timeout: Duration::from_secs(1),
                    forward_authorization,
                })),
            }),
            session,
        }
    }

    /// A caller's request with the headers a client may send, and its trace context.
    fn caller() -> Parts {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("mcp-session-id", "gateway-token"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "alpha.echo"),
            ("mcp-param-region", "eu"),
            ("authorization", "Bearer caller"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("cookie", "c=1"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts
            .extensions
            .insert(TraceContext::from_headers(&headers));
        parts.headers = headers;
        parts
    }

    fn upstream_of(member: &Member) -> &HttpUpstream {
        match &member.server.upstream {
            Upstream::Http(upstream) => upstream,
            Upstream::Stdio(_) | Upstream::Managed => unreachable!(),
        }
    }

    #[test]
    fn members_get_their_own_session_and_version() {
        let member = member(
            Some(UpstreamSession {
                session_id: Some("upstream-1".into()),
                replica: None,
                protocol_version: Some("2025-11-25".into()),
            }),
            false,
        );
        let routing = Routing {
            method: Some("tools/call"),
            name: Some("echo"),
        };
        let headers = member_headers(
            &caller(),
            upstream_of(&member),
            &member,
            Method::POST,
            routing,
        );
        assert_eq!(headers["mcp-session-id"], "upstream-1");
        assert_eq!(headers["mcp-protocol-version"], "2025-11-25");
        assert_eq!(headers["x-api-key"], "k");
        // The caller's trace continues with a span of the gateway's.
        let traceparent = headers["traceparent"].to_str().unwrap();
        assert!(
            traceparent.contains("0af7651916cd43dd8448eb211c80319c"),
            "{traceparent}"
        );
        assert!(!traceparent.contains("b7ad6b7169203331"), "{traceparent}");
        // Before 2026-07-28 no routing headers, and never the caller's credentials
        // unless the server opts in.
        for absent in [
            "mcp-method",
            "mcp-name",
            "mcp-param-region",
            "authorization",
            "cookie",
        ] {
            assert!(!headers.contains_key(absent), "{absent}");
        }
    }

    #[test]
    fn stateless_members_get_routing_headers_for_the_unprefixed_name() {
        let member = member(None, true);
        let routing = Routing {
            method: Some("tools/call"),
            name: Some("echo"),
        };
        let headers = member_headers(
            &caller(),
            upstream_of(&member),
            &member,
            Method::POST,
            routing,
        );
        assert!(!headers.contains_key("mcp-session-id"));
        assert_eq!(headers["mcp-protocol-version"], "2026-07-28");
        assert_eq!(headers["mcp-method"], "tools/call");
        assert_eq!(headers["mcp-name"], "echo");
        assert_eq!(headers["mcp-param-region"], "eu");
        assert_eq!(headers["authorization"], "Bearer caller");
    }

    #[test]
    fn unusual_names_are_base64_wrapped() {
        assert_eq!(header_value("echo").unwrap(), "echo");
        assert_eq!(header_value("héllo").unwrap(), "=?base64?aMOpbGxv?=");
        assert_eq!(header_value(" x").unwrap(), "=?base64?IHg=?=");
    }
}
