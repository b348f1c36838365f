//! Exit codes: the stable contract CI pipelines script against, and the error type that
//! carries one from wherever a command fails up to `main`.
//!
//! Every command returns `Result<Exit, CliError>`: `Ok` for outcomes that are answers rather
//! than failures (`diff` found differences), `Err` for everything that must stop a pipeline.

use std::fmt;

/// Process exit status of `conduitctl`. The numbers never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did what was asked.
    Ok,
    /// `diff` found differences between the file and the current version.
    Differences,
    /// A policy answer that is "no": `acl check` denied, `guardrails check` blocked or held
    /// the call, `acl audit` has findings. Same number as [`Exit::Differences`]: both are
    /// answers a pipeline branches on, not failures of the command.
    Refused,
    /// The config document is invalid (every error printed as `path: message`).
    Invalid,
    /// A data plane rejected (NACKed) the version being rolled out.
    Rejected,
    /// The rollout did not converge before `--wait` ran out.
    TimedOut,
    /// The control plane could not be reached.
    Unreachable,
    /// The control plane refused the credentials, or the principal's role (or the
    /// governance rules of an approval decision) does not allow the call.
    AuthRefused,
    /// Any other error reported by the control plane (e.g. an unknown version).
    ServerError,
    /// The command line could not be parsed, or a local input could not be read.
    Usage,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Differences | Exit::Refused => 1,
            Exit::Invalid => 2,
            Exit::Rejected => 3,
            Exit::TimedOut => 4,
            Exit::Unreachable => 5,
            Exit::AuthRefused => 6,
            Exit::ServerError => 7,
            Exit::Usage => 64,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// The exit-code table shown by `conduitctl --help`; kept next to [`Exit`] so the two
/// cannot drift apart unnoticed (a unit test checks every code appears).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  success
   1  diff: the file differs from the current version; acl check: denied; guardrails
      check: blocked or held for approval; acl audit: findings
   2  config invalid (every error printed to stderr as `path: message`)
   3  rollout rejected: a data plane NACKed the version (each printed with its errors)
   4  rollout timed out: data planes still pending (each printed)
   5  control plane unreachable
   6  authentication refused (check --token / CONDUIT_TOKEN) or permission denied
      (the token's principal lacks the role, or may not decide this approval)
   7  other server error (e.g. unknown version)
  64  usage error (bad flags or arguments, unreadable input file)";

/// A failure that ends the command with a specific exit code. The message is printed to
/// stderr as is; it may span several lines (one per config error or data plane).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    exit: Exit,
    message: String,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub fn exit(&self) -> Exit {
        self.exit
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl CliError {
    /// Invalid config (exit 2): a header naming what was rejected, then one
    /// `path: message` line per error (document-level errors unprefixed).
    pub fn invalid(what: &str, errors: &conduit_config::ConfigErrors) -> Self {
        let count = errors.0.len();
        let noun = if count == 1 { "error" } else { "errors" };
        CliError::new(Exit::Invalid, format!("{what} ({count} {noun}):\n{errors}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Exit; 10] = [
        Exit::Ok,
        Exit::Differences,
        Exit::Refused,
        Exit::Invalid,
        Exit::Rejected,
        Exit::TimedOut,
        Exit::Unreachable,
        Exit::AuthRefused,
        Exit::ServerError,
        Exit::Usage,
    ];

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<u8> = ALL.iter().map(|exit| exit.code()).collect();
        assert_eq!(codes, [0, 1, 1, 2, 3, 4, 5, 6, 7, 64]);
    }

    #[test]
    fn help_table_lists_every_code() {
        for exit in ALL {
            let line = format!("{:>4}  ", exit.code());
            assert!(
                EXIT_CODES_HELP.lines().any(|l| l.starts_with(&line)),
                "exit code {} missing from help",
                exit.code()
            );
        }
    }

    #[test]
    fn config_errors_become_invalid_with_every_path() {
        let errors = conduit_config::ConfigErrors(vec![
            conduit_config::ConfigError {
                path: "servers[0].url".into(),
                message: "must be an http(s) URL".into(),
            },
            conduit_config::ConfigError {
                path: "servers[1].id".into(),
                message: "duplicate id".into(),
            },
        ]);
        let error = CliError::invalid("c.yaml: invalid config", &errors);
        assert_eq!(error.exit(), Exit::Invalid);
        assert_eq!(
            error.message(),
            "c.yaml: invalid config (2 errors):\n\
             servers[0].url: must be an http(s) URL\n\
             servers[1].id: duplicate id"
        );
    }
}
