//! `cache` (the response cache: in-process L1, optional Redis L2) and `tenant_isolation`
//! (how cached results are partitioned between callers).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The response cache.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Whether tool results are cached at all. Default: `true`. What is cached is decided
    /// per server (`servers[].cache`) and by tool annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The in-process cache of each data plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1: Option<L1Cache>,
    /// A Redis cache shared by all data planes. Enabled when the block is present unless
    /// `enabled: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<L2Cache>,
}

/// The in-process (per data plane) cache.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct L1Cache {
    /// Maximum number of entries. Default: 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_entries: Option<u64>,
    /// Results larger than this (KiB of JSON) are not cached. Default: 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_entry_size_kb: Option<u64>,
}

/// The shared Redis cache.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct L2Cache {
    /// Whether the L2 cache is used. Default: `true` when the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Redis URL (`redis://`, `rediss://`, `redis+unix://`); required when enabled.
    /// Passwords are masked in dumps; prefer `${env:NAME}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Redis keeps entries `ttl × multiplier` seconds (at least 1 s). Default: 3. This only
    /// lengthens retention in Redis: an entry is never served after its `ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub default_ttl_multiplier: Option<f64>,
    /// Prefix of every cache key in Redis. Default: `conduit:cache:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub key_prefix: Option<String>,
    /// Results larger than this (KiB of JSON) are not written to Redis. Default: 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_entry_size_kb: Option<u64>,
}

/// Partitioning of cached results between callers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantIsolation {
    /// Whether cache keys include the caller's tenant. Default: `true` (also when this section
    /// is absent): a cached result is only served to callers of the tenant that produced it.
    /// Turning it off shares cached results between all callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Request header whose value partitions the cache when the caller is not authenticated
    /// (with `auth`, the authenticated tenant id is used). Default: `Authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

impl Cache {
    /// Whether the response cache is on (default `true`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

impl L2Cache {
    /// Whether the L2 cache is on (a present block is on unless `enabled: false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

impl TenantIsolation {
    /// Whether results are partitioned per tenant (default `true`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}
