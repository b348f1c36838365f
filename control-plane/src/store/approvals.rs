//! The `approval_requests` table (calls data planes held for approval, and each decision)
//! and the `signing_keys` table (the private key that signs grant sets).
//!
//! Times are unix seconds. A pending request whose `expires_at` has passed becomes
//! `expired` the next time requests are read or decided ([`Store::expire_approvals`]).
//! On approval `expires_at` is moved to the end of the grant's life (decision time plus the
//! request's ttl), so a row's `expires_at` always says until when it matters, and
//! `max_uses` is set to the calls the grant allows (uses: [`super::approval_uses`]).
//!
//! New requests are bounded ([`PendingLimits`]): a client (in its workspace) and a data
//! plane may each have only so many pending, unexpired requests; the count and the insert
//! happen under the connection's lock, so concurrent reports cannot pass the bound.

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Option<ApprovalStatus> {
        Some(match text {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "rejected" => ApprovalStatus::Rejected,
            "expired" => ApprovalStatus::Expired,
            _ => return None,
        })
    }
}

/// A request as a data plane reported it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewApproval {
    pub id: String,
    pub client_id: String,
    pub tenant_id: String,
    pub server_id: String,
    pub tool: String,
    pub fingerprint: String,
    /// Redacted by the data plane.
    pub arguments_json: String,
    pub rule: String,
    pub source: String,
    pub reason: String,
    pub trace_id: String,
    /// The data plane that reported it.
    pub node_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One stored request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    pub request: NewApproval,
    pub status: ApprovalStatus,
    pub decided_at: Option<i64>,
    pub approver: Option<String>,
    pub note: Option<String>,
    /// Calls the grant allows (meaningful once approved).
    pub max_uses: u32,
    /// Calls the data planes reported, added up.
    pub uses: u32,
}

/// Bounds on pending, unexpired requests at the time of an insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingLimits {
    /// Per requesting client and workspace.
    pub per_client: u32,
    /// Per reporting data plane.
    pub per_node: u32,
    /// Unix seconds.
    pub now: i64,
}

/// What became of a reported request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Inserted,
    /// The id is known already; nothing changed.
    Duplicate,
    /// The client has `per_client` pending requests already.
    ClientFull,
    /// The data plane has `per_node` pending requests already.
    NodeFull,
}

impl Recorded {
    pub fn as_str(self) -> &'static str {
        match self {
            Recorded::Inserted => "inserted",
            Recorded::Duplicate => "duplicate",
            Recorded::ClientFull => "client_full",
            Recorded::NodeFull => "node_full",
        }
    }
}

/// A decision to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub approve: bool,
    pub approver: String,
    pub note: String,
    pub decided_at: i64,
    /// For an approval: until when the grant is valid.
    pub grant_expires_at: i64,
    /// For an approval: calls the grant allows.
    pub max_uses: u32,
}

pub(super) const COLUMNS: &str = "id, status, client_id, tenant_id, server_id, tool, fingerprint, \
    arguments_json, rule, source, reason, trace_id, node_id, created_at, expires_at, \
    decided_at, approver, note, max_uses, \
    (SELECT COALESCE(SUM(count), 0) FROM approval_uses WHERE approval_id = approval_requests.id)";

