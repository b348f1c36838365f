//! Per-replica metrics, read from the serving runtime at scrape time.
//!
//! Computing them on scrape, rather than setting gauges as things change, keeps the
//! exported series exactly those of the replicas configured now: a replica removed by a
//! configuration change disappears from `/metrics` instead of reporting its last value
//! forever, and the request path never touches a metric. Counters stay monotonic across
//! configuration swaps because the replica state they come from is inherited.
//!
//! - `conduit_dp_replica_healthy{server,replica}`: 1 while in rotation by health checks;
//! - `conduit_dp_replica_circuit_state{server,replica}`: 0 closed, 1 open, 2 half-open;
//! - `conduit_dp_replica_in_flight{server,replica}`: requests (and streams) in flight;
//! - `conduit_dp_replica_circuit_transitions_total{server,replica,state}`: times the
//!   breaker entered `state` (`open`, `half_open`, `closed`).
//!
//! `replica` is the replica's URL without credentials or query string.

use std::sync::{Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use super::ReplicaSet;
use super::breaker::BreakerState;

/// The replicas to report: those of the runtime serving at scrape time.
pub(crate) trait ServedReplicas: Send + Sync + std::fmt::Debug {
    /// Call `each` with every HTTP server's id and its replicas.
    fn each(&self, each: &mut dyn FnMut(&str, &ReplicaSet));
}

/// The per-replica metrics of whatever runtime is serving.
#[derive(Debug)]
pub(crate) struct ReplicaMetrics {
    replicas: Box<dyn ServedReplicas>,
    healthy: IntGaugeVec,
    circuit_state: IntGaugeVec,
    in_flight: IntGaugeVec,
    transitions: IntCounterVec,
    /// Scrapes rebuild the vectors from scratch, so they run one at a time.
    scrape: Mutex<()>,
}

impl ReplicaMetrics {
    /// Metrics of the replicas of `runtime`; register them with the data plane's registry.
    pub(crate) fn new(replicas: impl ServedReplicas + 'static) -> Self {
        let labels = ["server", "replica"];
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &labels).expect("valid metric")
        };
        ReplicaMetrics {
            replicas: Box::new(replicas),
            healthy: gauge(
                "conduit_dp_replica_healthy",
                "1 while the replica passes its health checks (or checks are off), else 0.",
            ),
            circuit_state: gauge(
                "conduit_dp_replica_circuit_state",
                "Circuit breaker state of the replica: 0 closed, 1 open, 2 half-open.",
            ),
            in_flight: gauge(
                "conduit_dp_replica_in_flight",
                "Requests and response streams in flight on the replica.",
            ),
            transitions: IntCounterVec::new(
                Opts::new(
                    "conduit_dp_replica_circuit_transitions_total",
                    "Times the replica's circuit breaker entered a state.",
                ),
                &["server", "replica", "state"],
            )
            .expect("valid metric"),
            scrape: Mutex::new(()),
        }
    }
}

impl Collector for ReplicaMetrics {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.healthy.desc(),
            self.circuit_state.desc(),
            self.in_flight.desc(),
            self.transitions.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.healthy.reset();
        self.circuit_state.reset();
        self.in_flight.reset();
        self.transitions.reset();
        self.replicas.each(&mut |server_id, replicas| {
            for replica in replicas.replicas() {
                let labels = [server_id, replica.label()];
                let (state, transitions) = replica.breaker_snapshot();
                self.healthy
                    .with_label_values(&labels)
                    .set(i64::from(replica.is_healthy()));
                self.circuit_state
                    .with_label_values(&labels)
                    .set(state.gauge());
                self.in_flight
                    .with_label_values(&labels)
                    .set(i64::try_from(replica.in_flight()).unwrap_or(i64::MAX));
                for state in [
                    BreakerState::Open,
                    BreakerState::HalfOpen,
                    BreakerState::Closed,
                ] {
                    self.transitions
                        .with_label_values(&[labels[0], labels[1], state.as_str()])
                        .inc_by(transitions[state.gauge() as usize]);
                }
            }
        });
        [
            self.healthy.collect(),
            self.circuit_state.collect(),
            self.in_flight.collect(),
            self.transitions.collect(),
        ]
        .concat()
    }
}
