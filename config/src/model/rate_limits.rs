//! `rate_limits`: sliding-window request limits, global, per client, per server and per tool,
//! kept in each data plane's memory or shared through Redis.
//!
//! Every configured number is its own counter: a bucket (`global`, one client, one server,
//! one tool of a server, one client on one tool of one server, one governance workspace) in
//! one window (minute, hour, day). A request passes only if every bucket it counts in has
//! room, and then counts in all of them.
//!
//! With `backend: memory` each data plane counts on its own, so a fleet of R data planes lets
//! up to R × N requests through a limit of N. With `backend: redis` the counters are shared by
//! every data plane using the same Redis, so the limit holds for the whole fleet;
//! `on_backend_error` decides what happens while Redis cannot answer.
//!
//! The original's `queue` block (wait for a free slot instead of failing) was never wired into
//! its request path; Conduit refuses it with an explanation instead of accepting a setting that
//! does nothing. Requests over a limit fail at once with `Retry-After`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default of `rate_limits.redis_timeout_ms`.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 100;

/// Request rate limits.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Whether limits are enforced. Default: `true` when the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Where counters live. Default: `memory`, which means each data plane counts on its own
    /// (a limit of N per minute allows up to N per minute per replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<RateLimitBackend>,
    /// Redis URL, required for `backend: redis` and refused otherwise. Masked in dumps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Limits on all traffic together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Limits>,
    /// Limits for each client id (unauthenticated callers share the client id `anonymous`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_client: Option<Limits>,
    /// Limits for each client on each tool of each server: one bucket per (client, server,
    /// tool). (The original reused a server override's numbers for this bucket; here it is
    /// its own setting.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_client_server_tool: Option<Limits>,
    /// Limits for single servers and their tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<ServerLimits>,
    /// What a request gets while the Redis backend fails or does not answer within
    /// `redis_timeout_ms`: `allow` (fail open, the default: an outage of the limiter does not
    /// become an outage of the gateway) or `deny` (fail closed). Either way the decision is
    /// counted in `conduit_rate_limit_backend_errors_total{decision}`. Only for
    /// `backend: redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_backend_error: Option<BackendErrorAction>,
    /// Milliseconds one Redis round trip may take before `on_backend_error` applies.
    /// Default: 100. Only for `backend: redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60000))]
    pub redis_timeout_ms: Option<u64>,
}

/// What a request gets while the rate limit backend cannot decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendErrorAction {
    /// Let the request through (fail open).
    Allow,
    /// Refuse the request with a rate limit error (fail closed).
    Deny,
}

/// Where rate limit counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    /// In each data plane's memory.
    Memory,
    /// In Redis, shared by all data planes.
    Redis,
}

/// Request limits per window; each is optional and must be greater than 0.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
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

/// Limits of one server, shared by all its callers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerLimits {
    /// Server id (exact; must be one of `servers`).
    pub server: String,
    /// Requests per sliding minute to this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_minute: Option<u64>,
    /// Requests per sliding hour to this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_hour: Option<u64>,
    /// Requests per sliding day to this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_day: Option<u64>,
    /// Limits of single tools of this server, keyed by tool name (no namespace prefix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_tool: BTreeMap<String, Limits>,
}

impl Limits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.requests_per_minute.is_none()
            && self.requests_per_hour.is_none()
            && self.requests_per_day.is_none()
    }
}

impl RateLimits {
    /// Whether limits are enforced (a present section is, unless `enabled: false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// The backend in effect.
    pub fn backend(&self) -> RateLimitBackend {
        self.backend.unwrap_or(RateLimitBackend::Memory)
    }

    /// The decision while the backend fails: `allow` unless configured.
    pub fn on_backend_error(&self) -> BackendErrorAction {
        self.on_backend_error.unwrap_or(BackendErrorAction::Allow)
    }

    /// Milliseconds a Redis round trip may take: 100 unless configured.
    pub fn redis_timeout_ms(&self) -> u64 {
        self.redis_timeout_ms.unwrap_or(DEFAULT_REDIS_TIMEOUT_MS)
    }
}
