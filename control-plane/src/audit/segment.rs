//! Segments: how audit records are laid out in `audit.db`. Each row of `audit_records` holds
//! one segment, the records one commit stored (up to [`MAX_RECORDS`], spanning at most
//! [`MAX_SPAN_MS`]), sorted by time (arrival order among equal times), encoded with prost as
//! the `records` of an `AuditBatch`. Beside them the row keeps the segment's time range, its
//! record count and a Bloom filter of the values queries look for (record ids, trace ids,
//! servers, clients, targets, statuses).
//!
//! A commit therefore writes one row whose pages follow each other, instead of one row and
//! five index entries per record on pages spread over the whole file (random ids, times
//! spread over a second). Queries read the segments whose time range and filter can match
//! and decode them; the span bound lets a lookup by time find every segment that can hold a
//! given instant through the index on `max_time_ms` alone.

use conduit_proto::v1 as pb;
use prost::Message as _;

use crate::store::StoreError;

/// Records per segment at most, so a query that needs one record decodes a bounded amount.
pub const MAX_RECORDS: usize = 2048;
/// Time between a segment's first and last record at most (ms): records whose times are
/// further apart go to separate segments, so a segment that can hold a record at `t` has
/// `t <= max_time_ms <= t + MAX_SPAN_MS`, and looking up whether a record is stored reads
/// the segments of about a second around its time. (A data plane's records of the last
/// second fit one segment; stragglers, like the records of long event streams, get small
/// segments of their own.)
pub const MAX_SPAN_MS: i64 = 1_000;

/// Filter bits per distinct key (with [`PROBES`] probes: about 1% false positives).
const BITS_PER_KEY: usize = 10;
const PROBES: u64 = 7;

/// What a filter key names; part of the hashed key so equal strings of two kinds differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Id = b'i',
    Trace = b't',
    Server = b's',
    Client = b'c',
    Target = b'g',
    Status = b'x',
}

/// One segment ready to be stored.
#[derive(Debug)]
pub struct Segment {
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub count: usize,
    pub filter: Vec<u8>,
    pub body: Vec<u8>,
}

/// The identity of a stored record: a resent record is the same record, time included.
pub type Key = (i64, u128);

/// The identity of `record`. Ids are 32 hex digits (checked on ingest); anything else is
/// hashed to 128 bits.
pub fn key(record: &pb::AuditRecord) -> Key {
    let id = u128::from_str_radix(&record.id, 16).unwrap_or_else(|_| {
        let bytes = record.id.as_bytes();
        (u128::from(word_hash(0, bytes)) << 64) | u128::from(word_hash(1, bytes))
    });
    (record.time_unix_ms, id)
}

/// SQLite integers are signed; values past `i64::MAX` cannot be real and are pinned there
/// (as the former per-column schema stored them).
pub fn clamp(record: &mut pb::AuditRecord) {
    let max = i64::MAX as u64;
    record.config_version = record.config_version.min(max);
    record.duration_micros = record.duration_micros.min(max);
    record.response_bytes = record.response_bytes.min(max);
}

/// Cut `records` (in arrival order) into segments, each sorted by time.
pub fn build(mut records: Vec<&pb::AuditRecord>) -> Vec<Segment> {
    // Stable: records of equal time keep their arrival order. References are sorted, not
    // the records (a few hundred bytes each).
    records.sort_by_key(|record| record.time_unix_ms);
    let mut segments = Vec::new();
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let start = first.time_unix_ms;
        let len = rest
            .iter()
            .take(MAX_RECORDS)
            .take_while(|record| record.time_unix_ms.saturating_sub(start) <= MAX_SPAN_MS)
            .count();
        let (chunk, tail) = rest.split_at(len);
        segments.push(encode(chunk));
        rest = tail;
    }
    segments
}

fn encode(records: &[&pb::AuditRecord]) -> Segment {
    let mut hashes = Vec::with_capacity(records.len() * 6);
    // An estimate (a record of the data planes is a few hundred bytes): measuring every
    // record first would walk all its fields once more.
    let mut body = Vec::with_capacity(records.len() * 512);
    for record in records {
        for (kind, value) in [
            (Kind::Id, &record.id),
            (Kind::Trace, &record.trace_id),
            (Kind::Server, &record.server_id),
            (Kind::Client, &record.client_id),
            (Kind::Target, &record.target),
            (Kind::Status, &record.status),
        ] {
            hashes.push(hash(kind, value));
        }
        // Field 2 of `AuditBatch`: the body decodes as a batch with these records.
        prost::encoding::message::encode(2, *record, &mut body);
    }
    // Servers, clients, targets and statuses repeat; each distinct key needs its bits once.
    hashes.sort_unstable();
    hashes.dedup();
    let bits = (hashes.len() * BITS_PER_KEY).max(64).next_multiple_of(8);
    let mut filter = vec![0u8; bits / 8];
    for hash in hashes {
        for bit in probes(hash, bits as u64) {
            filter[bit / 8] |= 1 << (bit % 8);
        }
    }
    Segment {
        min_time_ms: records.first().map_or(0, |r| r.time_unix_ms),
        max_time_ms: records.last().map_or(0, |r| r.time_unix_ms),
        count: records.len(),
        filter,
        body,
    }
}

