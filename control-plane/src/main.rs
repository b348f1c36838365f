//! `conduit-control-plane`: parses the command line, sets up logging and runs the server
//! until SIGTERM or SIGINT.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use conduit_control_plane::ServeError;
use conduit_control_plane::cli::{Cli, Command};
use conduit_process::StopSignals;

fn main() -> ExitCode {
    conduit_process::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Every error's message already includes its cause; printing the source chain
            // as well would repeat it.
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), ServeError> {
    match cli.command {
        Command::Serve(args) => {
            conduit_process::init_tracing(args.log_format);
            let mut signals = StopSignals::install().map_err(ServeError::Signals)?;
            let server = conduit_control_plane::start(args.into_config()).await?;
            tokio::select! {
                signal = signals.recv() => {
                    tracing::info!(signal = signal.name(), "shutdown requested");
                    server.shutdown();
                }
                () = server.stopping() => {}
            }
            server.wait().await?;
        }
    }
    Ok(())
}
