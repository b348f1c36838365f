//! The command line: every command, flag and environment variable `conduitctl` accepts.
//! Parsing only; what each command does lives in its own module.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cli_audit::{LogsArgs, StatsArgs};
use crate::cli_policy::{AclCommand, GuardrailsCommand};
use crate::exit::EXIT_CODES_HELP;
use crate::output::{ConfigFormat, ListFormat, RecordFormat};

/// `--wait` without a value waits this long.
pub const DEFAULT_WAIT: &str = "60s";

const LONG_ABOUT: &str = "\
Manage a Conduit fleet through its control plane.

Configuration is one YAML document. `apply` stores it as a new immutable version and the
control plane streams it to every data plane; `--wait` blocks until each connected data
plane has applied (ACKed) or rejected (NACKed) it. `validate` and `diff` let CI check a
change before it is applied. Exit codes are stable so pipelines can branch on them.";

#[derive(Debug, Parser)]
#[command(
    name = "conduitctl",
    version,
    about = "Manage a Conduit fleet through its control plane",
    long_about = LONG_ABOUT,
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the control plane is and how to authenticate to it.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Control plane gRPC address (http:// or https://).
    #[arg(
        long,
        global = true,
        env = "CONDUIT_SERVER",
        default_value = "http://127.0.0.1:7700",
        value_name = "URL"
    )]
    pub server: String,
    /// Admin bearer token.
    #[arg(
        long,
        global = true,
        env = "CONDUIT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// PEM file of the CA that signed the control plane's certificate (replaces the system
    /// trust store).
    #[arg(long, global = true, env = "CONDUIT_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config file and store it as the new version.
    Apply(ApplyArgs),
    /// Show how a config file differs from the current version (exit 1 when it does).
    Diff(FileArgs),
    /// Check a config file offline, without contacting the control plane.
    Validate(FileArgs),
    /// Show stored configuration.
    #[command(subcommand)]
    Get(GetCommand),
    /// List stored config versions, newest first.
    History(HistoryArgs),
    /// Store an older version's document as a new version.
    Rollback(RollbackArgs),
    /// Show the data planes and which version each one runs.
    Status(StatusArgs),
    /// Print the JSON Schema of the config document (offline; for editors and linters).
    Schema,
    /// Check, audit and edit the access control lists.
    #[command(subcommand)]
    Acl(AclCommand),
    /// Check and edit the guardrail rules.
    #[command(subcommand)]
    Guardrails(GuardrailsCommand),
    /// List and decide the tool calls held for approval.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Show the audit records of requests, newest first (one per JSON-RPC message).
    Logs(LogsArgs),
    /// Show requests, error rate and p50/p95/p99 latency over a window, per server, tool
    /// or client.
    Stats(StatsArgs),
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approval requests, newest first (pending ones by default).
    List(ApprovalsListArgs),
    /// Approve a pending request as the principal of --token; the client then retries
    /// with `X-Conduit-Approval-Id: ID`, for at most --max-uses calls until the approval
    /// expires.
    Approve(ApproveArgs),
    /// Reject a pending request as the principal of --token.
    Reject(DecideArgs),
}

/// `--status` of `approvals list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApprovalStatusFilter {
    Pending,
    Approved,
    Rejected,
    Expired,
    All,
}

#[derive(Debug, Args)]
pub struct ApprovalsListArgs {
    /// Which requests to show.
    #[arg(long, value_enum, default_value_t = ApprovalStatusFilter::Pending)]
    pub status: ApprovalStatusFilter,
    /// Show at most N requests.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    #[arg(short = 'o', long, value_enum, default_value_t = RecordFormat::Table)]
    pub output: RecordFormat,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The approval request id (`apr_...`).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Why, recorded with the decision.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t = RecordFormat::Table)]
    pub output: RecordFormat,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    pub decide: DecideArgs,
    /// Calls the approval lets through (1 to 1000); default
    /// `governance.approvals.max_uses` (1 unless set).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_uses: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// Print a stored config document (the current one unless --version is given).
    Config(GetConfigArgs),
    /// Same as `history`.
    Versions(HistoryArgs),
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// Config file (YAML or JSON); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
}

