//! Commands that create a version (`apply`, `rollback`) and the `--wait` that follows a
//! version out to the fleet and turns the outcome into exit codes 0 / 3 / 4.

use std::time::Duration;

use conduit_proto::v1::wait_rollout_response::Outcome;
use conduit_proto::v1::{
    ApplyRequest, ApplyResponse, DataPlaneStatus, RollbackRequest, WaitRolloutRequest,
    WaitRolloutResponse,
};

use crate::cli::{ApplyArgs, ConnectionArgs, RollbackArgs};
use crate::client::{CALL_TIMEOUT, Session};
use crate::exit::{CliError, Exit};
use crate::output::{escape_controls, short_hash};
use crate::validate;

/// `conduitctl apply -f FILE`.
pub async fn apply(connection: &ConnectionArgs, args: &ApplyArgs) -> Result<Exit, CliError> {
    // Local validation first: an invalid file fails the same way with or without a server.
    let local = validate::load(&args.file.file)?;
    validate::print_warnings(&local);
    let session = Session::connect(connection).await?;
    let request = ApplyRequest {
        document: local.text,
        message: args.message.clone(),
        author: author(args.author.as_deref()),
        dry_run: args.dry_run,
    };
    let response = session
        .call(CALL_TIMEOUT, session.admin.clone().apply(request))
        .await?;
    println!("{}", applied_line(&response));
    match args.wait.wait {
        Some(wait) if !response.dry_run => wait_rollout(&session, response.version, wait).await,
        _ => Ok(Exit::Ok),
    }
}

/// `conduitctl rollback --to N`.
pub async fn rollback(connection: &ConnectionArgs, args: &RollbackArgs) -> Result<Exit, CliError> {
    let session = Session::connect(connection).await?;
    let request = RollbackRequest {
        to_version: args.to,
        message: args.message.clone(),
        author: author(args.author.as_deref()),
    };
    let response = session
        .call(CALL_TIMEOUT, session.admin.clone().rollback(request))
        .await?;
    if response.changed {
        println!(
            "rolled back to version {}: {}",
            args.to,
            applied_line(&response)
        );
    } else {
        println!("{} (same as version {})", applied_line(&response), args.to);
    }
    match args.wait.wait {
        Some(wait) => wait_rollout(&session, response.version, wait).await,
        None => Ok(Exit::Ok),
    }
}

/// One line saying what an Apply or Rollback did.
pub fn applied_line(response: &ApplyResponse) -> String {
    match (response.dry_run, response.changed) {
        // On a dry run `version` is the one an apply would create.
        (true, true) => format!("valid; would create version {}", response.version),
        (true, false) => format!("valid; no change: version {} is current", response.version),
        (false, true) => format!(
            "version {} applied (hash {})",
            response.version,
            short_hash(&response.hash)
        ),
        (false, false) => format!("no change: version {} is current", response.version),
    }
}

/// `--author`/CONDUIT_AUTHOR when given (clap reads the variable), else `$USER@hostname`.
pub fn author(explicit: Option<&str>) -> String {
    match explicit {
        Some(author) if !author.trim().is_empty() => author.trim().to_string(),
        _ => format!("{}@{}", user(), hostname()),
    }
}

fn user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn hostname() -> String {
    // std has no gethostname; these cover Linux and most shells elsewhere.
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Blocks in WaitRollout, prints each data plane's outcome and maps it to an exit code.
pub async fn wait_rollout(
    session: &Session,
    version: u64,
    wait: Duration,
) -> Result<Exit, CliError> {
    let request = WaitRolloutRequest {
        version,
        // `parse_wait` already bounds the duration to what fits.
        timeout_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
    };
    // The server answers when its own timeout passes; allow for the round trip on top.
    let response = session
        .call(
            wait + CALL_TIMEOUT,
            session.admin.clone().wait_rollout(request),
        )
        .await?;
    let report = RolloutReport::new(version, wait, &response);
    print!("{}", report.progress());
    report.outcome().map(|summary| {
        println!("{summary}");
        Exit::Ok
    })
}

/// Where one data plane stands with respect to the version being rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Applied,
    Rejected,
    Pending,
    Disconnected,
}

