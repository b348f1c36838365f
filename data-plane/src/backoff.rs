//! Jittered exponential backoff for reconnecting the config stream.
//!
//! The ceiling doubles from `min` up to `max` with every consecutive failure; the actual
//! delay is drawn uniformly from the upper half of the ceiling, so a fleet that lost its
//! control plane at the same moment does not reconnect in lockstep, while every delay
//! still grows.

use std::time::Duration;

use rand::Rng;

/// Default first delay.
pub const DEFAULT_MIN: Duration = Duration::from_millis(100);
/// Default cap.
pub const DEFAULT_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backoff: {0}")]
pub struct InvalidBackoff(&'static str);

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// Consecutive failures since the last reset.
    failures: u32,
}

impl Backoff {
    pub fn try_new(min: Duration, max: Duration) -> Result<Backoff, InvalidBackoff> {
        if min.is_zero() {
            return Err(InvalidBackoff("min must be positive"));
        }
        if min > max {
            return Err(InvalidBackoff("min must not exceed max"));
        }
        Ok(Backoff {
            min,
            max,
            failures: 0,
        })
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// The ceiling for the next delay, before jitter.
    pub fn ceiling(&self) -> Duration {
        // 2^20 × 100 ms is far beyond any sane cap; stop doubling there to avoid overflow.
        let factor = 1u32 << self.failures.min(20);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        jittered(ceiling)
    }

    /// Forget past failures (the stream worked again).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::try_new(DEFAULT_MIN, DEFAULT_MAX).expect("defaults are valid")
    }
}

/// A delay drawn uniformly from `[ceiling / 2, ceiling]`.
pub fn jittered(ceiling: Duration) -> Duration {
    let half = ceiling / 2;
    let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rand::rng().random_range(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_bounds_and_caps() {
        let mut backoff =
            Backoff::try_new(Duration::from_millis(100), Duration::from_secs(30)).expect("valid");
        let mut ceiling = Duration::from_millis(100);
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            ceiling = (ceiling * 2).min(Duration::from_secs(30));
        }
        assert_eq!(backoff.ceiling(), Duration::from_secs(30));
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.next_delay();
        }
        assert_eq!(backoff.ceiling(), Duration::from_millis(3200));
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(100));
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(Backoff::try_new(Duration::ZERO, Duration::from_secs(1)).is_err());
        assert!(Backoff::try_new(Duration::from_secs(2), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn never_overflows() {
        let mut backoff = Backoff::try_new(Duration::from_secs(1), Duration::MAX).expect("valid");
        for _ in 0..100 {
            backoff.next_delay();
        }
        assert!(backoff.ceiling() >= Duration::from_secs(1 << 20));
    }
}
