//! `conduitctl`: manage a Conduit fleet through the control plane's Admin API.
//!
//! `main` owns process concerns only: parsing (usage errors exit 64, `--help` exits 0),
//! the runtime, and turning a command's result into the documented exit code.
#![forbid(unsafe_code)]

mod acl;
mod apply;
mod approvals;
mod audit;
mod cli;
mod cli_audit;
mod cli_policy;
mod client;
mod diff;
mod exit;
mod get;
mod guardrails;
mod logs;
mod output;
mod policy_edit;
mod source;
mod stats;
mod status;
mod validate;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{ApprovalsCommand, Cli, Command, GetCommand};
use crate::cli_policy::{AclCommand, GuardrailsCommand};
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
            // Messages quote servers and data planes; keep their text off the terminal's
            // control path.
            eprintln!(
                "{}",
                conduit_process::escape_controls_keep_newlines(error.message())
            );
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
            Command::Approvals(ApprovalsCommand::List(args)) => {
                approvals::list(connection, args).await
            }
            Command::Approvals(ApprovalsCommand::Approve(args)) => {
                approvals::decide(connection, &args.decide, Some(args)).await
            }
            Command::Approvals(ApprovalsCommand::Reject(args)) => {
                approvals::decide(connection, args, None).await
            }
            Command::Logs(args) => logs::run(connection, args).await,
            Command::Stats(args) => stats::run(connection, args).await,
            Command::Validate(args) => validate::run(args),
            Command::Schema => validate::print_schema(),
            Command::Acl(AclCommand::Check(args)) => acl::check(connection, args).await,
            Command::Acl(AclCommand::Audit(args)) => audit::run(connection, args).await,
            Command::Acl(AclCommand::SetPolicy(args)) => {
                policy_edit::set_policy(connection, args).await
            }
            Command::Acl(AclCommand::DeletePolicy(args)) => {
                policy_edit::delete_policy(connection, args).await
            }
            Command::Guardrails(GuardrailsCommand::Check(args)) => {
                guardrails::check(connection, args).await
            }
            Command::Guardrails(GuardrailsCommand::SetRule(args)) => {
                policy_edit::set_rule(connection, args).await
            }
            Command::Guardrails(GuardrailsCommand::DeleteRule(args)) => {
                policy_edit::delete_rule(connection, args).await
            }
        }
    })
}
