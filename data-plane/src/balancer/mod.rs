//! The replicas of one HTTP server and how a request gets one: load balancing, health
//! checks and a circuit breaker per replica.
//!
//! `servers[].url` is replica 0 and `servers[].replicas` are replicas 1.. (as in the
//! original gateway). [`ReplicaSet::pick`] chooses among the replicas that pass their
//! health checks ([`health`]) and whose breaker ([`breaker`]) admits the request, by
//! `router.load_balancing`:
//!
//! - `round-robin` (default): each replica in turn; a replica that is out passes its turn.
//! - `least-connections`: the replica with the fewest requests in flight; ties are broken
//!   in round-robin order so that idle replicas share the load.
//!
//! A request pinned to a replica (an MCP session lives on the replica where its upstream
//! session was created) gets that replica or an error, never another replica: the
//! upstream session would not exist there. The client then sees the session's replica as
//! unavailable (503) and may retry or start a new session.
//!
//! The [`ReplicaLease`] a pick returns counts the request as in flight until it is
//! dropped (attach it to the response body with [`Leased`] so a stream counts for its
//! whole life). The caller reports the outcome once the response headers are in: a
//! connection error, a timeout or an HTTP 5xx is a failure of the replica; anything else,
//! 4xx included (the client's fault), is a success.
//!
//! Per-replica state (health verdict, breaker, requests in flight) lives in a shared
//! `ReplicaState` that a new configuration inherits for every endpoint it still has
//! ([`ReplicaSet::inherit`]), so a config swap neither forgets a broken replica nor
//! resurrects it.

pub(crate) mod breaker;
pub(crate) mod health;
mod lease;
pub(crate) mod metrics;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use conduit_config::{LoadBalancing, Router};
use http::header::HeaderMap;
use http::{StatusCode, Uri};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use self::lease::{Leased, Outcome, ReplicaLease};

use self::breaker::{Breaker, BreakerConfig, BreakerState};
use self::health::{HealthConfig, Probe};

/// The replicas of one HTTP server and the policies choosing among them.
#[derive(Debug)]
pub struct ReplicaSet {
    server: Arc<str>,
    replicas: Vec<Arc<Replica>>,
    policy: LoadBalancing,
    /// Round-robin position (also the tie-breaker of least-connections).
    next: AtomicUsize,
    breaker: Option<BreakerConfig>,
    health: Option<HealthConfig>,
    /// Stops this set's health checks; cancelled when the set is dropped.
    stop: CancellationToken,
}

/// One endpoint of a server.
#[derive(Debug)]
pub struct Replica {
    server: Arc<str>,
    /// The URL as configured: the key of session pinning and of state inheritance.
    url: Arc<str>,
    uri: Uri,
    /// The URL without credentials or query, for logs and metric labels.
    label: Arc<str>,
    state: Arc<ReplicaState>,
}

/// What is known about a replica, shared across configuration swaps.
#[derive(Debug, Default)]
struct ReplicaState {
    /// The health checks' verdict; `false` only while checks are on and failing.
    unhealthy: AtomicBool,
    in_flight: AtomicUsize,
    breaker: Mutex<Breaker>,
}

/// No replica can take the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoReplica {
    /// Every replica fails its health checks or has an open circuit.
    #[error("upstream server {server} is unavailable: {reason}")]
    Unavailable { server: String, reason: String },
    /// The replica holding the caller's session is out.
    #[error(
        "the replica of upstream server {server} that holds this session ({replica}) {reason}; the session cannot move to another replica"
    )]
    PinnedUnavailable {
        server: String,
        replica: String,
        reason: &'static str,
    },
    /// The replica holding the caller's session is no longer configured.
    #[error(
        "the replica of upstream server {server} that held this session is no longer configured; start a new session"
    )]
    PinnedRemoved { server: String },
}

