//! `conduit-control-plane`: parses the command line, sets up logging and runs the server
//! until SIGTERM or SIGINT.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use conduit_control_plane::ServeError;
use conduit_control_plane::cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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
            init_tracing(args.log_format);
            let server = conduit_control_plane::start(args.into_config()).await?;
            tokio::select! {
                () = shutdown_signal() => {
                    tracing::info!("shutdown requested");
                    server.shutdown();
                }
                () = server.stopping() => {}
            }
            server.wait().await?;
        }
    }
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
