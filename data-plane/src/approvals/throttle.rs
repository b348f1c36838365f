//! The per-client rate of new approval requests (`governance.approvals.requests_per_minute`)
//! on this data plane: a token bucket per client (and tenant) holding at most the limit,
//! refilled at the limit per minute. A call held for approval that finds its client's
//! bucket empty is refused with −32029 and no request is made, so one client cannot fill
//! the control plane's queue of pending requests (the control plane bounds that queue too,
//! per client and per data plane).
//!
//! Only new requests take a token; a retry carrying an approval id does not. Time is
//! tokio's clock, so tests can pause it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Clients tracked at most; beyond that, buckets that are full again are forgotten first.
pub(crate) const MAX_CLIENTS: usize = 10_000;
/// The refill period of `requests_per_minute`.
const PERIOD: Duration = Duration::from_secs(60);

/// One client's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens at `at`.
    tokens: f64,
    at: Instant,
}

/// A refused request: seconds until the client's bucket holds a token again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttled {
    pub retry_after_secs: u64,
}

/// The buckets of every client.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl Throttle {
    /// Take a token for a new request of `client_id` in `tenant_id`, with `per_minute`
    /// requests a minute allowed.
    pub(crate) fn take(
        &self,
        tenant_id: &str,
        client_id: &str,
        per_minute: u32,
    ) -> Result<(), Throttled> {
        let limit = f64::from(per_minute.max(1));
        let rate = limit / PERIOD.as_secs_f64();
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (tenant_id.to_owned(), client_id.to_owned());
        if !buckets.contains_key(&key) && buckets.len() >= MAX_CLIENTS {
            // A bucket that has refilled completely says nothing a new one would not.
            buckets.retain(|_, bucket| refilled(bucket, now, rate, limit) < limit);
            if buckets.len() >= MAX_CLIENTS {
                tracing::warn!(
                    clients = buckets.len(),
                    "too many clients are making approval requests; refusing a new one"
                );
                return Err(Throttled {
                    retry_after_secs: PERIOD.as_secs(),
                });
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: limit,
            at: now,
        });
        let tokens = refilled(bucket, now, rate, limit);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            return Ok(());
        }
        *bucket = Bucket { tokens, at: now };
        let wait = (1.0 - tokens) / rate;
        Err(Throttled {
            retry_after_secs: (wait.ceil() as u64).max(1),
        })
    }
}

/// The tokens `bucket` holds at `now`.
fn refilled(bucket: &Bucket, now: Instant, rate: f64, limit: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate).min(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_the_limit_then_the_limit_per_minute() {
        let throttle = Throttle::default();
        for _ in 0..3 {
            throttle.take("acme", "agent", 3).expect("within the burst");
        }
        let refused = throttle.take("acme", "agent", 3).unwrap_err();
        assert_eq!(refused.retry_after_secs, 20);
        // Others are not affected: another client, the same client in another tenant.
        throttle.take("acme", "other", 3).unwrap();
        throttle.take("beta", "agent", 3).unwrap();
        tokio::time::advance(Duration::from_secs(19)).await;
        assert!(throttle.take("acme", "agent", 3).is_err());
        tokio::time::advance(Duration::from_secs(2)).await;
        throttle.take("acme", "agent", 3).expect("a token refilled");
        assert!(throttle.take("acme", "agent", 3).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_client_table_is_bounded() {
        let throttle = Throttle::default();
        for n in 0..MAX_CLIENTS {
            throttle.take("t", &n.to_string(), 1).unwrap();
        }
        assert!(throttle.take("t", "one-more", 1).is_err(), "all are busy");
        tokio::time::advance(PERIOD).await;
        throttle
            .take("t", "one-more", 1)
            .expect("refilled buckets are forgotten");
        assert_eq!(throttle.buckets.lock().unwrap().len(), 1);
    }
}
