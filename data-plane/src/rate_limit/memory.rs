//! `backend: memory`: the counters of one data plane, in its memory.
//!
//! Each counter (bucket key, window) is a log of the instants of the requests it admitted
//! within the window, so it costs one timestamp per counted request (at most its limit).
//! One mutex guards all counters: a request checks and counts all of its counters under
//! one lock, which is never held across an `.await`. Time is `tokio::time::Instant`, so
//! tests run on paused time.
//!
//! The number of counters is bounded ([`DEFAULT_BUCKET_CAPACITY`]). When a request needs a
//! new counter and the store is full, counters whose logs are empty (idle for a whole
//! window) are dropped first; if that is not enough, the least recently used counters are
//! dropped until the store is at 90 % of its capacity. A dropped counter forgets what it
//! counted, so under a flood of distinct client ids the coldest clients' counts are lost
//! first (the counters of the request being admitted are never dropped).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use tokio::time::Instant;

use super::{Check, Refusal, Window};

/// Counters kept at most, unless configured otherwise.
pub const DEFAULT_BUCKET_CAPACITY: usize = 100_000;

/// The counters of one data plane.
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    counters: Mutex<HashMap<(String, Window), Log>>,
}

/// The admitted requests of one counter still within its window, oldest first.
#[derive(Debug, Default)]
struct Log {
    admitted: VecDeque<Instant>,
    last_used: Option<Instant>,
}

impl Log {
    /// Forget the requests that left the window: one admitted at `t` counts while
    /// `now < t + window`.
    fn prune(&mut self, window: Window, now: Instant) {
        let length = window.duration();
        while self
            .admitted
            .front()
            .is_some_and(|&oldest| oldest + length <= now)
        {
            self.admitted.pop_front();
        }
    }

    /// How long until this counter admits again, if it is full under `limit`.
    fn wait(&self, window: Window, limit: u64, now: Instant) -> Option<std::time::Duration> {
        let count = self.admitted.len() as u64;
        if count < limit {
            return None;
        }
        if count == 0 {
            // A limit of 0 (refused by validation) admits nothing.
            return Some(window.duration());
        }
        // Room appears when count drops below the limit: when the (count - limit + 1)-th
        // oldest leaves (the oldest, unless a lowered limit left the log over-full).
        let leaving = self.admitted[(count - limit) as usize];
        Some((leaving + window.duration()).saturating_duration_since(now))
    }
}

impl MemoryStore {
    /// A store of at most `capacity` counters (at least 1).
    pub fn new(capacity: usize) -> MemoryStore {
        MemoryStore {
            capacity: capacity.max(1),
            counters: Mutex::default(),
        }
    }

    /// How many counters are kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Window), Log>> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Count the request in every counter of `checks` if each has room, else in none and
    /// name the counter that has room again last.
    pub(crate) fn check_and_consume(&self, checks: &[Check], now: Instant) -> Result<(), Refusal> {
        let mut counters = self.lock();
        let mut refusal: Option<Refusal> = None;
        let mut missing = 0;
        for (index, check) in checks.iter().enumerate() {
            // A lookup by (&str, Window) would need a borrowed key type; the clone is
            // cheaper than the hashing work either way.
            let Some(log) = counters.get_mut(&(check.key.clone(), check.window)) else {
                missing += 1;
                continue;
            };
            log.prune(check.window, now);
            if let Some(wait) = log.wait(check.window, check.limit, now)
                && refusal.is_none_or(|r| wait > r.wait)
            {
                refusal = Some(Refusal { index, wait });
            }
        }
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        if counters.len() + missing > self.capacity {
            let keep: HashSet<(&str, Window)> =
                checks.iter().map(|c| (c.key.as_str(), c.window)).collect();
            evict(&mut counters, self.capacity, missing, &keep, now);
        }
        for check in checks {
            let log = counters
                .entry((check.key.clone(), check.window))
                .or_default();
            log.admitted.push_back(now);
            log.last_used = Some(now);
        }
        Ok(())
    }
}

/// Make room for `needed` new counters (see the module doc), never dropping one in `keep`.
fn evict(
    counters: &mut HashMap<(String, Window), Log>,
    capacity: usize,
    needed: usize,
    keep: &HashSet<(&str, Window)>,
    now: Instant,
) {
    let kept = |key: &(String, Window)| keep.contains(&(key.0.as_str(), key.1));
    counters.retain(|key, log| {
        log.prune(key.1, now);
        !log.admitted.is_empty() || kept(key)
    });
    if counters.len() + needed <= capacity {
        return;
    }
    let target = (capacity - capacity / 10).min(capacity.saturating_sub(needed));
    let mut by_age: Vec<(Option<Instant>, (String, Window))> = counters
        .iter()
        .filter(|(key, _)| !kept(key))
        .map(|(key, log)| (log.last_used, key.clone()))
        .collect();
    by_age.sort_unstable_by_key(|(last_used, _)| *last_used);
    let excess = counters.len().saturating_sub(target);
    for (_, key) in by_age.into_iter().take(excess) {
        counters.remove(&key);
    }
}
