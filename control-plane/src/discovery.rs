//! `ConfigDiscovery.Stream`: one bidirectional stream per data plane.
//!
//! The data plane speaks first (`Hello`); the control plane then sends the current snapshot
//! unless the data plane already runs it, every newer snapshot as it is published, and a
//! heartbeat at a fixed interval. A snapshot of the version a data plane already has is sent
//! again when it carries newer session keys (a rotation). Each `Ack`/`Nack` is matched to the snapshot it answers by
//! nonce and version and recorded in the fleet registry. Snapshots come from a `watch`, so a
//! data plane that is slow to read skips straight to the newest version.
//!
//! Approvals ride the same stream: the data plane reports the calls it held for approval
//! (`ApprovalRequest`) and how often they used each grant (`ApprovalUse`), and the control
//! plane sends the signed set of valid grants after the first snapshot or heartbeat and
//! again whenever it changes (`GrantSet`).
//!
//! So do audit records: each `AuditBatch` goes to the stream's ingest worker
//! ([`crate::audit::ingest`]), which answers `AuditAck` once the batch is committed.
//!
//! A message of the data plane's larger than `MAX_MESSAGE_BYTES` (32 MiB, set on the
//! service in `server`) or one that does not decode ends the stream with a status that
//! starts with [`REFUSED_DATA_PLANE_MESSAGE`]: the data plane then sends the audit batches
//! it had on the way one at a time and drops the one that is refused alone, instead of
//! sending it first on every new stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use conduit_proto::limits::REFUSED_DATA_PLANE_MESSAGE;
use conduit_proto::v1::config_discovery_server::ConfigDiscovery;
use conduit_proto::v1::{
    self as pb, ControlPlaneMessage, DataPlaneMessage, control_plane_message, data_plane_message,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::approvals::{Approvals, GrantSetReceiver};
use crate::audit::Audit;
use crate::audit::ingest::IngestQueue;
use crate::fleet::{Fleet, Hello, Session};
use crate::metrics::Metrics;
use crate::store::fleet::StoredError;
use crate::versions::{Snapshot, SnapshotReceiver, Versions};

/// Longest accepted node id.
const MAX_NODE_ID_LEN: usize = 256;
/// Snapshots remembered per stream for matching ACKs; older ones are superseded anyway.
const REMEMBERED_SENDS: usize = 16;
/// Outbound messages buffered per stream before the stream task waits for the data plane.
const OUTBOUND_BUFFER: usize = 4;
/// Longest wait for room to send the status that ends a failed stream.
const STATUS_GRACE: Duration = Duration::from_secs(1);

/// The service; one per server.
pub struct Discovery {
    versions: Arc<Versions>,
    approvals: Arc<Approvals>,
    audit: Arc<Audit>,
    fleet: Arc<Fleet>,
    metrics: Arc<Metrics>,
    heartbeat: Duration,
    shutdown: CancellationToken,
}

impl Discovery {
    pub fn new(
        versions: Arc<Versions>,
        approvals: Arc<Approvals>,
        audit: Arc<Audit>,
        fleet: Arc<Fleet>,
        metrics: Arc<Metrics>,
        heartbeat: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            versions,
            approvals,
            audit,
            fleet,
            metrics,
            heartbeat,
            shutdown,
        }
    }
}

type Outbound = mpsc::Sender<Result<ControlPlaneMessage, Status>>;

#[tonic::async_trait]
impl ConfigDiscovery for Discovery {
    type StreamStream = ReceiverStream<Result<ControlPlaneMessage, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<DataPlaneMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(DataPlaneMessage {
                kind: Some(data_plane_message::Kind::Hello(hello)),
            }) => hello,
            Some(_) => {
                return Err(Status::invalid_argument(
                    "the first message on the config stream must be Hello",
                ));
            }
            None => return Err(Status::cancelled("stream closed before Hello")),
        };
        if hello.node_id.is_empty() || hello.node_id.len() > MAX_NODE_ID_LEN {
            return Err(Status::invalid_argument(format!(
                "Hello.node_id must be 1 to {MAX_NODE_ID_LEN} bytes"
            )));
        }
        let hello_keys_id = hello.session_keys_id;
        let hello = Hello {
            node_id: hello.node_id,
            labels: hello.labels.into_iter().collect(),
            build_version: hello.build_version,
            applied_version: hello.last_applied_version,
            applied_hash: hello.last_applied_hash,
        };
        tracing::info!(
            node_id = %hello.node_id,
            peer = ?peer,
            build_version = %hello.build_version,
            applied_version = hello.applied_version,
            "data plane connected"
        );
        let (applied_version, applied_hash) = (hello.applied_version, hello.applied_hash.clone());
        let session_keys_id = hello_keys_id;
        let session = self.fleet.connect(hello, peer);
        let (outbound, receiver) = mpsc::channel(OUTBOUND_BUFFER);
        let audit = IngestQueue::start(
            self.audit.clone(),
            session.node_id.clone(),
            outbound.clone(),
        );
        let task = StreamTask {
            fleet: self.fleet.clone(),
            metrics: self.metrics.clone(),
            snapshots: self.versions.subscribe(),
            grants: self.approvals.subscribe(),
            approvals: self.approvals.clone(),
            audit,
            outbound,
            shutdown: self.shutdown.clone(),
            sent: VecDeque::new(),
            offered_version: 0,
            offered_keys: session_keys_id,
        };
        tokio::spawn(task.run(
            session,
            inbound,
            self.heartbeat,
            applied_version,
            applied_hash,
        ));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// The status that ends a stream whose next message failed to arrive as `status` (a
