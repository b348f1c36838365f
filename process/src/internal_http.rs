//! The internal HTTP listeners of the servers (the data plane's `--admin-listen`, the
//! control plane's `--http-listen`): health, readiness, metrics and, on the data plane,
//! the applied configuration. Served with the public port's guards:
//!
//! - **DNS rebinding.** A web page on a name its owner points at 127.0.0.1 could read
//!   these endpoints from a browser on the same machine. A request must name in `Host` an
//!   IP address (no name to rebind), `localhost`, or a name the operator allowed
//!   ([`AllowedHosts`]); an `Origin`, when sent, the same. Anything else gets 403.
//! - **Slow clients.** The request head must arrive within the header read timeout (the
//!   first one too, and the HTTP/2 preface); an idle HTTP/1.1 connection is closed after
//!   it. No handler here takes a body, so a request body is never waited for: it is
//!   dropped unread and the connection closed after the answer.
//! - **Connections.** At most [`MAX_CONNECTIONS`] at once; more are closed at once.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use conduit_config::HostPattern;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::listener::{ListenerLimits, accept, connection_builder};

/// Connections an internal listener serves at once (probes and scrapers need a few).
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request head an internal listener buffers.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long open connections may finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests at once on one HTTP/2 connection of an internal listener.
const MAX_HTTP2_STREAMS: u32 = 16;

/// Host names besides IP addresses and `localhost` an internal listener answers to.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<HostPattern>);

impl AllowedHosts {
    /// Parse `name`, `*.domain` or `*` entries; the error names the bad entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowedHosts, String> {
        entries
            .iter()
            .map(|entry| HostPattern::parse(entry.as_ref().trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(AllowedHosts)
    }

    /// A comma-separated list (a flag's value).
    pub fn parse_list(text: &str) -> Result<AllowedHosts, String> {
        let entries: Vec<&str> = text.split(',').filter(|e| !e.trim().is_empty()).collect();
        AllowedHosts::parse(&entries)
    }

    fn allows(&self, host: &str) -> bool {
        host == "localhost"
            || host.parse::<IpAddr>().is_ok()
            || self.0.iter().any(|pattern| pattern.matches(host))
    }

    /// `Err` with the reason when a request with `headers` must be refused.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), &'static str> {
        // HTTP/2 carries the host in `:authority`, which hyper puts in the URI.
        let host = match headers.get(header::HOST) {
            Some(value) => value.to_str().ok(),
            None => uri.authority().map(|authority| authority.as_str()),
        };
        let allowed = host
            .and_then(split_authority)
            .is_some_and(|(name, _)| self.allows(&name));
        if !allowed {
            return Err("the Host header names a host this listener does not serve");
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let allowed = origin
                .to_str()
                .ok()
                .and_then(|origin| origin.split_once("://"))
                .and_then(|(_, authority)| split_authority(authority))
                .is_some_and(|(name, _)| self.allows(&name));
            if !allowed {
                return Err("the Origin header names a site this listener does not serve");
            }
        }
        Ok(())
    }
}

/// `host[:port]` → (lower-case host, IPv6 without brackets; port). `None` when malformed.
pub fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => Some(port.parse::<u16>().ok()?),
        None => None,
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// Default header read timeout of the servers' listeners.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How an internal listener treats its clients.
#[derive(Debug, Clone)]
pub struct InternalSettings {
    /// Time a client has to send a request head; also the longest an idle HTTP/1.1
    /// connection is kept.
    pub header_read_timeout: Duration,
    pub allowed_hosts: AllowedHosts,
}

impl Default for InternalSettings {
    fn default() -> Self {
        InternalSettings {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            allowed_hosts: AllowedHosts::default(),
        }
    }
}

