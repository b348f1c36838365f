//! `servers[]`: the upstream MCP servers a gateway fronts, and the per-server response cache
//! policy (`servers[].cache`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ID_PATTERN;
use super::managed_runtime::ManagedRuntime;
use super::upstream_auth::UpstreamAuth;

/// One upstream MCP server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Identifier used in URLs (`/mcp/{id}`), logs and metric labels. Letters, digits and
    /// `-` only; unique among `servers`.
    #[schemars(pattern(ID_PATTERN))]
    pub id: String,
    /// Streamable HTTP endpoint of the server (`http://` or `https://`). Required for
    /// `transport: http`; not allowed for `stdio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How the gateway talks to the server. Default: `http`.
    #[serde(default)]
    pub transport: Transport,
    /// Program to start for `transport: stdio` (required there, not allowed for `http`).
    /// The data plane starts and owns the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Arguments for `command` (`stdio` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables set for `command` (`stdio` only). The process gets these plus
    /// `PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`, `TMPDIR`, `TZ`, `LANG` and `LC_*` from the
    /// data plane, nothing else: pass anything more explicitly, e.g. `${env:NAME}`. Values
    /// are secrets for `/config_dump` purposes and are masked there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Which callers share a process (`stdio` with `command` only). `shared` (the default):
    /// one process for every caller; messages the process sends are routed to the caller
    /// whose request caused them, and refused when that cannot be known. `tenant`: one
    /// process per tenant; `client`: one per client (tenant and client id). Use `tenant`
    /// or `client` for servers that keep state between calls (a login, a working
    /// directory, a cache of someone's data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<StdioIsolation>,
    /// Most processes of this server running at once with `isolation: tenant` or
    /// `client` (only there). A caller needing one more gets a JSON-RPC error (HTTP 503)
    /// until an idle process is stopped. Default: 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_processes: Option<u32>,
    /// With `isolation: tenant` or `client` (only there): a process without outstanding
    /// requests or open `GET` streams for this long is stopped, freeing its slot; the next
    /// request of its tenant or client starts a new one. Default: 300000 (5 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub idle_timeout_ms: Option<u64>,
    /// Static headers added to every request sent to the server (and to its health checks;
    /// `http` only). Use `${env:NAME}` or `${file:PATH}` for credentials.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// More endpoints serving the same server (`http` only). `url` is replica 0 and these
    /// follow; requests are spread over all of them by `router.load_balancing`, skipping
    /// replicas that fail their health checks or whose circuit breaker is open. An MCP
    /// session stays on the replica where it began: if that replica is out, requests of
    /// the session fail (503) rather than move to a replica that does not know it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
    /// Upstream request timeout in milliseconds. Default: 30000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
    /// Forward the caller's `Authorization` header to the server (`http` only). Default:
    /// `false`: the caller's credentials for the gateway never reach an upstream unless asked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub forward_authorization: bool,
    /// How the caller's identity or a connected account's token is passed to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_auth: Option<UpstreamAuth>,
    /// Releases of a `stdio` server managed by the gateway (install, roll out, roll back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_runtime: Option<ManagedRuntime>,
    /// Response cache policy for this server's tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ServerCache>,
}

impl ServerConfig {
    /// `isolation`, defaulted.
    pub fn isolation(&self) -> StdioIsolation {
        self.isolation.unwrap_or_default()
    }

    /// `max_processes`, defaulted.
    pub fn max_processes(&self) -> u32 {
        self.max_processes.unwrap_or(DEFAULT_MAX_PROCESSES)
    }

    /// `idle_timeout_ms`, defaulted.
    pub fn idle_timeout_ms(&self) -> u64 {
        self.idle_timeout_ms.unwrap_or(DEFAULT_IDLE_TIMEOUT_MS)
    }
}

/// How the gateway reaches an upstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// MCP streamable HTTP (with SSE responses) at `url`.
    #[default]
    Http,
    /// MCP over the standard input and output of a process the data plane starts.
    Stdio,
}

impl Transport {
    /// The spelling used in the YAML document.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Stdio => "stdio",
        }
    }
}

/// Which callers of a `stdio` server share one process (`servers[].isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema, Hash)]
#[serde(rename_all = "lowercase")]
pub enum StdioIsolation {
    /// One process for every caller.
    #[default]
    Shared,
    /// One process per tenant.
    Tenant,
    /// One process per client (tenant and client id).
    Client,
}

impl StdioIsolation {
    /// The spelling used in the YAML document.
    pub fn as_str(self) -> &'static str {
        match self {
            StdioIsolation::Shared => "shared",
            StdioIsolation::Tenant => "tenant",
            StdioIsolation::Client => "client",
        }
    }
}

/// Default of `servers[].max_processes`.
pub const DEFAULT_MAX_PROCESSES: u32 = 16;
/// Default of `servers[].idle_timeout_ms`.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;

/// Response cache policy of one server. Which results are cached follows the tools'
/// annotations (`readOnlyHint`, `idempotentHint`, `openWorldHint`, `destructiveHint`);
/// `overrides` set the policy of named tools explicitly.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerCache {
    /// Time to live in seconds for cacheable results of tools without an override.
    /// Default: 0, which means "use the annotation's own default" (300 s for read-only tools,
    /// at most 120 s for idempotent ones, 30 s for open-world ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<u64>,
    /// Per-tool policies, keyed by the tool's name as the server reports it (no namespace
    /// prefix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, CacheOverride>,
}

/// The cache policy of one tool.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheOverride {
    /// Time to live in seconds; 0 disables caching for this tool. Default: the server's
    /// `default_ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// Top-level argument names left out of the cache key (for example a request id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_args: Vec<String>,
    /// Tools of the same server whose cached results are dropped after a call to this tool.
    /// Only for tools that are not cached themselves (effective `ttl` 0); anything else is a
    /// validation error rather than a silently ignored list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalidates: Vec<String>,
}

pub(crate) fn is_false(value: &bool) -> bool {
    !*value
}
