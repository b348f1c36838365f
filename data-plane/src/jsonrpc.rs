//! JSON-RPC error responses produced by the gateway itself, and the little JSON-RPC
//! parsing the pass-through needs (the request id, so errors can carry it).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Value, json};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The message is not a valid request (also used for an oversized body).
pub const INVALID_REQUEST: i64 = -32600;
/// No such method; used for an unknown server id, as the original gateway did.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The gateway could not get an answer from the upstream.
pub const INTERNAL_ERROR: i64 = -32603;

/// The id of a JSON-RPC request (`null` when absent, for notifications and batches).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestId(pub Value);

impl RequestId {
    pub fn null() -> Self {
        RequestId(Value::Null)
    }
}

/// Why a request body is not JSON-RPC at all.
#[derive(Debug, thiserror::Error)]
#[error("request body is not valid JSON: {0}")]
pub struct ParseError(#[from] serde_json::Error);

/// The request id of a JSON-RPC message. Only the id is extracted; the body is forwarded
/// untouched. Batches and other non-object JSON have no single id and get `null`.
pub fn request_id(body: &[u8]) -> Result<RequestId, ParseError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        id: Value,
    }
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first == Some(&b'{')
        && let Ok(probe) = serde_json::from_slice::<Probe>(body)
    {
        return Ok(RequestId(probe.id));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)?;
    Ok(RequestId::null())
}

/// An HTTP response with a JSON-RPC error body.
pub fn error_response(
    status: StatusCode,
    id: &RequestId,
    code: i64,
    message: impl Into<String>,
) -> Response<Full<Bytes>> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id.0,
        "error": {"code": code, "message": message.into()},
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn extracts_the_request_id() {
        let id = |body: &str| request_id(body.as_bytes()).expect("json").0;
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#), json!(7));
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":"a-1","method":"x"}"#),
            json!("a-1")
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","method":"notifications/x"}"#),
            Value::Null
        );
        assert_eq!(
            id(r#"[{"jsonrpc":"2.0","id":1,"method":"x"}]"#),
            Value::Null
        );
        assert!(request_id(b"{not json").is_err());
        assert!(request_id(b"").is_err());
    }

    #[tokio::test]
    async fn error_body_is_json_rpc() {
        let response = error_response(
            StatusCode::BAD_GATEWAY,
            &RequestId(json!(3)),
            INTERNAL_ERROR,
            "down",
        );
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"jsonrpc":"2.0","id":3,"error":{"code":-32603,"message":"down"}})
        );
    }
}
