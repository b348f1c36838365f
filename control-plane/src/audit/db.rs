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
//! The table is append-mostly: rows get an integer key in arrival order, so each batch
//! fills the last pages of the table. Record ids are random; a unique index on them alone
//! would put every insert on a random page (and a commit of 500 records would write ~500
//! pages to the WAL), so a record's identity for "already stored" is `(time_ms, id)`,
//! whose index grows at its end like the time index it replaces (a resent record is the
//! same record, time included). Trace ids are random too and QueryAudit filters on them:
//! their index holds only the first 8 characters (an expression index), a third of the
//! full id's size, and the full id is compared on the rows it finds.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use conduit_proto::v1 as pb;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, Row, params, params_from_iter};

use crate::store::{StoreError, open_private};

/// File name of the audit database inside the data directory.
pub const AUDIT_DB_FILE: &str = "audit.db";

/// Rows deleted per retention transaction, so a large purge releases the writer between
/// chunks and ingest keeps flowing.
const PURGE_CHUNK: i64 = 5_000;

/// Schema migrations of `audit.db`, applied in order (`PRAGMA user_version`).
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: one row per audit record, as the data plane reported it (node id verified).
    "CREATE TABLE audit_records (
        id TEXT PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        trace_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        config_version INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        server_id TEXT NOT NULL,
        method TEXT NOT NULL,
        target TEXT NOT NULL,
        arguments_json TEXT NOT NULL,
        duration_us INTEGER NOT NULL,
        status TEXT NOT NULL,
        http_status INTEGER NOT NULL,
        error_code INTEGER NULL,
        error_message TEXT NOT NULL,
        response_bytes INTEGER NOT NULL,
        guardrail_rule TEXT NOT NULL,
        guardrail_action TEXT NOT NULL,
        acl_policy TEXT NOT NULL,
        cache_status TEXT NOT NULL,
        response_json TEXT NOT NULL
    ) STRICT;
    CREATE INDEX audit_records_by_time ON audit_records (time_ms);
    CREATE INDEX audit_records_by_client ON audit_records (client_id, time_ms);
    CREATE INDEX audit_records_by_server ON audit_records (server_id, time_ms);
    CREATE INDEX audit_records_by_target ON audit_records (target, time_ms);
    CREATE INDEX audit_records_by_trace ON audit_records (trace_id);",
    // 2: rows keyed in arrival order; unique (time_ms, id) instead of a unique id; the
    // trace index on an 8-character prefix (see the module docs).
    "CREATE TABLE audit_records_v2 (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        trace_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        config_version INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        server_id TEXT NOT NULL,
        method TEXT NOT NULL,
        target TEXT NOT NULL,
        arguments_json TEXT NOT NULL,
        duration_us INTEGER NOT NULL,
        status TEXT NOT NULL,
        http_status INTEGER NOT NULL,
        error_code INTEGER NULL,
        error_message TEXT NOT NULL,
        response_bytes INTEGER NOT NULL,
        guardrail_rule TEXT NOT NULL,
        guardrail_action TEXT NOT NULL,
        acl_policy TEXT NOT NULL,
        cache_status TEXT NOT NULL,
        response_json TEXT NOT NULL
    ) STRICT;
    INSERT INTO audit_records_v2 (id, time_ms, trace_id, node_id, config_version, client_id,
        tenant_id, server_id, method, target, arguments_json, duration_us, status,
        http_status, error_code, error_message, response_bytes, guardrail_rule,
        guardrail_action, acl_policy, cache_status, response_json)
    SELECT id, time_ms, trace_id, node_id, config_version, client_id, tenant_id, server_id,
        method, target, arguments_json, duration_us, status, http_status, error_code,
        error_message, response_bytes, guardrail_rule, guardrail_action, acl_policy,
        cache_status, response_json
    FROM audit_records ORDER BY rowid;
    DROP TABLE audit_records;
    ALTER TABLE audit_records_v2 RENAME TO audit_records;
    CREATE UNIQUE INDEX audit_records_by_time ON audit_records (time_ms, id);
    CREATE INDEX audit_records_by_client ON audit_records (client_id, time_ms);
    CREATE INDEX audit_records_by_server ON audit_records (server_id, time_ms);
    CREATE INDEX audit_records_by_target ON audit_records (target, time_ms);
    CREATE INDEX audit_records_by_trace ON audit_records (substr(trace_id, 1, 8));",
];

