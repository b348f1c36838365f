//! The `config_versions` table: immutable, monotonically numbered config documents.
//!
//! Rows are only ever inserted. Deciding whether a document is new (by content hash) and
//! inserting it happen in one transaction, so two concurrent writers can never create the
//! same version number or store the same content twice in a row.

use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use super::{Store, StoreError};

/// One stored config version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    pub version: u64,
    pub hash: String,
    pub author: String,
    pub message: String,
    /// RFC 3339.
    pub created_at: String,
    /// Canonical JSON; empty when the row was listed without documents.
    pub config_json: String,
    pub rolled_back_from: Option<u64>,
}

/// A document about to be stored; validated and canonicalized by the caller.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub hash: String,
    pub author: String,
    pub message: String,
    pub created_at: String,
    pub config_json: String,
    pub rolled_back_from: Option<u64>,
}

/// What [`Store::insert_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// A new version was stored.
    Created(VersionRow),
    /// The document equals the current version; nothing was stored.
    Unchanged(VersionRow),
}

const COLUMNS: &str = "version, hash, author, message, created_at, config_json, rolled_back_from";
const COLUMNS_NO_DOC: &str =
    "version, hash, author, message, created_at, '' AS config_json, rolled_back_from";

impl Store {
    /// Store `new` as version N+1 unless its hash equals the current version's.
    pub fn insert_version(&self, new: NewVersion) -> Result<ApplyOutcome, StoreError> {
        let mut conn = self.lock();
        // IMMEDIATE takes the write lock up front, so the read of the current version and the
        // insert cannot interleave with another writer.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM config_versions ORDER BY version DESC LIMIT 1"),
                [],
                read_row,
            )
            .optional()?;
        let version = current.as_ref().map_or(1, |row| row.version + 1);
        if let Some(current) = current
            && current.hash == new.hash
        {
            return Ok(ApplyOutcome::Unchanged(current));
        }
        tx.execute(
            &format!("INSERT INTO config_versions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                version,
                new.hash,
                new.author,
                new.message,
                new.created_at,
                new.config_json,
                new.rolled_back_from,
            ],
        )?;
        tx.commit()?;
        Ok(ApplyOutcome::Created(VersionRow {
            version,
            hash: new.hash,
            author: new.author,
            message: new.message,
            created_at: new.created_at,
            config_json: new.config_json,
            rolled_back_from: new.rolled_back_from,
        }))
    }

    /// The newest version, with its document.
    pub fn current_version(&self) -> Result<Option<VersionRow>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM config_versions ORDER BY version DESC LIMIT 1"),
            [],
            read_row,
        )
        .optional()
        .map_err(StoreError::from)
    }

    /// One version, with its document.
    pub fn get_version(&self, version: u64) -> Result<Option<VersionRow>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM config_versions WHERE version = ?1"),
            [version],
            read_row,
        )
        .optional()
        .map_err(StoreError::from)
    }

    /// Versions newest first, without documents; `limit` 0 means all.
    pub fn list_versions(&self, limit: u32) -> Result<Vec<VersionRow>, StoreError> {
        let conn = self.lock();
        let limit = if limit == 0 { -1 } else { i64::from(limit) };
        let mut statement = conn.prepare(&format!(
            "SELECT {COLUMNS_NO_DOC} FROM config_versions ORDER BY version DESC LIMIT ?1"
        ))?;
        let rows = statement.query_map([limit], read_row)?;
        let mut versions = Vec::new();
        for row in rows {
            versions.push(row?);
        }
        Ok(versions)
    }
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<VersionRow> {
    Ok(VersionRow {
        version: row.get(0)?,
        hash: row.get(1)?,
        author: row.get(2)?,
        message: row.get(3)?,
        created_at: row.get(4)?,
        config_json: row.get(5)?,
        rolled_back_from: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(content: &str) -> NewVersion {
        NewVersion {
            hash: format!("hash-of-{content}"),
            author: "alice".into(),
            message: format!("set {content}"),
            created_at: "2026-01-01T00:00:00Z".into(),
            config_json: content.into(),
            rolled_back_from: None,
        }
    }

    fn created(outcome: ApplyOutcome) -> VersionRow {
        match outcome {
            ApplyOutcome::Created(row) => row,
            ApplyOutcome::Unchanged(row) => panic!("expected a new version, got {row:?}"),
        }
    }

    #[test]
    fn versions_are_monotonic_and_listed_newest_first() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        assert_eq!(store.current_version().unwrap(), None);
        for (expected, content) in [(1, "a"), (2, "b"), (3, "c")] {
            assert_eq!(
                created(store.insert_version(new(content)).unwrap()).version,
                expected
            );
        }
        let listed: Vec<u64> = store
            .list_versions(0)
            .unwrap()
            .iter()
            .map(|row| row.version)
            .collect();
        assert_eq!(listed, [3, 2, 1]);
        assert_eq!(store.list_versions(2).unwrap().len(), 2);
        assert!(store.list_versions(0).unwrap()[0].config_json.is_empty());
        assert_eq!(store.current_version().unwrap().unwrap().config_json, "c");
    }

    #[test]
    fn same_hash_as_current_creates_nothing() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        created(store.insert_version(new("a")).unwrap());
        match store.insert_version(new("a")).unwrap() {
            ApplyOutcome::Unchanged(row) => assert_eq!(row.version, 1),
            other => panic!("unexpected {other:?}"),
        }
        // Same content as an *older* version is a change.
        created(store.insert_version(new("b")).unwrap());
        assert_eq!(created(store.insert_version(new("a")).unwrap()).version, 3);
    }

    #[test]
    fn rows_are_immutable_and_survive_reopen() {
        let temp = tempfile::tempdir().unwrap();
        let first = {
            let store = Store::open(temp.path()).unwrap();
            let first = created(store.insert_version(new("a")).unwrap());
            created(store.insert_version(new("b")).unwrap());
            first
        };
        let store = Store::open(temp.path()).unwrap();
        assert_eq!(store.get_version(1).unwrap().unwrap(), first);
        assert_eq!(store.get_version(9).unwrap(), None);
        assert_eq!(store.current_version().unwrap().unwrap().version, 2);
    }

    #[test]
    fn rollback_rows_record_their_source() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        created(store.insert_version(new("a")).unwrap());
        created(store.insert_version(new("b")).unwrap());
        let old = store.get_version(1).unwrap().unwrap();
        let row = created(
            store
                .insert_version(NewVersion {
                    rolled_back_from: Some(1),
                    ..new(&old.config_json)
                })
                .unwrap(),
        );
        assert_eq!(row.version, 3);
        assert_eq!(row.rolled_back_from, Some(1));
        assert_eq!(
            store.get_version(3).unwrap().unwrap().rolled_back_from,
            Some(1)
        );
        assert_eq!(store.list_versions(1).unwrap()[0].rolled_back_from, Some(1));
    }
}