impl NoReplica {
    /// The HTTP status of the JSON-RPC error (-32603) the caller gets: 503, or 404 for a
    /// session whose replica is gone, which tells MCP clients to start a new session.
    pub fn status(&self) -> StatusCode {
        match self {
            NoReplica::PinnedRemoved { .. } => StatusCode::NOT_FOUND,
            NoReplica::Unavailable { .. } | NoReplica::PinnedUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

// === impl ReplicaSet ===

impl ReplicaSet {
    /// The replicas of server `server`: `endpoints` are `(url, uri)` pairs, `url` first.
    pub fn new(server: &str, endpoints: Vec<(String, Uri)>, router: Option<&Router>) -> Self {
        let server: Arc<str> = server.into();
        let replicas = endpoints
            .into_iter()
            .map(|(url, uri)| Arc::new(Replica::with_url(&server, url, uri)))
            .collect();
        ReplicaSet {
            replicas,
            policy: router.map_or(LoadBalancing::RoundRobin, Router::load_balancing),
            next: AtomicUsize::new(0),
            breaker: BreakerConfig::from_config(router.and_then(|r| r.circuit_breaker.as_ref())),
            health: HealthConfig::from_config(router.and_then(|r| r.health_check.as_ref())),
            stop: CancellationToken::new(),
            server,
        }
    }

    /// The replicas, replica 0 (`url`) first.
    pub fn replicas(&self) -> &[Arc<Replica>] {
        &self.replicas
    }

    /// A replica for one request: `pinned` (a replica URL, see [`ReplicaLease::url`]) or
    /// else the next one by the load balancing policy among those that are in.
    pub fn pick(&self, pinned: Option<&str>) -> Result<ReplicaLease, NoReplica> {
        let now = Instant::now();
        if let Some(url) = pinned {
            return self.pick_pinned(url, now);
        }
        let count = self.replicas.len();
        if count == 1 {
            return self
                .admit(&self.replicas[0], now)
                .ok_or_else(|| self.unavailable());
        }
        match self.policy {
            LoadBalancing::RoundRobin => {
                // A replica that is out passes its turn to the next position of the
                // counter, so its share is spread over the others rather than all going
                // to its neighbour.
                for _ in 0..count {
                    let index = self.next.fetch_add(1, Ordering::Relaxed) % count;
                    if let Some(lease) = self.admit(&self.replicas[index], now) {
                        return Ok(lease);
                    }
                }
                // Concurrent picks moved the counter too: make sure every replica was
                // considered before giving up.
                for replica in &self.replicas {
                    if let Some(lease) = self.admit(replica, now) {
                        return Ok(lease);
                    }
                }
            }
            LoadBalancing::LeastConnections => {
                let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
                let mut candidates: Vec<_> = (0..count)
                    .map(|offset| &self.replicas[(start + offset) % count])
                    .filter(|r| self.is_healthy(r))
                    .collect();
                // Stable: among equally busy replicas the rotation order decides.
                candidates.sort_by_key(|r| r.state.in_flight.load(Ordering::Relaxed));
                for replica in candidates {
                    if let Some(lease) = self.admit(replica, now) {
                        return Ok(lease);
                    }
                }
            }
        }
        Err(self.unavailable())
    }

    /// Take over the state of the replicas of `previous` whose URL is unchanged.
    pub fn inherit(&mut self, previous: &ReplicaSet) {
        for replica in &mut self.replicas {
            if let Some(old) = previous.replicas.iter().find(|old| old.url == replica.url) {
                *replica = Arc::new(Replica {
                    server: Arc::clone(&replica.server),
                    url: Arc::clone(&replica.url),
                    uri: replica.uri.clone(),
                    label: Arc::clone(&replica.label),
                    state: Arc::clone(&old.state),
                });
            }
        }
        // Without health checks nothing could bring a replica back: no verdict is kept.
        if self.health.is_none() {
            for replica in &self.replicas {
                replica.state.set_healthy(true);
            }
        }
    }

    /// Start probing every replica (when health checks are on), sending `headers` (the
    /// server's static headers). The probes run until [`Self::stop_health_checks`] or
    /// until the set is dropped.
    pub fn start_health_checks<P: Probe>(&self, prober: &P, headers: &HeaderMap) {
        let Some(config) = self.health else {
            return;
        };
        for replica in &self.replicas {
            health::spawn(
                Arc::clone(replica),
                headers.clone(),
                config,
                prober.clone(),
                self.stop.clone(),
            );
        }
    }

    /// Stop the health checks (this set's configuration was replaced).
    pub fn stop_health_checks(&self) {
        self.stop.cancel();
    }

    fn pick_pinned(&self, url: &str, now: Instant) -> Result<ReplicaLease, NoReplica> {
        let Some(replica) = self.replicas.iter().find(|r| &*r.url == url) else {
            return Err(NoReplica::PinnedRemoved {
                server: self.server.to_string(),
            });
        };
        self.admit(replica, now)
            .ok_or_else(|| NoReplica::PinnedUnavailable {
                server: self.server.to_string(),
                replica: replica.label.to_string(),
                reason: if self.is_healthy(replica) {
                    "has an open circuit breaker"
                } else {
                    "fails its health checks"
                },
            })
    }

    fn is_healthy(&self, replica: &Replica) -> bool {
        self.health.is_none() || replica.state.is_healthy()
    }

    fn admit(&self, replica: &Arc<Replica>, now: Instant) -> Option<ReplicaLease> {
        if !self.is_healthy(replica) {
            return None;
        }
        let permit = match &self.breaker {
            Some(config) => {
                let mut breaker = replica.state.breaker();
                let before = breaker.state();
                let permit = breaker.try_acquire(config, now)?;
                if before != breaker.state() {
                    tracing::info!(
                        server = %self.server,
                        replica = %replica.label,
                        "circuit half-open: trying the replica again"
                    );
                }
                Some((*config, permit))
            }
            None => None,
        };
        replica.state.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(ReplicaLease {
            replica: Arc::clone(replica),
            permit,
        })
    }

    fn unavailable(&self) -> NoReplica {
        let total = self.replicas.len();
        let unhealthy = self.replicas.iter().filter(|r| !self.is_healthy(r)).count();
        // The others were refused by their breaker: open, or half-open with every trial
        // slot taken.
        let open = total - unhealthy;
        let reason = match (total, unhealthy) {
            (1, 1) => "it fails its health checks".to_owned(),
            (1, _) => "its circuit breaker is open".to_owned(),
            (_, u) if u == total => {
                format!("no healthy replica: all {total} fail their health checks")
            }
            (_, 0) => format!("the circuit breaker is open for all {total} replicas"),
            _ => format!(
                "no healthy replica: {unhealthy} of {total} fail their health checks, the circuit breaker of the other {open} is open"
            ),
        };
        NoReplica::Unavailable {
            server: self.server.to_string(),
            reason,
        }
    }
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// === impl Replica ===

impl Replica {
    /// A replica of `server` at `uri` (its URL is `uri` as text).
    #[cfg(test)]
    pub(crate) fn new(server: &str, uri: Uri) -> Replica {
        Replica::with_url(&server.into(), uri.to_string(), uri)
    }

    fn with_url(server: &Arc<str>, url: String, uri: Uri) -> Replica {
        Replica {
            server: Arc::clone(server),
            label: redacted(&uri).into(),
            url: url.into(),
            uri,
            state: Arc::default(),
        }
    }

    /// The URL as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without credentials or query string: safe for logs and metric labels.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the replica passes its health checks (always true while checks are off).
    pub fn is_healthy(&self) -> bool {
        self.state.is_healthy()
    }

    /// Requests in flight on this replica.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::Relaxed)
    }

    /// The breaker's state and how many times it entered each state.
    pub fn breaker_snapshot(&self) -> (BreakerState, [u64; 3]) {
        let breaker = self.state.breaker();
        let states = [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ];
        (breaker.state(), states.map(|s| breaker.transitions_to(s)))
    }
}

impl ReplicaState {
    fn is_healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::Relaxed)
    }

    fn set_healthy(&self, healthy: bool) {
        self.unhealthy.store(!healthy, Ordering::Relaxed);
    }

    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        // The breaker is a plain value updated in one step: a panic elsewhere cannot
        // leave it half-written, so a poisoned lock is still usable.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `scheme://host:port/path` of `uri`: no user info, no query.
fn redacted(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}{}", uri.path()),
        None => format!("{scheme}://{host}{}", uri.path()),
    }
}

#[cfg(test)]
mod tests;
