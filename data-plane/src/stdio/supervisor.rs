//! The life of one stdio server's process: start it, initialize it, serve until it dies,
//! fail its pending callers, wait a jittered exponential backoff, start it again; until it
//! is stopped (its configuration is gone, or the data plane shuts down).
//!
//! Requests see the process through [`Process::ready`]: they wait while it starts and for
//! the first restart after a failure (up to their own deadline), so a single crash costs
//! callers a short delay, not an error. While it keeps failing they are refused at once
//! (503): the next attempt would most likely fail again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::StatusCode;
use prometheus::IntGauge;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Spec;
use super::connection::{Connection, Failure, Unrouted};
use super::handshake::{self, Initialized};
use super::process::{self, Spawned};
use super::sse::Listeners;
use crate::backoff::Backoff;
use crate::metrics::Metrics;

/// A process that ran this long before it ended starts the backoff schedule over.
pub(super) const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Lines queued for a process's stdin; writers wait (within their deadline) beyond it.
const INPUT_QUEUE: usize = 1024;

/// One stdio server's process, across restarts.
#[derive(Debug)]
pub struct Process {
    server_id: Arc<str>,
    spec: Spec,
    /// The server's `timeout_ms` when the process was prepared: bounds the gateway's own
    /// `initialize` and the drain when the process is retired.
    timeout: Duration,
    state: watch::Sender<State>,
    listeners: Arc<Listeners>,
    stop: CancellationToken,
    started: AtomicBool,
    metrics: Arc<Metrics>,
    /// Whether this process alone is its server's `conduit_dp_stdio_up` (not so for one of
    /// several processes of an isolated server).
    reports_up: bool,
}

/// Where a process is in its life.
#[derive(Debug, Clone)]
pub(super) enum State {
    /// Prepared for a candidate configuration, not started.
    Idle,
    /// Being started and initialized.
    Starting,
    Ready(Arc<Ready>),
    /// Ended; the next start is at `retry_at`, after `failures` consecutive failures.
    Restarting {
        retry_at: Instant,
        reason: Arc<str>,
        failures: u32,
    },
    Stopped,
}

/// An initialized incarnation of the process.
#[derive(Debug)]
pub struct Ready {
    pub connection: Arc<Connection>,
    pub initialized: Initialized,
}

/// How an incarnation ended.
enum Ended {
    Stopped,
    Failed(String),
}

impl Process {
    pub fn new(
        server_id: &str,
        spec: Spec,
        timeout: Duration,
        metrics: Arc<Metrics>,
        reports_up: bool,
    ) -> Arc<Process> {
        Arc::new(Process {
            server_id: server_id.into(),
            spec,
            timeout,
            state: watch::Sender::new(State::Idle),
            listeners: Arc::default(),
            stop: CancellationToken::new(),
            started: AtomicBool::new(false),
            metrics,
            reports_up,
        })
    }

    /// Whether a caller uses the process now: a request outstanding or a `GET` stream open.
    pub fn busy(&self) -> bool {
        let outstanding = match &*self.state.borrow() {
            State::Ready(ready) => ready.connection.outstanding() > 0,
            _ => false,
        };
        outstanding || self.listeners.open_streams() > 0
    }

    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `GET /mcp/{server_id}` streams, which outlive restarts.
    pub fn listeners(&self) -> &Arc<Listeners> {
        &self.listeners
    }

