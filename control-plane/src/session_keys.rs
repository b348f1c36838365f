//! The fleet's session token keys: generated here, kept in the store, rotated on a
//! schedule and shipped with every snapshot, so that any data plane can open the
//! `Mcp-Session-Id` tokens any other one sealed.
//!
//! Schedule: a new key is generated every `rotation`. It is shipped at once but only seals
//! from `activates_at` on, a short lead later, so every connected data plane holds it before
//! any of them hands out a token under it. A key keeps opening tokens for `max_age` after
//! the next key took over (no token it sealed can be younger than that), and is deleted at
//! the first rotation after that. A rotation does not create a config version: the current
//! version is sent again with the new keys.

use std::time::Duration;

use conduit_proto::v1 as pb;
use conduit_signing::session_keys::KeyLine;

use crate::store::{SessionKeyRow, Store, StoreError};

/// Default interval between two keys.
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(24 * 3600);
/// Default lifetime of a session token, and how long a replaced key keeps opening tokens.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest lead between shipping a key and sealing with it: far more than a snapshot
/// needs to reach a connected fleet.
const MAX_LEAD: Duration = Duration::from_secs(60);

/// How keys are rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    pub rotation: Duration,
    pub max_age: Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        KeyPolicy {
            rotation: DEFAULT_ROTATION,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

impl KeyPolicy {
    /// Seconds between shipping a new key and sealing with it.
    fn lead_secs(&self) -> i64 {
        secs((self.rotation / 2).min(MAX_LEAD))
    }
}

/// The keys in use, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeySet {
    pub keys: Vec<SessionKeyRow>,
    pub max_age: Duration,
}

impl SessionKeySet {
    /// Id of the newest key; it names the set (data planes report it in Hello).
    pub fn newest_id(&self) -> &str {
        self.keys.first().map_or("", |key| key.id.as_str())
    }

    /// The set as sent with snapshot `version`, signed with `dp_token` when there is one.
    pub fn to_proto(&self, version: u64, dp_token: Option<&str>) -> pb::SessionKeySet {
        pb::SessionKeySet {
            keys: self
                .keys
                .iter()
                .map(|key| pb::SessionKey {
                    id: key.id.clone(),
                    key: key.key.to_vec(),
                    created_at: key.created_at,
                    activates_at: key.activates_at,
                })
                .collect(),
            max_age_seconds: self.max_age.as_secs(),
            signature: dp_token
                .map(|token| sign(token, version, self))
                .unwrap_or_default(),
        }
    }
}

/// Bring the stored keys up to date at `now` (Unix seconds): a first key, or a new one
/// when the newest is `rotation` old; keys past their grace period deleted. Returns the
/// set and whether it changed.
pub fn refresh(
    store: &Store,
    policy: &KeyPolicy,
    now: i64,
) -> Result<(SessionKeySet, bool), StoreError> {
    let stored = store.load_session_keys()?;
    let (add, retire) = plan(&stored, policy, now);
    let changed = add.is_some() || !retire.is_empty();
    if changed {
        store.rotate_session_keys(add.as_ref(), &retire)?;
    }
    let keys = if changed {
        store.load_session_keys()?
    } else {
        stored
    };
    Ok((
        SessionKeySet {
            keys,
            max_age: policy.max_age,
        },
        changed,
    ))
}

/// What a rotation at `now` does to `keys` (newest first): the key to add, the ids to drop.
fn plan(
    keys: &[SessionKeyRow],
    policy: &KeyPolicy,
    now: i64,
) -> (Option<SessionKeyRow>, Vec<String>) {
    let add = match keys.first() {
        // Nobody holds a token yet: the first key seals at once.
        None => Some(generate(now, now)),
        Some(newest) if now >= newest.created_at + secs(policy.rotation) => {
            Some(generate(now, now + policy.lead_secs()))
        }
        Some(_) => None,
    };
    let retire = keys
        .windows(2)
        .filter(|pair| now - pair[0].activates_at > secs(policy.max_age))
        .map(|pair| pair[1].id.clone())
        .collect();
    (add, retire)
}

/// Time until the next rotation of `set` is due.
pub fn until_due(set: &SessionKeySet, policy: &KeyPolicy, now: i64) -> Duration {
    let due = set
        .keys
        .first()
        .map_or(now, |newest| newest.created_at + secs(policy.rotation));
    Duration::from_secs(u64::try_from(due - now).unwrap_or(0))
}

