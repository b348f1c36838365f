//! Audit records on the control plane: what the data planes report over their config
//! streams is stored in `audit.db` ([`db`]), served to conduitctl through QueryAudit and
//! AuditStats ([`stats`] holds the latency arithmetic), and purged after
//! `observability.retention_days` of the current config version.
//!
//! Records arrive already redacted; the control plane only verifies them (the node id is
//! the stream's, whatever the record says; ids must be 32 lowercase hex digits; strings
//! are cut to the caps of `conduit_proto::limits`, as the data plane should have done). Every
//! SQLite call runs on the blocking pool; [`ingest`] keeps the config streams from ever
//! waiting on it.

pub mod db;
pub mod ingest;
mod legacy;
mod lookup;
mod recent;
mod scan;
mod schema;
mod segment;
pub mod stats;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use conduit_config::Document;
use conduit_proto::limits::bound_audit_record;
use conduit_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::versions::Versions;
pub use db::{AUDIT_DB_FILE, AuditDb, Checkpointed, Filter, GroupBy};
pub use stats::{Stats, StatsRow};

/// QueryAudit's limit when the request says 0.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest QueryAudit limit.
pub const MAX_LIMIT: u32 = 10_000;
/// `observability.retention_days` when the config does not set it.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// How often old records are purged (also once at start).
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// How often the WAL of `audit.db` is copied into the database file (see
/// [`AuditDb::checkpoint`]); it holds about this much of ingest at most.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

pub use conduit_proto::AUDIT_STATUSES as STATUSES;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A request argument is out of range (INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What storing one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Records that were not stored before.
    pub new: u64,
    /// Records refused because their id is malformed.
    pub invalid: u64,
    /// Records whose node id was not the stream's (replaced).
    pub relabelled: u64,
}

/// The audit service; one per server.
pub struct Audit {
    db: Arc<AuditDb>,
    metrics: Arc<Metrics>,
}

impl Audit {
    /// Open `DIR/audit.db`. Blocking.
    pub fn open(data_dir: &Path, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        Ok(Self {
            db: Arc::new(AuditDb::open(data_dir)?),
            metrics,
        })
    }

    /// The database, for diagnostics and tests.
    pub fn db(&self) -> &AuditDb {
        &self.db
    }

    /// Store one batch reported on the stream of `node_id`, in one transaction. Only a
    /// committed batch returns `Ok` (and may be acknowledged).
    pub async fn ingest(
        &self,
        node_id: &str,
        batch: pb::AuditBatch,
    ) -> Result<Ingested, AuditError> {
        let mut stored = self.ingest_all(node_id, vec![batch]).await?;
        Ok(stored.remove(0))
    }

    /// Store the batches of one stream, in order, in one transaction: the batches a stream
    /// has queued while the previous commit ran share one commit (and its segments: fewer,
    /// larger commits write fewer pages per record). Only committed batches return `Ok`
    /// (and may be acknowledged).
    pub async fn ingest_all(
        &self,
        node_id: &str,
        batches: Vec<pb::AuditBatch>,
    ) -> Result<Vec<Ingested>, AuditError> {
        let mut checked = Vec::with_capacity(batches.len());
        let mut summaries = Vec::with_capacity(batches.len());
        for batch in batches {
            let (records, invalid, relabelled) = check(node_id, batch.sequence, batch.records);
            summaries.push((
                batch.sequence,
                batch.dropped,
                records.len(),
                invalid,
                relabelled,
            ));
            checked.push(records);
        }
        let db = self.db.clone();
        let news = tokio::task::spawn_blocking(move || db.insert_all(checked)).await??;
        let mut result = Vec::with_capacity(news.len());
        for (new, (sequence, dropped, valid, invalid, relabelled)) in
            news.into_iter().zip(summaries)
        {
            self.metrics.audit_records.inc_by(new);
            // A resent batch (its ack was lost) stores nothing new; its drops were counted
            // the first time. A batch of drops only cannot be told from its resend and is
            // counted.
            let resend = valid > 0 && new == 0;
            if !resend {
                self.metrics.audit_dropped.inc_by(dropped);
            }
            tracing::debug!(
                node_id,
                sequence,
                records = valid,
                new,
                dropped,
                "audit batch stored"
            );
            result.push(Ingested {
                new,
                invalid,
                relabelled,
            });
        }
        Ok(result)
    }

    /// QueryAudit: records newest first.
    pub async fn query(
        &self,
        request: pb::QueryAuditRequest,
    ) -> Result<Vec<pb::AuditRecord>, AuditError> {
        let limit = match request.limit {
            0 => DEFAULT_LIMIT,
            limit if limit > MAX_LIMIT => {
                return Err(AuditError::Invalid(format!(
                    "limit {limit} is larger than {MAX_LIMIT}"
                )));
            }
            limit => limit,
        };
        if !request.status.is_empty() && !STATUSES.contains(&request.status.as_str()) {
            return Err(AuditError::Invalid(format!(
                "unknown status {:?}; one of: {}",
                request.status,
                STATUSES.join(", ")
            )));
        }
        let filter = Filter {
            server_id: request.server_id,
            target: request.target,
            client_id: request.client_id,
            status: request.status,
            trace_id: request.trace_id,
            since_ms: request.since_unix_ms,
        };
        let db = self.db.clone();
        Ok(tokio::task::spawn_blocking(move || db.query(&filter, limit)).await??)
    }

