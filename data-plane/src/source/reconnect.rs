//! When to open the config stream again after a session ends.
//!
//! * a clean close by the control plane after a working session (restart, rebalancing)
//!   reconnects at once;
//! * errors (cannot connect, stream reset, idle timeout) back off exponentially with jitter;
//! * refused credentials are not transient: wait the longest delay and log an error;
//! * a stream that ended because a message on it was refused (a decode or size error, on
//!   either side) backs off without a reset, whatever came before: the next stream would
//!   likely meet the same message, and resetting made a wedged stream reconnect several
//!   times a second;
//! * otherwise any message from the control plane proves the stream works and resets the
//!   backoff.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, jittered};
use crate::metrics::Metrics;

/// How one session on the config stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The control plane ended the stream without an error.
    Closed,
    /// Connecting failed, the stream broke or went silent.
    Failed(String),
    /// The control plane refused this data plane (UNAUTHENTICATED / PERMISSION_DENIED).
    Refused(String),
    /// A message on the stream was refused: too large or undecodable (OUT_OF_RANGE,
    /// RESOURCE_EXHAUSTED, or a decode error).
    Rejected(String),
    /// The data plane is shutting down.
    Shutdown,
}

/// The outcome of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    pub end: SessionEnd,
    /// Whether the control plane delivered at least one message.
    pub progressed: bool,
}

/// Run sessions until shutdown, waiting between them as the module docs describe.
pub async fn run<F, Fut>(
    mut backoff: Backoff,
    shutdown: CancellationToken,
    metrics: &Metrics,
    mut session: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = SessionReport>,
{
    loop {
        let report = session().await;
        let rejected = matches!(report.end, SessionEnd::Rejected(_));
        if report.progressed && !rejected {
            backoff.reset();
        }
        let delay = match &report.end {
            SessionEnd::Shutdown => return,
            SessionEnd::Closed if report.progressed => {
                tracing::info!("control plane closed the config stream; reconnecting");
                Duration::ZERO
            }
            SessionEnd::Closed => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    ?delay,
                    "control plane closed the config stream before sending anything; retrying"
                );
                delay
            }
            SessionEnd::Failed(reason) => {
                let delay = backoff.next_delay();
                tracing::warn!(%reason, ?delay, "config stream failed; retrying");
                delay
            }
            SessionEnd::Rejected(reason) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    %reason,
                    ?delay,
                    "a message on the config stream was refused; retrying, still backing off"
                );
                delay
            }
            SessionEnd::Refused(reason) => {
                let delay = jittered(backoff.max());
                tracing::error!(
                    %reason,
                    ?delay,
                    "control plane refused this data plane; check CONDUIT_DP_TOKEN"
                );
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
        metrics.stream_reconnects.inc();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    fn report(end: SessionEnd, progressed: bool) -> SessionReport {
        SessionReport { end, progressed }
    }

    fn failed() -> SessionReport {
        report(SessionEnd::Failed("connection refused".into()), false)
    }

    /// Runs the loop over scripted session outcomes (ending with Shutdown) and returns the
    /// time at which each session started, relative to the first.
    async fn start_times(script: Vec<SessionReport>) -> (Vec<Duration>, u64) {
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let metrics = Metrics::new();
        let origin = Instant::now();
        run(
            Backoff::default(),
            CancellationToken::new(),
            &metrics,
            || {
                starts.lock().unwrap().push(origin.elapsed());
                let next = script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or(report(SessionEnd::Shutdown, false));
                async move { next }
            },
        )
        .await;
        let starts = starts.lock().unwrap().clone();
        (starts, metrics.stream_reconnects.get())
    }

    fn gaps(starts: &[Duration]) -> Vec<Duration> {
        starts.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_with_jitter() {
        let (starts, reconnects) = start_times(vec![failed(); 10]).await;
        let gaps = gaps(&starts);
        assert_eq!(gaps.len(), 10);
        let mut ceiling = Duration::from_millis(100);
        for gap in gaps {
            assert!(
                gap >= ceiling / 2 && gap <= ceiling,
                "{gap:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            ceiling = (ceiling * 2).min(Duration::from_secs(30));
        }
        assert_eq!(reconnects, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_resets_and_clean_close_reconnects_at_once() {
        let (starts, _) = start_times(vec![
            failed(),
            failed(),
            failed(),
            failed(),
            // A working session that the control plane then closes: reconnect immediately.
            report(SessionEnd::Closed, true),
            // The backoff starts over after the working session.
            failed(),
        ])
        .await;
        let gaps = gaps(&starts);
        assert!(gaps[3] >= Duration::from_millis(400), "{gaps:?}");
        assert_eq!(gaps[4], Duration::ZERO, "{gaps:?}");
        assert!(gaps[5] <= Duration::from_millis(100), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn working_session_that_fails_restarts_the_backoff() {
        let (starts, _) = start_times(vec![
            failed(),
            failed(),
            failed(),
            report(SessionEnd::Failed("reset".into()), true),
        ])
        .await;
        let gaps = gaps(&starts);
        assert!(gaps[2] >= Duration::from_millis(200), "{gaps:?}");
        assert!(gaps[3] <= Duration::from_millis(100), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_message_never_resets_the_backoff() {
        // Each stream works (snapshot, heartbeats) until the same message is refused.
        let rejected = || report(SessionEnd::Rejected("OutOfRange: too large".into()), true);
        let (starts, reconnects) = start_times(vec![rejected(); 8]).await;
        let gaps = gaps(&starts);
        let mut ceiling = Duration::from_millis(100);
        for gap in &gaps[..8] {
            assert!(
                *gap >= ceiling / 2 && *gap <= ceiling,
                "{gap:?} not in [{:?}, {ceiling:?}]: {gaps:?}",
                ceiling / 2
            );
            ceiling = (ceiling * 2).min(Duration::from_secs(30));
        }
        assert_eq!(reconnects, 8);
        // Nine attempts take at least 12.75 s, where a reset made it about 7 a second.
        assert!(starts[8] >= Duration::from_millis(12_750), "{starts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn silent_clean_close_backs_off() {
        let (starts, _) = start_times(vec![
            report(SessionEnd::Closed, false),
            report(SessionEnd::Closed, false),
        ])
        .await;
        let gaps = gaps(&starts);
        assert!(gaps[0] >= Duration::from_millis(50), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(100), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_waits_the_longest_delay() {
        let (starts, _) =
            start_times(vec![report(SessionEnd::Refused("bad token".into()), false)]).await;
        let gaps = gaps(&starts);
        assert!(gaps[0] >= Duration::from_secs(15), "{gaps:?}");
        assert!(gaps[0] <= Duration::from_secs(30), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_interrupts_the_wait() {
        let shutdown = CancellationToken::new();
        let metrics = Metrics::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            trigger.cancel();
        });
        let started = Instant::now();
        run(Backoff::default(), shutdown, &metrics, || async {
            report(SessionEnd::Refused("bad token".into()), false)
        })
        .await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
