//! The command line of the audit commands: `logs` (audit records) and `stats` (request
//! counts, error rate and latency percentiles). Parsing only; `logs.rs` and `stats.rs` do
//! the work.
//!
//! The global `--server` is the control plane's URL, so the MCP server filter is
//! `--server-id`, as in the other commands.

use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};

use crate::output::ListFormat;

pub use conduit_proto::AUDIT_STATUSES as STATUSES;

/// Largest `--limit` the control plane accepts.
pub const MAX_LIMIT: u32 = 10_000;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only requests to this MCP server (the id in /mcp/{id}).
    #[arg(long, value_name = "ID")]
    pub server_id: Option<String>,
    /// Only calls of this tool (or reads of this resource, gets of this prompt).
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    /// Only requests of this client id.
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// Only records with this status.
    #[arg(long, value_name = "STATUS", value_parser = clap::builder::PossibleValuesParser::new(STATUSES))]
    pub status: Option<String>,
    /// Only records of this trace id.
    #[arg(long, value_name = "ID")]
    pub trace: Option<String>,
    /// Only records of the last DURATION (e.g. 10m, 1h, 2d).
    #[arg(long, value_name = "DURATION", value_parser = parse_since)]
    pub since: Option<Duration>,
    /// Show at most N records (default 100, at most 10000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)))]
    pub limit: Option<u32>,
    #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Table)]
    pub output: ListFormat,
}

/// `--by` of `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsBy {
    Server,
    Tool,
    Client,
}

impl StatsBy {
    /// The AuditStats `group_by` value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatsBy::Server => "server",
            StatsBy::Tool => "tool",
            StatsBy::Client => "client",
        }
    }
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("filter").args(["server_id", "tool", "client"])))]
pub struct StatsArgs {
    /// Only requests to this MCP server.
    #[arg(long, value_name = "ID")]
    pub server_id: Option<String>,
    /// Only calls of this tool.
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    /// Only requests of this client id.
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// The window: records of the last DURATION.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_since)]
    pub since: Duration,
    /// One row per server, tool or client.
    #[arg(long, value_enum, default_value_t = StatsBy::Server)]
    pub by: StatsBy,
    #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Table)]
    pub output: ListFormat,
}

/// A humantime duration (`10m`, `1h30m`, `7d`) of at most 100 years.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration > Duration::from_secs(100 * 365 * 86_400) {
        return Err(format!("{text} is too long: at most 100 years"));
    }
    Ok(duration)
}

/// Unix ms of `now_ms` minus `since`.
pub fn since_unix_ms(now_ms: i64, since: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}
