//! The identities of the records stored last, in memory, so that ingest can tell a resent
//! record from a new one without an index on disk.
//!
//! A record is the same record when its time and id are ([`Key`]). The set holds the keys of
//! the latest commits, up to [`CAPACITY`] keys; older commits are forgotten whole, and the
//! newest record time among what was forgotten is kept. A record newer than that can only be
//! stored among the remembered commits, so the set answers alone; an older one (a data plane
//! resending after a long break, or the first records after a restart) is looked up in the
//! segments of its time (`AuditDb`, through their filters).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};

use super::segment::Key;

/// A set of record keys with [`KeyHashing`].
pub type KeySet = HashSet<Key, KeyHashing>;

/// Keys remembered at most (about 40 bytes each, with the set's own overhead).
pub const CAPACITY: usize = 1 << 19;

/// Recently stored record keys.
#[derive(Debug)]
pub struct Recent {
    keys: KeySet,
    /// The keys of each remembered commit, oldest first, with its newest record time.
    commits: VecDeque<(i64, Vec<Key>)>,
    /// The newest record time that may be stored without being remembered here.
    forgotten_until_ms: i64,
}

impl Recent {
    /// Nothing remembered; records at or before `stored_until_ms` may be stored already.
    pub fn new(stored_until_ms: i64) -> Self {
        Self {
            keys: KeySet::default(),
            commits: VecDeque::new(),
            forgotten_until_ms: stored_until_ms,
        }
    }

    /// Whether `key` is known to be stored.
    pub fn contains(&self, key: &Key) -> bool {
        self.keys.contains(key)
    }

    /// Whether a record at `time_ms` that is not in the set is certainly not stored.
    pub fn knows(&self, time_ms: i64) -> bool {
        time_ms > self.forgotten_until_ms
    }

    /// Remember the keys of one commit (after it committed).
    pub fn remember(&mut self, keys: Vec<Key>) {
        let Some(newest) = keys.iter().map(|(time, _)| *time).max() else {
            return;
        };
        self.keys.extend(keys.iter().copied());
        self.commits.push_back((newest, keys));
        while self.keys.len() > CAPACITY {
            let Some((newest, keys)) = self.commits.pop_front() else {
                break;
            };
            for key in &keys {
                self.keys.remove(key);
            }
            self.forgotten_until_ms = self.forgotten_until_ms.max(newest);
        }
    }

    /// Forget the keys of records before `cutoff_ms` (retention deleted them: storing one
    /// again is storing a new record, as it always was).
    pub fn forget_before(&mut self, cutoff_ms: i64) {
        let keys = &mut self.keys;
        for (_, commit) in &mut self.commits {
            commit.retain(|key| {
                let keep = key.0 >= cutoff_ms;
                if !keep {
                    keys.remove(key);
                }
                keep
            });
        }
        self.commits.retain(|(_, commit)| !commit.is_empty());
    }
}

/// Hashing of record keys: a few multiplications per key instead of SipHash (the set is
/// probed several times per stored record). Ids are random, and the seed is random per
/// process, so a data plane cannot choose ids that collide.
#[derive(Debug, Clone, Copy)]
pub struct KeyHashing {
    seed: u64,
}

impl Default for KeyHashing {
    fn default() -> Self {
        Self {
            seed: rand::random(),
        }
    }
}

impl BuildHasher for KeyHashing {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.seed)
    }
}

/// See [`KeyHashing`].
#[derive(Debug)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        // One round of a folded multiply (the high and low halves of the 128-bit product).
        let product = u128::from(self.0 ^ word) * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn write_i64(&mut self, word: i64) {
        self.write_u64(word as u64);
    }

    fn write_u128(&mut self, word: u128) {
        self.write_u64(word as u64);
        self.write_u64((word >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        let product = u128::from(self.0) * 0xbf58_476d_1ce4_e5b9_u128;
        (product as u64) ^ ((product >> 64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_latest_commits_and_what_it_forgot() {
        let mut recent = Recent::new(100);
        assert!(!recent.knows(100));
        assert!(recent.knows(101));
        recent.remember(vec![(200, 1), (150, 2)]);
        assert!(recent.contains(&(200, 1)));
        assert!(
            !recent.contains(&(201, 1)),
            "the time is part of the identity"
        );
        // Fill past the capacity: the first commit is forgotten, its newest time kept.
        let many: Vec<Key> = (0..CAPACITY as u128).map(|n| (120, n + 10)).collect();
        recent.remember(many);
        assert!(!recent.contains(&(200, 1)));
        assert!(!recent.knows(200));
        assert!(recent.knows(201));
        assert!(recent.contains(&(120, 10)));
    }

    #[test]
    fn forgets_what_retention_deleted() {
        let mut recent = Recent::new(i64::MIN);
        recent.remember(vec![(5, 1), (50, 2)]);
        recent.forget_before(10);
        assert!(!recent.contains(&(5, 1)));
        assert!(recent.contains(&(50, 2)));
        assert!(recent.knows(5), "a purged record is not stored");
    }
}
