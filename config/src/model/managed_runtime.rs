//! `servers[].managed_runtime` (releases of a gateway-managed `stdio` server) and the
//! gateway-wide defaults in `connect.managed_runtime`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Releases of one `stdio` server that the gateway installs, starts and rolls back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedRuntime {
    /// Whether the managed runtime is used. Default: `true` when the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Where releases come from.
    pub source_type: SourceType,
    /// Package name, image reference or command the releases are built from.
    #[schemars(length(min = 1))]
    pub source_ref: String,
    /// Release channel followed. Default: `stable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Id of the release that runs (must be one of `releases`).
    #[schemars(length(min = 1))]
    pub active_release_id: String,
    /// Release rolled back to when a rollout fails its health gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_healthy_release_id: Option<String>,
    /// When the last rollout happened (RFC 3339), informative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rollout_at: Option<String>,
    /// Process sandbox for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Sandbox>,
    /// Health gate applied to rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_gate: Option<HealthGate>,
    /// Known releases (at least one).
    #[schemars(length(min = 1))]
    pub releases: Vec<Release>,
}

/// Kind of package a managed server is installed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    /// An npm package.
    Npm,
    /// A PyPI package.
    Pypi,
    /// An OCI image.
    Oci,
    /// A plain command already present on the data plane.
    Command,
}

/// Release channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Stable releases.
    Stable,
    /// Beta releases.
    Beta,
    /// Canary releases.
    Canary,
    /// One pinned release, never updated automatically.
    Pinned,
}

/// Process sandbox of a managed server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sandbox {
    /// Whether the sandbox is used. Default: `true` when the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Working and home directory of the process; system directories are refused.
    /// Default: `connect.managed_runtime.root_dir` joined with the server id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_dir: Option<String>,
    /// Start the process with a minimal environment (`PATH`, `TMPDIR`, locale, terminal)
    /// instead of the data plane's. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanitize_env: Option<bool>,
    /// Informative only: told to the process in `CONDUIT_SANDBOX_NETWORK`; the gateway does
    /// not filter the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_network: Option<bool>,
}

/// Health gate of rollouts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthGate {
    /// Check the new release (tool list refresh) before it takes traffic. Default: `true`
    /// when the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Return to the last healthy release when the check fails. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<bool>,
}

/// One release of a managed server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Release id, unique within the server.
    #[schemars(length(min = 1))]
    pub id: String,
    /// Version of the package.
    #[schemars(length(min = 1))]
    pub version: String,
    /// Channel the release belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Program started for this release.
    #[schemars(length(min = 1))]
    pub command: String,
    /// Arguments of `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment of this release, on top of the server's `env` (masked in dumps).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// When the release was created (RFC 3339), informative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Lifecycle state of the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReleaseStatus>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Lifecycle state of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// The release that runs.
    Active,
    /// Passed its health gate.
    Healthy,
    /// Waiting for a rollout.
    Candidate,
    /// Failed its health gate.
    Failed,
    /// Was active and got rolled back.
    RolledBack,
}

/// Gateway-wide defaults of managed servers (`connect.managed_runtime`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedRuntimeDefaults {
    /// Whether managed servers may be installed. Default: `true` when the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Directory under which each managed server gets its sandbox. Default: `./.conduit/runtime`
    /// relative to the data plane's working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_dir: Option<String>,
    /// Channel of newly installed servers. Default: `stable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_channel: Option<Channel>,
    /// Default of `sandbox.sanitize_env`. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanitize_env: Option<bool>,
    /// Default of `health_gate.auto_rollback`. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<bool>,
}
