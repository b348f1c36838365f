//! One hop, the whole work of the floor per call: read the POSTed body, parse it into a
//! `serde_json::Value` and serialize it again, send it upstream over a keep-alive pool,
//! read the answer and parse and serialize it too. No checks, policies, metrics or records:
//! the least a gateway that looks at the JSON both ways can do.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest body read, either way.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Pooled connections idle this long are closed (the data plane's default is similar).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Request headers passed on: what an MCP upstream looks at.
const FORWARDED: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::ACCEPT];

/// The upstream and the client pool shared by every connection.
pub struct Hop {
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Uri,
}

impl Hop {
    pub fn new(upstream: Uri) -> Self {
        let mut connector = HttpConnector::new();
        // As the data plane: small requests, no Nagle delay.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Hop { client, upstream }
    }

    /// Forward one request; every failure is a bare status (400 for the client's, 502 for
    /// the upstream's), as the benchmark checks answers anyway.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if request.method() != Method::POST {
            return status(StatusCode::METHOD_NOT_ALLOWED);
        }
        let (parts, body) = request.into_parts();
        let Some(body) = read(body).await.and_then(|body| reencode(&body)) else {
            return status(StatusCode::BAD_REQUEST);
        };
        let mut outgoing = Request::new(Full::new(body));
        *outgoing.method_mut() = Method::POST;
        *outgoing.uri_mut() = self.upstream.clone();
        for name in FORWARDED {
            if let Some(value) = parts.headers.get(&name) {
                outgoing.headers_mut().insert(name, value.clone());
            }
        }
        let Ok(answer) = self.client.request(outgoing).await else {
            return status(StatusCode::BAD_GATEWAY);
        };
        let (parts, body) = answer.into_parts();
        let Some(body) = read(body).await else {
            return status(StatusCode::BAD_GATEWAY);
        };
        // 202 and other answers without a body have nothing to parse.
        let body = if body.is_empty() {
            body
        } else {
            match reencode(&body) {
                Some(body) => body,
                None => return status(StatusCode::BAD_GATEWAY),
            }
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = parts.status;
        if let Some(value) = parts.headers.get(header::CONTENT_TYPE) {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, value.clone());
        }
        response
    }
}

/// The whole body, or `None` when it breaks or is too large.
async fn read<B>(body: B) -> Option<Bytes>
where
    B: Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let collected = Limited::new(body, MAX_BODY_BYTES).collect().await.ok()?;
    Some(collected.to_bytes())
}

/// The JSON text parsed into a `Value` and written again; `None` when it is not JSON.
pub fn reencode(body: &[u8]) -> Option<Bytes> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

#[cfg(test)]
#[path = "hop_tests.rs"]
mod tests;
