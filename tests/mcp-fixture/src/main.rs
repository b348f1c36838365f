//! `conduit-mcp-fixture`: `--listen ADDR` serves MCP streamable HTTP at `/mcp` (add
//! `--stateless` to serve without sessions), `--stdio` serves MCP over stdin/stdout. Logs
//! go to stderr so they never mix with stdio frames.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use conduit_process::{LogFormat, StopSignals};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "conduit-mcp-fixture",
    version,
    about = "Example and test MCP server for Conduit"
)]
struct Args {
    /// Serve MCP streamable HTTP at http://ADDR/mcp.
    #[arg(
        long,
        value_name = "ADDR",
        conflicts_with = "stdio",
        required_unless_present = "stdio"
    )]
    listen: Option<SocketAddr>,
    /// Serve one MCP session over stdin/stdout.
    #[arg(long)]
    stdio: bool,
    /// With `--listen`: serve every request on its own, without MCP sessions, so several
    /// fixture processes can act as replicas of one server.
    #[arg(long, conflicts_with = "stdio")]
    stateless: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    conduit_process::install_crypto_provider();
    let args = Args::parse();
    conduit_process::init_tracing(LogFormat::Text);

    match args.listen {
        Some(addr) => {
            // Installed before binding, so a signal during start-up is not lost.
            let mut signals = StopSignals::install().context("installing signal handlers")?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let bound = listener.local_addr()?;
            tracing::info!(%bound, "serving MCP at http://{bound}/mcp");
            let shutdown = CancellationToken::new();
            let on_signal = shutdown.clone();
            tokio::spawn(async move {
                let signal = signals.recv().await;
                tracing::info!(signal = signal.name(), "shutting down");
                on_signal.cancel();
            });
            let options = conduit_mcp_fixture::transport::HttpOptions {
                stateless: args.stateless,
            };
            conduit_mcp_fixture::transport::serve_http_with(listener, shutdown, options).await
        }
        None => conduit_mcp_fixture::transport::serve_stdio().await,
    }
}
