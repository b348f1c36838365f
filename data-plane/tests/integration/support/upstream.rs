//! A small MCP-ish HTTP upstream: echoes what it received, streams SSE on request, and can
//! be slow on purpose.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;

pub const SESSION_ID: &str = "upstream-session-1";

pub struct Upstream {
    pub addr: SocketAddr,
    /// Lets a streaming response send its second event.
    pub release: Arc<Notify>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let release = Arc::new(Notify::new());
        let app = Router::new()
            .route("/mcp", axum::routing::any(handle))
            .with_state(Arc::clone(&release));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Upstream { addr, release }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

/// An address nothing listens on.
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address")
}

/// An MCP URL nothing answers.
pub async fn dead_url() -> String {
    format!("http://{}/mcp", dead_addr().await)
}

async fn handle(
    State(release): State<Arc<Notify>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    // `params._meta.fail: true` makes any method fail (with admission on, the data plane
    // refuses methods MCP does not define, such as `test/error`).
    let rpc_method = message.get("method").and_then(Value::as_str);
    let fail = rpc_method == Some("test/error")
        || message.pointer("/params/_meta/fail") == Some(&Value::Bool(true));
    match rpc_method {
        Some("test/stream") => return sse(release, id),
        Some("test/slow") => tokio::time::sleep(Duration::from_secs(5)).await,
        _ if fail => {
            let error = json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32042, "message": "the upstream says no"}});
            return (
                [(header::CONTENT_TYPE, "application/json")],
                error.to_string(),
            )
                .into_response();
        }
        _ => {}
    }
    let received: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                Value::String(value.to_str().unwrap_or_default().to_owned()),
            )
        })
        .collect();
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {
            "http_method": method.as_str(),
            "headers": received,
            "body_len": body.len(),
        },
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("mcp-session-id"),
                SESSION_ID,
            ),
            // Not an MCP header: must not reach the client.
            (header::HeaderName::from_static("x-upstream-internal"), "1"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Two SSE events; the second waits for the test to release it.
fn sse(release: Arc<Notify>, id: Value) -> Response {
    let (events, stream) = mpsc::channel::<Result<Bytes, Infallible>>(4);
    tokio::spawn(async move {
        let progress =
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}});
        let _ = events
            .send(Ok(Bytes::from(format!(
                "event: message\ndata: {progress}\n\n"
            ))))
            .await;
        release.notified().await;
        let result = json!({"jsonrpc":"2.0","id":id,"result":{"done":true}});
        let _ = events
            .send(Ok(Bytes::from(format!(
                "event: message\ndata: {result}\n\n"
            ))))
            .await;
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (
                header::HeaderName::from_static("mcp-session-id"),
                SESSION_ID,
            ),
        ],
        Body::from_stream(ReceiverStream::new(stream)),
    )
        .into_response()
}
