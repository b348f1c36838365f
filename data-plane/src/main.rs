//! `conduit-data-plane run`: parse flags, set up logging, run until SIGTERM/SIGINT, drain.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;
use conduit_data_plane::lifecycle::DataPlane;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Cli {
        command: Command::Run(args),
    } = Cli::parse();
    init_tracing(args.log_format);

    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("conduit-data-plane: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: cli::RunArgs) -> anyhow::Result<()> {
    let token = std::env::var("CONDUIT_DP_TOKEN").ok();
    let settings = args.settings(token)?;
    // Install the handlers before starting, so a signal during start-up is not lost.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let data_plane = DataPlane::start(settings).await?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
    }
    data_plane.shutdown().await;
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
