//! One session on the config stream, after it is open: receive snapshots, verify and apply
//! each one (in order, while the loop goes on: heartbeats, grant sets, audit batches and
//! acks keep flowing while a snapshot's references resolve), answer every snapshot with an
//! Ack (applied) or a Nack (every error), take
//! verified grant sets, send the approval requests the request path queued, ship the audit
//! records in batches (every second, or as soon as a batch is full; unacked ones again on
//! each new stream, the last ones on shutdown), and notice when the control plane goes
//! silent. Nothing larger than the control plane decodes is sent: one such message ended
//! every stream it was resent on.
//!
//! Transport concerns (connecting, TLS, credentials) live in `control_plane`; this module
//! only sees a stream of messages and a sender for replies, which keeps it testable with
//! paused time and no network.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use conduit_config::{ConfigError, ConfigErrors};
use conduit_proto::limits::REFUSED_DATA_PLANE_MESSAGE;
use conduit_proto::v1::{
    self, Ack, ControlPlaneMessage, DataPlaneMessage, Nack, control_plane_message,
    data_plane_message,
};
use prost::Message as _;
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

/// A snapshot being verified and applied: its reply, and the snapshot when applied.
type Applying<'a> = Pin<Box<dyn Future<Output = (DataPlaneMessage, Option<Snapshot>)> + Send + 'a>>;

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
    // One snapshot applies at a time, off this loop; the newest one arriving meanwhile
    // waits (each carries the whole configuration and key set, so it supersedes any
    // other still waiting).
    let mut applying: Option<Applying<'_>> = None;
    let mut waiting: Option<v1::Snapshot> = None;
    loop {
        while let Some(request) = approvals.outbox().pop() {
            let Some(request) = fit_approval_request(request) else {
                context.applier.metrics().approval_requests_dropped.inc();
                continue;
            };
            let message = DataPlaneMessage {
                kind: Some(data_plane_message::Kind::ApprovalRequest(request)),
            };
            if outbound.send(message).await.is_err() {
                return ended_while_sending(context, &mut inbound, progressed).await;
            }
        }
        while let Some(used) = approvals.outbox().pop_use() {
            let message = DataPlaneMessage {
                kind: Some(data_plane_message::Kind::ApprovalUse(used)),
            };
            if outbound.send(message).await.is_err() {
                return ended_while_sending(context, &mut inbound, progressed).await;
            }
        }
        // Full batches at once; what waits, on the tick.
        let flushing = std::mem::take(&mut flush);
        while let Some(batch) = context.audit.next_batch(flushing) {
            let message = DataPlaneMessage {
                kind: Some(data_plane_message::Kind::AuditBatch(batch)),
            };
            if outbound.send(message).await.is_err() {
                return ended_while_sending(context, &mut inbound, progressed).await;
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
            (reply, applied) = async { applying.as_mut().expect("guarded by is_some").await },
                if applying.is_some() =>
            {
                applying = waiting
                    .take()
                    .map(|next| Box::pin(context.handle_snapshot(next)) as Applying<'_>);
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
                    end: stream_error(context, &status),
                    progressed,
                };
            }
            Ok(Some(Ok(message))) => message,
        };
        progressed = true;
        contact.heard();
        match message.kind {
            Some(control_plane_message::Kind::Snapshot(snapshot)) => {
                if applying.is_none() {
                    applying = Some(Box::pin(context.handle_snapshot(snapshot)));
                } else if let Some(superseded) = waiting.replace(snapshot) {
                    tracing::debug!(
                        version = superseded.version,
                        "snapshot superseded by a newer one before it was applied"
                    );
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

/// Largest message this side sends on the stream: what the control plane decodes.
const MAX_OUTBOUND_BYTES: usize = conduit_proto::limits::MAX_STREAM_MESSAGE_BYTES;

/// `request`, cut to fit the stream when it would not: the control plane would refuse it
/// and end the stream, and the outbox sends it again first on every new one. Its
/// fingerprint still binds the whole arguments; the approver sees them cut, with a marker.
/// `None` (dropped) only if even the cut request does not fit.
fn fit_approval_request(mut request: v1::ApprovalRequest) -> Option<v1::ApprovalRequest> {
    use conduit_proto::limits::{
        AUDIT_ERROR_MAX_BYTES, AUDIT_ID_MAX_BYTES, AUDIT_JSON_MAX_BYTES, AUDIT_TARGET_MAX_BYTES,
        truncate_text,
    };
    // The stream message adds a tag and a length prefix.
    let fits = |request: &v1::ApprovalRequest| request.encoded_len() + 16 <= MAX_OUTBOUND_BYTES;
    if fits(&request) {
        return Some(request);
    }
    let bytes = request.encoded_len();
    truncate_text(&mut request.arguments_json, AUDIT_JSON_MAX_BYTES);
    truncate_text(&mut request.tool, AUDIT_TARGET_MAX_BYTES);
    truncate_text(&mut request.reason, AUDIT_ERROR_MAX_BYTES);
    for field in [
        &mut request.client_id,
        &mut request.tenant_id,
        &mut request.server_id,
        &mut request.rule,
        &mut request.source,
        &mut request.trace_id,
    ] {
        truncate_text(field, AUDIT_ID_MAX_BYTES);
    }
    if fits(&request) {
        tracing::warn!(
            bytes,
            id = %request.id,
            "an approval request too large for the config stream was cut"
        );
        Some(request)
    } else {
        tracing::warn!(
            bytes,
            "an approval request too large for the config stream was dropped"
        );
        None
    }
}

/// How long a session whose sender closed waits for the status that says why.
const WHY_CLOSED_WAIT: Duration = Duration::from_secs(1);

/// The stream took no more messages: it ended. Its status (a moment later on the inbound
/// side) says why, and a refused message must be told from a broken connection.
async fn ended_while_sending<S>(
    context: &SessionContext,
    inbound: &mut S,
    progressed: bool,
) -> SessionReport
where
    S: Stream<Item = Result<ControlPlaneMessage, tonic::Status>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + WHY_CLOSED_WAIT;
    let end = loop {
        match tokio::time::timeout_at(deadline, inbound.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(status))) => break stream_error(context, &status),
            Ok(None) | Err(_) => {
                break SessionEnd::Failed("the config stream closed while sending".into());
            }
        }
    };
    SessionReport { end, progressed }
}

/// The end of a stream that failed with `status`; when the control plane refused a
/// message of ours as too large, the audit batches on the way become suspects (see
/// `audit::queue`), so none can wedge the stream for good.
fn stream_error(context: &SessionContext, status: &tonic::Status) -> SessionEnd {
    if too_large(status) && status.message().starts_with(REFUSED_DATA_PLANE_MESSAGE) {
        context.audit.stream_refused();
    }
    classify(status)
}

/// Whether `status` says a message was larger than its receiver accepts.
fn too_large(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
    )
}

/// Map a gRPC status that ended a stream (or refused to open it) to a session end.
pub fn classify(status: &tonic::Status) -> SessionEnd {
    let reason = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => SessionEnd::Refused(reason),
        _ if too_large(status) => SessionEnd::Rejected(reason),
        // A message that does not decode (either side) comes again on the next stream.
        tonic::Code::Internal if status.message().contains("decode") => {
            SessionEnd::Rejected(reason)
        }
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
