//! How the fixture is exposed: streamable HTTP at `/mcp` (axum) or stdio.

use std::net::SocketAddr;

use anyhow::Context as _;
use rmcp::{
    ServiceExt as _,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::FixtureServer;

/// How the HTTP transport serves requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpOptions {
    /// Serve every request on its own, without MCP sessions (rmcp's stateless mode): no
    /// `initialize` is needed first, and any of several fixture processes can answer any
    /// request, as replicas of one server.
    pub stateless: bool,
}

/// The axum router serving MCP streamable HTTP at `/mcp`, with sessions.
pub fn router(listen: SocketAddr, shutdown: CancellationToken) -> axum::Router {
    router_with(listen, shutdown, HttpOptions::default())
}

/// The axum router serving MCP streamable HTTP at `/mcp`.
///
/// rmcp checks the `Host` header against a loopback allow-list by default (DNS-rebinding
/// protection). A fixture bound to a non-loopback address is reached under other names, so
/// the list is only kept for loopback binds.
pub fn router_with(
    listen: SocketAddr,
    shutdown: CancellationToken,
    options: HttpOptions,
) -> axum::Router {
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(shutdown)
        .with_legacy_session_mode(!options.stateless);
    if !listen.ip().is_loopback() {
        config = config.disable_allowed_hosts();
    }
    let service: StreamableHttpService<FixtureServer, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(FixtureServer::new()), Default::default(), config);
    axum::Router::new().nest_service("/mcp", service)
}

/// Serves streamable HTTP, with sessions, on an already bound listener until `shutdown` is
/// cancelled.
pub async fn serve_http(listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    serve_http_with(listener, shutdown, HttpOptions::default()).await
}

/// Serves streamable HTTP on an already bound listener until `shutdown` is cancelled.
pub async fn serve_http_with(
    listener: TcpListener,
    shutdown: CancellationToken,
    options: HttpOptions,
) -> anyhow::Result<()> {
    let listen = listener.local_addr().context("reading the bound address")?;
    let app = router_with(listen, shutdown.clone(), options);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
        .await
        .context("serving HTTP")
}

/// Serves one MCP session over stdin/stdout until the peer closes it.
pub async fn serve_stdio() -> anyhow::Result<()> {
    let running = FixtureServer::new()
        .serve(rmcp::transport::stdio())
        .await
        .context("starting the stdio session")?;
    running.waiting().await.context("stdio session")?;
    Ok(())
}