impl Store {
    /// Store a new pending request unless its id is known or a bound of `limits` is reached.
    pub fn insert_approval(
        &self,
        new: &NewApproval,
        limits: &PendingLimits,
    ) -> Result<Recorded, StoreError> {
        let conn = self.lock();
        let known: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM approval_requests WHERE id = ?1)",
            params![new.id],
            |row| row.get(0),
        )?;
        if known {
            return Ok(Recorded::Duplicate);
        }
        let by_client: i64 = conn.query_row(
            "SELECT COUNT(*) FROM approval_requests
             WHERE status = 'pending' AND tenant_id = ?1 AND client_id = ?2 AND expires_at > ?3",
            params![new.tenant_id, new.client_id, limits.now],
            |row| row.get(0),
        )?;
        if by_client >= i64::from(limits.per_client) {
            return Ok(Recorded::ClientFull);
        }
        let by_node: i64 = conn.query_row(
            "SELECT COUNT(*) FROM approval_requests
             WHERE status = 'pending' AND node_id = ?1 AND expires_at > ?2",
            params![new.node_id, limits.now],
            |row| row.get(0),
        )?;
        if by_node >= i64::from(limits.per_node) {
            return Ok(Recorded::NodeFull);
        }
        let inserted = conn.execute(
            "INSERT INTO approval_requests (id, status, client_id, tenant_id, server_id, tool,
                fingerprint, arguments_json, rule, source, reason, trace_id, node_id,
                created_at, expires_at)
             VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT(id) DO NOTHING",
            params![
                new.id,
                new.client_id,
                new.tenant_id,
                new.server_id,
                new.tool,
                new.fingerprint,
                new.arguments_json,
                new.rule,
                new.source,
                new.reason,
                new.trace_id,
                new.node_id,
                new.created_at,
                new.expires_at,
            ],
        )?;
        Ok(if inserted == 1 {
            Recorded::Inserted
        } else {
            Recorded::Duplicate
        })
    }

    /// Mark pending requests whose time is up as expired; returns how many.
    pub fn expire_approvals(&self, now: i64) -> Result<usize, StoreError> {
        Ok(self.lock().execute(
            "UPDATE approval_requests SET status = 'expired'
             WHERE status = 'pending' AND expires_at <= ?1",
            params![now],
        )?)
    }

    /// Requests newest first, of one status or all; `limit` 0 means no limit.
    pub fn list_approvals(
        &self,
        status: Option<ApprovalStatus>,
        limit: u32,
    ) -> Result<Vec<ApprovalRow>, StoreError> {
        let conn = self.lock();
        let limit = if limit == 0 { -1 } else { i64::from(limit) };
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approval_requests
             WHERE ?1 IS NULL OR status = ?1
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = statement
            .query_map(params![status.map(ApprovalStatus::as_str), limit], |row| {
                Ok(read_row(row))
            })?;
        rows.map(|row| row.map_err(StoreError::from).and_then(|row| row))
            .collect()
    }

    /// One request.
    pub fn get_approval(&self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approval_requests WHERE id = ?1"
        ))?;
        statement
            .query_row(params![id], |row| Ok(read_row(row)))
            .optional()?
            .transpose()
    }

    /// Store `decision` if the request is still pending and unexpired at its time; returns
    /// the row afterwards (`None` when the id is unknown). The caller compares its status.
    pub fn decide_approval(&self, decision: &Decision) -> Result<Option<ApprovalRow>, StoreError> {
        {
            let conn = self.lock();
            let (status, expires_at, max_uses) = if decision.approve {
                ("approved", decision.grant_expires_at, decision.max_uses)
            } else {
                ("rejected", 0, 0)
            };
            conn.execute(
                "UPDATE approval_requests
                 SET status = ?2, decided_at = ?3, approver = ?4, note = ?5,
                     expires_at = CASE WHEN ?2 = 'approved' THEN ?6 ELSE expires_at END,
                     max_uses = CASE WHEN ?2 = 'approved' THEN ?7 ELSE max_uses END
                 WHERE id = ?1 AND status = 'pending' AND expires_at > ?3",
                params![
                    decision.id,
                    status,
                    decision.decided_at,
                    decision.approver,
                    decision.note,
                    expires_at,
                    max_uses,
                ],
            )?;
        }
        self.get_approval(&decision.id)
    }

    /// The PKCS#8 document stored under `name`, if any.
    pub fn signing_key(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT pkcs8 FROM signing_keys WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Store `pkcs8` under `name` unless a key is already there; returns the stored key
    /// (the existing one when two writers race).
    pub fn insert_signing_key(
        &self,
        name: &str,
        pkcs8: &[u8],
        created_at: i64,
    ) -> Result<Vec<u8>, StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO signing_keys (name, pkcs8, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO NOTHING",
            params![name, pkcs8, created_at],
        )?;
        Ok(conn.query_row(
            "SELECT pkcs8 FROM signing_keys WHERE name = ?1",
            params![name],
            |row| row.get(0),
        )?)
    }
}

