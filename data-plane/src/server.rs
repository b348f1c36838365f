//! The public listener (`--listen`): accepts connections, serves HTTP/1.1 and HTTP/2 on the
//! same port, in plain text or TLS, and on shutdown stops accepting and drains in-flight
//! requests for at most the drain timeout.
//!
//! Plain or TLS is decided per connection from the runtime current when it is accepted, so
//! enabling, disabling or re-keying TLS takes effect on the next connection without
//! rebinding. No phase of a connection can be held open by a silent client: the TLS
//! handshake has [`TLS_HANDSHAKE_TIMEOUT`], the first request must arrive within the header
//! read timeout, and HTTP/1.1 gets the same timeout for every later request head (hyper
//! starts it whenever a keep-alive connection waits for a request, so idle connections are
//! closed too). HTTP/2 connections are kept honest by keep-alive pings. The body of a
//! request has its own deadline (`proxy`, `--body-read-timeout`).
//!
//! What one connection may hold is bounded: [`ConnectionLimits`] caps the connections in
//! all and per client address, an HTTP/1.1 connection buffers at most
//! [`MAX_HEADER_BUFFER_BYTES`] of request head, an HTTP/2 connection at most
//! [`MAX_HEADER_BUFFER_BYTES`] of headers per request and [`HTTP2_MAX_STREAMS`] requests
//! at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use conduit_process::listener::{ListenerLimits, accept, connection_builder};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::apply::SharedRuntime;
use crate::connection_limit::{ConnectionLimits, Slot};
use crate::proxy::Proxy;

/// Default for `--header-read-timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a client has to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 ping interval; a client that does not answer a ping within this time is gone.
const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Largest request head buffered per connection (HTTP/1.1 read buffer, HTTP/2 header
/// list): a larger head is refused (431) instead of growing the buffer.
pub const MAX_HEADER_BUFFER_BYTES: usize = 64 * 1024;
/// Requests one HTTP/2 connection may have in flight.
pub const HTTP2_MAX_STREAMS: u32 = 100;

/// How the public listener treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenerSettings {
    /// How long in-flight requests may finish after shutdown begins.
    pub drain_timeout: Duration,
    /// Time a client has to send a complete request head (slow-loris guard); for HTTP/1.1
    /// also the longest a keep-alive connection may sit idle.
    pub header_read_timeout: Duration,
}

/// Serve `listener` until `shutdown`, then drain for at most `drain_timeout`. Whether a
/// connection uses TLS comes from `runtime` when it is accepted; connections over `limits`
/// are closed at once.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    runtime: SharedRuntime,
    shutdown: CancellationToken,
    settings: ListenerSettings,
    limits: Arc<ConnectionLimits>,
) {
    let builder = connection_builder(&ListenerLimits {
        header_read_timeout: settings.header_read_timeout,
        max_head_bytes: MAX_HEADER_BUFFER_BYTES,
        http2_max_streams: HTTP2_MAX_STREAMS,
        http2_keep_alive: HTTP2_KEEP_ALIVE,
    });
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();

    loop {
        let Some((stream, peer)) = accept(&listener, &shutdown, "public").await else {
            break;
        };
        let slot = match limits.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                tracing::debug!(%peer, limit = refusal.as_str(), "connection refused");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The address the client connected to is always an allowed `Host`.
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(error) => {
                tracing::debug!(%peer, %error, "connection closed before it was served");
                continue;
            }
        };
        let connection = Connection {
            peer,
            local,
            proxy: Arc::clone(&proxy),
            builder: Arc::clone(&builder),
            // Taken now, before any shutdown signal, so the connection is told to drain.
            watcher: graceful.watcher(),
            header_read_timeout: settings.header_read_timeout,
            _slot: slot,
        };
        let tls = runtime.load().tls().map(|tls| tls.acceptor());
        tokio::spawn(connection.run(stream, tls));
    }

    // Stop accepting before draining, so new connections are refused, not left waiting.
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(
            connections = open,
            timeout = %humantime::format_duration(settings.drain_timeout),
            "draining in-flight requests"
        );
    }
    if tokio::time::timeout(settings.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout passed; closing the remaining connections");
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    peer: SocketAddr,
    local: SocketAddr,
    proxy: Arc<Proxy>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    header_read_timeout: Duration,
    /// Its place under the connection limits, freed when the connection ends.
    _slot: Slot,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let Some(acceptor) = tls else {
            return self.serve_http(stream).await;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => self.serve_http(stream).await,
            // Failed handshakes are the client's doing (wrong CA, no client certificate,
            // old TLS version, port scanners): worth a debug line, not a warning.
            Ok(Err(error)) => {
                tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "TLS handshake timed out");
            }
        }
    }

    /// HTTP/1.1 or HTTP/2 (by the client's preface) until the client or a drain ends it.
    async fn serve_http<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            peer,
            local,
            proxy,
            builder,
            watcher,
            header_read_timeout,
            _slot,
        } = self;
        // Set by the first request. Until then hyper-util is still reading the protocol
        // preface, where hyper's own header timeout does not run yet.
        let started = CancellationToken::new();
        let service = service_fn({
            let started = started.clone();
            move |request| {
                if !started.is_cancelled() {
                    started.cancel();
                }
                let proxy = Arc::clone(&proxy);
                async move { Ok::<_, std::convert::Infallible>(proxy.handle(request, local).await) }
            }
        });
        let connection = watcher.watch(
            builder
                .serve_connection(TokioIo::new(io), service)
                .into_owned(),
        );
        tokio::pin!(connection);
        let result = tokio::select! {
            result = &mut connection => result,
            () = started.cancelled() => connection.await,
            () = tokio::time::sleep(header_read_timeout) => {
                tracing::debug!(%peer, "no request within the header read timeout; closing");
                return;
            }
        };
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}
