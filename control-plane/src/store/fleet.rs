//! The `data_planes` table: the last known state of every data plane that ever connected,
//! so `FleetStatus` survives a control-plane restart.
//!
//! The in-memory fleet registry is the source of truth while the process runs; this table is
//! written behind it in batches (one transaction per batch of changed rows). Whether a data
//! plane is connected is deliberately not stored: after a restart every row is disconnected
//! until its data plane opens a new stream.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// One persisted data plane.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataPlaneRow {
    pub node_id: String,
    pub labels: BTreeMap<String, String>,
    pub build_version: String,
    pub applied_version: u64,
    pub applied_hash: String,
    pub rejected_version: u64,
    pub rejected_errors: Vec<StoredError>,
    /// RFC 3339.
    pub last_seen: String,
    /// RFC 3339; when the last stream opened.
    pub connected_since: String,
    pub peer_address: String,
}

/// A NACK error as stored (JSON in the row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredError {
    pub path: String,
    pub message: String,
}

impl Store {
    /// Insert or replace `rows` in one transaction.
    pub fn upsert_data_planes(&self, rows: &[DataPlaneRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut statement = tx.prepare_cached(
                "INSERT INTO data_planes (node_id, labels_json, build_version, applied_version,
                    applied_hash, rejected_version, rejected_errors_json, last_seen,
                    connected_since, peer_address)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(node_id) DO UPDATE SET
                    labels_json = excluded.labels_json,
                    build_version = excluded.build_version,
                    applied_version = excluded.applied_version,
                    applied_hash = excluded.applied_hash,
                    rejected_version = excluded.rejected_version,
                    rejected_errors_json = excluded.rejected_errors_json,
                    last_seen = excluded.last_seen,
                    connected_since = excluded.connected_since,
                    peer_address = excluded.peer_address",
            )?;
            for row in rows {
                statement.execute(params![
                    row.node_id,
                    to_json(&row.labels),
                    row.build_version,
                    row.applied_version,
                    row.applied_hash,
                    row.rejected_version,
                    to_json(&row.rejected_errors),
                    row.last_seen,
                    row.connected_since,
                    row.peer_address,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every persisted data plane, ordered by node id.
    pub fn load_data_planes(&self) -> Result<Vec<DataPlaneRow>, StoreError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT node_id, labels_json, build_version, applied_version, applied_hash,
                rejected_version, rejected_errors_json, last_seen, connected_since, peer_address
             FROM data_planes ORDER BY node_id",
        )?;
        let raw = statement.query_map([], |row| {
            Ok((
                DataPlaneRow {
                    node_id: row.get(0)?,
                    build_version: row.get(2)?,
                    applied_version: row.get(3)?,
                    applied_hash: row.get(4)?,
                    rejected_version: row.get(5)?,
                    last_seen: row.get(7)?,
                    connected_since: row.get(8)?,
                    peer_address: row.get(9)?,
                    ..DataPlaneRow::default()
                },
                row.get::<_, String>(1)?,
                row.get::<_, String>(6)?,
            ))
        })?;
        let mut rows = Vec::new();
        for entry in raw {
            let (mut row, labels, errors) = entry?;
            row.labels = from_json(&labels)?;
            row.rejected_errors = from_json(&errors)?;
            rows.push(row);
        }
        Ok(rows)
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps and vectors of strings serialize")
}

fn from_json<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
        table: "data_planes",
        detail: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node_id: &str, applied_version: u64) -> DataPlaneRow {
        DataPlaneRow {
            node_id: node_id.into(),
            labels: BTreeMap::from([("zone".into(), "a".into())]),
            build_version: "0.1.0".into(),
            applied_version,
            applied_hash: format!("h{applied_version}"),
            rejected_version: 0,
            rejected_errors: Vec::new(),
            last_seen: "2026-01-01T00:00:00Z".into(),
            connected_since: "2026-01-01T00:00:00Z".into(),
            peer_address: "127.0.0.1:5000".into(),
        }
    }

    #[test]
    fn upsert_replaces_and_survives_reopen() {
        let temp = tempfile::tempdir().unwrap();
        {
            let store = Store::open(temp.path()).unwrap();
            store
                .upsert_data_planes(&[row("b", 1), row("a", 1)])
                .unwrap();
            let mut rejected = row("a", 1);
            rejected.rejected_version = 2;
            rejected.rejected_errors = vec![StoredError {
                path: "servers[0].url".into(),
                message: "bad".into(),
            }];
            store.upsert_data_planes(&[rejected]).unwrap();
        }
        let store = Store::open(temp.path()).unwrap();
        let rows = store.load_data_planes().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].node_id, "a");
        assert_eq!(rows[0].rejected_version, 2);
        assert_eq!(rows[0].rejected_errors[0].path, "servers[0].url");
        assert_eq!(rows[1], row("b", 1));
    }
}