/// Serve `router` on `listener` until `shutdown`, then let open connections finish for a
/// few seconds.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: InternalSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let builder = connection_builder(&ListenerLimits {
        header_read_timeout: settings.header_read_timeout,
        max_head_bytes: MAX_HEAD_BYTES,
        http2_max_streams: MAX_HTTP2_STREAMS,
        http2_keep_alive: settings.header_read_timeout,
    });
    let builder = Arc::new(builder);
    let hosts = Arc::new(settings.allowed_hosts);
    let open = Arc::new(AtomicUsize::new(0));
    let graceful = GracefulShutdown::new();
    loop {
        let Some((stream, peer)) = accept(&listener, &shutdown, "internal").await else {
            break;
        };
        if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(%peer, "internal listener: too many connections; closed");
            continue;
        }
        let open_slot = OpenSlot(Arc::clone(&open));
        let started = CancellationToken::new();
        let service = service_fn({
            let (router, hosts, started) = (router.clone(), Arc::clone(&hosts), started.clone());
            move |request: Request<Incoming>| {
                started.cancel();
                let (router, hosts) = (router.clone(), Arc::clone(&hosts));
                async move { Ok::<_, Infallible>(answer(&router, &hosts, request).await) }
            }
        });
        let connection = graceful.watch(
            builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned(),
        );
        let header_read_timeout = settings.header_read_timeout;
        tokio::spawn(async move {
            let _open_slot = open_slot;
            tokio::pin!(connection);
            // Until the first request hyper-util reads the protocol preface, where hyper's
            // own header timeout does not run yet.
            let result = tokio::select! {
                result = &mut connection => result,
                () = started.cancelled() => connection.await,
                () = tokio::time::sleep(header_read_timeout) => return,
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "internal connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}

/// The router's answer, or 403 for a foreign `Host`/`Origin`. The body is dropped unread.
async fn answer(
    router: &Router,
    hosts: &AllowedHosts,
    request: Request<Incoming>,
) -> Response<Body> {
    if let Err(reason) = hosts.check(request.headers(), request.uri()) {
        tracing::debug!(reason, "internal request refused");
        let mut response = Response::new(Body::from(format!("forbidden: {reason}\n")));
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return response;
    }
    let (parts, _unread) = request.into_parts();
    match router
        .clone()
        .oneshot(Request::from_parts(parts, Body::empty()))
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// One connection counted against [`MAX_CONNECTIONS`] until it ends.
struct OpenSlot(Arc<AtomicUsize>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(hosts: &AllowedHosts, host: Option<&str>, origin: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        hosts.check(&headers, &Uri::from_static("/metrics")).is_ok()
    }

    #[test]
    fn addresses_localhost_and_configured_names_only() {
        let none = AllowedHosts::default();
        for host in [
            "127.0.0.1:9901",
            "10.2.3.4",
            "[::1]:9901",
            "[fd00::7]",
            "LOCALHOST:9901",
        ] {
            assert!(allowed(&none, Some(host), None), "{host}");
        }
        for host in [
            "rebind.attacker.example",
            "metrics.internal:9901",
            "",
            "[::1",
        ] {
            assert!(!allowed(&none, Some(host), None), "{host}");
        }
        assert!(!allowed(&none, None, None));
        assert!(allowed(
            &none,
            Some("127.0.0.1"),
            Some("http://localhost:3000")
        ));
        assert!(!allowed(
            &none,
            Some("127.0.0.1"),
            Some("http://rebind.attacker.example")
        ));
        assert!(!allowed(&none, Some("127.0.0.1"), Some("null")));

        let some = AllowedHosts::parse_list("metrics.internal, *.svc.cluster.local").unwrap();
        assert!(allowed(&some, Some("metrics.internal:9901"), None));
        assert!(allowed(&some, Some("dp.ns.svc.cluster.local"), None));
        assert!(!allowed(&some, Some("svc.cluster.local"), None));
        assert!(AllowedHosts::parse_list("a b").is_err());
        assert!(AllowedHosts::parse_list("host:80").is_err());
    }
}