/// The hex signature of `set` shipped with snapshot `version` (format:
/// `conduit_signing::session_keys`).
fn sign(token: &str, version: u64, set: &SessionKeySet) -> String {
    let keys = set.keys.iter().map(|key| KeyLine {
        id: &key.id,
        key: &key.key,
        created_at: key.created_at,
        activates_at: key.activates_at,
    });
    conduit_signing::session_keys::sign(token, version, set.max_age.as_secs(), keys)
}

fn generate(created_at: i64, activates_at: i64) -> SessionKeyRow {
    SessionKeyRow {
        // 48 random bits: ids only need to be unique among the few keys alive at once.
        id: format!("{:012x}", rand::random::<u64>() >> 16),
        key: rand::random(),
        created_at,
        activates_at,
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;

    fn policy() -> KeyPolicy {
        KeyPolicy {
            rotation: Duration::from_secs(24 * HOUR),
            max_age: Duration::from_secs(48 * HOUR),
        }
    }

    fn h(hours: i64) -> i64 {
        1_700_000_000 + hours * 3600
    }

    #[test]
    fn the_first_key_seals_at_once_later_ones_after_a_lead() {
        let (first, retire) = plan(&[], &policy(), h(0));
        let first = first.unwrap();
        assert!(retire.is_empty());
        assert_eq!((first.created_at, first.activates_at), (h(0), h(0)));
        assert_eq!(first.id.len(), 12);

        // Not due yet.
        assert_eq!(
            plan(std::slice::from_ref(&first), &policy(), h(23)),
            (None, vec![])
        );
        let (second, _) = plan(std::slice::from_ref(&first), &policy(), h(24));
        let second = second.unwrap();
        assert_eq!(second.activates_at, h(24) + 60);
        assert_ne!(second.id, first.id);
        assert_ne!(second.key, first.key);
        // A short rotation gets a proportionally short lead.
        let quick = KeyPolicy {
            rotation: Duration::from_secs(4),
            max_age: Duration::from_secs(60),
        };
        assert_eq!(quick.lead_secs(), 2);
    }

    #[test]
    fn a_replaced_key_lives_for_the_max_age_then_goes() {
        let key = |id: &str, created: i64| SessionKeyRow {
            id: id.into(),
            key: [0; 32],
            created_at: created,
            activates_at: created + 60,
        };
        let keys = [key("c", h(48)), key("b", h(24)), key("a", h(0))];
        // "a" was replaced when "b" activated (h(24) + 60 s); it goes after h(72) + 60 s.
        assert_eq!(plan(&keys, &policy(), h(72) + 60).1, Vec::<String>::new());
        assert_eq!(plan(&keys, &policy(), h(72) + 61).1, ["a"]);
        assert_eq!(plan(&keys, &policy(), h(96) + 61).1, ["b", "a"]);
    }

    #[test]
    fn refresh_persists_and_reports_changes() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        let (set, changed) = refresh(&store, &policy(), h(0)).unwrap();
        assert!(changed);
        assert_eq!(set.keys.len(), 1);
        let (same, changed) = refresh(&store, &policy(), h(1)).unwrap();
        assert!(!changed);
        assert_eq!(same, set);
        assert_eq!(
            until_due(&same, &policy(), h(1)),
            Duration::from_secs(23 * HOUR)
        );
        let (rotated, changed) = refresh(&store, &policy(), h(25)).unwrap();
        assert!(changed);
        assert_eq!(rotated.keys.len(), 2);
        assert_eq!(rotated.keys[1], set.keys[0]);
        assert_eq!(until_due(&rotated, &policy(), h(50)), Duration::ZERO);
    }

    #[test]
    fn the_signature_matches_the_data_planes() {
        let set = SessionKeySet {
            keys: vec![
                SessionKeyRow {
                    id: "k2".into(),
                    key: [2; 32],
                    created_at: 1_700_000_100,
                    activates_at: 1_700_000_160,
                },
                SessionKeyRow {
                    id: "k1".into(),
                    key: [1; 32],
                    created_at: 1_700_000_000,
                    activates_at: 1_700_000_000,
                },
            ],
            max_age: Duration::from_secs(604_800),
        };
        // The vector the data plane's `snapshot` tests check too (computed with Python).
        let proto = set.to_proto(4, Some("dp-token"));
        assert_eq!(
            proto.signature,
            "f56db5560a275a12c86ec98dafa514b098ce0473fd94e3e06c3fcdbbb99288a4"
        );
        assert_eq!(proto.keys[0].key, vec![2; 32]);
        assert_eq!(set.to_proto(4, None).signature, "");
    }
}
