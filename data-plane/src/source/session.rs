//! One session on the config stream, after it is open: receive snapshots, verify and apply
//! each one, answer every snapshot with an Ack (applied) or a Nack (every error), take
//! verified grant sets, send the approval requests the request path queued, ship the audit
//! records in batches (every second, or as soon as a batch is full; unacked ones again on
//! each new stream, the last ones on shutdown), and notice when the control plane goes
//! silent.
//!
//! Transport concerns (connecting, TLS, credentials) live in `control_plane`; this module
//! only sees a stream of messages and a sender for replies, which keeps it testable with
//! paused time and no network.

use std::sync::Arc;
use std::time::Duration;

use conduit_config::{ConfigError, ConfigErrors};
use conduit_proto::v1::{
    self, Ack, ControlPlaneMessage, DataPlaneMessage, Nack, control_plane_message,
    data_plane_message,
};
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::reconnect::{SessionEnd, SessionReport};
use crate::apply::{Applier, Candidate};
use crate::runtime::{Applied, ConfigSource};
use crate::snapshot::Snapshot;
use crate::state::{StateDir, StateWriter};

/// What a session needs besides the stream itself.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub applier: Applier,
    /// The data-plane token; snapshots must be signed with it when set.
    pub token: Option<String>,
    /// Where the last applied snapshot is kept, read once at start.
    pub state: Option<StateDir>,
    /// Writes applied snapshots to `state` in the background.
    pub writer: Option<StateWriter>,
    /// Longest silence tolerated from the control plane (it sends heartbeats).
    pub idle_timeout: Duration,
    /// Audit records for the control plane.
    pub audit: Arc<crate::audit::Queue>,
}

/// Drive one open stream until it ends.
pub async fn drive<S>(
    context: &SessionContext,
    mut inbound: S,
    outbound: &mpsc::Sender<DataPlaneMessage>,
    shutdown: &CancellationToken,
) -> SessionReport
where
    S: Stream<Item = Result<ControlPlaneMessage, tonic::Status>> + Unpin,
{
    let mut progressed = false;
    let approvals = context.applier.approvals();
    let contact = &context.applier.metrics().contact;
    // Requests and grant uses sent on a previous stream may not have arrived; duplicate
    // request ids are ignored, and a use count is only ever raised.
    approvals.new_stream();
    // So may audit batches: unacked ones go again first (the control plane ignores record
    // ids it has).
    context.audit.new_stream();
    let mut audit_tick = tokio::time::interval(crate::audit::queue::BATCH_INTERVAL);
    audit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Only messages from the control plane push the silence deadline back.
    let mut silent_at = tokio::time::Instant::now() + context.idle_timeout;
    let mut flush = false;
    loop {
        let closed = || SessionReport {
            end: SessionEnd::Failed("the config stream closed while sending".into()),
            progressed,
        };
        while let Some(request) = approvals.outbox().pop() {
            let message = DataPlaneMessage {
                kind: Some(data_plane_message::Kind::ApprovalRequest(request)),
            };
            if outbound.send(message).await.is_err() {
                return closed();
            }
        }
        while let Some(used) = approvals.outbox().pop_use() {
            let message = DataPlaneMessage {
                kind: Some(data_plane_message::Kind::ApprovalUse(used)),
            };
            if outbound.send(message).await.is_err() {
                return closed();
            }
        }
        // Full batches at once; what waits, on the tick.
        let flushing = std::mem::take(&mut flush);
        while let Some(batch) = context.audit.next_batch(flushing) {
            let message = DataPlaneMessage {
                kind: Some(data_plane_message::Kind::AuditBatch(batch)),
            };
            if outbound.send(message).await.is_err() {
                return closed();
            }
        }
        let next = tokio::select! {
            () = shutdown.cancelled() => {
                last_audit_batches(context, &mut inbound, outbound).await;
                return SessionReport { end: SessionEnd::Shutdown, progressed };
            }
            () = approvals.outbox().ready() => continue,
            () = context.audit.full_batch() => continue,
            _ = audit_tick.tick() => {
                flush = true;
                continue;
            }
            next = tokio::time::timeout_at(silent_at, inbound.next()) => next,
        };
        silent_at = tokio::time::Instant::now() + context.idle_timeout;
        let message = match next {
            Err(_) => {
                let reason = format!(
                    "no message from the control plane for {}",
                    humantime::format_duration(context.idle_timeout)
                );
                return SessionReport {
                    end: SessionEnd::Failed(reason),
                    progressed,
                };
            }
            Ok(None) => {
                return SessionReport {
                    end: SessionEnd::Closed,
                    progressed,
                };
            }
            Ok(Some(Err(status))) => {
                return SessionReport {
                    end: classify(&status),
                    progressed,
                };
            }
            Ok(Some(Ok(message))) => message,
        };
        progressed = true;
        contact.heard();
        match message.kind {
            Some(control_plane_message::Kind::Snapshot(snapshot)) => {
                let (reply, applied) = context.handle_snapshot(snapshot).await;
                if outbound.send(reply).await.is_err() {
                    return SessionReport {
                        end: SessionEnd::Failed("the config stream closed while replying".into()),
                        progressed,
                    };
                }
                // Persisted after the ACK is on its way and off this loop: the ACK reports
                // what serves, and the disk only matters for a restart while the control
                // plane is away.
                if let Some(snapshot) = applied {
                    context.persist(snapshot);
                }
            }
            Some(control_plane_message::Kind::GrantSet(set)) => {
                match approvals.apply_grant_set(&set) {
                    Ok(grants) => tracing::debug!(grants, "grant set in use"),
                    Err(error) => tracing::warn!(%error, "refusing a grant set"),
                }
            }
            Some(control_plane_message::Kind::Heartbeat(heartbeat)) => {
                tracing::trace!(
                    current_version = heartbeat.current_version,
                    "control plane heartbeat"
                );
            }
            Some(control_plane_message::Kind::AuditAck(ack)) => {
                tracing::trace!(sequence = ack.sequence, "audit batch stored");
                context.audit.ack(ack.sequence);
            }
            None => tracing::debug!("ignoring an empty message from the control plane"),
        }
    }
}