const COLUMNS: &str = "id, time_ms, trace_id, node_id, config_version, client_id, tenant_id, \
    server_id, method, target, arguments_json, duration_us, status, http_status, error_code, \
    error_message, response_bytes, guardrail_rule, guardrail_action, acl_policy, \
    cache_status, response_json";

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
    /// ` WHERE ...` (or nothing) and its parameters.
    pub(super) fn to_sql(&self) -> (String, Vec<Value>) {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        for (column, value) in [
            ("server_id", &self.server_id),
            ("target", &self.target),
            ("client_id", &self.client_id),
            ("status", &self.status),
        ] {
            if !value.is_empty() {
                clauses.push(format!("{column} = ?"));
                values.push(Value::Text(value.clone()));
            }
        }
        if !self.trace_id.is_empty() {
            // The prefix finds the rows through `audit_records_by_trace`.
            clauses.push("substr(trace_id, 1, 8) = substr(?, 1, 8) AND trace_id = ?".to_owned());
            values.push(Value::Text(self.trace_id.clone()));
            values.push(Value::Text(self.trace_id.clone()));
        }
        if self.since_ms > 0 {
            clauses.push("time_ms >= ?".to_owned());
            values.push(Value::Integer(self.since_ms));
        }
        if clauses.is_empty() {
            (String::new(), values)
        } else {
            (format!(" WHERE {}", clauses.join(" AND ")), values)
        }
    }
}

/// The column a stats query groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Server,
    Tool,
    Client,
}

impl GroupBy {
    fn column(self) -> &'static str {
        match self {
            GroupBy::Server => "server_id",
            GroupBy::Tool => "target",
            GroupBy::Client => "client_id",
        }
    }
}

/// Requests and errors (status other than `ok`) of one group, straight from SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    pub key: String,
    pub requests: u64,
    pub errors: u64,
}

/// Page cache of the writing connection, in KiB (a negative `cache_size` is KiB).
const WRITER_CACHE_KIB: i64 = -32 * 1024;