    /// Start the process and keep it running until [`Process::stop`]. Idempotent.
    pub fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(Arc::clone(self).run());
            }
            Err(_) => tracing::error!(
                server = %self.server_id,
                "no async runtime to start the stdio server on"
            ),
        }
    }

    /// Stop once no request is outstanding, or after `drain` at the latest.
    pub fn retire(self: &Arc<Self>, drain: Duration) {
        let process = Arc::clone(self);
        let drained = async move {
            let ready = match &*process.state.borrow() {
                State::Ready(ready) => Some(Arc::clone(ready)),
                _ => None,
            };
            if let Some(ready) = ready {
                let _ = tokio::time::timeout(drain, ready.connection.wait_idle()).await;
            }
            process.stop();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(drained)),
            Err(_) => self.stop(),
        }
    }

    /// Stop the process now; pending callers get an error.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Returns once the process is stopped (at once when it was never started).
    pub async fn stopped(&self) {
        if !self.started.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.subscribe();
        let _ = state
            .wait_for(|state| matches!(state, State::Stopped))
            .await;
    }

    /// The initialized process, waiting while it starts, until `deadline`.
    pub async fn ready(&self, deadline: Instant) -> Result<Arc<Ready>, Failure> {
        let mut state = self.state.subscribe();
        loop {
            let current = state.borrow_and_update().clone();
            match current {
                State::Ready(ready) => return Ok(ready),
                State::Idle | State::Starting => {}
                State::Restarting {
                    retry_at,
                    failures: 1,
                    ..
                } if retry_at <= deadline => {}
                State::Restarting {
                    retry_at, reason, ..
                } => {
                    let wait = retry_at.saturating_duration_since(Instant::now());
                    return Err(Failure {
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        message: format!(
                            "the stdio server {} is down ({reason}); it starts again in {}",
                            self.server_id,
                            humantime::format_duration(round_to_millis(wait))
                        ),
                    });
                }
                State::Stopped => return Err(self.stopped_failure()),
            }
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.stopped_failure()),
                Err(_) => {
                    return Err(Failure::timeout(format!(
                        "the stdio server {} did not finish starting in time",
                        self.server_id
                    )));
                }
            }
        }
    }

    fn stopped_failure(&self) -> Failure {
        Failure::bad_gateway(format!("the stdio server {} is stopped", self.server_id))
    }

    async fn run(self: Arc<Self>) {
        let labels = [&*self.server_id];
        let up = if self.reports_up {
            self.metrics.stdio_up.with_label_values(&labels)
        } else {
            // Not registered: several processes of one server cannot share the gauge.
            IntGauge::new("conduit_dp_stdio_member_up", "unregistered").expect("valid metric")
        };
        // The restart counter exists (at 0) from the first start, so `increase()` and alerts
        // see the series before the first restart.
        let restarts = self.metrics.stdio_restarts.with_label_values(&labels);
        let mut policy = RestartPolicy::new(Backoff::default(), HEALTHY_AFTER);
        loop {
            self.state.send_replace(State::Starting);
            policy.started();
            let reason = match self.incarnation(&up).await {
                Ended::Stopped => break,
                Ended::Failed(reason) => reason,
            };
            up.set(0);
            let delay = policy.next_delay();
            restarts.inc();
            tracing::warn!(
                server = %self.server_id,
                %reason,
                delay = %humantime::format_duration(round_to_millis(delay)),
                "stdio server process ended; starting it again after the delay"
            );
            self.state.send_replace(State::Restarting {
                retry_at: Instant::now() + delay,
                reason: reason.into(),
                failures: policy.failures(),
            });
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.listeners.close_all();
        if self.reports_up {
            let _ = self.metrics.stdio_up.remove_label_values(&labels);
        }
        self.state.send_replace(State::Stopped);
        tracing::info!(server = %self.server_id, "stdio server stopped");
    }

    /// Start, initialize and serve one process until it ends or is stopped.
    async fn incarnation(&self, up: &IntGauge) -> Ended {
        let Spawned {
            mut child,
            stdin,
            stdout,
            stderr,
        } = match process::spawn(&self.spec) {
            Ok(spawned) => spawned,
            Err(error) => {
                return Ended::Failed(format!("cannot start {:?}: {error}", self.spec.command));
            }
        };
        tracing::info!(
            server = %self.server_id,
            pid = child.id(),
            command = %self.spec.command,
            "stdio server process started"
        );
        let (input, queue) = mpsc::channel(INPUT_QUEUE);
        let connection = Connection::new(
            Arc::clone(&self.server_id),
            Arc::clone(&self.listeners),
            input,
            Unrouted::new(&self.metrics, &self.server_id),
        );
        let writer = tokio::spawn(process::write_stdin(stdin, queue));
        let mut reader: JoinHandle<String> = tokio::spawn({
            let connection = Arc::clone(&connection);
            let server_id = Arc::clone(&self.server_id);
            async move { process::read_stdout(stdout, connection, &server_id).await }
        });
        tokio::spawn(process::log_stderr(stderr, Arc::clone(&self.server_id)));

        let initialized = tokio::select! {
            () = self.stop.cancelled() => Err(Ended::Stopped),
            status = child.wait() => Err(Ended::Failed(exited(status))),
            why = &mut reader => Err(Ended::Failed(why.unwrap_or_else(|e| e.to_string()))),
            ready = handshake::initialize(&connection, self.timeout) => ready
                .map_err(|reason| Ended::Failed(format!("the MCP handshake failed: {reason}"))),
        };
        let ended = match initialized {
            Ok(initialized) => {
                self.serve(&connection, initialized, &mut child, &mut reader, up)
                    .await
            }
            Err(ended) => ended,
        };

        // Callers learn at once; the process may take a while to go.
        let failure = match &ended {
            Ended::Stopped => format!("the stdio server {} was stopped", self.server_id),
            Ended::Failed(reason) => format!("the stdio server {} ended: {reason}", self.server_id),
        };
        connection.close(Failure::bad_gateway(failure));
        // Closing stdin is how MCP asks a stdio server to exit.
        writer.abort();
        let status = process::terminate(&mut child).await;
        reader.abort();
        tracing::debug!(server = %self.server_id, ?status, "stdio server process exited");
        ended
    }

    async fn serve(
        &self,
        connection: &Arc<Connection>,
        initialized: Initialized,
        child: &mut tokio::process::Child,
        reader: &mut JoinHandle<String>,
        up: &IntGauge,
    ) -> Ended {
        tracing::info!(
            server = %self.server_id,
            protocol_version = %initialized.protocol_version,
            server_info = %initialized.result.get("serverInfo").unwrap_or(&serde_json::Value::Null),
            "stdio server initialized"
        );
        self.state.send_replace(State::Ready(Arc::new(Ready {
            connection: Arc::clone(connection),
            initialized,
        })));
        up.set(1);
        tokio::select! {
            () = self.stop.cancelled() => Ended::Stopped,
            status = child.wait() => Ended::Failed(exited(status)),
            why = reader => Ended::Failed(why.unwrap_or_else(|e| e.to_string())),
        }
    }
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => format!("it exited ({status})"),
        Err(error) => format!("waiting for it failed: {error}"),
    }
}

