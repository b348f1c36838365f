//! The upstream's answer as the caller sees it (the answers the gateway makes itself are
//! refusals: `crate::refusal`).

use http::Response;
use http::header::{self, HeaderName};

use super::body::{MCP_SESSION_ID, ProxyBody};

/// The upstream's response as the caller sees it: status, the headers MCP clients need,
/// and the body streamed as it arrives.
pub(crate) fn pass_back<B>(
    upstream: Response<B>,
    body: impl FnOnce(B) -> ProxyBody,
) -> Response<ProxyBody> {
    let (parts, upstream_body) = upstream.into_parts();
    let mut response = Response::new(body(upstream_body));
    *response.status_mut() = parts.status;
    for name in PASSED_BACK_RESPONSE_HEADERS {
        for value in parts.headers.get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

/// Upstream response headers an MCP client needs: the content type (SSE stays SSE), the
/// session, the OAuth challenge of a protected server (so clients can discover its
/// authorization server) and back-off hints.
const PASSED_BACK_RESPONSE_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    MCP_SESSION_ID,
    header::WWW_AUTHENTICATE,
    header::RETRY_AFTER,
];

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::StatusCode;
    use http_body_util::{BodyExt as _, Full};

    use super::*;

    #[test]
    fn passes_back_what_mcp_clients_need_and_nothing_else() {
        let upstream = Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("content-type", "application/json")
            .header("www-authenticate", r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource""#)
            .header("set-cookie", "upstream=1")
            .header("server", "upstream/1.0")
            .body(())
            .unwrap();
        let response = pass_back(upstream, |()| {
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed()
        });
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("resource_metadata")
        );
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(!response.headers().contains_key("set-cookie"));
        assert!(!response.headers().contains_key("server"));
    }
}
