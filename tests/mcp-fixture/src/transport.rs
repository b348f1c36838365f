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

/// The axum router serving MCP streamable HTTP at `/mcp`.
///
/// rmcp checks the `Host` header against a loopback allow-list by default (DNS-rebinding
/// protection). A fixture bound to a non-loopback address is reached under other names, so
/// the list is only kept for loopback binds.
pub fn router(listen: SocketAddr, shutdown: CancellationToken) -> axum::Router {
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(shutdown);
    if !listen.ip().is_loopback() {
        config = config.disable_allowed_hosts();
    }
    let service: StreamableHttpService<FixtureServer, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(FixtureServer::new()), Default::default(), config);
    axum::Router::new().nest_service("/mcp", service)
}

/// Serves streamable HTTP on an already bound listener until `shutdown` is cancelled.
pub async fn serve_http(listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listen = listener.local_addr().context("reading the bound address")?;
    let app = router(listen, shutdown.clone());
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
