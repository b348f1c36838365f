//! The circuit breaker of one replica: a pure state machine over `tokio::time::Instant`.
//!
//! - **closed**: every request is admitted; `failure_threshold` failures in a row open it
//!   (a success resets the count).
//! - **open**: nothing is admitted until `reset_timeout` has passed since it opened; the
//!   first request after that moves it to half-open. The move is lazy (made when a request
//!   asks), so the breaker needs no timer and recovers by itself, without an admin reset.
//! - **half-open**: at most `half_open_max_requests` trial requests in flight at once;
//!   `success_threshold` successful trials close it, any failed trial opens it again.
//!
//! Each admission is a [`Permit`] stamped with the breaker's epoch, which changes on every
//! transition. An outcome reported for an older epoch is ignored: a slow request admitted
//! while closed must not count as a trial of a later half-open phase, nor re-open a
//! breaker that has been closed since.

use std::time::Duration;

use conduit_config::CircuitBreaker;
use tokio::time::Instant;

/// Thresholds of the breakers of one server (`router.circuit_breaker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BreakerConfig {
    /// Failures in a row that open a closed breaker.
    pub failure_threshold: u32,
    /// Time an open breaker waits before admitting trial requests.
    pub reset_timeout: Duration,
    /// Trial requests admitted at once while half-open.
    pub half_open_max_requests: u32,
    /// Successful trials that close a half-open breaker.
    pub success_threshold: u32,
}

impl BreakerConfig {
    /// The breaker settings in effect, or `None` when breakers are off (the block is
    /// absent or says `enabled: false`).
    pub(crate) fn from_config(config: Option<&CircuitBreaker>) -> Option<BreakerConfig> {
        let config = config?;
        if config.enabled == Some(false) {
            return None;
        }
        Some(BreakerConfig {
            failure_threshold: config.failure_threshold.unwrap_or(5).max(1),
            reset_timeout: Duration::from_millis(config.reset_timeout_ms.unwrap_or(30_000)),
            half_open_max_requests: config.half_open_max_requests.unwrap_or(1).max(1),
            success_threshold: config.success_threshold.unwrap_or(2).max(1),
        })
    }
}

/// The three states, as exported by the `conduit_dp_replica_circuit_state` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Every request is admitted.
    Closed,
    /// No request is admitted until the reset timeout has passed.
    Open,
    /// A few trial requests are admitted.
    HalfOpen,
}

impl BreakerState {
    /// Label value of the transitions counter.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// Gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// Admission of one request by a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Permit {
    epoch: u64,
    /// A half-open trial, holding one of the `half_open_max_requests` slots.
    trial: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// The breaker of one replica. Not synchronized: the replica keeps it behind a mutex that
/// is never held across an `.await`.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    phase: Phase,
    epoch: u64,
    /// Transitions so far, indexed like [`BreakerState::gauge`].
    transitions: [u64; 3],
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            phase: Phase::Closed { failures: 0 },
            epoch: 0,
            transitions: [0; 3],
        }
    }
}

impl Breaker {
    /// The current state (an open breaker whose timeout has passed still reads open until
    /// a request asks for admission).
    pub(crate) fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How many times the breaker entered `state`.
    pub(crate) fn transitions_to(&self, state: BreakerState) -> u64 {
        self.transitions[state.gauge() as usize]
    }

    /// Admit a request at `now`, or refuse it (`None`) while open or while every trial slot
    /// is taken.
    pub(crate) fn try_acquire(&mut self, config: &BreakerConfig, now: Instant) -> Option<Permit> {
        if let Phase::Open { until } = self.phase {
            if now < until {
                return None;
            }
            self.enter(Phase::HalfOpen {
                in_flight: 0,
                successes: 0,
            });
        }
        match &mut self.phase {
            Phase::Closed { .. } => Some(Permit {
                epoch: self.epoch,
                trial: false,
            }),
            Phase::HalfOpen { in_flight, .. } if *in_flight < config.half_open_max_requests => {
                *in_flight += 1;
                Some(Permit {
                    epoch: self.epoch,
                    trial: true,
                })
            }
            Phase::HalfOpen { .. } | Phase::Open { .. } => None,
        }
    }

    /// Whether a request would be admitted at `now`, without taking a trial slot.
    #[cfg(test)]
    pub(crate) fn would_admit(&self, config: &BreakerConfig, now: Instant) -> bool {
        match self.phase {
            Phase::Closed { .. } => true,
            Phase::Open { until } => now >= until,
            Phase::HalfOpen { in_flight, .. } => in_flight < config.half_open_max_requests,
        }
    }

    /// The admitted request succeeded.
    pub(crate) fn on_success(&mut self, config: &BreakerConfig, permit: Permit) {
        if permit.epoch != self.epoch {
            return;
        }
        match &mut self.phase {
            Phase::Closed { failures } => *failures = 0,
            Phase::HalfOpen {
                in_flight,
                successes,
            } if permit.trial => {
                *in_flight = in_flight.saturating_sub(1);
                *successes += 1;
                if *successes >= config.success_threshold {
                    self.enter(Phase::Closed { failures: 0 });
                }
            }
            Phase::HalfOpen { .. } | Phase::Open { .. } => {}
        }
    }

