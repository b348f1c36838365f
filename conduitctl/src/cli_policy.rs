//! The command line of the policy commands: `acl check|audit|set-policy|delete-policy` and
//! `guardrails check|set-rule|delete-rule`. Parsing only; `acl.rs`, `guardrails.rs` and
//! `policy_edit.rs` do the work.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

use crate::output::ReportFormat;

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Decide one call offline (exit 0 allowed, 1 denied).
    Check(AclCheckArgs),
    /// List wildcard grants and entries naming servers or clients that do not exist (exit 1
    /// when there are findings).
    Audit(AuditArgs),
    /// Add an ACL policy, or replace the one with the same name; stored as a new version.
    SetPolicy(SetEntryArgs),
    /// Remove an ACL policy; stored as a new version.
    DeletePolicy(DeleteEntryArgs),
}

#[derive(Debug, Subcommand)]
pub enum GuardrailsCommand {
    /// Evaluate the guardrail rules for one call offline (exit 0 when the call goes through,
    /// 1 when it is blocked or held for approval).
    Check(GuardrailsCheckArgs),
    /// Add a guardrail rule, or replace the one with the same name; stored as a new version.
    SetRule(SetEntryArgs),
    /// Remove a guardrail rule; stored as a new version.
    DeleteRule(DeleteEntryArgs),
}

/// Which config a check reads: a local file, or a version stored on the control plane.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Config file (YAML or JSON; `-` reads standard input), checked offline with the same
    /// validation as `validate`.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        conflicts_with = "version"
    )]
    pub file: Option<PathBuf>,
    /// Stored version to read from the control plane (default: the current one).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub version: Option<u64>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("capability").required(true).args(["tool", "resource", "prompt"])))]
pub struct AclCheckArgs {
    /// Client id of the caller.
    #[arg(long, value_name = "ID")]
    pub client: String,
    /// Server id (`--server` is the control plane's address, a global flag).
    #[arg(long = "server-id", value_name = "ID")]
    pub server_id: String,
    /// Tool name (without namespace prefix).
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    /// Resource URI.
    #[arg(long, value_name = "URI")]
    pub resource: Option<String>,
    /// Prompt name.
    #[arg(long, value_name = "NAME")]
    pub prompt: Option<String>,
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

#[derive(Debug, Args)]
pub struct GuardrailsCheckArgs {
    /// Client id of the caller.
    #[arg(long, value_name = "ID")]
    pub client: String,
    /// Server id (`--server` is the control plane's address, a global flag).
    #[arg(long = "server-id", value_name = "ID")]
    pub server_id: String,
    /// Tool name (without namespace prefix).
    #[arg(long, value_name = "NAME")]
    pub tool: String,
    /// The call's arguments, a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,
    /// The tool's MCP annotations, a JSON object like `{"readOnlyHint": true}` (default:
    /// unknown, judged as destructive).
    #[arg(long, value_name = "JSON")]
    pub annotations: Option<String>,
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

/// How a single-entry edit is stored.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// Validate on the control plane and report what would happen; store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Change description recorded with the version [default: what was changed].
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Who made the change [default: $USER@hostname].
    #[arg(long, env = "CONDUIT_AUTHOR", value_name = "NAME")]
    pub author: Option<String>,
}

#[derive(Debug, Args)]
pub struct SetEntryArgs {
    /// File holding one entry (YAML or JSON; `-` reads standard input).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Insert before the entry with this name (a replaced entry keeps its place otherwise;
    /// a new one is appended).
    #[arg(long, value_name = "NAME")]
    pub before: Option<String>,
    /// The section's `default_action` when the section does not exist yet (required then:
    /// there is no implicit default).
    #[arg(long, value_name = "ACTION")]
    pub default_action: Option<String>,
    #[command(flatten)]
    pub edit: EditArgs,
}

#[derive(Debug, Args)]
pub struct DeleteEntryArgs {
    /// Name of the entry to remove.
    pub name: String,
    #[command(flatten)]
    pub edit: EditArgs,
}
