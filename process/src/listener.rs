//! What the servers' HTTP listeners share: a connection builder with bounded request heads
//! and timeouts on both HTTP versions, and an accept step that survives transient errors
//! and stops at shutdown. The public port (data plane) and the internal listeners
//! (`internal_http`) differ only in the numbers they pass.

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Pause after a failed accept (e.g. out of file descriptors) before trying again: without
/// it the loop would spin on the same error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The limits of one listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Time to send a whole request head (the first one too, and the HTTP/2 preface); an
    /// idle HTTP/1.1 connection is closed after it.
    pub header_read_timeout: Duration,
    /// Largest request head buffered (HTTP/1.1), and header list (HTTP/2).
    pub max_head_bytes: usize,
    /// Requests at once on one HTTP/2 connection.
    pub http2_max_streams: u32,
    /// HTTP/2 keep-alive ping interval, and how long to wait for its answer.
    pub http2_keep_alive: Duration,
}

/// A builder that serves HTTP/1.1 (with keep-alive) and HTTP/2 within `limits`.
pub fn connection_builder(limits: &ListenerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper enforces the header read timeout only when it has a timer.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_head_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.http2_max_streams)
        .keep_alive_interval(limits.http2_keep_alive)
        .keep_alive_timeout(limits.http2_keep_alive);
    builder
}

/// The next connection of `listener`, or `None` once `shutdown` is cancelled. A failed
/// accept is logged (naming `listener_name`) and retried after a short pause.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
    listener_name: &str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) => {
                    tracing::warn!(%error, listener = listener_name, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accept_returns_connections_until_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let client = TcpStream::connect(address).await.unwrap();
        let (_, peer) = accept(&listener, &shutdown, "test").await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        shutdown.cancel();
        assert!(accept(&listener, &shutdown, "test").await.is_none());
    }
}
