//! The upstream's answer to a POST when it is not an event stream: read whole (bounded,
//! within the exchange's deadline) and checked before the client sees it, so that a broken
//! upstream gives the client a JSON-RPC error carrying its request id instead of something
//! its SDK cannot parse:
//!
//! - a JSON body that does not parse → 502, −32603 "returned malformed JSON";
//! - an error status (4xx/5xx) without a JSON body → a JSON-RPC error with the upstream's
//!   text, with status 502 for a 5xx (the gateway answers for a failed upstream) and the
//!   upstream's own status for a 4xx (its meaning for MCP clients, such as 404 for an
//!   expired session, is kept), headers such as `WWW-Authenticate` included;
//! - a body cut off or not finished by the deadline → 502 / 504.
//!
//! Valid JSON and empty `202`/`204` answers pass unchanged. Checking costs one scan of the
//! body with no allocation per value (`IgnoredAny`).

use bytes::{Bytes, BytesMut};
use http::header;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use serde::de::IgnoredAny;
use tokio::time::Instant;

use crate::http::{MAX_BODY_BYTES, ProxyBody, pass_back};
use crate::jsonrpc::{self, RequestId};

/// Longest piece of an upstream's error text quoted to the client.
const QUOTED_ERROR_CHARS: usize = 200;

/// Read and check `response`, the answer to request `id` of server `server_id`.
pub(crate) async fn checked<B>(
    response: Response<B>,
    deadline: Instant,
    id: &RequestId,
    server_id: &str,
) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (parts, mut body) = response.into_parts();
    let mut bytes = BytesMut::new();
    let read = tokio::time::timeout_at(deadline, async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| format!("its answer broke off: {error}"))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > MAX_BODY_BYTES {
                    return Err(format!("its answer exceeds {MAX_BODY_BYTES} bytes"));
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(())
    })
    .await;
    let failure = |status: StatusCode, reason: String| {
        let message = format!("upstream server {server_id}: {reason}");
        tracing::warn!(server = server_id, %message, "unusable upstream answer");
        let mut response = jsonrpc::error_response(status, id, jsonrpc::INTERNAL_ERROR, message)
            .map(|body| body.map_err(|never| match never {}).boxed());
        // Keep what tells a client how to go on: its auth challenge, its back-off hint.
        for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
            if let Some(value) = parts.headers.get(&name) {
                response.headers_mut().insert(name, value.clone());
            }
        }
        response
    };
    match read {
        Err(_) => {
            return failure(
                StatusCode::GATEWAY_TIMEOUT,
                "did not finish its answer in time".into(),
            );
        }
        Ok(Err(reason)) => return failure(StatusCode::BAD_GATEWAY, reason),
        Ok(Ok(())) => {}
    }
    let bytes = bytes.freeze();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/json"));
    let parses = !bytes.is_empty() && serde_json::from_slice::<IgnoredAny>(&bytes).is_ok();
    let status = parts.status;
    if is_json && !bytes.is_empty() && !parses {
        return failure(StatusCode::BAD_GATEWAY, "returned malformed JSON".into());
    }
    if (status.is_client_error() || status.is_server_error()) && !parses {
        let text: String = String::from_utf8_lossy(&bytes)
            .chars()
            .take(QUOTED_ERROR_CHARS)
            .collect();
        let reason = match text.trim() {
            "" => format!("answered HTTP {status}"),
            text => format!("answered HTTP {status}: {text}"),
        };
        let status = if status.is_server_error() {
            StatusCode::BAD_GATEWAY
        } else {
            status
        };
        return failure(status, reason);
    }
    pass_back(Response::from_parts(parts, ()), |()| {
        Full::new(bytes).map_err(|never| match never {}).boxed()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    async fn check(status: u16, content_type: &str, body: &str) -> (StatusCode, Bytes) {
        let response = Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("www-authenticate", "Bearer realm=\"mcp\"")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let checked = checked(response, deadline, &RequestId(json!(9)), "alpha").await;
        let status = checked.status();
        (
            status,
            checked.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    fn error_of(body: &Bytes) -> Value {
        let message: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(message["id"], json!(9), "{message}");
        message["error"].clone()
    }

    #[tokio::test]
    async fn valid_json_passes_unchanged() {
        let body = r#"{"jsonrpc":"2.0","id":9,"result":{}}"#;
        let (status, bytes) = check(200, "application/json", body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(bytes, body.as_bytes());
        let (status, bytes) = check(202, "text/plain", "").await;
        assert_eq!((status, bytes.len()), (StatusCode::ACCEPTED, 0));
    }

    #[tokio::test]
    async fn malformed_json_becomes_an_error_with_the_id() {
        let (status, bytes) = check(200, "application/json", r#"{"jsonrpc":"2.0","id":9,"#).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let error = error_of(&bytes);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("malformed JSON")
        );
    }

    #[tokio::test]
    async fn error_statuses_without_json_keep_their_meaning() {
        let (status, bytes) = check(500, "text/plain", "boom").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(
            error_of(&bytes)["message"]
                .as_str()
                .unwrap()
                .contains("boom")
        );

        let (status, bytes) = check(404, "text/plain", "Session not found").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            error_of(&bytes)["message"]
                .as_str()
                .unwrap()
                .contains("Session not found")
        );

        // A JSON-RPC error from the upstream is its own answer and passes unchanged.
        let body = r#"{"jsonrpc":"2.0","id":9,"error":{"code":-32001,"message":"x"}}"#;
        let (status, bytes) = check(400, "application/json", body).await;
        assert_eq!(
            (status, &bytes[..]),
            (StatusCode::BAD_REQUEST, body.as_bytes())
        );
    }
}
