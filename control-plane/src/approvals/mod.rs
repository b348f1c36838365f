//! The approval workflow on the control plane: record the requests data planes report,
//! list them, decide them (role-checked, audited), and publish the signed set of valid
//! grants every config stream forwards to its data plane.
//!
//! No request waits on any of this: a data plane answers −32011 at once and reports the
//! request over its config stream; the client retries with `X-Conduit-Approval-Id` after a
//! decision, and any data plane checks the retry against the grant set it holds. The grant
//! set lives in a `watch` (like snapshots), so a slow stream just sends the newest set.
//!
//! [`authorize`] holds the governance rules of a decision, [`signing`] the grant-set key.

pub mod authorize;
pub mod signing;

use std::sync::Arc;
use std::time::Duration;

use conduit_proto::v1 as pb;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::principals::Principal;
use crate::store::{ApprovalRow, ApprovalStatus, Decision, NewApproval, Store, StoreError};
use crate::versions::Versions;
use authorize::DecisionRules;
use signing::GrantSigner;

/// Longest accepted text field of a reported request (ids, names, reasons).
const MAX_FIELD: usize = 1024;
/// Longest accepted (redacted) arguments document.
const MAX_ARGUMENTS: usize = 64 * 1024;
/// Longest accepted request lifetime, whatever the data plane says.
const MAX_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// How often expired grants are dropped from the published set (data planes check expiry
/// themselves; this only keeps the set small).
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Why a decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("approval request {0} does not exist")]
    NotFound(String),
    #[error("approval request {id} is {status}, not pending")]
    NotPending { id: String, status: &'static str },
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Receiver of the current signed grant set.
pub type GrantSetReceiver = watch::Receiver<Arc<pb::GrantSet>>;

/// The workflow; one per server.
pub struct Approvals {
    store: Arc<Store>,
    versions: Arc<Versions>,
    signer: GrantSigner,
    grants: watch::Sender<Arc<pb::GrantSet>>,
    /// Ids in the published set, to skip publishing an unchanged one.
    published: std::sync::Mutex<Vec<String>>,
}

impl Approvals {
    /// Load (or create) the signing key and build the first grant set. Blocking.
    pub fn load(store: Arc<Store>, versions: Arc<Versions>) -> Result<Self, StoreError> {
        let now = unix_now();
        let signer = GrantSigner::load_or_create(&store, now)?;
        let rows = store.valid_grants(now)?;
        let ids = rows.iter().map(|row| row.request.id.clone()).collect();
        let set = signer.sign(&grant_list(&rows));
        Ok(Self {
            store,
            versions,
            signer,
            grants: watch::Sender::new(Arc::new(set)),
            published: std::sync::Mutex::new(ids),
        })
    }

    /// The public key data planes verify grant sets with.
    pub fn public_key(&self) -> &[u8] {
        self.signer.public_key()
    }

    /// Follow the signed grant set.
    pub fn subscribe(&self) -> GrantSetReceiver {
        self.grants.subscribe()
    }

    /// Store a request a data plane reported; a duplicate id is ignored.
    pub async fn record(&self, request: pb::ApprovalRequest, node_id: &str) {
        let new = match validate(request, node_id) {
            Ok(new) => new,
            Err(reason) => {
                tracing::warn!(node_id, %reason, "ignoring an invalid approval request");
                return;
            }
        };
        let store = self.store.clone();
        let stored = new.clone();
        match tokio::task::spawn_blocking(move || store.insert_approval(&stored)).await {
            Ok(Ok(true)) => tracing::info!(
                audit = "approval_requested",
                id = %new.id,
                client_id = %new.client_id,
                workspace = %new.tenant_id,
                server = %new.server_id,
                tool = %new.tool,
                rule = %new.rule,
                source = %new.source,
                trace_id = %new.trace_id,
                node_id,
                "approval requested"
            ),
            Ok(Ok(false)) => tracing::debug!(id = %new.id, "approval request already known"),
            Ok(Err(error)) => {
                tracing::error!(%error, id = %new.id, "cannot store an approval request")
            }
            Err(error) => tracing::error!(%error, "storing an approval request panicked"),
        }
    }

    /// Requests newest first (pending ones past their time are marked expired first).
    pub async fn list(
        &self,
        status: Option<ApprovalStatus>,
        limit: u32,
    ) -> Result<Vec<ApprovalRow>, DecideError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || {
            store.expire_approvals(unix_now())?;
            store.list_approvals(status, limit)
        })
        .await??)
    }

    /// Approve or reject `id` as `principal` (whose Admin API role was checked already).
    pub async fn decide(
        &self,
        principal: &Principal,
        id: &str,
        approve: bool,
        note: String,
    ) -> Result<ApprovalRow, DecideError> {
        let now = unix_now();
        let store = self.store.clone();
        let lookup = id.to_owned();
        let row = tokio::task::spawn_blocking(move || {
            store.expire_approvals(now)?;
            store.get_approval(&lookup)
        })
        .await??
        .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
        if row.status != ApprovalStatus::Pending {
            return Err(DecideError::NotPending {
                id: id.to_owned(),
                status: row.status.as_str(),
            });
        }
        let config = self
            .versions
            .current()
            .map(|snapshot| snapshot.config_json.clone())
            .ok_or_else(|| {
                DecideError::Forbidden("no configuration has been applied yet".into())
            })?;
        let verdict = DecisionRules::from_config(&config).and_then(|rules| {
            rules.check(
                &principal.name,
                &row.request.tenant_id,
                &row.request.client_id,
            )
        });
        if let Err(reason) = verdict {
            tracing::warn!(
                audit = "approval_decision_refused",
                id,
                approver = %principal.name,
                approve,
                %reason,
                "approval decision refused"
            );
            return Err(DecideError::Forbidden(reason));
        }
        let ttl = (row.request.expires_at - row.request.created_at).clamp(1, MAX_TTL_SECONDS);
        let decision = Decision {
            id: id.to_owned(),
            approve,
            approver: principal.name.to_string(),
            note,
            decided_at: now,
            grant_expires_at: now + ttl,
        };
        let store = self.store.clone();
        let decided = tokio::task::spawn_blocking(move || store.decide_approval(&decision))
            .await??
            .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
        let wanted = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        if decided.status != wanted || decided.approver.as_deref() != Some(&*principal.name) {
            // Expired or decided by someone else between the read and the write.
            return Err(DecideError::NotPending {
                id: id.to_owned(),
                status: decided.status.as_str(),
            });
        }
        tracing::info!(
            audit = if approve { "approval_approved" } else { "approval_rejected" },
            id,
            approver = %principal.name,
            client_id = %decided.request.client_id,
            workspace = %decided.request.tenant_id,
            server = %decided.request.server_id,
            tool = %decided.request.tool,
            note = decided.note.as_deref().unwrap_or(""),
            expires_at = decided.request.expires_at,
            "approval decided"
        );
        if approve {
            self.refresh().await?;
        }
        Ok(decided)
    }

    /// Publish the valid grants again if they changed (a decision, or expiries).
    pub async fn refresh(&self) -> Result<(), DecideError> {
        let store = self.store.clone();
        let rows = tokio::task::spawn_blocking(move || store.valid_grants(unix_now())).await??;
        let ids: Vec<String> = rows.iter().map(|row| row.request.id.clone()).collect();
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *published == ids {
            return Ok(());
        }
        self.grants
            .send_replace(Arc::new(self.signer.sign(&grant_list(&rows))));
        tracing::debug!(grants = ids.len(), "published a new grant set");
        *published = ids;
        Ok(())
    }

    /// Drop expired grants from the published set until `shutdown`.
    pub async fn run_sweeper(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    if let Err(error) = self.refresh().await {
                        tracing::warn!(%error, "cannot refresh the grant set");
                    }
                }
            }
        }
    }
}

