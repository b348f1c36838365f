//! The HTTP(S) client the data plane sends with: upstream MCP servers and JWKS fetches
//! share the pooled client, the trace exporter its connector.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The pooled client of upstream requests.
pub(crate) type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The HTTP(S) client of upstream requests (and JWKS fetches): rustls with the system
/// roots (the bundled Mozilla roots without a usable store), HTTP/1.1 and HTTP/2, pooled.
pub(crate) fn upstream_client() -> UpstreamClient {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(UPSTREAM_IDLE_TIMEOUT)
        .build(https_connector())
}

/// The connector of [`upstream_client`], also used by the trace exporter (`telemetry`).
pub(crate) fn https_connector() -> HttpsConnector<HttpConnector> {
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
    builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http)
}
