//! Rate limits and governance quotas: the [`RateLimiter`] a `Runtime` compiles from
//! `rate_limits` and `governance.quotas`, and the counters behind it.
//!
//! Every request counts (initialize, lists and ping too; notifications and responses do
//! not), in several *buckets* (see [`BucketKind`]): `global`, its client, its server (none
//! for a request an aggregate endpoint sends to several), for a `tools/call` the server's
//! tool (only tools with a `per_tool` entry) and the client on that tool
//! (`per_client_server_tool`), and its caller's workspace (governance quotas; tenant id =
//! workspace). Each configured number (requests per minute, hour or day) is a counter of its
//! own, keyed by bucket *and* window, so minute and hour limits of one bucket never share a
//! counter.
//!
//! Semantics: a request passes only if every one of its counters has room, and then counts
//! in all of them; a refused request counts in none (check and consume are one atomic step:
//! one lock for the memory store, one Lua script for Redis). Counting is a sliding-window
//! log: a request counts in a window for exactly the window's length after it was admitted,
//! so no window of that length ever holds more than N admitted requests and a burst admits
//! exactly N. When several counters refuse, the answer names the one that frees up last, and
//! `retry_after` is the whole seconds (at least 1, rounded up) until it has room again: when
//! its oldest counted request leaves the window (or, if a lowered limit left it over-full,
//! enough of them).
//!
//! Counters live in a store ([`memory`]: per data plane; [`redis_store`]: shared by every
//! data plane on the same Redis). The store is kept across configuration swaps
//! ([`RateLimiter::inherit`]) while the limits are the new configuration's, so a changed
//! limit applies to the next request and counted requests are not forgotten.
//!
//! [`admit`] is the admission phase (`admission::rate_limit_phase`) and builds the −32029
//! refusal (`answer`); `plan` turns the configuration into the counters of a request; `key`
//! names them.

mod answer;
mod key;
mod memory;
mod plan;
mod redis_store;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use conduit_config::{BackendErrorAction, Document, RateLimitBackend};
use prometheus::IntCounterVec;
use tokio::time::Instant;

use crate::metrics::Metrics;
pub(crate) use answer::{admit, admit_other};
pub use memory::{DEFAULT_BUCKET_CAPACITY, MemoryStore};
use plan::Plan;
pub use redis_store::RedisStore;

/// The sliding windows a limit can be set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Minute,
    Hour,
    Day,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Minute, Window::Hour, Window::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Window::Minute => 60,
            Window::Hour => 3600,
            Window::Day => 86_400,
        })
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a bucket counts: the kind names it in answers and metrics (never the ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketKind {
    /// All traffic (`rate_limits.global`).
    Global,
    /// One client (`rate_limits.per_client`).
    Client,
    /// One server (`rate_limits.overrides[]`).
    Server,
    /// One tool of one server (`rate_limits.overrides[].per_tool`).
    Tool,
    /// One client on one tool of one server (`rate_limits.per_client_server_tool`).
    ClientServerTool,
    /// One governance workspace, the caller's tenant (`governance.quotas`).
    Workspace,
}

impl BucketKind {
    pub const ALL: [BucketKind; 6] = [
        BucketKind::Global,
        BucketKind::Client,
        BucketKind::Server,
        BucketKind::Tool,
        BucketKind::ClientServerTool,
        BucketKind::Workspace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BucketKind::Global => "global",
            BucketKind::Client => "client",
            BucketKind::Server => "server",
            BucketKind::Tool => "tool",
            BucketKind::ClientServerTool => "client_server_tool",
            BucketKind::Workspace => "workspace",
        }
    }
}

impl std::fmt::Display for BucketKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request being admitted. `tool` is `Some` for `tools/call` only (tool name without a
/// namespace prefix); other requests count in the global, client, server and workspace
/// buckets. `server_id` is `None` for a request on an aggregate endpoint that goes to no
/// single server (initialize, lists, ping, ...): it counts in no server bucket.
#[derive(Debug, Clone, Copy)]
pub struct RateRequest<'a> {
    pub client_id: &'a str,
    pub tenant_id: &'a str,
    pub server_id: Option<&'a str>,
    pub tool: Option<&'a str>,
}

/// A refused request: which counter refused and when to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded: {bucket}/{window}, retry after {retry_after_secs} s")]
pub struct RateLimited {
    pub bucket: BucketKind,
    pub window: Window,
    pub limit: u64,
    /// Whole seconds, at least 1.
    pub retry_after_secs: u64,
}

/// One counter a request must fit in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub kind: BucketKind,
    /// The bucket's key (see `key`), the same on every data plane.
    pub key: String,
    pub window: Window,
    pub limit: u64,
}

/// The counter of `checks[index]` refused; it has room again after `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub index: usize,
    pub wait: Duration,
}

/// Where the counters live; shared by the runtimes that inherit it.
#[derive(Debug, Clone)]
enum Store {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>),
}

/// The metrics the limiter updates.
#[derive(Debug, Clone)]
struct RateMetrics {
    rejections: IntCounterVec,
    backend_errors: IntCounterVec,
}

