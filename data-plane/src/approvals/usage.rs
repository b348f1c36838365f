//! How many calls this data plane let through with each grant, so that a grant allows at
//! most `max_uses` calls.
//!
//! The grant set carries the uses the control plane has counted per data plane. This data
//! plane's own count is the larger of that figure for its node id (which survives a
//! restart) and what it counted itself (which is ahead of the control plane until its
//! report arrives). A call is let through while that count plus the other data planes'
//! counted uses is below `max_uses`; check and increment happen under one lock, so
//! concurrent retries on one data plane never exceed the limit. Uses on other data planes
//! that the control plane has not yet counted are not seen: fleet-wide, a grant allows at
//! most `max_uses` calls per data plane until the control plane's next grant set (with the
//! counted uses, or without the used-up grant) reaches it.

use std::collections::HashMap;
use std::sync::Mutex;

use super::grants::{Grant, GrantTable};

/// A grant that has no use left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UsedUp {
    pub max_uses: u32,
}

/// Uses per grant id on this data plane.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    counts: Mutex<HashMap<String, u32>>,
}

impl Usage {
    /// Take one use of grant `id` as data plane `node_id`; returns this data plane's count
    /// afterwards (what it reports to the control plane).
    pub(crate) fn consume(&self, id: &str, grant: &Grant, node_id: &str) -> Result<u32, UsedUp> {
        let (counted_mine, others) = grant.counted(node_id);
        let mut counts = self.lock();
        let mine = counts.get(id).copied().unwrap_or(0).max(counted_mine);
        if others.saturating_add(mine) >= grant.max_uses {
            return Err(UsedUp {
                max_uses: grant.max_uses,
            });
        }
        let count = mine + 1;
        counts.insert(id.to_owned(), count);
        Ok(count)
    }

    /// Forget grants that are no longer in `table` (used up or expired: they cannot come
    /// back, ids are never reused).
    pub(crate) fn retain(&self, table: &GrantTable) {
        self.lock().retain(|id, _| table.contains(id));
    }

    /// Every grant's count on this data plane, to report again on a new stream.
    pub(crate) fn counts(&self) -> Vec<(String, u32)> {
        self.lock()
            .iter()
            .map(|(id, count)| (id.clone(), *count))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // Plain map operations only; a panic cannot leave it torn.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(max_uses: u32, uses: &[(&str, u32)]) -> Grant {
        Grant {
            client_id: "agent".into(),
            tenant_id: "acme".into(),
            server_id: "files".into(),
            tool: "delete".into(),
            fingerprint: "ab".repeat(32),
            expires_at: 1_000,
            max_uses,
            uses: uses
                .iter()
                .map(|(node, count)| ((*node).to_owned(), *count))
                .collect(),
        }
    }

    #[test]
    fn at_most_max_uses_counting_what_the_control_plane_saw() {
        let usage = Usage::default();
        let once = grant(1, &[]);
        assert_eq!(usage.consume("apr_1", &once, "dp-1"), Ok(1));
        assert_eq!(
            usage.consume("apr_1", &once, "dp-1"),
            Err(UsedUp { max_uses: 1 })
        );

        // Three uses: one already counted on dp-2, one on this node before a restart.
        let three = grant(3, &[("dp-2", 1), ("dp-1", 1)]);
        assert_eq!(usage.consume("apr_3", &three, "dp-1"), Ok(2));
        assert!(usage.consume("apr_3", &three, "dp-1").is_err());
        // The control plane's figure for this node lags behind the local one: no double count.
        let later = grant(3, &[("dp-2", 1), ("dp-1", 2)]);
        assert!(usage.consume("apr_3", &later, "dp-1").is_err());
        let mut counts = usage.counts();
        counts.sort();
        assert_eq!(counts, [("apr_1".to_owned(), 1), ("apr_3".to_owned(), 2)]);
        usage.retain(&GrantTable::default());
        assert!(usage.counts().is_empty());
    }

    #[test]
    fn concurrent_uses_never_exceed_the_limit() {
        let usage = std::sync::Arc::new(Usage::default());
        let five = grant(5, &[]);
        let allowed: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let usage = &usage;
                    let five = &five;
                    scope.spawn(move || usage.consume("apr_5", five, "dp-1").is_ok())
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| usize::from(handle.join().unwrap()))
                .sum()
        });
        assert_eq!(allowed, 5);
    }
}
