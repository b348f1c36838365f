//! The approval workflow on the control plane: record the requests data planes report,
//! list them, decide them (role-checked, audited), and publish the signed set of valid
//! grants every config stream forwards to its data plane.
//!
//! No request waits on any of this: a data plane answers −32011 at once and reports the
//! request over its config stream; the client retries with `X-Conduit-Approval-Id` after a
//! decision, and any data plane checks the retry against the grant set it holds. The grant
//! set lives in a `watch` (like snapshots), so a slow stream just sends the newest set.
//!
//! A grant allows `max_uses` calls (`--max-uses` at the decision, else
//! `governance.approvals.max_uses`, default 1). Data planes report their running count per
//! grant over the stream ([`Approvals::record_use`]); each report that raises a count
//! publishes a new set carrying the counts per data plane, and a grant whose counts add up
//! to `max_uses` leaves the set. Reported requests are bounded: per client and workspace
//! (`governance.approvals.max_pending_per_client`, fleet-wide) and per data plane
//! ([`MAX_PENDING_PER_NODE`]); requests past a bound are not stored.
//!
//! [`authorize`] holds the governance rules of a decision, [`signing`] the grant-set key.

pub mod authorize;
pub mod signing;

use std::sync::Arc;
use std::time::Duration;

use conduit_proto::v1 as pb;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::unix_now;
use crate::principals::Principal;
use crate::store::{
    ApprovalRow, ApprovalStatus, Decision, NewApproval, PendingLimits, Recorded, Store, StoreError,
    ValidGrant,
};
use crate::versions::Versions;
use authorize::DecisionRules;
use conduit_config::Document;
use conduit_config::model::{DEFAULT_APPROVAL_MAX_PENDING_PER_CLIENT, MAX_APPROVAL_USES};
use signing::GrantSigner;

/// Longest accepted text field of a reported request (ids, names, reasons).
const MAX_FIELD: usize = 1024;
/// Longest accepted (redacted) arguments document.
const MAX_ARGUMENTS: usize = 64 * 1024;
/// Longest accepted request lifetime, whatever the data plane says.
const MAX_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// Pending, unexpired requests one data plane may have stored, whatever clients it names.
pub const MAX_PENDING_PER_NODE: u32 = 10_000;
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
    #[error("{0}")]
    InvalidArgument(String),
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
    /// The grants of the published set, to skip publishing an unchanged one.
    published: std::sync::Mutex<Vec<pb::Grant>>,
    /// `governance.approvals.max_pending_per_client` of the config version it was read from.
    per_client: Arc<std::sync::Mutex<Option<(u64, u32)>>>,
}

