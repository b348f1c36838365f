//! `conduit-data-plane run`: parse flags, set up logging, run until SIGTERM/SIGINT, drain.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;
use conduit_data_plane::lifecycle::DataPlane;
use conduit_process::StopSignals;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    conduit_process::install_crypto_provider();
    let Cli {
        command: Command::Run(args),
    } = Cli::parse();
    conduit_process::init_tracing(args.log_format);

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.worker_threads {
        runtime.worker_threads(threads.get());
    }
    let result = runtime
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
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
    let mut signals = StopSignals::install()?;
    let data_plane = DataPlane::start(settings).await?;
    let signal = signals.recv().await;
    tracing::info!(signal = signal.name(), "shutting down");
    data_plane.shutdown().await;
    Ok(())
}