/// Bytes the WAL file is cut back to when it starts over.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The open audit database. Cheap to share behind an `Arc`.
pub struct AuditDb {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    checkpointer: Mutex<Connection>,
    path: PathBuf,
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
    /// Open (creating if needed) `DIR/audit.db` and apply pending migrations.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let (writer, path) = open_private(data_dir, AUDIT_DB_FILE, MIGRATIONS)?;
        // Record ids and trace ids are random, so every insert lands on a random page of
        // their indexes: with SQLite's 2 MiB default cache those pages are read from the file
        // again and again (most of the ingest time under load). 32 MiB keeps them in memory.
        writer.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        // Checkpoints run from `checkpoint`, off the ingest path: with the default (every
        // 1,000 pages) one commit in a few would copy the whole WAL before its ack.
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        // The WAL is reused from its start after each full checkpoint, but its file keeps
        // the size of its busiest second; cut it back when it is reused.
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let reader = Connection::open(&path)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        reader.pragma_update(None, "query_only", true)?;
        let checkpointer = Connection::open(&path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Self {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            checkpointer: Mutex::new(checkpointer),
            path,
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

    /// Store `records` in one transaction; a record already stored (same time and id) is
    /// ignored. Returns how many rows are new.
    pub fn insert(&self, records: &[pb::AuditRecord]) -> Result<u64, StoreError> {
        Ok(self.insert_all(std::slice::from_ref(&records.to_vec()))?[0])
    }

    /// Store every group of `groups` in one transaction; returns how many rows of each
    /// group are new.
    pub fn insert_all(&self, groups: &[Vec<pb::AuditRecord>]) -> Result<Vec<u64>, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let mut news = Vec::with_capacity(groups.len());
        for records in groups {
            news.push(insert_records(&tx, records)?);
        }
        tx.commit()?;
        Ok(news)
    }

    /// Records matching `filter`, newest first, at most `limit`.
    pub fn query(&self, filter: &Filter, limit: u32) -> Result<Vec<pb::AuditRecord>, StoreError> {
        let (clause, mut values) = filter.to_sql();
        values.push(Value::Integer(i64::from(limit)));
        let conn = lock(&self.reader);
        let mut statement = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM audit_records{clause} \
             ORDER BY time_ms DESC, rowid DESC LIMIT ?"
        ))?;
        let rows = statement.query_map(params_from_iter(values), record_of_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Requests and errors of every record matching `filter`.
    pub fn count(&self, filter: &Filter) -> Result<GroupCount, StoreError> {
        let (clause, values) = filter.to_sql();
        let conn = lock(&self.reader);
        let (requests, errors) = conn.query_row(
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(status <> 'ok'), 0) FROM audit_records{clause}"
            ),
            params_from_iter(values),
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
        )?;
        Ok(GroupCount {
            key: String::new(),
            requests: requests.max(0) as u64,
            errors: errors.max(0) as u64,
        })
    }

    /// Requests and errors per group, most requests first, at most `max_groups` groups.
    pub fn count_groups(
        &self,
        filter: &Filter,
        group_by: GroupBy,
        max_groups: u32,
    ) -> Result<Vec<GroupCount>, StoreError> {
        let (clause, mut values) = filter.to_sql();
        values.push(Value::Integer(i64::from(max_groups)));
        let column = group_by.column();
        let conn = lock(&self.reader);
        let mut statement = conn.prepare(&format!(
            "SELECT {column}, COUNT(*) AS requests, COALESCE(SUM(status <> 'ok'), 0) \
             FROM audit_records{clause} GROUP BY {column} \
             ORDER BY requests DESC, {column} LIMIT ?"
        ))?;
        let rows = statement.query_map(params_from_iter(values), |row| {
            Ok(GroupCount {
                key: row.get(0)?,
                requests: row.get::<_, i64>(1)?.max(0) as u64,
                errors: row.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (group key, duration in µs) of the newest `cap` records matching `filter`.
    pub fn durations(
        &self,
        filter: &Filter,
        group_by: GroupBy,
        cap: u32,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let (clause, mut values) = filter.to_sql();
        values.push(Value::Integer(i64::from(cap)));
        let column = group_by.column();
        let conn = lock(&self.reader);
        let mut statement = conn.prepare(&format!(
            "SELECT {column}, duration_us FROM audit_records{clause} \
             ORDER BY time_ms DESC LIMIT ?"
        ))?;
        let rows = statement.query_map(params_from_iter(values), |row| {
            Ok((row.get(0)?, row.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Delete every record older than `cutoff_ms` (unix ms), in chunks; returns how many.
    pub fn purge_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut purged = 0;
        loop {
            // The writer lock is taken per chunk so ingest can interleave.
            let deleted = lock(&self.writer).execute(
                "DELETE FROM audit_records WHERE rowid IN \
                 (SELECT rowid FROM audit_records WHERE time_ms < ? LIMIT ?)",
                params![cutoff_ms, PURGE_CHUNK],
            )? as u64;
            purged += deleted;
            if deleted < PURGE_CHUNK as u64 {
                return Ok(purged);
            }
        }
    }

    /// One record by id (tests and diagnostics; ids are not indexed, so this reads the
    /// whole table).
    pub fn get(&self, id: &str) -> Result<Option<pb::AuditRecord>, StoreError> {
        let conn = lock(&self.reader);
        Ok(conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM audit_records WHERE id = ?"),
                [id],
                record_of_row,
            )
            .optional()?)
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave SQLite half-written (transactions roll
    // back on drop), so a poisoned lock is still safe to use.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SQLite integers are signed; values past `i64::MAX` cannot be real and are pinned there.
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn record_of_row(row: &Row<'_>) -> rusqlite::Result<pb::AuditRecord> {
    let unsigned = |index: usize| row.get::<_, i64>(index).map(|value| value.max(0) as u64);
    Ok(pb::AuditRecord {
        id: row.get(0)?,
        time_unix_ms: row.get(1)?,
        trace_id: row.get(2)?,
        node_id: row.get(3)?,
        config_version: unsigned(4)?,
        client_id: row.get(5)?,
        tenant_id: row.get(6)?,
        server_id: row.get(7)?,
        method: row.get(8)?,
        target: row.get(9)?,
        arguments_json: row.get(10)?,
        duration_micros: unsigned(11)?,
        status: row.get(12)?,
        http_status: row.get(13)?,
        error_code: row.get(14)?,
        error_message: row.get(15)?,
        response_bytes: unsigned(16)?,
        guardrail_rule: row.get(17)?,
        guardrail_action: row.get(18)?,
        acl_policy: row.get(19)?,
        cache_status: row.get(20)?,
        response_json: row.get(21)?,
    })
}

/// Insert `records` with the cached statement; returns how many rows are new.
fn insert_records(
    tx: &rusqlite::Transaction<'_>,
    records: &[pb::AuditRecord],
) -> Result<u64, StoreError> {
    let mut inserted = 0;
    {
        let mut statement = tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO audit_records ({COLUMNS}) VALUES \
                 (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))?;
        for r in records {
            inserted += statement.execute(params![
                r.id,
                r.time_unix_ms,
                r.trace_id,
                r.node_id,
                clamp(r.config_version),
                r.client_id,
                r.tenant_id,
                r.server_id,
                r.method,
                r.target,
                r.arguments_json,
                clamp(r.duration_micros),
                r.status,
                r.http_status,
                r.error_code,
                r.error_message,
                clamp(r.response_bytes),
                r.guardrail_rule,
                r.guardrail_action,
                r.acl_policy,
                r.cache_status,
                r.response_json,
            ])? as u64;
        }
    }
    Ok(inserted)
}
