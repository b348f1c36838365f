//! Reading records back out of segments for QueryAudit, AuditStats and lookups by id: the
//! segments that can hold a match are read newest first (by their newest record), those
//! whose filter rules the wanted values out are skipped without reading their records, and
//! the records of the rest are decoded and matched one by one.

use std::cmp::Reverse;
use std::ops::ControlFlow;

use conduit_proto::v1 as pb;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::segment::{self, Kind};
use crate::store::StoreError;

/// What a scan looks for.
#[derive(Debug, Default)]
pub struct Wanted<'a> {
    /// Records at or after this time (unix ms); `i64::MIN` for all.
    pub since_ms: i64,
    /// Exact values every match has.
    pub values: Vec<(Kind, &'a str)>,
}

impl Wanted<'_> {
    fn matches(&self, record: &pb::AuditRecord) -> bool {
        record.time_unix_ms >= self.since_ms
            && self.values.iter().all(|(kind, value)| {
                let field = match kind {
                    Kind::Id => &record.id,
                    Kind::Trace => &record.trace_id,
                    Kind::Server => &record.server_id,
                    Kind::Client => &record.client_id,
                    Kind::Target => &record.target,
                    Kind::Status => &record.status,
                };
                field == value
            })
    }
}

/// The order of records newest first: time, then arrival (segment, then position in it).
pub type Order = (i64, i64, usize);

/// Call `visit` with every record matching `wanted` and its [`Order`], one segment after the
/// other by their newest record, newest first. Before a segment is read `visit` is asked
/// with `None` and the segment's newest time whether to go on (`Break` ends the scan: no
/// later segment has newer records). Returns how many segments were decoded.
pub fn scan(
    conn: &Connection,
    wanted: &Wanted<'_>,
    mut visit: impl FnMut(Option<(Order, pb::AuditRecord)>, i64) -> ControlFlow<()>,
) -> Result<u64, StoreError> {
    let keys: Vec<u64> = wanted
        .values
        .iter()
        .map(|(kind, value)| segment::hash(*kind, value))
        .collect();
    let mut segments = conn.prepare_cached(
        "SELECT seq, max_time_ms, filter FROM audit_records WHERE max_time_ms >= ? \
         ORDER BY max_time_ms DESC, seq DESC",
    )?;
    let mut body = conn.prepare_cached("SELECT body FROM audit_records WHERE seq = ?")?;
    let mut rows = segments.query(params![wanted.since_ms])?;
    let mut decoded = 0;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let max_time_ms: i64 = row.get(1)?;
        if visit(None, max_time_ms).is_break() {
            break;
        }
        // Not a blob cannot be: an empty filter rules nothing out.
        let filter = row.get_ref(2)?.as_blob().unwrap_or_default();
        if !segment::may_contain(filter, &keys) {
            continue;
        }
        // The body is read apart from the filter: a skipped segment's pages are not read.
        let Some(bytes) = body
            .query_row(params![seq], |row| row.get::<_, Vec<u8>>(0))
            .optional()?
        else {
            continue;
        };
        decoded += 1;
        for (index, record) in segment::decode(&bytes)?.into_iter().enumerate() {
            if wanted.matches(&record) {
                let order = (record.time_unix_ms, seq, index);
                if visit(Some((order, record)), max_time_ms).is_break() {
                    return Ok(decoded);
                }
            }
        }
    }
    Ok(decoded)
}

/// The newest `cap` items by [`Order`], kept while a scan goes on.
#[derive(Debug)]
pub struct Newest<T> {
    cap: usize,
    items: Vec<(Reverse<Order>, T)>,
    /// Once `cap` items are kept: the oldest time among them (older segments cannot add).
    threshold: Option<i64>,
}

impl<T> Newest<T> {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            items: Vec::new(),
            threshold: None,
        }
    }

    /// Whether a segment whose newest record is at `max_time_ms` can still add an item.
    pub fn wants(&self, max_time_ms: i64) -> bool {
        self.cap > 0 && self.threshold.is_none_or(|oldest| max_time_ms >= oldest)
    }

    pub fn push(&mut self, order: Order, item: T) {
        if self.cap == 0 {
            return;
        }
        self.items.push((Reverse(order), item));
        // Trimmed in bulk (amortized), not per item.
        if self.items.len() >= self.cap.saturating_mul(2).max(64) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.items.sort_unstable_by_key(|(order, _)| *order);
        self.items.truncate(self.cap);
        if self.items.len() == self.cap {
            self.threshold = self.items.last().map(|(Reverse(order), _)| order.0);
        }
    }

    /// The items, newest first.
    pub fn into_sorted(mut self) -> Vec<T> {
        self.trim();
        self.items.into_iter().map(|(_, item)| item).collect()
    }

    /// The scan's visitor for this collection: `item` makes the kept value of a record.
    pub fn visitor<'a>(
        &'a mut self,
        mut item: impl FnMut(pb::AuditRecord) -> T + 'a,
    ) -> impl FnMut(Option<(Order, pb::AuditRecord)>, i64) -> ControlFlow<()> + 'a {
        move |found, max_time_ms| match found {
            None if !self.wants(max_time_ms) => ControlFlow::Break(()),
            None => ControlFlow::Continue(()),
            Some((order, record)) => {
                self.push(order, item(record));
                ControlFlow::Continue(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_keeps_the_cap_newest_in_order() {
        let mut newest = Newest::new(3);
        for (n, time) in [5, 9, 1, 9, 7, 3].into_iter().enumerate() {
            newest.push((time, 1, n), n);
        }
        // Equal times: the later arrival first.
        assert_eq!(newest.into_sorted(), [3, 1, 4]);
        let mut none = Newest::<()>::new(0);
        assert!(!none.wants(i64::MAX));
        none.push((1, 1, 1), ());
        assert!(none.into_sorted().is_empty());
    }

    #[test]
    fn newest_stops_wanting_older_segments_once_full() {
        let mut newest = Newest::new(32);
        for n in 0..64 {
            newest.push((1000 + n, 1, 0), n);
        }
        assert!(newest.wants(1040));
        assert!(newest.wants(1032));
        assert!(!newest.wants(1031));
    }
}