fn round_to_millis(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// When to start a process again: a jittered exponential backoff over consecutive quick
/// failures, reset once a process has run for a while.
#[derive(Debug)]
pub(super) struct RestartPolicy {
    backoff: Backoff,
    healthy_after: Duration,
    started: Instant,
    /// Consecutive failures since the last healthy run.
    failures: u32,
}

impl RestartPolicy {
    pub(super) fn new(backoff: Backoff, healthy_after: Duration) -> RestartPolicy {
        RestartPolicy {
            backoff,
            healthy_after,
            started: Instant::now(),
            failures: 0,
        }
    }

    /// A process was started now.
    pub(super) fn started(&mut self) {
        self.started = Instant::now();
    }

    /// The delay before the next start, the process having just ended.
    pub(super) fn next_delay(&mut self) -> Duration {
        if self.started.elapsed() >= self.healthy_after {
            self.backoff.reset();
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.backoff.next_delay()
    }

    /// Consecutive failures since the last healthy run, the latest included.
    pub(super) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn within(delay: Duration, ceiling: Duration) -> bool {
        delay >= ceiling / 2 && delay <= ceiling
    }

    #[tokio::test(start_paused = true)]
    async fn restart_delays_double_to_the_cap_and_reset_after_a_healthy_run() {
        let mut policy = RestartPolicy::new(Backoff::default(), HEALTHY_AFTER);
        let mut ceiling = Duration::from_millis(100);
        let mut failures = 0;
        for _ in 0..12 {
            policy.started();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let delay = policy.next_delay();
            assert!(within(delay, ceiling), "{delay:?} not within {ceiling:?}");
            tokio::time::sleep(delay).await;
            failures += 1;
            assert_eq!(policy.failures(), failures);
            ceiling = (ceiling * 2).min(Duration::from_secs(30));
        }
        assert_eq!(ceiling, Duration::from_secs(30));

        policy.started();
        tokio::time::sleep(HEALTHY_AFTER).await;
        let delay = policy.next_delay();
        assert!(within(delay, Duration::from_millis(100)), "{delay:?}");
        assert_eq!(policy.failures(), 1);
        // The next quick failure continues from there.
        policy.started();
        let delay = policy.next_delay();
        assert!(within(delay, Duration::from_millis(200)), "{delay:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_process_that_cannot_start_is_retried_on_the_schedule_until_stopped() {
        let metrics = Arc::new(Metrics::new());
        let spec = Spec {
            command: "/nonexistent/conduit-test-no-such-server".into(),
            args: Vec::new(),
            env: BTreeMap::new(),
        };
        let process = Process::new(
            "ghost",
            spec,
            Duration::from_secs(1),
            Arc::clone(&metrics),
            true,
        );
        let mut state = process.state.subscribe();
        process.start();

        let mut ceiling = Duration::from_millis(100);
        for attempt in 1..=6 {
            let (retry_at, reason, failures) = loop {
                state.changed().await.expect("running");
                if let State::Restarting {
                    retry_at,
                    reason,
                    failures,
                } = &*state.borrow_and_update()
                {
                    break (*retry_at, reason.clone(), *failures);
                }
            };
            assert!(reason.contains("cannot start"), "{reason}");
            assert_eq!(failures, attempt);
            let delay = retry_at - Instant::now();
            assert!(
                within(delay, ceiling),
                "attempt {attempt}: {delay:?} not within {ceiling:?}"
            );
            // A request that would have to wait past the restart is refused at once, and
            // so is any request once the process keeps failing.
            let deadline = match attempt {
                1 => Instant::now() + delay / 4,
                _ => Instant::now() + Duration::from_secs(600),
            };
            let refused = process.ready(deadline).await.expect_err("down");
            assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(refused.message.contains("ghost"), "{}", refused.message);
            assert_eq!(Instant::now() + delay, retry_at, "refused without waiting");
            ceiling *= 2;
        }
        assert_eq!(
            metrics.stdio_restarts.with_label_values(&["ghost"]).get(),
            6
        );

        process.stop();
        process.stopped().await;
        let stopped = process.ready(Instant::now() + Duration::from_secs(1)).await;
        assert_eq!(
            stopped.expect_err("stopped").status,
            StatusCode::BAD_GATEWAY
        );
    }
}