fn grant_list(rows: &[ApprovalRow]) -> pb::GrantList {
    pb::GrantList {
        issued_at_ms: chrono::Utc::now().timestamp_millis(),
        grants: rows
            .iter()
            .map(|row| pb::Grant {
                id: row.request.id.clone(),
                client_id: row.request.client_id.clone(),
                tenant_id: row.request.tenant_id.clone(),
                server_id: row.request.server_id.clone(),
                tool: row.request.tool.clone(),
                fingerprint: row.request.fingerprint.clone(),
                expires_at: row.request.expires_at,
            })
            .collect(),
    }
}

/// A reported request as stored, or why it is refused.
fn validate(request: pb::ApprovalRequest, node_id: &str) -> Result<NewApproval, String> {
    let valid_id = request.id.starts_with("apr_")
        && (5..=64).contains(&request.id.len())
        && request
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid_id {
        return Err(format!("bad id {:?}", request.id));
    }
    for (name, value) in [
        ("client_id", &request.client_id),
        ("tenant_id", &request.tenant_id),
        ("server_id", &request.server_id),
        ("tool", &request.tool),
    ] {
        if value.is_empty() || value.len() > MAX_FIELD {
            return Err(format!("{name} must be 1 to {MAX_FIELD} bytes"));
        }
    }
    for (name, value) in [
        ("rule", &request.rule),
        ("source", &request.source),
        ("reason", &request.reason),
        ("trace_id", &request.trace_id),
    ] {
        if value.len() > MAX_FIELD {
            return Err(format!("{name} is longer than {MAX_FIELD} bytes"));
        }
    }
    if request.fingerprint.len() != 64
        || !request.fingerprint.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err("fingerprint must be 64 hex digits".into());
    }
    if request.arguments_json.len() > MAX_ARGUMENTS {
        return Err(format!("arguments are longer than {MAX_ARGUMENTS} bytes"));
    }
    let ttl = request.expires_at - request.created_at;
    if !(1..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(format!("lifetime of {ttl} s is out of range"));
    }
    Ok(NewApproval {
        id: request.id,
        client_id: request.client_id,
        tenant_id: request.tenant_id,
        server_id: request.server_id,
        tool: request.tool,
        fingerprint: request.fingerprint.to_ascii_lowercase(),
        arguments_json: request.arguments_json,
        rule: request.rule,
        source: request.source,
        reason: request.reason,
        trace_id: request.trace_id,
        node_id: node_id.to_owned(),
        created_at: request.created_at,
        expires_at: request.expires_at,
    })
}

/// Now in unix seconds.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
