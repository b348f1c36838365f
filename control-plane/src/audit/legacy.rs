//! Records stored by the schemas before segments (versions 1 and 2: one row per record
//! with a column per field). Migration 3 renames that table to `audit_rows_v2`; on open,
//! [`convert`] moves its rows into segments, in arrival order, and drops it, all in one
//! transaction (a crash midway leaves the old table whole, and the next start converts it
//! again).

use conduit_proto::v1 as pb;
use rusqlite::{Connection, Row};

use super::db::insert_segment;
use super::segment::{self, MAX_RECORDS};
use crate::store::StoreError;

/// The per-record table as migration 3 left it.
const TABLE: &str = "audit_rows_v2";

const COLUMNS: &str = "id, time_ms, trace_id, node_id, config_version, client_id, tenant_id, \
    server_id, method, target, arguments_json, duration_us, status, http_status, error_code, \
    error_message, response_bytes, guardrail_rule, guardrail_action, acl_policy, \
    cache_status, response_json";

/// Move the rows of the per-record table, if there is one, into segments; returns how many
/// records were moved.
pub fn convert(conn: &mut Connection) -> Result<u64, StoreError> {
    let tx = conn.transaction()?;
    let exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?)",
        [TABLE],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    let mut converted = 0;
    {
        let mut select = tx.prepare(&format!("SELECT {COLUMNS} FROM {TABLE} ORDER BY rowid"))?;
        let mut rows = select.query([])?;
        let mut chunk = Vec::with_capacity(MAX_RECORDS);
        loop {
            let row = rows.next()?;
            if let Some(row) = row {
                chunk.push(record_of_row(row)?);
            }
            let done = row.is_none();
            if chunk.len() == MAX_RECORDS || (done && !chunk.is_empty()) {
                converted += chunk.len() as u64;
                for segment in segment::build(chunk.iter().collect()) {
                    insert_segment(&tx, None, &segment)?;
                }
                chunk.clear();
            }
            if done {
                break;
            }
        }
    }
    tx.execute_batch(&format!("DROP TABLE {TABLE}"))?;
    tx.commit()?;
    if converted > 0 {
        tracing::info!(records = converted, "moved audit records into segments");
    }
    Ok(converted)
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
