//! Tests of replica selection, breakers and health checks across configuration swaps,
//! with paused time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use arc_swap::ArcSwap;
use conduit_config::{CircuitBreaker, Document, HealthCheck};
use http::header::HeaderMap;

use super::health::ProbeFailure;
use super::metrics::ReplicaMetrics;
use super::*;
use crate::metrics::Metrics;
use crate::runtime::{Applied, ConfigSource, Runtime};

const A: &str = "http://127.0.0.1:7001/mcp";
const B: &str = "http://127.0.0.1:7002/mcp";
const C: &str = "http://127.0.0.1:7003/mcp";

fn router(policy: LoadBalancing, health: bool, breaker: Option<CircuitBreaker>) -> Router {
    Router {
        load_balancing: Some(policy),
        health_check: Some(HealthCheck {
            enabled: Some(health),
            ..HealthCheck::default()
        }),
        circuit_breaker: breaker,
        ..Router::default()
    }
}

fn set(urls: &[&str], router: &Router) -> ReplicaSet {
    let endpoints = urls
        .iter()
        .map(|url| (url.to_string(), url.parse().unwrap()))
        .collect();
    ReplicaSet::new("srv", endpoints, Some(router))
}

fn breaker(failure_threshold: u32, success_threshold: u32) -> CircuitBreaker {
    CircuitBreaker {
        enabled: None,
        failure_threshold: Some(failure_threshold),
        reset_timeout_ms: Some(10_000),
        half_open_max_requests: Some(1),
        success_threshold: Some(success_threshold),
    }
}

/// Picks `count` times, each request finishing (with `outcome`) before the next.
fn served(set: &ReplicaSet, count: usize, outcome: Outcome) -> Vec<String> {
    (0..count)
        .map(|_| {
            let mut lease = set.pick(None).expect("a replica");
            lease.report(outcome);
            lease.url().to_owned()
        })
        .collect()
}

fn replica<'a>(set: &'a ReplicaSet, url: &str) -> &'a Arc<Replica> {
    set.replicas().iter().find(|r| r.url() == url).unwrap()
}

#[test]
fn round_robin_takes_each_replica_in_turn_and_skips_unhealthy_ones() {
    let set = set(&[A, B, C], &router(LoadBalancing::RoundRobin, true, None));
    assert_eq!(served(&set, 6, Outcome::Success), [A, B, C, A, B, C]);

    replica(&set, B).state.set_healthy(false);
    // B's turns are spread over the others.
    assert_eq!(served(&set, 6, Outcome::Success), [A, C, A, C, A, C]);

    // Without health checks a stale verdict is ignored.
    let unchecked = self::set(&[A, B], &router(LoadBalancing::RoundRobin, false, None));
    replica(&unchecked, B).state.set_healthy(false);
    assert_eq!(served(&unchecked, 2, Outcome::Success), [A, B]);
}

