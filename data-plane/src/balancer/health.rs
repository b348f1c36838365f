//! Active health checks of the replicas of HTTP servers (`router.health_check`).
//!
//! Every replica of every HTTP server is probed, one task per replica, first at once and
//! then every `interval_seconds`. A probe is a JSON-RPC `ping` POSTed to the replica's URL
//! with the server's static headers, no session and a `timeout_ms` bound. Any HTTP answer
//! below 500 counts as alive: a server that requires a session or credentials answers the
//! bare `ping` with a 4xx, which still proves it is up and serving MCP. Refused or broken
//! connections, timeouts and 5xx answers count as failures. Unlike an `initialize`, a `ping`
//! opens no upstream session, so probing leaves nothing behind on the server.
//!
//! `unhealthy_threshold` failures in a row take a replica out of rotation, and
//! `healthy_threshold` successes in a row bring it back. Replicas start healthy, so a new
//! configuration serves at once. The tasks belong to the `ReplicaSet` of their runtime:
//! they stop when that runtime is replaced or dropped (see [`super::ReplicaSet`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use conduit_config::HealthCheck;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::Replica;

/// The body of every probe.
const PING: &str = r#"{"jsonrpc":"2.0","id":"conduit-health-check","method":"ping"}"#;

/// Health check settings of the data plane (`router.health_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthConfig {
    /// Time between two probes of a replica.
    pub interval: Duration,
    /// Time a probe may take, to the response headers.
    pub timeout: Duration,
    /// Failed probes in a row that take a replica out.
    pub unhealthy_threshold: u32,
    /// Successful probes in a row that bring it back.
    pub healthy_threshold: u32,
}

impl HealthConfig {
    /// The settings in effect, or `None` when health checks are off. They are on by
    /// default, also without a `router.health_check` block.
    pub(crate) fn from_config(config: Option<&HealthCheck>) -> Option<HealthConfig> {
        let default = HealthCheck::default();
        let config = config.unwrap_or(&default);
        if config.enabled == Some(false) {
            return None;
        }
        Some(HealthConfig {
            interval: Duration::from_secs(config.interval_seconds.unwrap_or(30).max(1)),
            timeout: Duration::from_millis(config.timeout_ms.unwrap_or(5_000).max(1)),
            unhealthy_threshold: config.unhealthy_threshold.unwrap_or(3).max(1),
            healthy_threshold: config.healthy_threshold.unwrap_or(1).max(1),
        })
    }
}

/// Consecutive probe results of one replica and the verdict they lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthTracker {
    healthy: bool,
    failures: u32,
    successes: u32,
}

impl HealthTracker {
    /// Start from the replica's current verdict (kept across configuration swaps).
    pub(crate) fn new(healthy: bool) -> Self {
        HealthTracker {
            healthy,
            failures: 0,
            successes: 0,
        }
    }

    /// Count one probe; returns the new verdict when it changes.
    pub(crate) fn record(&mut self, alive: bool, config: &HealthConfig) -> Option<bool> {
        if alive {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if !self.healthy && self.successes >= config.healthy_threshold {
                self.healthy = true;
                return Some(true);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.healthy && self.failures >= config.unhealthy_threshold {
                self.healthy = false;
                return Some(false);
            }
        }
        None
    }
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeFailure {
    /// No connection, or it broke before the answer.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No answer within the check's timeout.
    #[error("no answer within {0}")]
    Timeout(String),
    /// An HTTP 5xx answer.
    #[error("answered HTTP {0}")]
    Status(StatusCode),
}

/// One health probe of one endpoint. A trait so the probing loop can be tested with
/// paused time and scripted outcomes.
pub trait Probe: Clone + Send + Sync + 'static {
    /// Probe `uri`, sending `headers`, within `timeout`.
    fn probe(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), ProbeFailure>> + Send;
}

/// Probes over HTTP(S), with a client of its own: probes never wait behind requests for
/// pooled connections, and no idle connection is kept to any replica between probes.
#[derive(Debug, Clone)]
pub(crate) struct HttpProber {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpProber {
    /// A prober trusting the system's roots (the bundled Mozilla roots without them).
    pub(crate) fn new() -> HttpProber {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let builder = HttpsConnectorBuilder::new()
            .with_native_roots()
            .unwrap_or_else(|_| HttpsConnectorBuilder::new().with_webpki_roots());
        let connector = builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        HttpProber { client }
    }
}

impl Default for HttpProber {
    fn default() -> Self {
        Self::new()
    }
}

impl Probe for HttpProber {
    async fn probe(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        timeout: Duration,
    ) -> Result<(), ProbeFailure> {
        let mut request = Request::new(Full::new(Bytes::from_static(PING.as_bytes())));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        let sent = request.headers_mut();
        sent.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        sent.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        for (name, value) in headers {
            sent.insert(name.clone(), value.clone());
        }
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            // The body is dropped unread: the status is the whole verdict.
            Ok(Ok(response)) if response.status().is_server_error() => {
                Err(ProbeFailure::Status(response.status()))
            }
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(ProbeFailure::Unreachable(crate::error_chain(&error))),
            Err(_) => Err(ProbeFailure::Timeout(
                humantime::format_duration(timeout).to_string(),
            )),
        }
    }
}

/// Probe `replica` until `stop` is cancelled, updating its health verdict.
pub(super) fn spawn<P: Probe>(
    replica: Arc<Replica>,
    headers: HeaderMap,
    config: HealthConfig,
    prober: P,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        stop.run_until_cancelled(watch(&replica, &headers, &config, &prober))
            .await;
    });
}

