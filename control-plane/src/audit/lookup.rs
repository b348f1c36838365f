//! Whether records are stored already, looked up on disk: for the records that memory
//! (`super::recent`) cannot answer for, the segments of their second are found through the
//! time index, and only those whose filter may hold one of the ids are decoded. At open,
//! the time ranges the stored records cover, for memory to know what it does not hold.

use rusqlite::{Connection, params};

use super::recent::{Forgotten, KeySet};
use super::segment::{self, Key, Kind, MAX_SPAN_MS};
use crate::store::StoreError;

/// The time ranges of the stored records (none is in memory after open): one range up to
/// the newest segment that ends by now, and the ranges of the segments that end later (a
/// data plane whose clock runs ahead), so that its records do not make every other record
/// look like one that may be stored.
pub fn stored_ranges(conn: &Connection) -> Result<Forgotten, StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut forgotten = Forgotten::default();
    let until_now: Option<i64> = conn.query_row(
        "SELECT MAX(max_time_ms) FROM audit_records WHERE max_time_ms <= ?",
        [now],
        |row| row.get(0),
    )?;
    if let Some(until_now) = until_now {
        forgotten.add(i64::MIN, until_now);
    }
    let mut later = conn.prepare(
        "SELECT min_time_ms, max_time_ms FROM audit_records WHERE max_time_ms > ? \
         ORDER BY max_time_ms",
    )?;
    let mut rows = later.query([now])?;
    while let Some(row) = rows.next()? {
        forgotten.add(row.get(0)?, row.get(1)?);
    }
    Ok(forgotten)
}

/// Which of `doubtful` (keys with their ids) are stored: the segments that can hold their
/// times are found by the time index, and only those whose filter may hold one of the ids
/// are decoded. Records far apart in time are looked up apart, so a commit holding an old
/// record (the end of a long event stream) reads the segments around its time only.
pub fn stored_keys(conn: &Connection, doubtful: &[(Key, &str)]) -> Result<KeySet, StoreError> {
    let mut sorted: Vec<&(Key, &str)> = doubtful.iter().collect();
    sorted.sort_unstable_by_key(|((time, _), _)| *time);
    let mut stored = KeySet::default();
    let mut rest = sorted.as_slice();
    while let Some(((first, _), _)) = rest.first() {
        let mut last = *first;
        let len = rest
            .iter()
            .take_while(|((time, _), _)| {
                let near = *time - last <= MAX_SPAN_MS;
                if near {
                    last = *time;
                }
                near
            })
            .count();
        let (cluster, tail) = rest.split_at(len);
        stored_keys_near(conn, cluster, *first, last, &mut stored)?;
        rest = tail;
    }
    Ok(stored)
}

/// [`stored_keys`] for records between `earliest` and `latest` (ms).
fn stored_keys_near(
    conn: &Connection,
    doubtful: &[&(Key, &str)],
    earliest: i64,
    latest: i64,
    stored: &mut KeySet,
) -> Result<(), StoreError> {
    let wanted: KeySet = doubtful.iter().map(|(key, _)| *key).collect();
    let hashes: Vec<u64> = doubtful
        .iter()
        .map(|(_, id)| segment::hash(Kind::Id, id))
        .collect();
    // A segment spans at most MAX_SPAN_MS: one holding a record at `t` ends within
    // MAX_SPAN_MS after `t`.
    let mut segments = conn.prepare_cached(
        "SELECT seq, filter FROM audit_records \
         WHERE max_time_ms >= ?1 AND max_time_ms <= ?2 AND min_time_ms <= ?3",
    )?;
    let mut body = conn.prepare_cached("SELECT body FROM audit_records WHERE seq = ?")?;
    let mut rows = segments.query(params![
        earliest,
        latest.saturating_add(MAX_SPAN_MS),
        latest
    ])?;
    while let Some(row) = rows.next()? {
        // Not a blob cannot be: an empty filter rules nothing out.
        let filter = row.get_ref(1)?.as_blob().unwrap_or_default();
        if !hashes
            .iter()
            .any(|hash| segment::may_contain(filter, std::slice::from_ref(hash)))
        {
            continue;
        }
        let seq: i64 = row.get(0)?;
        let bytes: Vec<u8> = body.query_row([seq], |row| row.get(0))?;
        for record in segment::decode(&bytes)? {
            let key = segment::key(&record);
            if wanted.contains(&key) {
                stored.insert(key);
            }
        }
    }
    Ok(())
}