/// The records of a stored segment body.
pub fn decode(body: &[u8]) -> Result<Vec<pb::AuditRecord>, StoreError> {
    pb::AuditBatch::decode(body)
        .map(|batch| batch.records)
        .map_err(|error| StoreError::Corrupt {
            table: "audit_records",
            detail: format!("segment does not decode: {error}"),
        })
}

/// Whether a segment whose filter is `filter` may hold a record with every one of `keys`
/// (false positives possible, false negatives not).
pub fn may_contain(filter: &[u8], keys: &[u64]) -> bool {
    let bits = filter.len() as u64 * 8;
    if bits == 0 {
        return true;
    }
    keys.iter()
        .all(|&hash| probes(hash, bits).all(|bit| filter[bit / 8] & (1 << (bit % 8)) != 0))
}

/// The filter key of `value` of `kind`.
pub fn hash(kind: Kind, value: &str) -> u64 {
    mix(word_hash(kind as u64, value.as_bytes()))
}

/// Bit positions of `hash` in a filter of `bits` bits (double hashing).
fn probes(hash: u64, bits: u64) -> impl Iterator<Item = usize> {
    let step = mix(hash ^ 0x9e37_79b9_7f4a_7c15) | 1;
    (0..PROBES).map(move |i| (hash.wrapping_add(i.wrapping_mul(step)) % bits) as usize)
}

/// A seeded hash of `bytes`, eight at a time (a folded multiply per word): stable across
/// builds and platforms, as filters are stored on disk.
fn word_hash(seed: u64, bytes: &[u8]) -> u64 {
    let fold = |state: u64, word: u64| {
        let product = u128::from(state ^ word) * 0x9e37_79b9_7f4a_7c15_u128;
        (product as u64) ^ ((product >> 64) as u64)
    };
    let mut state = fold(0xcbf2_9ce4_8422_2325 ^ seed, bytes.len() as u64);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(word);
        state = fold(state, u64::from_le_bytes(buf));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        state = fold(state, u64::from_le_bytes(buf));
    }
    state
}

/// splitmix64's finalizer: spreads the state over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64, time_ms: i64) -> pb::AuditRecord {
        pb::AuditRecord {
            id: format!("{n:032x}"),
            time_unix_ms: time_ms,
            trace_id: format!("trace-{n}"),
            server_id: "files".into(),
            status: "ok".into(),
            ..pb::AuditRecord::default()
        }
    }

    #[test]
    fn segments_are_sorted_bounded_and_decode() {
        let mut records: Vec<_> = (0..5000).map(|n| record(n, 1000 - n as i64 % 7)).collect();
        records.push(record(9999, 1000 + MAX_SPAN_MS + 1));
        let segments = build(records.iter().collect());
        let counts: Vec<_> = segments.iter().map(|s| s.count).collect();
        assert_eq!(counts, [2048, 2048, 904, 1]);
        for segment in &segments {
            let decoded = decode(&segment.body).unwrap();
            assert_eq!(decoded.len(), segment.count);
            assert!(decoded.is_sorted_by_key(|r| r.time_unix_ms));
            assert_eq!(decoded[0].time_unix_ms, segment.min_time_ms);
            assert_eq!(decoded.last().unwrap().time_unix_ms, segment.max_time_ms);
        }
        // Among equal times, arrival order.
        let first = decode(&segments[0].body).unwrap();
        let ids: Vec<_> = first.iter().take(3).map(|r| r.id.clone()).collect();
        assert_eq!(ids, [record(6, 0).id, record(13, 0).id, record(20, 0).id]);
    }

    #[test]
    fn the_filter_has_no_false_negatives_and_few_false_positives() {
        let records: Vec<_> = (0..500).map(|n| record(n, 5)).collect();
        let segment = &build(records.iter().collect())[0];
        for n in 0..500 {
            let keys = [
                hash(Kind::Id, &format!("{n:032x}")),
                hash(Kind::Trace, &format!("trace-{n}")),
                hash(Kind::Server, "files"),
            ];
            assert!(may_contain(&segment.filter, &keys));
        }
        let false_positives = (500..10_500)
            .filter(|n| may_contain(&segment.filter, &[hash(Kind::Trace, &format!("trace-{n}"))]))
            .count();
        assert!(false_positives < 300, "{false_positives} of 10000");
    }

    #[test]
    fn keys_are_time_and_id() {
        let a = record(1, 5);
        assert_eq!(key(&a), (5, 1));
        let mut odd = a.clone();
        odd.id = "not hex".into();
        assert_ne!(key(&odd), key(&a));
        assert_eq!(key(&odd), key(&odd.clone()));
    }
}