impl Approvals {
    /// Load (or create) the signing key and build the first grant set. Blocking.
    pub fn load(store: Arc<Store>, versions: Arc<Versions>) -> Result<Self, StoreError> {
        let now = unix_now();
        let signer = GrantSigner::load_or_create(&store, now)?;
        let grants = grants_of(&store.valid_grants(now)?);
        let set = signer.sign(&grant_list(grants.clone()));
        Ok(Self {
            store,
            versions,
            signer,
            grants: watch::Sender::new(Arc::new(set)),
            published: std::sync::Mutex::new(grants),
            per_client: Arc::default(),
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
                self.versions.metrics().approval_request("invalid");
                return;
            }
        };
        let store = self.store.clone();
        let stored = new.clone();
        let versions = self.versions.clone();
        let per_client = self.per_client.clone();
        let inserted = tokio::task::spawn_blocking(move || {
            let limits = PendingLimits {
                per_client: max_pending_per_client(&versions, &per_client),
                per_node: MAX_PENDING_PER_NODE,
                now: unix_now(),
            };
            store.insert_approval(&stored, &limits)
        });
        let inserted = inserted.await;
        if let Ok(Ok(recorded)) = &inserted {
            self.versions.metrics().approval_request(recorded.as_str());
        }
        match inserted {
            Ok(Ok(Recorded::Inserted)) => tracing::info!(
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
            Ok(Ok(Recorded::Duplicate)) => {
                tracing::debug!(id = %new.id, "approval request already known")
            }
            Ok(Ok(refused @ (Recorded::ClientFull | Recorded::NodeFull))) => tracing::warn!(
                audit = "approval_request_refused",
                id = %new.id,
                client_id = %new.client_id,
                workspace = %new.tenant_id,
                node_id,
                reason = refused.as_str(),
                "too many pending approval requests (governance.approvals.max_pending_per_client, \
                 or the per-data-plane bound); the request is not stored"
            ),
            Ok(Err(error)) => {
                tracing::error!(%error, id = %new.id, "cannot store an approval request")
            }
            Err(error) => tracing::error!(%error, "storing an approval request panicked"),
        }
    }

    /// Data plane `node_id` reports that it let `used.count` calls through with grant
    /// `used.id`; publishes a new grant set when that raises the stored count.
    pub async fn record_use(&self, used: pb::ApprovalUse, node_id: &str) {
        if !valid_id(&used.id) {
            tracing::warn!(node_id, "ignoring a grant use with a malformed id");
            return;
        }
        let store = self.store.clone();
        let id = used.id.clone();
        let node = node_id.to_owned();
        let changed =
            tokio::task::spawn_blocking(move || store.record_use(&id, &node, used.count)).await;
        match changed {
            Ok(Ok(true)) => {
                tracing::info!(audit = "approval_used", id = %used.id, node_id, count = used.count, "grant used");
                if let Err(error) = self.refresh().await {
                    tracing::warn!(%error, "cannot refresh the grant set");
                }
            }
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::error!(%error, id = %used.id, "cannot store a grant use"),
            Err(error) => tracing::error!(%error, "storing a grant use panicked"),
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

    /// Approve or reject `id` as `principal` (whose Admin API role was checked already); an
    /// approval allows `max_uses` calls (`None`: `governance.approvals.max_uses`).
    pub async fn decide(
        &self,
        principal: &Principal,
        id: &str,
        approve: bool,
        note: String,
        max_uses: Option<u32>,
    ) -> Result<ApprovalRow, DecideError> {
        if let Some(max_uses) = max_uses
            && !(1..=MAX_APPROVAL_USES).contains(&max_uses)
        {
            return Err(DecideError::InvalidArgument(format!(
                "max_uses must be 1 to {MAX_APPROVAL_USES}, not {max_uses}"
            )));
        }
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
            )?;
            Ok(max_uses.unwrap_or(rules.max_uses()))
        });
        let max_uses = match verdict {
            Ok(max_uses) => max_uses,
            Err(reason) => {
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
        };
        let ttl = (row.request.expires_at - row.request.created_at).clamp(1, MAX_TTL_SECONDS);
        let decision = Decision {
            id: id.to_owned(),
            approve,
            approver: principal.name.to_string(),
            note,
            decided_at: now,
            grant_expires_at: now + ttl,
            max_uses,
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
            max_uses = decided.max_uses,
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
        let grants = grants_of(&rows);
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *published == grants {
            return Ok(());
        }
        self.grants
            .send_replace(Arc::new(self.signer.sign(&grant_list(grants.clone()))));
        tracing::debug!(grants = grants.len(), "published a new grant set");
        *published = grants;
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

/// The grants of `rows`, as published.
fn grants_of(rows: &[ValidGrant]) -> Vec<pb::Grant> {
    rows.iter()
        .map(|grant| {
            let request = &grant.row.request;
            pb::Grant {
                id: request.id.clone(),
                client_id: request.client_id.clone(),
                tenant_id: request.tenant_id.clone(),
                server_id: request.server_id.clone(),
                tool: request.tool.clone(),
                fingerprint: request.fingerprint.clone(),
                expires_at: request.expires_at,
                max_uses: grant.row.max_uses,
                uses: grant
                    .uses
                    .iter()
                    .map(|(node_id, count)| pb::GrantUse {
                        node_id: node_id.clone(),
                        count: *count,
                    })
                    .collect(),
            }
        })
        .collect()
}

fn grant_list(grants: Vec<pb::Grant>) -> pb::GrantList {
    pb::GrantList {
        issued_at_ms: chrono::Utc::now().timestamp_millis(),
        grants,
    }
}

/// `governance.approvals.max_pending_per_client` of the current config version, read once
/// per version (`cache`). Blocking: it may parse the document.
fn max_pending_per_client(
    versions: &Versions,
    cache: &std::sync::Mutex<Option<(u64, u32)>>,
) -> u32 {
    let Some(snapshot) = versions.current() else {
        return DEFAULT_APPROVAL_MAX_PENDING_PER_CLIENT;
    };
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((version, limit)) = *cache
        && version == snapshot.version
    {
        return limit;
    }
    let limit = Document::from_text(&snapshot.config_json)
        .ok()
        .and_then(|document| document.governance)
        .and_then(|governance| governance.approvals)
        .and_then(|approvals| approvals.max_pending_per_client)
        .unwrap_or(DEFAULT_APPROVAL_MAX_PENDING_PER_CLIENT);
    *cache = Some((snapshot.version, limit));
    limit
}

/// Whether `id` has the shape of a request id (what data planes make is stricter).
fn valid_id(id: &str) -> bool {
    id.starts_with("apr_")
        && (5..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A reported request as stored, or why it is refused.
fn validate(request: pb::ApprovalRequest, node_id: &str) -> Result<NewApproval, String> {
    if !valid_id(&request.id) {
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

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
