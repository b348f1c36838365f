//! `governance`: roles in workspaces, tool policies (allow, deny, require approval), registry
//! import policies, per-workspace quotas and the approval workflow.
//!
//! The original stored approvals and governance audit events in a local SQLite file named by
//! `governance.db_path`; in Conduit the control plane stores them, so `db_path` is refused
//! with that explanation.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rate_limits::Limits;

/// Governance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    /// Whether governance is on. Default: `true` when the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Decision for registry imports no registry policy matches. Default: `allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_default_action: Option<RegistryEffect>,
    /// Roles of clients in workspaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_bindings: Vec<RoleBinding>,
    /// Tool call policies; the first whose selectors all match decides; none matching allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_policies: Vec<ToolPolicy>,
    /// Policies for registry imports and installs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registry_policies: Vec<RegistryPolicy>,
    /// Request quotas per workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    /// The approval workflow for `require_approval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<Approvals>,
}

/// Roles in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Owner.
    Owner,
    /// Administrator.
    Admin,
    /// May decide approval requests.
    Approver,
    /// Operator.
    Operator,
    /// Developer.
    Developer,
    /// Read-only.
    Viewer,
}

/// Clients holding a role in a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBinding {
    /// Workspace id.
    #[schemars(length(min = 1))]
    pub workspace_id: String,
    /// The role.
    pub role: Role,
    /// Client id patterns (at least one).
    pub clients: Vec<String>,
}

/// Effect of a tool policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolEffect {
    /// Let the call through.
    Allow,
    /// Refuse the call and hide the tool from `tools/list`.
    Deny,
    /// Hold the call until an approver grants it.
    RequireApproval,
}

/// Effect of a registry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegistryEffect {
    /// Allow the import.
    Allow,
    /// Refuse the import.
    Deny,
}

/// A tool call policy. Every selector given must match (`roles`: any role the caller holds in
/// its workspace); omitted selectors match everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPolicy {
    /// Policy name, unique.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Workspace ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspace_ids: Vec<String>,
    /// Roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// Client id patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<String>,
    /// Server id patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Tool name patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// What a match does.
    pub effect: ToolEffect,
    /// Reason shown to the caller and recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A registry import policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryPolicy {
    /// Policy name, unique.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Workspace ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspace_ids: Vec<String>,
    /// Roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// Client id patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<String>,
    /// Registry server name patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    /// Package types (`npm`, `pypi`, `oci`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_types: Vec<String>,
    /// Install modes (`local`, `remote`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub install_modes: Vec<String>,
    /// What a match does.
    pub effect: RegistryEffect,
    /// Reason recorded with the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Per-workspace request quotas (sliding windows; shared through Redis when
/// `rate_limits.backend: redis`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Quota of every workspace without its own entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Limits>,
    /// Quotas of single workspaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspaceQuota>,
}

/// The quota of one workspace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceQuota {
    /// Workspace id, unique among quotas.
    #[schemars(length(min = 1))]
    pub workspace_id: String,
    /// Requests per sliding minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_minute: Option<u64>,
    /// Requests per sliding hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_hour: Option<u64>,
    /// Requests per sliding day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_day: Option<u64>,
}

/// The approval workflow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    /// Whether calls can be approved. Default: `true`. With `false`, `require_approval`
    /// rules and policies are validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Seconds an approval request (and a granted approval) stays valid. Default: 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub ttl_seconds: Option<u64>,
    /// Roles allowed to decide, in the request's workspace. Default: `owner`, `admin`,
    /// `approver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_roles: Option<Vec<Role>>,
    /// Whether a client may approve its own request. Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_self_approval: Option<bool>,
    /// Calls one granted approval lets through when the approver does not say
    /// (`conduitctl approvals approve --max-uses N`). Default: 1, at most 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_uses: Option<u32>,
    /// New approval requests one client may cause per minute on one data plane; beyond
    /// that its held calls are refused with −32029 and no request is made. Default: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_minute: Option<u32>,
    /// Pending requests one client (in one workspace) may have on the control plane,
    /// fleet-wide; further requests are not recorded (and cannot be approved). Default: 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_pending_per_client: Option<u32>,
}

/// Default of `governance.approvals.max_uses`.
pub const DEFAULT_APPROVAL_MAX_USES: u32 = 1;
/// Largest `max_uses` of a grant.
pub const MAX_APPROVAL_USES: u32 = 1000;
/// Default of `governance.approvals.requests_per_minute`.
pub const DEFAULT_APPROVAL_REQUESTS_PER_MINUTE: u32 = 10;
/// Default of `governance.approvals.max_pending_per_client`.
pub const DEFAULT_APPROVAL_MAX_PENDING_PER_CLIENT: u32 = 20;

impl Governance {
    /// Whether governance is on (a present section is, unless `enabled: false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// Whether `require_approval` can be used: governance on and approvals not turned off.
    pub fn approvals_enabled(&self) -> bool {
        self.is_enabled()
            && self
                .approvals
                .as_ref()
                .and_then(|approvals| approvals.enabled)
                .unwrap_or(true)
    }
}
