//! The audit database: `audit.db` in the data directory, a SQLite file of its own (not
//! `conduit.db`) so that a busy audit stream and its retention never contend with config
//! writes, and so operators can copy, ship or truncate it independently.
//!
//! The file and its WAL companions are 0600 (`crate::store::open_private`). One
//! connection writes (ingest, retention) and a second one only reads (QueryAudit,
//! AuditStats): in WAL mode readers never block the writer, so an expensive stats query
//! cannot hold up the acknowledgement of a batch. A third one only copies the WAL into the
//! database file ([`AuditDb::checkpoint`], run every second by `Audit::run_checkpoints`):
//! the writer never checkpoints, so a commit costs its own pages only. Every method is
//! synchronous; async callers run them on the blocking pool.
//!
//! Records are stored in segments (see [`super::segment`]): a commit appends one row per
//! segment, whose pages follow each other at the end of the file, and updates no index
//! per record. A record's identity for "already stored" is its time and id: the keys of
//! the latest commits are kept in memory ([`super::recent`]), and a record older than
//! what memory covers is looked up in the segments of its time, through their filters.
//! Queries read segments newest first and skip those whose filter rules the wanted values
//! out ([`super::scan`]).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use conduit_proto::v1 as pb;
use rusqlite::{Connection, Transaction, params};

use super::legacy;
use super::lookup::{stored_keys, stored_ranges};
use super::recent::{KeySet, Recent};
use super::scan::{self, Newest, Wanted};
use super::segment::{self, Key, Kind, MAX_SPAN_MS, Segment};
use crate::store::{StoreError, open_private};

/// File name of the audit database inside the data directory.
pub const AUDIT_DB_FILE: &str = "audit.db";

/// Segments deleted per retention transaction, so a large purge releases the writer between
/// chunks and ingest keeps flowing.
const PURGE_CHUNK: i64 = 100;

pub(super) use super::schema::MIGRATIONS;

/// Exact-match filters shared by QueryAudit and AuditStats; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub server_id: String,
    pub target: String,
    pub client_id: String,
    pub status: String,
    pub trace_id: String,
    /// Records at or after this time (unix ms); 0 = no lower bound.
    pub since_ms: i64,
}

impl Filter {
    /// What a scan for this filter looks for.
    pub(super) fn wanted(&self) -> Wanted<'_> {
        let values = [
            (Kind::Server, &self.server_id),
            (Kind::Target, &self.target),
            (Kind::Client, &self.client_id),
            (Kind::Status, &self.status),
            (Kind::Trace, &self.trace_id),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(kind, value)| (kind, value.as_str()))
        .collect();
        Wanted {
            since_ms: if self.since_ms > 0 {
                self.since_ms
            } else {
                i64::MIN
            },
            values,
        }
    }
}

/// The field a stats query groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Server,
    Tool,
    Client,
}

impl GroupBy {
    fn key(self, record: pb::AuditRecord) -> String {
        match self {
            GroupBy::Server => record.server_id,
            GroupBy::Tool => record.target,
            GroupBy::Client => record.client_id,
        }
    }
}

/// Requests and errors (status other than `ok`) of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    pub key: String,
    pub requests: u64,
    pub errors: u64,
}

/// Bytes the WAL file is cut back to when it starts over.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The open audit database. Cheap to share behind an `Arc`.
pub struct AuditDb {
    writer: Mutex<Writer>,
    reader: Mutex<Connection>,
    checkpointer: Mutex<Connection>,
    path: PathBuf,
    /// Segments whose records queries decoded (tests check that filters skip the rest).
    decoded: AtomicU64,
}

/// The writing connection and what it knows of the records it stored.
struct Writer {
    conn: Connection,
    recent: Recent,
}

/// What one [`AuditDb::checkpoint`] did, in WAL frames (pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpointed {
    /// Frames in the WAL when it ended.
    pub wal_frames: i64,
    /// Frames copied into the database file by then.
    pub copied: i64,
}