#[test]
fn least_connections_prefers_idle_replicas_and_rotates_ties() {
    let set = set(
        &[A, B, C],
        &router(LoadBalancing::LeastConnections, true, None),
    );
    // All idle: ties rotate, so sequential requests spread.
    assert_eq!(served(&set, 3, Outcome::Success), [A, B, C]);

    let held: Vec<ReplicaLease> = (0..3).map(|_| set.pick(None).unwrap()).collect();
    let first_b = held.iter().position(|l| l.url() == B).unwrap();
    let mut held: Vec<_> = held.into_iter().collect();
    held.remove(first_b);
    // B now has no request in flight, A and C one each.
    assert_eq!(replica(&set, B).in_flight(), 0);
    let next = set.pick(None).unwrap();
    assert_eq!(next.url(), B);
    drop(next);
    drop(held);
    assert!(set.replicas().iter().all(|r| r.in_flight() == 0));
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_moves_traffic_away_until_a_trial_succeeds() {
    let set = set(
        &[A, B],
        &router(LoadBalancing::RoundRobin, true, Some(breaker(2, 1))),
    );
    // A fails twice: its circuit opens.
    for _ in 0..4 {
        let mut lease = set.pick(None).unwrap();
        let outcome = if lease.url() == A {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        lease.report(outcome);
    }
    assert_eq!(replica(&set, A).breaker_snapshot().0, BreakerState::Open);
    assert_eq!(served(&set, 5, Outcome::Success), [B; 5]);

    // After the reset timeout one trial at a time goes to A.
    tokio::time::advance(Duration::from_secs(10)).await;
    let mut trial = loop {
        let lease = set.pick(None).unwrap();
        if lease.url() == A {
            break lease;
        }
    };
    assert_eq!(
        replica(&set, A).breaker_snapshot().0,
        BreakerState::HalfOpen
    );
    assert_eq!(served(&set, 3, Outcome::Success), [B; 3]);
    trial.report(Outcome::Success);
    drop(trial);
    assert_eq!(replica(&set, A).breaker_snapshot().0, BreakerState::Closed);
    let urls = served(&set, 4, Outcome::Success);
    assert_eq!(urls.iter().filter(|u| *u == A).count(), 2, "{urls:?}");
    assert_eq!(replica(&set, A).breaker_snapshot().1, [1, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_trial_frees_its_slot() {
    let set = set(
        &[A],
        &router(LoadBalancing::RoundRobin, true, Some(breaker(1, 1))),
    );
    served(&set, 1, Outcome::Failure);
    tokio::time::advance(Duration::from_secs(10)).await;
    let trial = set.pick(None).unwrap();
    assert!(set.pick(None).is_err(), "only one trial at a time");
    drop(trial);
    assert_eq!(served(&set, 1, Outcome::Success), [A]);
}

#[tokio::test(start_paused = true)]
async fn nothing_available_says_why_and_is_a_503() {
    let set = set(
        &[A, B, C],
        &router(LoadBalancing::RoundRobin, true, Some(breaker(1, 1))),
    );
    served(&set, 3, Outcome::Failure);
    let error = set.pick(None).unwrap_err();
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        error.to_string(),
        "upstream server srv is unavailable: the circuit breaker is open for all 3 replicas"
    );

    replica(&set, A).state.set_healthy(false);
    let error = set.pick(None).unwrap_err().to_string();
    assert!(
        error.contains(
            "1 of 3 fail their health checks, the circuit breaker of the other 2 is open"
        ),
        "{error}"
    );

    let single = self::set(&[A], &router(LoadBalancing::RoundRobin, true, None));
    replica(&single, A).state.set_healthy(false);
    assert_eq!(
        single.pick(None).unwrap_err().to_string(),
        "upstream server srv is unavailable: it fails its health checks"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pinned_request_stays_on_its_replica_or_fails() {
    let set = set(
        &[A, B, C],
        &router(LoadBalancing::RoundRobin, true, Some(breaker(1, 1))),
    );
    for _ in 0..3 {
        assert_eq!(set.pick(Some(B)).unwrap().url(), B);
    }

    replica(&set, B).state.set_healthy(false);
    let error = set.pick(Some(B)).unwrap_err();
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        error.to_string().contains("fails its health checks"),
        "{error}"
    );
    replica(&set, B).state.set_healthy(true);

    set.pick(Some(B)).unwrap().report(Outcome::Failure);
    let error = set.pick(Some(B)).unwrap_err();
    assert!(
        error.to_string().contains("open circuit breaker"),
        "{error}"
    );
    assert!(error.to_string().contains("cannot move"), "{error}");
    // Unpinned requests still find the others.
    assert_ne!(set.pick(None).unwrap().url(), B);

    let error = set.pick(Some("http://127.0.0.1:7999/mcp")).unwrap_err();
    assert_eq!(error.status(), StatusCode::NOT_FOUND);
}

#[test]
fn only_server_errors_are_failures_of_the_replica() {
    assert_eq!(Outcome::of_status(StatusCode::OK), Outcome::Success);
    assert_eq!(Outcome::of_status(StatusCode::NOT_FOUND), Outcome::Success);
    assert_eq!(
        Outcome::of_status(StatusCode::UNAUTHORIZED),
        Outcome::Success
    );
    assert_eq!(
        Outcome::of_status(StatusCode::BAD_GATEWAY),
        Outcome::Failure
    );
}

#[test]
fn labels_carry_no_credentials() {
    let uri: Uri = "https://user:secret@mcp.example.com:8443/mcp?key=k"
        .parse()
        .unwrap();
    assert_eq!(redacted(&uri), "https://mcp.example.com:8443/mcp");
    assert_eq!(
        redacted(&"http://mcp.example.com/mcp".parse().unwrap()),
        "http://mcp.example.com/mcp"
    );
}

/// Counts probes per URL; the URLs in `dead` fail.
#[derive(Clone, Default)]
struct Counting {
    probes: Arc<Mutex<BTreeMap<String, usize>>>,
    dead: Arc<Mutex<BTreeSet<String>>>,
}

impl Counting {
    fn count(&self, url: &str) -> usize {
        self.probes.lock().unwrap().get(url).copied().unwrap_or(0)
    }
}

impl Probe for Counting {
    async fn probe(&self, uri: &Uri, _: &HeaderMap, _: Duration) -> Result<(), ProbeFailure> {
        let url = uri.to_string();
        *self.probes.lock().unwrap().entry(url.clone()).or_default() += 1;
        if self.dead.lock().unwrap().contains(&url) {
            Err(ProbeFailure::Unreachable("refused".into()))
        } else {
            Ok(())
        }
    }
}

fn runtime(replicas: &[&str]) -> Runtime {
    let yaml = format!(
        "router:\n  health_check: {{interval_seconds: 5, timeout_ms: 1000, unhealthy_threshold: 1}}\n  circuit_breaker: {{failure_threshold: 1}}\nservers:\n  - id: srv\n    url: {A}\n    replicas: [{}]\n",
        replicas.join(", ")
    );
    let document = Document::from_text(&yaml).expect("valid document");
    let applied = Applied {
        version: 1,
        hash: "h".into(),
        source: ConfigSource::File,
        applied_at: chrono::Utc::now(),
    };
    Runtime::compile(&document, applied).expect("compiles")
}

fn replicas(runtime: &Runtime) -> &ReplicaSet {
    let server = runtime.server("srv").unwrap();
    match &server.upstream {
        crate::runtime::Upstream::Http(http) => &http.replicas,
        crate::runtime::Upstream::Stdio(_) | crate::runtime::Upstream::Managed => unreachable!(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_config_swap_keeps_replica_state_and_stops_the_old_checks() {
    let prober = Counting::default();
    prober.dead.lock().unwrap().insert(B.to_owned());
    let first = Arc::new(runtime(&[B, C]));
    first.start_health_checks(&prober);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!replica(replicas(&first), B).is_healthy());
    let mut lease = replicas(&first).pick(Some(C)).unwrap();
    lease.report(Outcome::Failure);

    // B and C stay, D is new. A request of the old runtime is still in flight on C.
    const D: &str = "http://127.0.0.1:7004/mcp";
    let mut second = runtime(&[B, C, D]);
    second.inherit(&first);
    first.stop_health_checks();
    second.start_health_checks(&prober);
    let set = replicas(&second);
    assert!(!replica(set, B).is_healthy(), "B's verdict is kept");
    assert_eq!(replica(set, C).breaker_snapshot().0, BreakerState::Open);
    assert_eq!(replica(set, C).in_flight(), 1);
    drop(lease);
    assert_eq!(replica(set, C).in_flight(), 0);
    assert!(replica(set, D).is_healthy());

    // Only the second runtime probes: one probe per interval and replica.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let before = prober.count(B);
    tokio::time::sleep(Duration::from_secs(5 * 4)).await;
    assert_eq!(prober.count(B) - before, 4);

    // B comes back; dropping the runtime ends its checks.
    prober.dead.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(replica(replicas(&second), B).is_healthy());
    drop(second);
    drop(first);
    let after = prober.count(A);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(prober.count(A), after);
}

#[tokio::test(start_paused = true)]
async fn replica_metrics_follow_the_serving_runtime() {
    let shared = Arc::new(ArcSwap::from_pointee(runtime(&[B])));
    let metrics = Metrics::new();
    metrics
        .register(Box::new(ReplicaMetrics::new(Arc::clone(&shared))))
        .unwrap();
    {
        let current = shared.load();
        let set = replicas(&current);
        set.pick(Some(B)).unwrap().report(Outcome::Failure);
        replica(set, A).state.set_healthy(false);
    }
    let text = metrics.encode();
    for line in [
        "conduit_dp_replica_healthy{replica=\"http://127.0.0.1:7001/mcp\",server=\"srv\"} 0",
        "conduit_dp_replica_healthy{replica=\"http://127.0.0.1:7002/mcp\",server=\"srv\"} 1",
        "conduit_dp_replica_circuit_state{replica=\"http://127.0.0.1:7002/mcp\",server=\"srv\"} 1",
        "conduit_dp_replica_circuit_transitions_total{replica=\"http://127.0.0.1:7002/mcp\",server=\"srv\",state=\"open\"} 1",
        "conduit_dp_replica_circuit_transitions_total{replica=\"http://127.0.0.1:7002/mcp\",server=\"srv\",state=\"closed\"} 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }

    // A replica removed from the configuration disappears from the metrics.
    shared.store(Arc::new(runtime(&[C])));
    let text = metrics.encode();
    assert!(!text.contains("7002"), "{text}");
    assert!(text.contains("7003"), "{text}");
}
