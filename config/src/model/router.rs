//! `router`: how tool names map to servers, how replicas are chosen, and when a server or a
//! replica is taken out of rotation (health checks, circuit breaker).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Routing across servers and replicas.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Router {
    /// How tool, prompt and resource names are exposed on endpoints that aggregate several
    /// servers (`/mcp` and profiles). Default: `prefix`. Single-server endpoints always pass
    /// names through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_strategy: Option<NamespaceStrategy>,
    /// How a replica is chosen for a request. Default: `round-robin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancing: Option<LoadBalancing>,
    /// Active health checks of every replica of every HTTP server: a JSON-RPC `ping` sent
    /// without a session, where any HTTP answer below 500 counts as alive (a connection
    /// error, a timeout or a 5xx does not). Default: enabled with the defaults below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Circuit breaker per server replica: connection errors, timeouts and HTTP 5xx
    /// answers are failures (4xx are not). Default: disabled; enabled when the block is
    /// present unless `enabled: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
}

/// Tool name namespacing on aggregated endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceStrategy {
    /// Names are exposed as `<server_id>.<name>` (resource URIs stay as they are).
    Prefix,
    /// Names are kept; a tool or prompt name offered by two servers of one endpoint is an
    /// error, reported when the lists are fetched (one server configured twice is refused
    /// by validation already).
    None,
}

/// Replica selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LoadBalancing {
    /// Each replica in turn; a replica that is out passes its turn.
    RoundRobin,
    /// The replica with the fewest requests (and response streams) in flight; equally
    /// busy replicas take turns.
    LeastConnections,
}

/// Active health checks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Whether health checks run. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Seconds between two checks of a replica. Default: 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub interval_seconds: Option<u64>,
    /// Timeout of one check in milliseconds. Default: 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
    /// Failed checks in a row after which a replica is taken out. Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub unhealthy_threshold: Option<u32>,
    /// Successful checks in a row after which a replica is back. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub healthy_threshold: Option<u32>,
}

/// Circuit breaker settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Whether the breaker is used. Default: `true` when the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Failures in a row that open the circuit. Default: 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub failure_threshold: Option<u32>,
    /// Milliseconds an open circuit waits before letting trial requests through
    /// (half-open). Default: 30000. The circuit closes again by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub reset_timeout_ms: Option<u64>,
    /// Trial requests allowed at once while half-open. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub half_open_max_requests: Option<u32>,
    /// Successful trial requests that close the circuit. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub success_threshold: Option<u32>,
}

impl Router {
    /// The namespace strategy in effect.
    pub fn namespace_strategy(&self) -> NamespaceStrategy {
        self.namespace_strategy.unwrap_or(NamespaceStrategy::Prefix)
    }

    /// The load balancing in effect.
    pub fn load_balancing(&self) -> LoadBalancing {
        self.load_balancing.unwrap_or(LoadBalancing::RoundRobin)
    }
}
