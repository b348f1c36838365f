//! The identities of the records stored last, in memory, so that ingest can tell a resent
//! record from a new one without an index on disk.
//!
//! A record is the same record when its time and id are ([`Key`]). The set holds the keys of
//! the latest commits, up to [`CAPACITY`] keys; older commits are forgotten whole, and the
//! time ranges of what was forgotten are kept (merged, [`Forgotten`]). A record whose time
//! lies in no forgotten range can only be stored among the remembered commits, so the set
//! answers alone; one inside a forgotten range (a data plane resending after a long break,
//! the end of a long event stream, the first records after a restart) is looked up in the
//! segments of its time (`AuditDb`, through their filters). Ranges rather than one horizon:
//! a data plane whose clock runs ahead would otherwise push the horizon past every other
//! data plane's records and send all of them to disk.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};

use super::segment::{Key, MAX_SPAN_MS};

/// A set of record keys with [`KeyHashing`].
pub type KeySet = HashSet<Key, KeyHashing>;

/// Keys remembered at most (about 40 bytes each, with the set's own overhead).
pub const CAPACITY: usize = 1 << 19;

/// Forgotten ranges kept at most; past that the oldest two are merged.
const MAX_RANGES: usize = 4096;

/// Recently stored record keys.
#[derive(Debug)]
pub struct Recent {
    keys: KeySet,
    /// The keys of each remembered commit, oldest first, with its time range.
    commits: VecDeque<((i64, i64), Vec<Key>)>,
    /// Where records may be stored without being remembered here.
    forgotten: Forgotten,
}

/// Disjoint time ranges (ms, both ends included), by start; ranges closer than a segment's
/// span are merged.
#[derive(Debug, Default)]
pub struct Forgotten {
    ranges: BTreeMap<i64, i64>,
}

impl Forgotten {
    /// Whether `time_ms` lies in a range.
    pub fn holds(&self, time_ms: i64) -> bool {
        self.ranges
            .range(..=time_ms)
            .next_back()
            .is_some_and(|(_, end)| time_ms <= *end)
    }

    /// Add the range `start..=end`.
    pub fn add(&mut self, start: i64, end: i64) {
        let (mut start, mut end) = (start.min(end), start.max(end));
        let near: Vec<i64> = self
            .ranges
            .range(..=end.saturating_add(MAX_SPAN_MS))
            .rev()
            .take_while(|(_, other_end)| **other_end >= start.saturating_sub(MAX_SPAN_MS))
            .map(|(other_start, _)| *other_start)
            .collect();
        for other_start in near {
            if let Some(other_end) = self.ranges.remove(&other_start) {
                start = start.min(other_start);
                end = end.max(other_end);
            }
        }
        self.ranges.insert(start, end);
        while self.ranges.len() > MAX_RANGES {
            let (Some((first, _)), Some((_, second_end))) =
                (self.ranges.pop_first(), self.ranges.pop_first())
            else {
                break;
            };
            self.ranges.insert(first, second_end);
        }
    }
}

impl Recent {
    /// Nothing remembered; records in `forgotten` may be stored already.
    pub fn new(forgotten: Forgotten) -> Self {
        Self {
            keys: KeySet::default(),
            commits: VecDeque::new(),
            forgotten,
        }
    }

    /// Whether `key` is known to be stored.
    pub fn contains(&self, key: &Key) -> bool {
        self.keys.contains(key)
    }

    /// Whether a record at `time_ms` that is not in the set is certainly not stored.
    pub fn knows(&self, time_ms: i64) -> bool {
        !self.forgotten.holds(time_ms)
    }

    /// Remember the keys of one commit (after it committed).
    pub fn remember(&mut self, keys: Vec<Key>) {
        let Some(oldest) = keys.iter().map(|(time, _)| *time).min() else {
            return;
        };
        let newest = keys.iter().map(|(time, _)| *time).max().unwrap_or(oldest);
        self.keys.extend(keys.iter().copied());
        self.commits.push_back(((oldest, newest), keys));
        while self.keys.len() > CAPACITY {
            let Some(((oldest, newest), keys)) = self.commits.pop_front() else {
                break;
            };
            for key in &keys {
                self.keys.remove(key);
            }
            self.forgotten.add(oldest, newest);
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
        let mut stored = Forgotten::default();
        stored.add(i64::MIN, 100);
        let mut recent = Recent::new(stored);
        assert!(!recent.knows(100));
        assert!(recent.knows(101));
        recent.remember(vec![(20_000, 1), (15_000, 2)]);
        assert!(recent.contains(&(20_000, 1)));
        assert!(
            !recent.contains(&(20_001, 1)),
            "the time is part of the identity"
        );
        // Fill past the capacity: the first commit is forgotten, its time range kept.
        let many: Vec<Key> = (0..CAPACITY as u128).map(|n| (120, n + 10)).collect();
        recent.remember(many);
        assert!(!recent.contains(&(20_000, 1)));
        assert!(!recent.knows(15_000));
        assert!(!recent.knows(20_000));
        assert!(recent.knows(20_001));
        assert!(recent.knows(5_000), "between the forgotten ranges");
        assert!(recent.contains(&(120, 10)));
    }

    #[test]
    fn forgotten_ranges_merge_when_close_and_stay_bounded() {
        let mut forgotten = Forgotten::default();
        forgotten.add(10_000, 11_000);
        forgotten.add(50_000, 50_000);
        forgotten.add(11_500, 12_000);
        assert_eq!(forgotten.ranges.len(), 2);
        assert!(
            forgotten.holds(11_200),
            "merged across a gap under a second"
        );
        assert!(!forgotten.holds(30_000));
        forgotten.add(12_000, 49_500);
        assert_eq!(forgotten.ranges.len(), 1);
        assert!(forgotten.holds(30_000));
        let mut many = Forgotten::default();
        for n in 0..(MAX_RANGES as i64 + 10) {
            many.add(n * 10_000, n * 10_000);
        }
        assert_eq!(many.ranges.len(), MAX_RANGES);
        assert!(many.holds(0) && many.holds(55_000), "the oldest merged");
        assert!(!many.holds(MAX_RANGES as i64 * 10_000 - 5_000));
    }

    #[test]
    fn forgets_what_retention_deleted() {
        let mut recent = Recent::new(Forgotten::default());
        recent.remember(vec![(5, 1), (50, 2)]);
        recent.forget_before(10);
        assert!(!recent.contains(&(5, 1)));
        assert!(recent.contains(&(50, 2)));
        assert!(recent.knows(5), "a purged record is not stored");
    }
}
