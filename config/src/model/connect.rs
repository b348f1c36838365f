//! Top-level `profiles` (endpoints aggregating several servers) and `connect` (the MCP
//! Registry library and defaults of managed servers).
//!
//! The original kept profiles under `connect.profiles`; Conduit moves them to the top level
//! because every data plane serves them. `connect.profiles` is refused with a message naming
//! the new place.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ID_PATTERN;
use super::managed_runtime::ManagedRuntimeDefaults;

/// An endpoint (`/mcp/profile/{id}`) aggregating the tools of several servers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile id: letters, digits and `-`; unique; not `default` (reserved for the profile of
    /// all servers).
    #[schemars(pattern(ID_PATTERN))]
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Ids of the servers in this profile (at least one; each must be in `servers`).
    pub server_ids: Vec<String>,
}

/// Distribution features: the MCP Registry library and managed server defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// Whether connect features are on. Default: `true` when the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Ingestion of an MCP Registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Registry>,
    /// Defaults of gateway-managed servers (`servers[].managed_runtime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_runtime: Option<ManagedRuntimeDefaults>,
}

/// Ingestion of an MCP Registry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Base URL of the registry. Default: the official MCP Registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Seconds a fetched listing is reused. Default: 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_seconds: Option<u64>,
    /// Entries per page, 1 to 200. Default: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 200))]
    pub page_size: Option<u32>,
    /// Pages fetched at most, 0 (all) to 1000. Default: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000))]
    pub max_pages: Option<u32>,
    /// Keep only the latest version of each server. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_only: Option<bool>,
}

impl Connect {
    /// Whether connect features are on (a present section is, unless `enabled: false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}