    /// The admitted request failed at `now`.
    pub(crate) fn on_failure(&mut self, config: &BreakerConfig, permit: Permit, now: Instant) {
        if permit.epoch != self.epoch {
            return;
        }
        let open = Phase::Open {
            until: now + config.reset_timeout,
        };
        match &mut self.phase {
            Phase::Closed { failures } => {
                *failures += 1;
                if *failures >= config.failure_threshold {
                    self.enter(open);
                }
            }
            Phase::HalfOpen { .. } if permit.trial => self.enter(open),
            Phase::HalfOpen { .. } | Phase::Open { .. } => {}
        }
    }

    /// The admitted request ended without an outcome (the caller went away): its trial
    /// slot, if any, is freed and nothing is counted.
    pub(crate) fn on_abandon(&mut self, permit: Permit) {
        if permit.epoch != self.epoch || !permit.trial {
            return;
        }
        if let Phase::HalfOpen { in_flight, .. } = &mut self.phase {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.epoch += 1;
        self.transitions[self.state().gauge() as usize] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: BreakerConfig = BreakerConfig {
        failure_threshold: 3,
        reset_timeout: Duration::from_secs(10),
        half_open_max_requests: 2,
        success_threshold: 2,
    };

    fn fail(breaker: &mut Breaker) {
        let permit = breaker
            .try_acquire(&CONFIG, Instant::now())
            .expect("admitted");
        breaker.on_failure(&CONFIG, permit, Instant::now());
    }

    fn open(breaker: &mut Breaker) {
        for _ in 0..CONFIG.failure_threshold {
            fail(breaker);
        }
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let mut breaker = Breaker::default();
        fail(&mut breaker);
        fail(&mut breaker);
        // A success in between resets the count.
        let permit = breaker.try_acquire(&CONFIG, Instant::now()).unwrap();
        breaker.on_success(&CONFIG, permit);
        fail(&mut breaker);
        fail(&mut breaker);
        assert_eq!(breaker.state(), BreakerState::Closed);
        fail(&mut breaker);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.transitions_to(BreakerState::Open), 1);
        assert!(breaker.try_acquire(&CONFIG, Instant::now()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn half_opens_after_the_reset_timeout_and_closes_after_successful_trials() {
        let mut breaker = Breaker::default();
        open(&mut breaker);
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(!breaker.would_admit(&CONFIG, Instant::now()));
        assert!(breaker.try_acquire(&CONFIG, Instant::now()).is_none());

        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.would_admit(&CONFIG, Instant::now()));
        let first = breaker.try_acquire(&CONFIG, Instant::now()).expect("trial");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let second = breaker.try_acquire(&CONFIG, Instant::now()).expect("trial");
        // Both trial slots are taken.
        assert!(breaker.try_acquire(&CONFIG, Instant::now()).is_none());
        assert!(!breaker.would_admit(&CONFIG, Instant::now()));

        breaker.on_success(&CONFIG, first);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.on_success(&CONFIG, second);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.transitions_to(BreakerState::HalfOpen), 1);
        assert_eq!(breaker.transitions_to(BreakerState::Closed), 1);
        assert!(breaker.try_acquire(&CONFIG, Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_again_for_a_full_timeout() {
        let mut breaker = Breaker::default();
        open(&mut breaker);
        tokio::time::advance(CONFIG.reset_timeout).await;
        let trial = breaker.try_acquire(&CONFIG, Instant::now()).unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        breaker.on_failure(&CONFIG, trial, Instant::now());
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.transitions_to(BreakerState::Open), 2);

        // The timeout counts from the failed trial, not from the first opening.
        tokio::time::advance(CONFIG.reset_timeout - Duration::from_millis(1)).await;
        assert!(breaker.try_acquire(&CONFIG, Instant::now()).is_none());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.try_acquire(&CONFIG, Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_of_an_earlier_phase_are_ignored() {
        let mut breaker = Breaker::default();
        // Admitted while closed, answered only after the breaker opened and half-opened.
        let slow = breaker.try_acquire(&CONFIG, Instant::now()).unwrap();
        open(&mut breaker);
        tokio::time::advance(CONFIG.reset_timeout).await;
        let trial = breaker.try_acquire(&CONFIG, Instant::now()).unwrap();
        breaker.on_success(&CONFIG, slow);
        breaker.on_failure(&CONFIG, slow, Instant::now());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);

        // An abandoned trial frees its slot without counting.
        breaker.on_abandon(trial);
        let a = breaker.try_acquire(&CONFIG, Instant::now()).unwrap();
        let b = breaker.try_acquire(&CONFIG, Instant::now()).unwrap();
        breaker.on_success(&CONFIG, a);
        breaker.on_success(&CONFIG, b);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn config_defaults_and_switch() {
        assert_eq!(BreakerConfig::from_config(None), None);
        let off = CircuitBreaker {
            enabled: Some(false),
            ..CircuitBreaker::default()
        };
        assert_eq!(BreakerConfig::from_config(Some(&off)), None);
        assert_eq!(
            BreakerConfig::from_config(Some(&CircuitBreaker::default())),
            Some(BreakerConfig {
                failure_threshold: 5,
                reset_timeout: Duration::from_secs(30),
                half_open_max_requests: 1,
                success_threshold: 2,
            })
        );
    }
}
