//! Which member is working on which client request, so `notifications/cancelled` reaches
//! the member that has the request instead of every member. Entries live exactly as long as
//! the routed exchange (a guard removes them when its answer ends or is dropped). The table
//! is per process: a cancellation arriving at another replica falls back to a fan-out, which
//! is harmless (a member ignores a cancellation for a request it does not know).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

/// A client request: its session token and its id (as JSON text).
type Key = (String, String);

/// Requests in flight on routed aggregate calls.
#[derive(Debug, Default, Clone)]
pub(super) struct InFlight {
    table: Arc<Mutex<HashMap<Key, String>>>,
}

/// Removes its entry when dropped.
#[derive(Debug)]
pub(super) struct Tracked {
    table: Arc<Mutex<HashMap<Key, String>>>,
    key: Key,
}

impl InFlight {
    fn lock(table: &Mutex<HashMap<Key, String>>) -> MutexGuard<'_, HashMap<Key, String>> {
        table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Record that `member` works on request `id` of session `token`.
    pub(super) fn track(&self, token: &str, id: &Value, member: &str) -> Tracked {
        let key = (token.to_owned(), id.to_string());
        Self::lock(&self.table).insert(key.clone(), member.to_owned());
        Tracked {
            table: Arc::clone(&self.table),
            key,
        }
    }

    /// The member working on request `id` of session `token`, if it is in flight here.
    pub(super) fn member_of(&self, token: &str, id: &Value) -> Option<String> {
        Self::lock(&self.table)
            .get(&(token.to_owned(), id.to_string()))
            .cloned()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        InFlight::lock(&self.table).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn entries_last_as_long_as_their_guard() {
        let inflight = InFlight::default();
        let guard = inflight.track("session-a", &json!(7), "beta");
        assert_eq!(
            inflight.member_of("session-a", &json!(7)),
            Some("beta".into())
        );
        // Another session's request 7, and the string id "7", are other requests.
        assert_eq!(inflight.member_of("session-b", &json!(7)), None);
        assert_eq!(inflight.member_of("session-a", &json!("7")), None);
        drop(guard);
        assert_eq!(inflight.member_of("session-a", &json!(7)), None);
    }
}