/// How long a data plane that is shutting down waits for its last audit batches' acks.
const SHUTDOWN_AUDIT_GRACE: Duration = Duration::from_secs(2);

/// On shutdown: send what the audit queue holds and wait (briefly) for the acks, so the
/// records of the last second are not lost with the process.
async fn last_audit_batches<S>(
    context: &SessionContext,
    inbound: &mut S,
    outbound: &mpsc::Sender<DataPlaneMessage>,
) where
    S: Stream<Item = Result<ControlPlaneMessage, tonic::Status>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + SHUTDOWN_AUDIT_GRACE;
    while context.audit.depth() > 0 {
        // Each ack opens the window for another batch.
        while let Some(batch) = context.audit.next_batch(true) {
            let message = DataPlaneMessage {
                kind: Some(data_plane_message::Kind::AuditBatch(batch)),
            };
            if outbound.send(message).await.is_err() {
                return;
            }
        }
        match tokio::time::timeout_at(deadline, inbound.next()).await {
            Ok(Some(Ok(ControlPlaneMessage {
                kind: Some(control_plane_message::Kind::AuditAck(ack)),
            }))) => context.audit.ack(ack.sequence),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) | Err(_) => {
                tracing::warn!(
                    records = context.audit.depth(),
                    "shutting down with audit records the control plane has not acked"
                );
                return;
            }
        }
    }
}

/// Map a gRPC status that ended a stream (or refused to open it) to a session end.
pub fn classify(status: &tonic::Status) -> SessionEnd {
    let reason = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => SessionEnd::Refused(reason),
        _ => SessionEnd::Failed(reason),
    }
}

// === impl SessionContext ===

impl SessionContext {
    /// Verify and apply one snapshot. The reply reports the outcome; an applied snapshot
    /// is handed back so the caller can [`persist`](Self::persist) it after replying.
    pub async fn handle_snapshot(
        &self,
        snapshot: v1::Snapshot,
    ) -> (DataPlaneMessage, Option<Snapshot>) {
        let nonce = snapshot.nonce.clone();
        let snapshot = Snapshot::from(snapshot);
        let version = snapshot.version;
        let (kind, applied) = match self.accept(&snapshot, ConfigSource::ControlPlane).await {
            Ok(_) => (
                data_plane_message::Kind::Ack(Ack { version, nonce }),
                Some(snapshot),
            ),
            Err(errors) => (
                data_plane_message::Kind::Nack(Nack {
                    version,
                    nonce,
                    errors: errors.0.into_iter().map(Into::into).collect(),
                }),
                None,
            ),
        };
        (DataPlaneMessage { kind: Some(kind) }, applied)
    }

    /// Verify and apply a snapshot from `source`. Its session keys and grant-set key take
    /// effect once it verifies, whether or not its configuration then applies: they are
    /// the fleet's.
    /// The version already serving, sent again with new keys after a rotation, only
    /// updates the keys.
    pub async fn accept(
        &self,
        snapshot: &Snapshot,
        source: ConfigSource,
    ) -> Result<Applied, ConfigErrors> {
        let started = std::time::Instant::now();
        let document_error = |message: String| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message,
            }])
        };
        if let Err(error) = snapshot.verify(self.token.as_deref()) {
            tracing::warn!(version = snapshot.version, %error, "snapshot failed its integrity check");
            return Err(document_error(error.to_string()));
        }
        if let Some(set) = &snapshot.session_keys {
            match crate::session::fleet_keys(set) {
                Ok(keys) => self.applier.key_ring().set_fleet(keys),
                Err(error) => {
                    tracing::warn!(version = snapshot.version, %error, "snapshot has unusable session keys");
                    return Err(document_error(format!("session keys: {error}")));
                }
            }
        }
        // The grant-set key is the control plane's, like the session keys: a verified
        // snapshot brings it even when its configuration is then rejected.
        if let Some(key) = &snapshot.approval_key {
            self.applier
                .approvals()
                .set_key(Some(key.public_key.clone()));
        }
        if let Some(current) = self.applier.current()
            && current.source == ConfigSource::ControlPlane
            && source == ConfigSource::ControlPlane
            && current.version == snapshot.version
            && current.hash == snapshot.hash
        {
            tracing::debug!(
                version = current.version,
                "snapshot of the serving version: keys only"
            );
            return Ok(current);
        }
        let applier = self.applier.clone();
        let candidate = Candidate {
            text: snapshot.config_json.clone(),
            version: snapshot.version,
            hash: Some(snapshot.hash.clone()),
            source,
        };
        // Resolving `${file:...}` references blocks; keep it off the async workers.
        tokio::task::spawn_blocking(move || applier.apply_since(&candidate, started))
            .await
            .unwrap_or_else(|join_error| {
                Err(ConfigErrors(vec![ConfigError {
                    path: String::new(),
                    message: format!("applying the snapshot panicked: {join_error}"),
                }]))
            })
    }

    /// Keep an applied snapshot in the state directory (as received, references
    /// unresolved), when there is one. Returns at once; a failure is logged by the writer.
    pub fn persist(&self, snapshot: Snapshot) {
        if let Some(writer) = &self.writer {
            writer.write(snapshot);
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