/// A WaitRollout answer, classified per data plane.
pub struct RolloutReport<'a> {
    version: u64,
    wait: Duration,
    outcome: Outcome,
    nodes: Vec<(&'a DataPlaneStatus, NodeState)>,
}

impl<'a> RolloutReport<'a> {
    pub fn new(version: u64, wait: Duration, response: &'a WaitRolloutResponse) -> Self {
        let mut nodes: Vec<_> = response
            .data_planes
            .iter()
            .map(|node| (node, classify(node, version)))
            .collect();
        nodes.sort_by(|a, b| a.0.node_id.cmp(&b.0.node_id));
        Self {
            version,
            wait,
            outcome: response.outcome(),
            nodes,
        }
    }

    /// One line per data plane (stdout), whatever the outcome.
    pub fn progress(&self) -> String {
        let width = self
            .nodes
            .iter()
            .map(|(n, _)| escape_controls(&n.node_id).len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (node, state) in &self.nodes {
            let what = match state {
                NodeState::Applied => format!("applied version {}", node.applied_version),
                NodeState::Rejected => format!("rejected version {}", node.rejected_version),
                NodeState::Pending => format!("pending (at version {})", node.applied_version),
                NodeState::Disconnected => "disconnected (not waited for)".to_string(),
            };
            out.push_str(&format!(
                "{:width$}   {what}\n",
                escape_controls(&node.node_id)
            ));
        }
        out
    }

    fn count(&self, wanted: NodeState) -> usize {
        self.nodes
            .iter()
            .filter(|(_, state)| *state == wanted)
            .count()
    }

    /// Data planes the rollout waits for: every connected one, and any that answered this
    /// version before it went away.
    fn waited_for(&self) -> usize {
        self.nodes.len() - self.count(NodeState::Disconnected)
    }

    /// The summary for success (stdout), or the failure with its details (stderr).
    pub fn outcome(&self) -> Result<String, CliError> {
        let version = self.version;
        let connected = self.waited_for();
        match self.outcome {
            Outcome::Converged if connected == 0 => Ok(format!(
                "no data planes are connected: version {version} is stored and each data plane \
                 will get it when it connects"
            )),
            Outcome::Converged => Ok(format!(
                "{}/{connected} data planes applied version {version}",
                self.count(NodeState::Applied)
            )),
            Outcome::Rejected => {
                let mut message = format!(
                    "error: version {version} was rejected by {} of {connected} data planes \
                     (each keeps serving its previous version):",
                    self.count(NodeState::Rejected)
                );
                for (node, _) in self.nodes.iter().filter(|(_, s)| *s == NodeState::Rejected) {
                    message.push_str(&format!(
                        "\n{} rejected version {}:",
                        node.node_id, node.rejected_version
                    ));
                    for error in &node.rejected_errors {
                        let error = conduit_config::ConfigError::from(error.clone());
                        message.push_str(&format!("\n  {error}"));
                    }
                }
                Err(CliError::new(Exit::Rejected, message))
            }
            Outcome::TimedOut => {
                let mut message = format!(
                    "error: timed out after {} waiting for version {version}: {} of {connected} \
                     data planes still pending:",
                    humantime::format_duration(self.wait),
                    self.count(NodeState::Pending)
                );
                for (node, _) in self.nodes.iter().filter(|(_, s)| *s == NodeState::Pending) {
                    message.push_str(&format!(
                        "\n  {} (at version {})",
                        node.node_id, node.applied_version
                    ));
                }
                Err(CliError::new(Exit::TimedOut, message))
            }
            Outcome::Unspecified => Err(CliError::new(
                Exit::ServerError,
                "error: control plane: WaitRollout returned no outcome",
            )),
        }
    }
}

fn classify(node: &DataPlaneStatus, version: u64) -> NodeState {
    if node.applied_version >= version {
        NodeState::Applied
    } else if node.rejected_version >= version {
        NodeState::Rejected
    } else if !node.connected {
        NodeState::Disconnected
    } else {
        NodeState::Pending
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