/// The compiled limits of one configuration and the (inherited) counter store.
#[derive(Debug)]
pub struct RateLimiter {
    plan: Plan,
    store: Store,
    on_backend_error: BackendErrorAction,
    timeout: Duration,
    metrics: RateMetrics,
}

/// Why the limiter of a document cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LimiterError {
    pub path: &'static str,
    pub message: String,
}

impl RateLimiter {
    /// The limiter of a configuration without limits: admits everything.
    pub fn disabled(metrics: &Metrics) -> RateLimiter {
        RateLimiter {
            plan: Plan::default(),
            store: Store::Memory(Arc::new(MemoryStore::new(DEFAULT_BUCKET_CAPACITY))),
            on_backend_error: BackendErrorAction::Allow,
            timeout: Duration::from_millis(conduit_config::DEFAULT_REDIS_TIMEOUT_MS),
            metrics: RateMetrics::of(metrics),
        }
    }

    /// Compile `rate_limits` and `governance.quotas` of a resolved document. Nothing
    /// connects here; a Redis connection is opened by the first request that needs it.
    pub fn compile(document: &Document, metrics: &Metrics) -> Result<RateLimiter, LimiterError> {
        let mut limiter = RateLimiter::disabled(metrics);
        limiter.plan = Plan::compile(document);
        let Some(limits) = &document.rate_limits else {
            return Ok(limiter);
        };
        limiter.on_backend_error = limits.on_backend_error();
        limiter.timeout = Duration::from_millis(limits.redis_timeout_ms());
        if let (RateLimitBackend::Redis, Some(url)) = (limits.backend(), &limits.redis_url) {
            let store = RedisStore::new(url).map_err(|message| LimiterError {
                path: "rate_limits.redis_url",
                message,
            })?;
            limiter.store = Store::Redis(Arc::new(store));
        }
        Ok(limiter)
    }

    /// Use the counters of `previous` (the runtime being replaced) when they live where
    /// this configuration's do: both in memory, or both in the same Redis.
    pub fn inherit(&mut self, previous: &RateLimiter) {
        match (&self.store, &previous.store) {
            (Store::Memory(_), Store::Memory(old)) => self.store = Store::Memory(Arc::clone(old)),
            (Store::Redis(new), Store::Redis(old)) if new.url() == old.url() => {
                self.store = Store::Redis(Arc::clone(old));
            }
            _ => {}
        }
    }

    /// Whether any limit applies at all.
    pub fn is_enabled(&self) -> bool {
        !self.plan.is_empty()
    }

    /// Admit `request` (counting it in every bucket) or refuse it (counting it nowhere).
    pub async fn check(&self, request: &RateRequest<'_>) -> Result<(), RateLimited> {
        let checks = self.plan.checks(request);
        if checks.is_empty() {
            return Ok(());
        }
        let outcome = match &self.store {
            Store::Memory(store) => Ok(store.check_and_consume(&checks, Instant::now())),
            Store::Redis(store) => store.check_and_consume(&checks, self.timeout).await,
        };
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(refusal)) => {
                let check = &checks[refusal.index];
                self.metrics
                    .rejections
                    .with_label_values(&[check.kind.as_str(), check.window.as_str()])
                    .inc();
                Err(RateLimited {
                    bucket: check.kind,
                    window: check.window,
                    limit: check.limit,
                    retry_after_secs: whole_seconds(refusal.wait),
                })
            }
            Err(failure) => self.backend_failed(&checks[0], &failure),
        }
    }

    /// The store could not decide: apply `on_backend_error`, count it, and warn (the store
    /// keeps the warnings to one per 10 s).
    fn backend_failed(
        &self,
        first: &Check,
        failure: &redis_store::Failure,
    ) -> Result<(), RateLimited> {
        let (decision, result) = match self.on_backend_error {
            BackendErrorAction::Allow => ("allowed", Ok(())),
            // The refusal names the request's first counter: the one it could not confirm.
            BackendErrorAction::Deny => (
                "refused",
                Err(RateLimited {
                    bucket: first.kind,
                    window: first.window,
                    limit: first.limit,
                    retry_after_secs: 1,
                }),
            ),
        };
        self.metrics
            .backend_errors
            .with_label_values(&[decision])
            .inc();
        if let Store::Redis(store) = &self.store {
            store.warn(failure, decision);
        }
        result
    }
}

impl RateMetrics {
    fn of(metrics: &Metrics) -> RateMetrics {
        RateMetrics {
            rejections: metrics.rate_limit_rejections.clone(),
            backend_errors: metrics.rate_limit_backend_errors.clone(),
        }
    }
}

/// `wait` in whole seconds, rounded up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Create every `conduit_rate_limit_rejections_total{bucket, window}` series up front, so
/// dashboards can rate() them before the first rejection.
pub fn register_metrics(metrics: &Metrics) {
    for bucket in BucketKind::ALL {
        for window in Window::ALL {
            metrics
                .rate_limit_rejections
                .with_label_values(&[bucket.as_str(), window.as_str()]);
        }
    }
}