/// `--wait[=DURATION]`: absent means do not wait, bare means [`DEFAULT_WAIT`].
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until every connected data plane has applied the version (default 60s;
    /// e.g. --wait=2m).
    #[arg(
        long,
        value_name = "DURATION",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = DEFAULT_WAIT,
        value_parser = parse_wait
    )]
    pub wait: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Validate on the control plane and report what would happen; store nothing.
    #[arg(long, conflicts_with = "wait")]
    pub dry_run: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Change description recorded with the version.
    #[arg(short = 'm', long, default_value = "")]
    pub message: String,
    /// Who made the change [default: $USER@hostname].
    #[arg(long, env = "CONDUIT_AUTHOR", value_name = "NAME")]
    pub author: Option<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Version whose document becomes the new version.
    #[arg(long = "to", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub to: u64,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Change description recorded with the version.
    #[arg(short = 'm', long, default_value = "")]
    pub message: String,
    /// Who made the change [default: $USER@hostname].
    #[arg(long, env = "CONDUIT_AUTHOR", value_name = "NAME")]
    pub author: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetConfigArgs {
    /// Version to print (default: the current one).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub version: Option<u64>,
    #[arg(short = 'o', long, value_enum, default_value_t = ConfigFormat::Yaml)]
    pub output: ConfigFormat,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Table)]
    pub output: ListFormat,
    /// Show at most N versions.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Table)]
    pub output: ListFormat,
}