/// decode error, a size over the limit, or a transport error): said to come from the
/// control plane, so the data plane knows its own message was refused.
fn refused(status: &Status) -> Status {
    Status::new(
        status.code(),
        format!("{REFUSED_DATA_PLANE_MESSAGE}: {}", status.message()),
    )
}

/// A snapshot sent on this stream, awaiting its ACK or NACK.
struct Sent {
    nonce: String,
    version: u64,
    hash: String,
    published_at: Instant,
    /// Only snapshots published while the stream was live measure propagation; an initial
    /// send to a data plane that connects later says nothing about fan-out speed.
    measure: bool,
}

struct StreamTask {
    fleet: Arc<Fleet>,
    metrics: Arc<Metrics>,
    snapshots: SnapshotReceiver,
    grants: GrantSetReceiver,
    approvals: Arc<Approvals>,
    audit: IngestQueue,
    outbound: Outbound,
    shutdown: CancellationToken,
    sent: VecDeque<Sent>,
    /// Newest version this data plane has or has been sent.
    offered_version: u64,
    /// Id of the newest session key it has or has been sent.
    offered_keys: String,
}

/// Why a stream ended.
enum End {
    Closed,
    Replaced,
    Shutdown,
    Failed(Status),
}

impl StreamTask {
    async fn run(
        mut self,
        mut session: Session,
        inbound: Streaming<DataPlaneMessage>,
        heartbeat: Duration,
        applied_version: u64,
        applied_hash: String,
    ) {
        let end = match self
            .drive(
                &mut session,
                inbound,
                heartbeat,
                applied_version,
                &applied_hash,
            )
            .await
        {
            Err(end) => end,
            Ok(never) => match never {},
        };
        match end {
            End::Closed => tracing::info!(node_id = %session.node_id, "data plane disconnected"),
            End::Replaced => {
                tracing::info!(node_id = %session.node_id, "stream replaced by a newer one");
                let _ = self.outbound.try_send(Err(Status::aborted(
                    "replaced by a newer stream of this node",
                )));
            }
            End::Shutdown => {
                tracing::debug!(node_id = %session.node_id, "closing stream for shutdown");
            }
            End::Failed(status) => {
                tracing::info!(node_id = %session.node_id, %status, "config stream failed");
                // The data plane acts on this status (a refused message); wait briefly for
                // room rather than lose it behind a full buffer.
                let _ = tokio::time::timeout(STATUS_GRACE, self.outbound.send(Err(status))).await;
            }
        }
        self.fleet.disconnect(&session);
    }

