//! The user-facing configuration types: one YAML document, its sections and fields named as
//! in the original mcp-conduit so that its users can move over.
//!
//! Conventions shared by every section:
//! - Unknown fields are errors. Fields of the original that have no meaning in Conduit's
//!   split design are refused with a message naming what replaces them (see
//!   `superseded.rs`).
//! - Optional settings are `Option`s: `None` means "the documented default", and is left out
//!   when the document is written back, so that parsing and writing round-trips.
//! - A section or block with an `enabled` field is on as soon as it is present, unless it
//!   says `enabled: false`. When it is absent, its documented default applies (off for
//!   `auth`, `acl`, `guardrails`, `rate_limits`, `identity`, `governance`, `connect` and
//!   `discovery`; on for `cache`, `tenant_isolation`, `metrics` and `router.health_check`).
//! - Any string may hold `${env:NAME}` and `${file:PATH}` references (see
//!   [`crate::references`]); numbers, booleans and enumerations may not.

pub mod auth;
pub mod cache;
pub mod connect;
pub mod extensions;
pub mod gateway;
pub mod governance;
pub mod identity;
pub mod managed_runtime;
pub mod observability;
pub mod policy;
pub mod rate_limits;
pub mod router;
pub mod servers;
pub mod upstream_auth;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use auth::*;
pub use cache::*;
pub use connect::*;
pub use extensions::*;
pub use gateway::*;
pub use governance::*;
pub use identity::*;
pub use managed_runtime::*;
pub use observability::*;
pub use policy::*;
pub use rate_limits::*;
pub use router::*;
pub use servers::*;
pub use upstream_auth::*;

/// Pattern of server, profile and workspace ids.
pub const ID_PATTERN: &str = "^[a-zA-Z0-9-]+$";

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Conduit configuration")]
pub struct Document {
    /// The data planes' public MCP listener (TLS). Its address is the data plane's `--listen`
    /// flag, not a config field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
    /// Routing across servers and replicas, health checks and circuit breaking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<Router>,
    /// Upstream MCP servers.
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
    /// Endpoints aggregating several servers (`/mcp/profile/{id}`). In the original these were
    /// `connect.profiles`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<Profile>,
    /// The response cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    /// Partitioning of cached results between tenants (on unless turned off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_isolation: Option<TenantIsolation>,
    /// Caller authentication on the public port. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Access control lists for tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Acl>,
    /// Rules on tool call arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Guardrails>,
    /// Request rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
    /// Audit records and tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<Observability>,
    /// Prometheus metrics of the data planes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Safety switches kept from the original `admin` section (the admin API itself is the
    /// control plane's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Admin>,
    /// Workspaces and connected accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// Roles, tool policies, quotas and approvals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance: Option<Governance>,
    /// The MCP Registry library and managed server defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Connect>,
    /// Plugins hooked into the request path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Plugin>,
    /// Servers found at runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Discovery>,
}

impl Document {
    /// The server with this id.
    pub fn server(&self, id: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|server| server.id == id)
    }
}