/// A humantime duration (`30s`, `2m`, `1m30s`) that fits WaitRollout's `timeout_ms: u32`.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.as_millis() > u128::from(u32::MAX) {
        return Err(format!(
            "{text} is too long: at most {}",
            humantime::format_duration(Duration::from_millis(u64::from(u32::MAX)))
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("conduitctl").chain(args.iter().copied()))
    }

    fn apply_args(args: &[&str]) -> ApplyArgs {
        match parse(args).expect("parses").command {
            Command::Apply(apply) => apply,
            other => panic!("expected apply, got {other:?}"),
        }
    }

    #[test]
    fn wait_absent_bare_and_with_value() {
        assert_eq!(apply_args(&["apply", "-f", "c.yaml"]).wait.wait, None);
        assert_eq!(
            apply_args(&["apply", "-f", "c.yaml", "--wait"]).wait.wait,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            apply_args(&["apply", "--wait=2m", "-f", "c.yaml"])
                .wait
                .wait,
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            apply_args(&["apply", "-f", "c.yaml", "--wait=1m30s"])
                .wait
                .wait,
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn bare_wait_does_not_swallow_the_next_argument() {
        let apply = apply_args(&["apply", "--wait", "-f", "c.yaml"]);
        assert_eq!(apply.wait.wait, Some(Duration::from_secs(60)));
        assert_eq!(apply.file.file, PathBuf::from("c.yaml"));
        // Without `=`, a following word is a stray positional, not the duration.
        let error = parse(&["apply", "-f", "c.yaml", "--wait", "30s"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn bad_wait_values_are_usage_errors() {
        for value in ["--wait=soon", "--wait=", "--wait=100d"] {
            let error = parse(&["apply", "-f", "c.yaml", value]).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ValueValidation, "{value}");
        }
    }

    #[test]
    fn dry_run_conflicts_with_wait() {
        let error = parse(&["apply", "-f", "c.yaml", "--dry-run", "--wait"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let cli = parse(&["status", "--server", "https://cp:7700", "--token", "t"]).unwrap();
        assert_eq!(cli.connection.server, "https://cp:7700");
        assert_eq!(cli.connection.token.as_deref(), Some("t"));
        let cli = parse(&["--server", "http://x:1", "history", "-o", "json"]).unwrap();
        assert_eq!(cli.connection.server, "http://x:1");
        assert!(matches!(
            cli.command,
            Command::History(HistoryArgs {
                output: ListFormat::Json,
                limit: None
            })
        ));
    }

    #[test]
    fn get_config_and_rollback() {
        let cli = parse(&["get", "config", "--version", "3", "-o", "json"]).unwrap();
        match cli.command {
            Command::Get(GetCommand::Config(args)) => {
                assert_eq!(args.version, Some(3));
                assert_eq!(args.output, ConfigFormat::Json);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = parse(&["rollback", "--to", "2", "-m", "bad deploy", "--wait=10s"]).unwrap();
        match cli.command {
            Command::Rollback(args) => {
                assert_eq!(args.to, 2);
                assert_eq!(args.message, "bad deploy");
                assert_eq!(args.wait.wait, Some(Duration::from_secs(10)));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["rollback"]).is_err());
        assert!(parse(&["rollback", "--to", "0"]).is_err());
        assert!(parse(&["status", "-o", "yaml"]).is_err());
    }

    #[test]
    fn stdin_file_and_help_lists_exit_codes() {
        let cli = parse(&["validate", "-f", "-"]).unwrap();
        assert!(
            matches!(cli.command, Command::Validate(FileArgs { file }) if file == std::path::Path::new("-"))
        );
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        let text = help.to_string();
        assert!(text.contains("Exit codes:"), "{text}");
        assert!(text.contains("64  usage error"), "{text}");
    }

    #[test]
    fn approvals_commands() {
        let cli = parse(&["approvals", "list", "--status", "all", "-o", "yaml"]).unwrap();
        match cli.command {
            Command::Approvals(ApprovalsCommand::List(args)) => {
                assert_eq!(args.status, ApprovalStatusFilter::All);
                assert_eq!(args.output, RecordFormat::Yaml);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = parse(&["approvals", "list"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Approvals(ApprovalsCommand::List(ApprovalsListArgs {
                status: ApprovalStatusFilter::Pending,
                ..
            }))
        ));
        let cli = parse(&["approvals", "approve", "apr_x", "--note", "ok"]).unwrap();
        match cli.command {
            Command::Approvals(ApprovalsCommand::Approve(args)) => {
                assert_eq!(
                    (args.decide.id.as_str(), args.decide.note.as_deref()),
                    ("apr_x", Some("ok"))
                );
                assert_eq!(args.max_uses, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = parse(&["approvals", "approve", "apr_x", "--max-uses", "3"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Approvals(ApprovalsCommand::Approve(ApproveArgs {
                max_uses: Some(3),
                ..
            }))
        ));
        for bad in ["0", "1001"] {
            assert!(parse(&["approvals", "approve", "apr_x", "--max-uses", bad]).is_err());
        }
        assert!(
            parse(&["approvals", "reject", "apr_x", "--max-uses", "2"]).is_err(),
            "only an approval has uses"
        );
        assert!(
            parse(&["approvals", "reject"]).is_err(),
            "the id is required"
        );
        assert!(parse(&["approvals", "list", "--status", "maybe"]).is_err());
    }

    #[test]
    fn logs_and_stats_flags() {
        use crate::cli_audit::StatsBy;
        let cli = parse(&[
            "logs",
            "--server-id",
            "files",
            "--tool",
            "read",
            "--client",
            "agent",
            "--status",
            "acl_denied",
            "--trace",
            "abc",
            "--since",
            "10m",
            "--limit",
            "5",
            "-o",
            "json",
        ])
        .unwrap();
        match cli.command {
            Command::Logs(args) => {
                assert_eq!(args.server_id.as_deref(), Some("files"));
                assert_eq!(args.tool.as_deref(), Some("read"));
                assert_eq!(args.client.as_deref(), Some("agent"));
                assert_eq!(args.status.as_deref(), Some("acl_denied"));
                assert_eq!(args.trace.as_deref(), Some("abc"));
                assert_eq!(args.since, Some(Duration::from_secs(600)));
                assert_eq!(args.limit, Some(5));
                assert_eq!(args.output, ListFormat::Json);
            }
            other => panic!("unexpected {other:?}"),
        }
        for bad in [
            &["logs", "--status", "fine"][..],
            &["logs", "--since", "soon"],
            &["logs", "--limit", "0"],
            &["logs", "--limit", "10001"],
            &["stats", "--server-id", "a", "--tool", "b"],
            &["stats", "--by", "node"],
            &["stats", "-o", "yaml"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let cli = parse(&["stats"]).unwrap();
        match cli.command {
            Command::Stats(args) => {
                assert_eq!(args.since, Duration::from_secs(3600));
                assert_eq!(args.by, StatsBy::Server);
                assert_eq!(args.output, ListFormat::Table);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = parse(&["stats", "--client", "c", "--since", "1d", "--by", "tool"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Stats(args) if args.by == StatsBy::Tool && args.since == Duration::from_secs(86_400)
        ));
        // The global --server is still the control plane's URL.
        let cli = parse(&["logs", "--server", "http://cp:1", "--server-id", "s"]).unwrap();
        assert_eq!(cli.connection.server, "http://cp:1");
    }

    #[test]
    fn command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