    /// Serve the stream until it ends; the `Err` says why.
    async fn drive(
        &mut self,
        session: &mut Session,
        mut inbound: Streaming<DataPlaneMessage>,
        heartbeat: Duration,
        applied_version: u64,
        applied_hash: &str,
    ) -> Result<Infallible, End> {
        let current = self.snapshots.borrow_and_update().clone();
        let up_to_date = current.as_ref().is_none_or(|snapshot| {
            snapshot.version == applied_version
                && (applied_hash.is_empty() || applied_hash == snapshot.hash)
                && (snapshot.session_keys_id.is_empty()
                    || snapshot.session_keys_id == self.offered_keys)
        });
        self.offered_version = applied_version;
        match current {
            Some(snapshot) if !up_to_date => self.send_snapshot(&snapshot, false).await?,
            _ => self.send_heartbeat().await?,
        }
        self.send_grants().await?;

        let mut ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return Err(End::Shutdown),
                _ = &mut session.replaced => return Err(End::Replaced),
                message = inbound.next() => match message {
                    None => return Err(End::Closed),
                    Some(Err(status)) => return Err(End::Failed(refused(&status))),
                    Some(Ok(message)) => self.handle(session, message)?,
                },
                changed = self.snapshots.changed() => {
                    if changed.is_err() {
                        return Err(End::Shutdown);
                    }
                    let newest = self.snapshots.borrow_and_update().clone();
                    if let Some(snapshot) = newest {
                        let newer = snapshot.version > self.offered_version;
                        let rekeyed = snapshot.version == self.offered_version
                            && snapshot.session_keys_id != self.offered_keys;
                        if newer || rekeyed {
                            // Only new versions measure config propagation.
                            self.send_snapshot(&snapshot, newer).await?;
                        }
                    }
                }
                changed = self.grants.changed() => {
                    if changed.is_err() {
                        return Err(End::Shutdown);
                    }
                    self.send_grants().await?;
                }
                _ = ticker.tick() => {
                    self.send_heartbeat().await?;
                    self.fleet.seen(session);
                }
                () = self.outbound.closed() => return Err(End::Closed),
            }
        }
    }

    fn handle(&mut self, session: &Session, message: DataPlaneMessage) -> Result<(), End> {
        match message.kind {
            Some(data_plane_message::Kind::Ack(ack)) => {
                let Some(sent) = self.take_sent(&ack.nonce, ack.version) else {
                    tracing::warn!(node_id = %session.node_id, version = ack.version, nonce = %ack.nonce, "ACK for no snapshot sent on this stream; ignored");
                    return Ok(());
                };
                self.metrics.snapshot_acks.inc();
                if sent.measure {
                    self.metrics
                        .propagation_seconds
                        .observe(sent.published_at.elapsed().as_secs_f64());
                }
                tracing::debug!(node_id = %session.node_id, version = sent.version, "snapshot applied");
                self.fleet.acked(session, sent.version, &sent.hash);
            }
            Some(data_plane_message::Kind::Nack(nack)) => {
                let Some(sent) = self.take_sent(&nack.nonce, nack.version) else {
                    tracing::warn!(node_id = %session.node_id, version = nack.version, nonce = %nack.nonce, "NACK for no snapshot sent on this stream; ignored");
                    return Ok(());
                };
                self.metrics.snapshot_nacks.inc();
                let errors: Vec<StoredError> = nack
                    .errors
                    .into_iter()
                    .map(|error| StoredError {
                        path: error.path,
                        message: error.message,
                    })
                    .collect();
                tracing::warn!(
                    node_id = %session.node_id,
                    version = sent.version,
                    errors = ?errors,
                    "data plane rejected a snapshot"
                );
                self.fleet.nacked(session, sent.version, errors);
            }
            Some(data_plane_message::Kind::ApprovalRequest(request)) => {
                let approvals = self.approvals.clone();
                let node_id = session.node_id.clone();
                tokio::spawn(async move { approvals.record(request, &node_id).await });
            }
            Some(data_plane_message::Kind::ApprovalUse(used)) => {
                let approvals = self.approvals.clone();
                let node_id = session.node_id.clone();
                tokio::spawn(async move { approvals.record_use(used, &node_id).await });
            }
            Some(data_plane_message::Kind::AuditBatch(batch)) => self.audit.offer(batch),
            Some(data_plane_message::Kind::Hello(_)) => {
                return Err(End::Failed(Status::invalid_argument(
                    "Hello may only be sent once, as the first message",
                )));
            }
            None => {
                return Err(End::Failed(Status::invalid_argument(
                    "empty DataPlaneMessage",
                )));
            }
        }
        Ok(())
    }

    /// The send record matching an ACK/NACK, with every older record dropped with it.
    fn take_sent(&mut self, nonce: &str, version: u64) -> Option<Sent> {
        let index = self
            .sent
            .iter()
            .position(|sent| sent.nonce == nonce && sent.version == version)?;
        let sent = self.sent.remove(index);
        self.sent.drain(..index);
        sent
    }

    async fn send_snapshot(&mut self, snapshot: &Snapshot, measure: bool) -> Result<(), End> {
        let nonce = format!("{:016x}", rand::random::<u64>());
        if self.sent.len() == REMEMBERED_SENDS {
            self.sent.pop_front();
        }
        self.sent.push_back(Sent {
            nonce: nonce.clone(),
            version: snapshot.version,
            hash: snapshot.hash.clone(),
            published_at: snapshot.published_at,
            measure,
        });
        self.offered_version = snapshot.version;
        self.offered_keys.clone_from(&snapshot.session_keys_id);
        self.metrics.snapshots_sent.inc();
        self.send(control_plane_message::Kind::Snapshot(pb::Snapshot {
            version: snapshot.version,
            nonce,
            hash: snapshot.hash.clone(),
            signature: snapshot.signature.clone(),
            config_json: snapshot.config_json.clone(),
            created_at: snapshot.created_at.clone(),
            session_keys: snapshot.session_keys.clone(),
            approval_key: snapshot.approval_key.clone(),
        }))
        .await
    }

    async fn send_grants(&mut self) -> Result<(), End> {
        let set = self.grants.borrow_and_update().clone();
        self.send(control_plane_message::Kind::GrantSet((*set).clone()))
            .await
    }

    async fn send_heartbeat(&mut self) -> Result<(), End> {
        let current_version = self
            .snapshots
            .borrow()
            .as_ref()
            .map_or(0, |snapshot| snapshot.version);
        self.send(control_plane_message::Kind::Heartbeat(pb::Heartbeat {
            current_version,
        }))
        .await
    }

    /// Queue one message; gives up when the data plane is gone or the server shuts down,
    /// so a data plane that stopped reading cannot hold up shutdown.
    async fn send(&self, kind: control_plane_message::Kind) -> Result<(), End> {
        let message = ControlPlaneMessage { kind: Some(kind) };
        tokio::select! {
            sent = self.outbound.send(Ok(message)) => sent.map_err(|_| End::Closed),
            () = self.shutdown.cancelled() => Err(End::Shutdown),
        }
    }
}