    /// AuditStats: counts, error rate and latency percentiles (bounded, see [`stats`]).
    pub async fn stats(&self, request: pb::AuditStatsRequest) -> Result<Stats, AuditError> {
        let group_by = match request.group_by.as_str() {
            "" | "server" => GroupBy::Server,
            "tool" => GroupBy::Tool,
            "client" => GroupBy::Client,
            other => {
                return Err(AuditError::Invalid(format!(
                    "unknown group_by {other:?}; one of: server, tool, client"
                )));
            }
        };
        let filter = Filter {
            server_id: request.server_id,
            target: request.target,
            client_id: request.client_id,
            since_ms: request.since_unix_ms,
            ..Filter::default()
        };
        let db = self.db.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let total = db.count(&filter)?;
            let groups = db.count_groups(&filter, group_by, stats::MAX_GROUPS)?;
            let samples = db.durations(&filter, group_by, stats::SAMPLE_CAP)?;
            Ok::<_, StoreError>(stats::assemble(total, groups, samples))
        })
        .await??)
    }

    /// Delete the records older than `retention_days` before `now_ms`; returns how many.
    pub async fn purge(&self, retention_days: u32, now_ms: i64) -> Result<u64, AuditError> {
        let cutoff = now_ms.saturating_sub(i64::from(retention_days) * 86_400_000);
        let db = self.db.clone();
        let purged = tokio::task::spawn_blocking(move || db.purge_before(cutoff)).await??;
        self.metrics.audit_purged.inc_by(purged);
        if purged > 0 {
            tracing::info!(purged, retention_days, "purged old audit records");
        }
        Ok(purged)
    }

    /// Purge at once and then every [`PURGE_INTERVAL`] until `shutdown`, with the retention
    /// of the version current at each run.
    pub async fn run_retention(
        self: Arc<Self>,
        versions: Arc<Versions>,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(PURGE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    let config = versions.current().map(|snapshot| snapshot.config_json.clone());
                    let days = retention_days(config.as_deref());
                    let now = chrono::Utc::now().timestamp_millis();
                    if let Err(error) = self.purge(days, now).await {
                        tracing::warn!(%error, "cannot purge old audit records");
                    }
                }
            }
        }
    }

    /// Checkpoint `audit.db` every [`CHECKPOINT_INTERVAL`] until `shutdown` (closing the
    /// database checkpoints the rest).
    pub async fn run_checkpoints(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Log the first failure of a run of failures only.
        let mut failing = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    let db = self.db.clone();
                    match tokio::task::spawn_blocking(move || db.checkpoint()).await {
                        Ok(Ok(_)) => failing = false,
                        Ok(Err(error)) => {
                            if !failing {
                                tracing::warn!(%error, "cannot checkpoint the audit database");
                            }
                            failing = true;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "audit checkpoint task failed");
                        }
                    }
                }
            }
        }
    }
}

/// `observability.retention_days` of a stored config document, or the default (also when
/// there is no version yet or it does not parse).
pub fn retention_days(config_json: Option<&str>) -> u32 {
    config_json
        .and_then(|text| Document::from_text(text).ok())
        .and_then(|document| document.observability)
        .and_then(|observability| observability.retention_days)
        .filter(|days| *days > 0)
        .unwrap_or(DEFAULT_RETENTION_DAYS)
}

/// The records of batch `sequence` that may be stored: malformed ids refused, strings cut
/// to their caps, node ids set to the stream's. Returns them with the counts of refused and
/// relabelled records.
fn check(
    node_id: &str,
    sequence: u64,
    batch: Vec<pb::AuditRecord>,
) -> (Vec<pb::AuditRecord>, u64, u64) {
    let mut invalid = 0;
    let mut relabelled = 0;
    let mut cut = 0;
    let mut records = Vec::with_capacity(batch.len());
    for mut record in batch {
        if !valid_id(&record.id) {
            invalid += 1;
            continue;
        }
        // A data plane cuts every string to its cap before sending; one that did not
        // still cannot store more.
        cut += bound_audit_record(&mut record);
        // The stream is authenticated as `node_id`; a data plane cannot write records
        // in another node's name.
        if record.node_id != node_id {
            relabelled += u64::from(!record.node_id.is_empty());
            node_id.clone_into(&mut record.node_id);
        }
        records.push(record);
    }
    if invalid > 0 {
        tracing::warn!(
            node_id,
            invalid,
            sequence,
            "ignoring audit records with a malformed id"
        );
    }
    if cut > 0 {
        tracing::warn!(
            node_id,
            fields = cut,
            sequence,
            "audit record fields over their cap were cut"
        );
    }
    if relabelled > 0 {
        tracing::warn!(
            node_id,
            relabelled,
            sequence,
            "audit records named another node; stored under the stream's node id"
        );
    }
    (records, invalid, relabelled)
}

/// 32 lowercase hex digits.
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
