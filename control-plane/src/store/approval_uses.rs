//! The `approval_uses` table: how many calls each data plane let through with a grant, as
//! it reported them, and the grants that are still valid at a time (approved, unexpired,
//! and used fewer times than their `max_uses`).
//!
//! A data plane reports its own running count per grant (not single uses), so a report
//! that arrives twice or late changes nothing: the highest count per data plane is kept,
//! and never more than the grant's `max_uses`. Reports for requests that are not approved
//! are ignored, so a data plane cannot add rows for ids it makes up.

use std::collections::HashMap;

use rusqlite::params;

use super::approvals::{COLUMNS, read_row};
use super::{ApprovalRow, Store, StoreError};

/// A grant to publish, with the uses counted per data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidGrant {
    pub row: ApprovalRow,
    /// (node id, count), by node id.
    pub uses: Vec<(String, u32)>,
}

impl Store {
    /// Data plane `node_id` has let `count` calls through with grant `id`; returns whether
    /// the stored count changed.
    pub fn record_use(&self, id: &str, node_id: &str, count: u32) -> Result<bool, StoreError> {
        let changed = self.lock().execute(
            "INSERT INTO approval_uses (approval_id, node_id, count)
             SELECT id, ?2, MIN(?3, max_uses) FROM approval_requests
             WHERE id = ?1 AND status = 'approved'
             ON CONFLICT (approval_id, node_id) DO UPDATE SET count = excluded.count
             WHERE excluded.count > approval_uses.count",
            params![id, node_id, count],
        )?;
        Ok(changed > 0)
    }

    /// Approved requests whose grant is still valid at `now` and has uses left, oldest
    /// first, with their uses.
    pub fn valid_grants(&self, now: i64) -> Result<Vec<ValidGrant>, StoreError> {
        let conn = self.lock();
        let mut uses: HashMap<String, Vec<(String, u32)>> = HashMap::new();
        {
            let mut statement = conn.prepare_cached(
                "SELECT u.approval_id, u.node_id, u.count FROM approval_uses u
                 JOIN approval_requests r ON r.id = u.approval_id
                 WHERE r.status = 'approved' AND r.expires_at > ?1
                 ORDER BY u.approval_id, u.node_id",
            )?;
            let rows = statement.query_map(params![now], |row| {
                Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?))
            })?;
            for row in rows {
                let (id, node_id, count) = row?;
                uses.entry(id).or_default().push((node_id, count));
            }
        }
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approval_requests
             WHERE status = 'approved' AND expires_at > ?1 ORDER BY decided_at, id"
        ))?;
        let rows = statement.query_map(params![now], |row| Ok(read_row(row)))?;
        let mut grants = Vec::new();
        for row in rows {
            let row = row??;
            if row.uses >= row.max_uses {
                continue;
            }
            let uses = uses.remove(&row.request.id).unwrap_or_default();
            grants.push(ValidGrant { row, uses });
        }
        Ok(grants)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Decision, NewApproval, PendingLimits};
    use super::*;

    fn approved(store: &Store, id: &str, max_uses: u32) {
        let new = NewApproval {
            id: id.into(),
            client_id: "agent".into(),
            tenant_id: "acme".into(),
            server_id: "files".into(),
            tool: "delete".into(),
            fingerprint: "ab".repeat(32),
            node_id: "dp-1".into(),
            created_at: 10,
            expires_at: 110,
            ..NewApproval::default()
        };
        let limits = PendingLimits {
            per_client: 100,
            per_node: 100,
            now: 10,
        };
        store.insert_approval(&new, &limits).unwrap();
        store
            .decide_approval(&Decision {
                id: id.into(),
                approve: true,
                approver: "bob".into(),
                note: String::new(),
                decided_at: 20,
                grant_expires_at: 120,
                max_uses,
            })
            .unwrap();
    }

    #[test]
    fn uses_add_up_per_data_plane_until_the_grant_is_used_up() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        approved(&store, "apr_3", 3);
        approved(&store, "apr_1", 1);

        assert!(store.record_use("apr_3", "dp-1", 1).unwrap());
        assert!(
            !store.record_use("apr_3", "dp-1", 1).unwrap(),
            "a repeated report"
        );
        assert!(
            !store.record_use("apr_3", "dp-1", 0).unwrap(),
            "a late, lower report"
        );
        assert!(store.record_use("apr_3", "dp-2", 1).unwrap());
        // Unknown or undecided ids add nothing.
        assert!(!store.record_use("apr_nope", "dp-1", 5).unwrap());

        let grants = store.valid_grants(30).unwrap();
        let ids: Vec<&str> = grants.iter().map(|g| g.row.request.id.as_str()).collect();
        assert_eq!(ids, ["apr_1", "apr_3"]);
        let three = &grants[1];
        assert_eq!((three.row.max_uses, three.row.uses), (3, 2));
        assert_eq!(three.uses, [("dp-1".to_owned(), 1), ("dp-2".to_owned(), 1)]);

        // A count past max_uses is stored as max_uses.
        assert!(store.record_use("apr_3", "dp-2", 50).unwrap());
        assert_eq!(store.get_approval("apr_3").unwrap().unwrap().uses, 4);
        assert!(store.record_use("apr_1", "dp-3", 1).unwrap());
        assert!(store.valid_grants(30).unwrap().is_empty(), "both used up");
    }
}
