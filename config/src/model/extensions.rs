//! `plugins` (hooks around the request path) and `discovery` (servers registered at runtime).
//!
//! The original silently dropped both sections when loading a file; Conduit parses and
//! validates them like every other section. Discovered servers are always HTTP: a discovery
//! backend can never make a data plane start a process.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::servers::ServerCache;

/// One plugin.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// Plugin name, unique.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Path of the plugin module on the data plane; relative paths are resolved from the data
    /// plane's working directory and must not leave it (`..`), system directories are refused.
    #[schemars(length(min = 1))]
    pub path: String,
    /// Hooks the plugin is called at (at least one).
    pub hooks: Vec<Hook>,
    /// Plugin settings, passed to the plugin as they are. Values of keys that look like
    /// secrets are masked in dumps.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, serde_json::Value>,
}

/// Points of the request path where plugins run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Hook {
    /// Before anything else.
    #[serde(rename = "before:request")]
    BeforeRequest,
    /// After the caller is authenticated.
    #[serde(rename = "after:auth")]
    AfterAuth,
    /// Before the cache lookup of a cacheable call.
    #[serde(rename = "before:cache")]
    BeforeCache,
    /// After the upstream answered.
    #[serde(rename = "after:upstream")]
    AfterUpstream,
    /// Before the response is sent.
    #[serde(rename = "before:response")]
    BeforeResponse,
}

/// Servers found at runtime.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// Whether discovery runs. Default: `true` when the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Seconds between two polls of the backends. Default: 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub poll_interval_seconds: Option<u64>,
    /// Seconds after which a registration that was not renewed is dropped; must be more than
    /// `poll_interval_seconds`. Default: 90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub stale_timeout_seconds: Option<u64>,
    /// Cache policy given to discovered servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cache: Option<ServerCache>,
    /// Where servers are discovered (at least one when enabled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<DiscoveryBackend>,
}

/// A discovery backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryBackend {
    /// Kind of backend.
    #[serde(rename = "type")]
    pub kind: DiscoveryKind,
    /// DNS domain whose SRV records name the servers (`type: dns` only; required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Consul HTTP API URL (`type: consul` only; required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul_url: Option<String>,
    /// Consul service name (`type: consul` only; required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

/// Kinds of discovery backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryKind {
    /// Servers register themselves through the control plane's admin API.
    Http,
    /// DNS SRV records; a record `host:port` becomes `http://host:port/mcp`.
    Dns,
    /// A Consul service catalog.
    Consul,
}

impl Discovery {
    /// Whether discovery runs (a present section does, unless `enabled: false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}
