//! The control plane's durable state: one SQLite database (`conduit.db`) in the data
//! directory, in WAL mode, readable by its owner only. (Audit records live in a database of
//! their own, `audit.db`, owned by [`crate::audit`] and opened with the same
//! `open_private`.)
//!
//! This module owns opening the database (directory and file permissions, pragmas) and the
//! schema migrations. The tables live in [`versions`] (immutable config versions),
//! [`fleet`] (last known state of every data plane), [`session_keys`] (the keys of MCP
//! session tokens), [`approvals`] (approval requests and the grant-set signing key) and
//! [`approval_uses`] (the calls each data plane let through with a grant). A `rusqlite::Connection` is not `Sync`,
//! so it sits behind a `std::sync::Mutex`; every method here is synchronous and async callers
//! run it on the blocking pool, never holding the lock across an `.await`.

pub mod approval_uses;
pub mod approvals;
pub mod fleet;
pub mod session_keys;
pub mod versions;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

pub use approval_uses::ValidGrant;
pub use approvals::{ApprovalRow, ApprovalStatus, Decision, NewApproval, PendingLimits, Recorded};
pub use fleet::DataPlaneRow;
pub use session_keys::SessionKeyRow;
pub use versions::{ApplyOutcome, NewVersion, VersionRow};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "conduit.db";

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: config versions and fleet rows.
    "CREATE TABLE config_versions (
        version INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        author TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL,
        config_json TEXT NOT NULL,
        rolled_back_from INTEGER NULL REFERENCES config_versions(version)
    ) STRICT;
    CREATE TABLE data_planes (
        node_id TEXT PRIMARY KEY,
        labels_json TEXT NOT NULL,
        build_version TEXT NOT NULL,
        applied_version INTEGER NOT NULL,
        applied_hash TEXT NOT NULL,
        rejected_version INTEGER NOT NULL,
        rejected_errors_json TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        connected_since TEXT NOT NULL,
        peer_address TEXT NOT NULL
    ) STRICT;",
    // 2: session token keys.
    "CREATE TABLE session_keys (
        id TEXT PRIMARY KEY,
        key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        activates_at INTEGER NOT NULL
    ) STRICT;",
    // 3: approval requests and the key that signs grant sets.
    "CREATE TABLE approval_requests (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
        client_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        server_id TEXT NOT NULL,
        tool TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        arguments_json TEXT NOT NULL,
        rule TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        decided_at INTEGER NULL,
        approver TEXT NULL,
        note TEXT NULL
    ) STRICT;
    CREATE INDEX approval_requests_by_status ON approval_requests (status, expires_at);
    CREATE TABLE signing_keys (
        name TEXT PRIMARY KEY,
        pkcs8 BLOB NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;",
    // 4: how many calls a grant allows, the uses data planes reported, and indexes for
    // the pending-request bounds per client and per data plane.
    "ALTER TABLE approval_requests ADD COLUMN max_uses INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE approval_uses (
        approval_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (approval_id, node_id)
    ) STRICT;
    CREATE INDEX approval_requests_by_client
        ON approval_requests (status, tenant_id, client_id, expires_at);
    CREATE INDEX approval_requests_by_node ON approval_requests (status, node_id, expires_at);",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database {path} has schema version {found}, newer than this binary knows ({known})")]
    SchemaTooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

/// The open database. Cheap to share behind an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Open (creating if needed) `DIR/conduit.db`: the directory is made 0700, the database
    /// file and its WAL companions 0600, and pending migrations are applied.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let (conn, path) = open_private(data_dir, DB_FILE, MIGRATIONS)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Cheap liveness check for `/readyz`.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.lock()
            .query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back on drop), so a poisoned lock is still safe to use.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Open (creating if needed) `DIR/FILE` as a private SQLite database: the directory is made
/// 0700 (also when it already existed), the file and its WAL companions 0600, WAL mode is on and `migrations` are applied.
/// Shared by the config store and the audit database (`crate::audit`).
pub(crate) fn open_private(
    data_dir: &Path,
    file: &str,
    migrations: &[&str],
) -> Result<(Connection, PathBuf), StoreError> {
    let dir_error = |source| StoreError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    };
    if !data_dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(dir_error)?;
    }
    // At every start, not only at creation: a directory made by hand, restored from a
    // backup or loosened later would otherwise expose the databases' names and let other
    // users read files SQLite creates in it.
    let mode = fs::metadata(data_dir)
        .map_err(dir_error)?
        .permissions()
        .mode()
        & 0o7777;
    if mode != 0o700 {
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700)).map_err(dir_error)?;
        tracing::warn!(
            data_dir = %data_dir.display(),
            was = format!("{mode:o}"),
            "data directory was not private; set its mode to 700"
        );
    }
    let path = data_dir.join(file);
    // Creating the file ourselves fixes its mode before SQLite writes anything into it;
    // SQLite then gives the -wal and -shm files the same mode as the database file.
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(dir_error)?;
    restrict_permissions(&path).map_err(dir_error)?;

    let mut conn = Connection::open(&path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL is durable across process crashes in WAL mode; only an OS crash can lose
    // the last transactions.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&mut conn, &path, migrations)?;
    for suffix in ["-wal", "-shm"] {
        let companion = PathBuf::from(format!("{}{suffix}", path.display()));
        if companion.exists() {
            restrict_permissions(&companion).map_err(dir_error)?;
        }
    }
    Ok((conn, path))
}

fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<(), StoreError> {
    let current: usize = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > migrations.len() {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: current,
            known: migrations.len(),
        });
    }
    for (index, sql) in migrations.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
        tracing::info!(database = %path.display(), version = index + 1, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_directory_and_files() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        let store = Store::open(&dir).unwrap();
        store.ping().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(store.path()), 0o600);
        let wal = dir.join(format!("{DB_FILE}-wal"));
        assert!(wal.exists(), "WAL mode creates a -wal file");
        assert_eq!(mode(&wal), 0o600);
        let journal: String = store
            .lock()
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
    }

    #[test]
    fn an_existing_open_directory_is_made_private() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        drop(Store::open(&dir).unwrap());
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn reopening_keeps_schema_version() {
        let temp = tempfile::tempdir().unwrap();
        drop(Store::open(temp.path()).unwrap());
        let store = Store::open(temp.path()).unwrap();
        let version: usize = store
            .lock()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }

    #[test]
    fn refuses_newer_schema() {
        let temp = tempfile::tempdir().unwrap();
        drop(Store::open(temp.path()).unwrap());
        let conn = Connection::open(temp.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let error = Store::open(temp.path()).err().unwrap();
        assert!(matches!(error, StoreError::SchemaTooNew { found: 99, .. }));
    }
}
