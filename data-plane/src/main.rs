//! `conduit-data-plane run`: parse flags, set up logging, run until SIGTERM/SIGINT, drain.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;
use conduit_data_plane::lifecycle::DataPlane;
use conduit_process::StopSignals;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // First, before any secret is read: see `non_dumpable`.
    let dumpable = non_dumpable();
    conduit_process::install_crypto_provider();
    let Cli {
        command: Command::Run(args),
    } = Cli::parse();
    conduit_process::init_tracing(args.log_format);
    if let Err(error) = dumpable {
        tracing::warn!(
            %error,
            "cannot make the data plane non-dumpable; processes of its user may read its \
             memory and environment"
        );
    }

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

/// Make the process non-dumpable (`PR_SET_DUMPABLE` 0): `/proc/<pid>/environ`, `mem`,
/// `maps` and `fd` then belong to root and `ptrace` is refused, so a stdio server (or any
/// process of the same user without `CAP_SYS_PTRACE`) cannot read the data plane's
/// environment (`CONDUIT_DP_TOKEN`) or the secrets in its memory. No core dumps either,
/// which would hold the same secrets. Children start dumpable again after `exec`.
#[cfg(target_os = "linux")]
fn non_dumpable() -> std::io::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn non_dumpable() -> std::io::Result<()> {
    Ok(())
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
