//! `identity`: workspaces (groups of tenants) and the store of connected accounts used by
//! `servers[].upstream_auth.connected_account`.
//!
//! The original kept connected accounts in a local SQLite file named by `identity.db_path`.
//! In Conduit they live in the control plane's database, so `db_path` is refused with that
//! explanation.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ID_PATTERN;

/// Workspaces and connected accounts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Whether identity brokering is on. Default: `true` when the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Workspace of tenants no workspace lists. Default: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub default_workspace_id: Option<String>,
    /// Workspaces and the tenants they contain; a tenant belongs to at most one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<Workspace>,
}

/// One workspace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    /// Workspace id, unique; letters, digits and `-`.
    #[schemars(pattern(ID_PATTERN))]
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Tenant ids that belong to this workspace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenant_ids: Vec<String>,
}

impl Identity {
    /// Whether identity brokering is on (a present section is, unless `enabled: false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}