async fn watch<P: Probe>(
    replica: &Replica,
    headers: &HeaderMap,
    config: &HealthConfig,
    prober: &P,
) {
    let mut tracker = HealthTracker::new(replica.state.is_healthy());
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let outcome = prober.probe(&replica.uri, headers, config.timeout).await;
        if let Err(failure) = &outcome {
            tracing::debug!(
                server = %replica.server,
                replica = %replica.label,
                %failure,
                "health check failed"
            );
        }
        match tracker.record(outcome.is_ok(), config) {
            Some(true) => {
                tracing::info!(
                    server = %replica.server,
                    replica = %replica.label,
                    "replica is healthy again"
                );
                replica.state.set_healthy(true);
            }
            Some(false) => {
                let failure = outcome.err().map(|f| f.to_string()).unwrap_or_default();
                tracing::warn!(
                    server = %replica.server,
                    replica = %replica.label,
                    %failure,
                    failures = config.unhealthy_threshold,
                    "replica taken out of rotation: its health checks fail"
                );
                replica.state.set_healthy(false);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const CONFIG: HealthConfig = HealthConfig {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
        unhealthy_threshold: 3,
        healthy_threshold: 2,
    };

    #[test]
    fn thresholds_count_consecutive_probes() {
        let mut tracker = HealthTracker::new(true);
        assert_eq!(tracker.record(false, &CONFIG), None);
        assert_eq!(tracker.record(false, &CONFIG), None);
        // A success breaks the run of failures.
        assert_eq!(tracker.record(true, &CONFIG), None);
        assert_eq!(tracker.record(false, &CONFIG), None);
        assert_eq!(tracker.record(false, &CONFIG), None);
        assert_eq!(tracker.record(false, &CONFIG), Some(false));
        assert_eq!(tracker.record(false, &CONFIG), None);
        assert_eq!(tracker.record(true, &CONFIG), None);
        assert_eq!(tracker.record(false, &CONFIG), None);
        assert_eq!(tracker.record(true, &CONFIG), None);
        assert_eq!(tracker.record(true, &CONFIG), Some(true));
    }

    #[test]
    fn config_defaults_and_switch() {
        assert_eq!(
            HealthConfig::from_config(None),
            Some(HealthConfig {
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(5),
                unhealthy_threshold: 3,
                healthy_threshold: 1,
            })
        );
        let off = HealthCheck {
            enabled: Some(false),
            ..HealthCheck::default()
        };
        assert_eq!(HealthConfig::from_config(Some(&off)), None);
    }

    /// Answers from a script (alive when the script runs out) and counts the probes.
    #[derive(Clone, Default)]
    struct Scripted {
        outcomes: Arc<Mutex<VecDeque<bool>>>,
        probes: Arc<AtomicUsize>,
    }

    impl Probe for Scripted {
        async fn probe(&self, _: &Uri, _: &HeaderMap, _: Duration) -> Result<(), ProbeFailure> {
            self.probes.fetch_add(1, Ordering::SeqCst);
            let alive = self.outcomes.lock().unwrap().pop_front().unwrap_or(true);
            if alive {
                Ok(())
            } else {
                Err(ProbeFailure::Status(StatusCode::SERVICE_UNAVAILABLE))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn probes_every_interval_and_stops_when_cancelled() {
        let replica = Arc::new(Replica::new("s", "http://127.0.0.1:1/mcp".parse().unwrap()));
        let prober = Scripted::default();
        prober
            .outcomes
            .lock()
            .unwrap()
            .extend([false, false, false, true, true]);
        let stop = CancellationToken::new();
        spawn(
            Arc::clone(&replica),
            HeaderMap::new(),
            CONFIG,
            prober.clone(),
            stop.clone(),
        );

        // Probes at 0, 5 and 10 s fail: out of rotation after the third.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(prober.probes.load(Ordering::SeqCst), 1);
        assert!(replica.state.is_healthy());
        tokio::time::sleep(CONFIG.interval * 2).await;
        assert_eq!(prober.probes.load(Ordering::SeqCst), 3);
        assert!(!replica.state.is_healthy());
        // Back after two successes, at 15 and 20 s.
        tokio::time::sleep(CONFIG.interval).await;
        assert!(!replica.state.is_healthy());
        tokio::time::sleep(CONFIG.interval).await;
        assert!(replica.state.is_healthy());

        stop.cancel();
        let probes = prober.probes.load(Ordering::SeqCst);
        tokio::time::sleep(CONFIG.interval * 10).await;
        assert_eq!(prober.probes.load(Ordering::SeqCst), probes);
    }
}
