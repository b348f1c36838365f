//! `conduitctl`: manage a Conduit fleet through the control plane's Admin API.
//!
//! `main` owns process concerns only: parsing (usage errors exit 64, `--help` exits 0),
//! the runtime, and turning a command's result into the documented exit code.
#![forbid(unsafe_code)]

mod apply;
mod cli;
mod client;
mod diff;
mod exit;
mod get;
mod output;
mod status;
mod validate;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, GetCommand};
use crate::exit::{CliError, Exit};

fn main() -> ExitCode {
    conduit_process::install_crypto_provider();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout and are not failures.
            let _ = error.print();
            return if error.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    match run(cli) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("{}", error.message());
            error.exit().into()
        }
    }
}

fn run(cli: Cli) -> Result<Exit, CliError> {
    // `validate` and `schema` are offline; they never need a runtime or the network.
    match &cli.command {
        Command::Validate(args) => return validate::run(args),
        Command::Schema => return validate::print_schema(),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::new(Exit::ServerError, format!("error: tokio: {error}")))?;
    let connection = &cli.connection;
    runtime.block_on(async {
        match &cli.command {
            Command::Apply(args) => apply::apply(connection, args).await,
            Command::Rollback(args) => apply::rollback(connection, args).await,
            Command::Diff(args) => diff::run(connection, args).await,
            Command::Get(GetCommand::Config(args)) => get::config(connection, args).await,
            Command::Get(GetCommand::Versions(args)) | Command::History(args) => {
                get::history(connection, args).await
            }
            Command::Status(args) => status::run(connection, args).await,
            Command::Validate(args) => validate::run(args),
            Command::Schema => validate::print_schema(),
        }
    })
}