impl AuditDb {
    /// Open (creating if needed) `DIR/audit.db`, apply pending migrations and move records
    /// of an older schema into segments.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let (mut writer, path) = open_private(data_dir, AUDIT_DB_FILE, MIGRATIONS)?;
        // Checkpoints run from `checkpoint`, off the ingest path: with the default (every
        // 1,000 pages) one commit in a few would copy the whole WAL before its ack.
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        // The WAL is reused from its start after each full checkpoint, but its file keeps
        // the size of its busiest second; cut it back when it is reused.
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        legacy::convert(&mut writer)?;
        let recent = Recent::new(stored_ranges(&writer)?);
        let reader = Connection::open(&path)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        reader.pragma_update(None, "query_only", true)?;
        let checkpointer = Connection::open(&path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Self {
            writer: Mutex::new(Writer {
                conn: writer,
                recent,
            }),
            reader: Mutex::new(reader),
            checkpointer: Mutex::new(checkpointer),
            path,
            decoded: AtomicU64::new(0),
        })
    }

    /// Copy what the WAL holds into the database file. The bulk is copied while ingest
    /// goes on (a passive checkpoint takes no writer lock); then, holding the writer for
    /// the pages committed meanwhile, the rest, and the WAL is emptied, so the next commit
    /// starts it over instead of growing it.
    pub fn checkpoint(&self) -> Result<Checkpointed, StoreError> {
        let checkpointer = lock(&self.checkpointer);
        let checkpoint = |conn: &Connection, mode: &str| {
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
                Ok(Checkpointed {
                    wal_frames: row.get(1)?,
                    copied: row.get(2)?,
                })
            })
        };
        let first = checkpoint(&checkpointer, "PASSIVE")?;
        if first.wal_frames <= 0 {
            return Ok(first);
        }
        // Even a complete passive pass does not make the WAL start over: the writer only
        // does so when every frame was copied before its transaction began, which a
        // writer committing without pause never sees. So the second pass holds the writer
        // and empties the file (TRUNCATE).
        let _writer = lock(&self.writer);
        Ok(checkpoint(&checkpointer, "TRUNCATE")?)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Segments decoded by queries since open (diagnostics; tests check that filters skip
    /// the rest).
    pub fn segments_decoded(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed)
    }

    /// Store `records` in one transaction; a record already stored (same time and id) is
    /// ignored. Returns how many are new.
    pub fn insert(&self, records: &[pb::AuditRecord]) -> Result<u64, StoreError> {
        Ok(self.insert_all(vec![records.to_vec()])?[0])
    }

    /// Store every group of `groups` in one transaction; returns how many records of each
    /// group are new. A record already stored, or earlier in `groups`, is not stored again.
    pub fn insert_all(
        &self,
        mut groups: Vec<Vec<pb::AuditRecord>>,
    ) -> Result<Vec<u64>, StoreError> {
        let mut writer = lock(&self.writer);
        let Writer { conn, recent } = &mut *writer;
        let keys: Vec<Key> = groups.iter().flatten().map(segment::key).collect();
        // Records older than what memory covers are looked up on disk, all at once.
        let doubtful: Vec<(Key, &str)> = groups
            .iter()
            .flatten()
            .zip(&keys)
            .filter(|(_, key)| !recent.knows(key.0) && !recent.contains(key))
            .map(|(record, key)| (*key, record.id.as_str()))
            .collect();
        let stored = if doubtful.is_empty() {
            KeySet::default()
        } else {
            stored_keys(conn, &doubtful)?
        };
        let mut news = Vec::with_capacity(groups.len());
        let mut fresh = KeySet::default();
        let mut is_kept = Vec::with_capacity(keys.len());
        let mut keys = keys.into_iter();
        for group in &mut groups {
            let mut new = 0;
            for record in group.iter_mut() {
                let Some(key) = keys.next() else { break };
                let is_new = !recent.contains(&key) && !stored.contains(&key) && fresh.insert(key);
                if is_new {
                    segment::clamp(record);
                    new += 1;
                }
                is_kept.push(is_new);
            }
            news.push(new);
        }
        if fresh.is_empty() {
            return Ok(news);
        }
        let kept: Vec<&pb::AuditRecord> = groups
            .iter()
            .flatten()
            .zip(is_kept)
            .filter_map(|(record, keep)| keep.then_some(record))
            .collect();
        let tx = conn.transaction()?;
        for segment in segment::build(kept) {
            insert_segment(&tx, None, &segment)?;
        }
        tx.commit()?;
        recent.remember(fresh.into_iter().collect());
        drop(writer);
        // The records are freed here, with the writer released.
        drop(groups);
        Ok(news)
    }

    /// Records matching `filter`, newest first, at most `limit`.
    pub fn query(&self, filter: &Filter, limit: u32) -> Result<Vec<pb::AuditRecord>, StoreError> {
        let mut newest = Newest::new(limit as usize);
        self.scan(&filter.wanted(), newest.visitor(|record| record))?;
        Ok(newest.into_sorted())
    }

    /// Requests and errors of every record matching `filter`.
    pub fn count(&self, filter: &Filter) -> Result<GroupCount, StoreError> {
        let mut total = GroupCount {
            key: String::new(),
            requests: 0,
            errors: 0,
        };
        self.scan(&filter.wanted(), |found, _| {
            if let Some((_, record)) = found {
                total.requests += 1;
                total.errors += u64::from(record.status != "ok");
            }
            ControlFlow::Continue(())
        })?;
        Ok(total)
    }

    /// Requests and errors per group, most requests first (then by key), at most
    /// `max_groups` groups.
    pub fn count_groups(
        &self,
        filter: &Filter,
        group_by: GroupBy,
        max_groups: u32,
    ) -> Result<Vec<GroupCount>, StoreError> {
        let mut counts: HashMap<String, (u64, u64)> = HashMap::new();
        self.scan(&filter.wanted(), |found, _| {
            if let Some((_, record)) = found {
                let error = u64::from(record.status != "ok");
                let count = counts.entry(group_by.key(record)).or_default();
                count.0 += 1;
                count.1 += error;
            }
            ControlFlow::Continue(())
        })?;
        let mut groups: Vec<GroupCount> = counts
            .into_iter()
            .map(|(key, (requests, errors))| GroupCount {
                key,
                requests,
                errors,
            })
            .collect();
        groups.sort_unstable_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.key.cmp(&b.key)));
        groups.truncate(max_groups as usize);
        Ok(groups)
    }

    /// (group key, duration in µs) of the newest `cap` records matching `filter`.
    pub fn durations(
        &self,
        filter: &Filter,
        group_by: GroupBy,
        cap: u32,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut newest = Newest::new(cap as usize);
        self.scan(
            &filter.wanted(),
            newest.visitor(|record| {
                let micros = record.duration_micros;
                (group_by.key(record), micros)
            }),
        )?;
        Ok(newest.into_sorted())
    }

    /// Delete every record older than `cutoff_ms` (unix ms); returns how many. Segments
    /// wholly older go in chunks; a segment holding records on both sides keeps the newer.
    pub fn purge_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut purged = 0;
        loop {
            // The writer lock is taken per chunk so ingest can interleave.
            let mut writer = lock(&self.writer);
            let tx = writer.conn.transaction()?;
            let old: Vec<(i64, i64)> = {
                let mut select = tx.prepare_cached(
                    "SELECT seq, record_count FROM audit_records WHERE max_time_ms < ?                      ORDER BY max_time_ms LIMIT ?",
                )?;
                let rows = select.query_map(params![cutoff_ms, PURGE_CHUNK], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
                rows.collect::<Result<_, _>>()?
            };
            for (seq, count) in &old {
                tx.execute("DELETE FROM audit_records WHERE seq = ?", [seq])?;
                purged += (*count).max(0) as u64;
            }
            tx.commit()?;
            if (old.len() as i64) < PURGE_CHUNK {
                break;
            }
        }
        let mut writer = lock(&self.writer);
        let tx = writer.conn.transaction()?;
        // A segment spans at most MAX_SPAN_MS, so one that straddles the cutoff ends
        // within MAX_SPAN_MS after it.
        let straddling: Vec<(i64, Vec<u8>)> = {
            let mut select = tx.prepare_cached(
                "SELECT seq, body FROM audit_records                  WHERE max_time_ms >= ?1 AND max_time_ms <= ?2 AND min_time_ms < ?1",
            )?;
            let rows = select.query_map(
                params![cutoff_ms, cutoff_ms.saturating_add(MAX_SPAN_MS)],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            rows.collect::<Result<_, _>>()?
        };
        for (seq, body) in straddling {
            let (old, kept): (Vec<_>, Vec<_>) = segment::decode(&body)?
                .into_iter()
                .partition(|record| record.time_unix_ms < cutoff_ms);
            purged += old.len() as u64;
            // The kept records fit one segment; it keeps its place in arrival order.
            tx.execute("DELETE FROM audit_records WHERE seq = ?", [seq])?;
            for segment in segment::build(kept.iter().collect()) {
                insert_segment(&tx, Some(seq), &segment)?;
            }
        }
        tx.commit()?;
        writer.recent.forget_before(cutoff_ms);
        Ok(purged)
    }

    /// One record by id (tests and diagnostics; segments whose filter cannot hold the id
    /// are skipped).
    pub fn get(&self, id: &str) -> Result<Option<pb::AuditRecord>, StoreError> {
        let wanted = Wanted {
            since_ms: i64::MIN,
            values: vec![(Kind::Id, id)],
        };
        let mut found = None;
        self.scan(&wanted, |record, _| match record {
            Some((_, record)) => {
                found = Some(record);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        })?;
        Ok(found)
    }

    fn scan(
        &self,
        wanted: &Wanted<'_>,
        visit: impl FnMut(Option<(scan::Order, pb::AuditRecord)>, i64) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let conn = lock(&self.reader);
        let decoded = scan::scan(&conn, wanted, visit)?;
        self.decoded.fetch_add(decoded, Ordering::Relaxed);
        Ok(())
    }
}

/// Write one segment at row `seq`, or appended after the last one (`None`).
pub(super) fn insert_segment(
    tx: &Transaction<'_>,
    seq: Option<i64>,
    segment: &Segment,
) -> Result<(), StoreError> {
    // A NULL `seq` (the integer primary key) takes the next row number.
    tx.prepare_cached(
        "INSERT INTO audit_records (seq, min_time_ms, max_time_ms, record_count, filter, body) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        seq,
        segment.min_time_ms,
        segment.max_time_ms,
        segment.count as i64,
        segment.filter,
        segment.body
    ])?;
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite half-written (transactions roll
    // back on drop), so a poisoned lock is still safe to use.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