pub(super) fn read_row(row: &Row<'_>) -> Result<ApprovalRow, StoreError> {
    let status: String = row.get(1)?;
    let status = ApprovalStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
        table: "approval_requests",
        detail: format!("unknown status {status:?}"),
    })?;
    Ok(ApprovalRow {
        request: NewApproval {
            id: row.get(0)?,
            client_id: row.get(2)?,
            tenant_id: row.get(3)?,
            server_id: row.get(4)?,
            tool: row.get(5)?,
            fingerprint: row.get(6)?,
            arguments_json: row.get(7)?,
            rule: row.get(8)?,
            source: row.get(9)?,
            reason: row.get(10)?,
            trace_id: row.get(11)?,
            node_id: row.get(12)?,
            created_at: row.get(13)?,
            expires_at: row.get(14)?,
        },
        status,
        decided_at: row.get(15)?,
        approver: row.get(16)?,
        note: row.get(17)?,
        max_uses: row.get(18)?,
        uses: row.get(19)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(id: &str, created_at: i64) -> NewApproval {
        NewApproval {
            id: id.into(),
            client_id: "agent".into(),
            tenant_id: "acme".into(),
            server_id: "files".into(),
            tool: "delete".into(),
            fingerprint: "ab".repeat(32),
            arguments_json: r#"{"path":"/x","token":"[REDACTED]"}"#.into(),
            rule: "approve-deletes".into(),
            source: "guardrail".into(),
            reason: "deletes need approval".into(),
            trace_id: "t1".into(),
            node_id: "dp-1".into(),
            created_at,
            expires_at: created_at + 100,
        }
    }

    fn decision(id: &str, approve: bool, at: i64) -> Decision {
        Decision {
            id: id.into(),
            approve,
            approver: "bob".into(),
            note: "ok".into(),
            decided_at: at,
            grant_expires_at: at + 100,
            max_uses: 2,
        }
    }

    const OPEN: PendingLimits = PendingLimits {
        per_client: 100,
        per_node: 100,
        now: 0,
    };

    #[test]
    fn requests_are_stored_once_listed_newest_first_and_filtered() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        assert_eq!(
            store.insert_approval(&new("a", 10), &OPEN).unwrap(),
            Recorded::Inserted
        );
        assert_eq!(
            store.insert_approval(&new("b", 20), &OPEN).unwrap(),
            Recorded::Inserted
        );
        // A duplicate id changes nothing, even with other content.
        let mut again = new("a", 99);
        again.client_id = "mallory".into();
        assert_eq!(
            store.insert_approval(&again, &OPEN).unwrap(),
            Recorded::Duplicate
        );
        let all = store.list_approvals(None, 0).unwrap();
        let ids: Vec<&str> = all.iter().map(|r| r.request.id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(all[1].request, new("a", 10));
        assert_eq!(all[1].status, ApprovalStatus::Pending);
        assert_eq!(store.list_approvals(None, 1).unwrap().len(), 1);
        assert!(
            store
                .list_approvals(Some(ApprovalStatus::Approved), 0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn decisions_apply_only_to_pending_unexpired_requests() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        store.insert_approval(&new("a", 10), &OPEN).unwrap();
        store.insert_approval(&new("b", 10), &OPEN).unwrap();
        store.insert_approval(&new("c", 10), &OPEN).unwrap();

        let approved = store
            .decide_approval(&decision("a", true, 50))
            .unwrap()
            .unwrap();
        assert_eq!(approved.status, ApprovalStatus::Approved);
        assert_eq!(approved.approver.as_deref(), Some("bob"));
        assert_eq!(approved.decided_at, Some(50));
        assert_eq!(approved.request.expires_at, 150, "the grant's own lifetime");
        // Deciding again changes nothing.
        let again = store
            .decide_approval(&decision("a", false, 60))
            .unwrap()
            .unwrap();
        assert_eq!(again.status, ApprovalStatus::Approved);

        let rejected = store
            .decide_approval(&decision("b", false, 50))
            .unwrap()
            .unwrap();
        assert_eq!(rejected.status, ApprovalStatus::Rejected);
        assert_eq!(rejected.request.expires_at, 110);

        // Too late: c expired at 110.
        let late = store
            .decide_approval(&decision("c", true, 110))
            .unwrap()
            .unwrap();
        assert_eq!(late.status, ApprovalStatus::Pending);
        assert_eq!(store.expire_approvals(110).unwrap(), 1);
        assert_eq!(
            store.get_approval("c").unwrap().unwrap().status,
            ApprovalStatus::Expired
        );
        assert!(
            store
                .decide_approval(&decision("zz", true, 1))
                .unwrap()
                .is_none()
        );

        assert_eq!((approved.max_uses, approved.uses), (2, 0));
        let grants = store.valid_grants(149).unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].row.request.id, "a");
        assert!(store.valid_grants(150).unwrap().is_empty());
    }

    #[test]
    fn pending_requests_are_bounded_per_client_and_per_data_plane() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        let limits = PendingLimits {
            per_client: 2,
            per_node: 3,
            now: 10,
        };
        let from = |id: &str, client: &str, node: &str| NewApproval {
            client_id: client.into(),
            node_id: node.into(),
            ..new(id, 10)
        };
        let record = |new: NewApproval| store.insert_approval(&new, &limits).unwrap();
        assert_eq!(record(from("a1", "agent", "dp-1")), Recorded::Inserted);
        assert_eq!(record(from("a2", "agent", "dp-2")), Recorded::Inserted);
        // The client's bound is fleet-wide.
        assert_eq!(record(from("a3", "agent", "dp-3")), Recorded::ClientFull);
        assert_eq!(record(from("a1", "agent", "dp-1")), Recorded::Duplicate);
        assert_eq!(record(from("b1", "bot", "dp-1")), Recorded::Inserted);
        assert_eq!(record(from("c1", "cat", "dp-1")), Recorded::Inserted);
        // dp-1 has three pending now, whatever client names it reports.
        assert_eq!(record(from("d1", "dog", "dp-1")), Recorded::NodeFull);
        // A decided request frees its place; so does an expired one.
        store.decide_approval(&decision("a1", false, 11)).unwrap();
        assert_eq!(record(from("a3", "agent", "dp-2")), Recorded::Inserted);
        let later = PendingLimits { now: 110, ..limits };
        assert_eq!(
            store
                .insert_approval(&from("d1", "dog", "dp-1"), &later)
                .unwrap(),
            Recorded::Inserted
        );
        assert!(store.get_approval("a3").unwrap().is_some());
        assert!(store.get_approval("d1").unwrap().is_some());
    }

    #[test]
    fn the_first_signing_key_stays() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        assert_eq!(store.signing_key("grants").unwrap(), None);
        assert_eq!(
            store.insert_signing_key("grants", b"one", 1).unwrap(),
            b"one"
        );
        assert_eq!(
            store.insert_signing_key("grants", b"two", 2).unwrap(),
            b"one"
        );
        drop(store);
        let store = Store::open(temp.path()).unwrap();
        assert_eq!(
            store.signing_key("grants").unwrap().as_deref(),
            Some(&b"one"[..])
        );
    }
}
