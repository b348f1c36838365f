//! One webhook delivery: resolve and check the host (see `address`), then `POST` the JSON
//! payload to a checked address only, each attempt bounded by a timeout, at most a few
//! attempts with doubling backoff. Redirects are not followed. 2xx is delivered; 408, 429,
//! 5xx, timeouts and connection errors are retried; other answers fail at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use super::address::{self, Resolved};

/// Limits of one delivery.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Bound on each attempt (connect, send, response head).
    pub timeout: Duration,
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// Pause before the second attempt; doubled before each later one.
    pub backoff: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            timeout: Duration::from_secs(5),
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// A 2xx answer.
    Delivered,
    /// Every attempt failed; the last reason.
    Failed(String),
    /// The host resolves only to addresses the SSRF guard refuses.
    RefusedAddress(String),
}

/// A resolver that answers with addresses checked beforehand, so the connector never looks
/// the host up again.
#[derive(Clone)]
struct Checked(Arc<Vec<SocketAddr>>);

impl tower::Service<Name> for Checked {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        std::future::ready(Ok(self.0.as_ref().clone().into_iter()))
    }
}

/// Deliver `body` to `url` (an http or https URL validated by the config).
pub(crate) async fn deliver(
    tls: &rustls::ClientConfig,
    url: &str,
    body: Bytes,
    allow_private: bool,
    options: &DeliveryOptions,
) -> Delivery {
    let uri: http::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(error) => return Delivery::Failed(format!("invalid URL: {error}")),
    };
    let https = uri.scheme_str() == Some("https");
    let Some(host) = uri.host() else {
        return Delivery::Failed("URL has no host".into());
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addrs = match address::resolve(host, port, allow_private).await {
        Resolved::Allowed(addrs) => addrs,
        Resolved::Refused(ip, why) => {
            return Delivery::RefusedAddress(format!("{host} resolves to {ip} ({why})"));
        }
        Resolved::Failed(error) => {
            return Delivery::Failed(format!("cannot resolve {host}: {error}"));
        }
    };
    let mut http = HttpConnector::new_with_resolver(Checked(Arc::new(addrs)));
    http.enforce_http(false);
    http.set_connect_timeout(Some(options.timeout));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut backoff = options.backoff;
    let mut last = String::new();
    for attempt in 1..=options.attempts.max(1) {
        if attempt > 1 {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        let request = http::Request::post(uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "conduit-webhook")
            .body(Full::new(body.clone()));
        let request = match request {
            Ok(request) => request,
            Err(error) => return Delivery::Failed(error.to_string()),
        };
        match tokio::time::timeout(options.timeout, client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => return Delivery::Delivered,
            Ok(Ok(response)) => {
                let status = response.status();
                last = format!("HTTP {status}");
                let retry = status.is_server_error()
                    || status == http::StatusCode::TOO_MANY_REQUESTS
                    || status == http::StatusCode::REQUEST_TIMEOUT;
                if !retry {
                    break;
                }
            }
            Ok(Err(error)) => last = crate::error_chain(&error),
            Err(_) => last = format!("no answer within {:?}", options.timeout),
        }
    }
    Delivery::Failed(last)
}
