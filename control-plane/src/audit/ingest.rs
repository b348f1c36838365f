//! Audit ingest of one config stream: the stream loop hands each `AuditBatch` to a worker
//! task of its own and goes on serving snapshots and heartbeats; the worker stores the
//! batches in arrival order (those that queued up during a commit together, in the next
//! one) and answers each with `AuditAck{sequence}` on the same stream only after its
//! transaction committed.
//!
//! A batch that cannot be stored gets no ack: the data plane keeps it and sends it again
//! (ids make that idempotent). The same holds when the worker is [`QUEUE`] batches behind,
//! which only a data plane that ignores acks can cause; the stream loop never waits.

use std::sync::Arc;

use conduit_proto::v1::{self as pb, ControlPlaneMessage, control_plane_message};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tonic::Status;

use super::Audit;

/// Batches waiting for the worker of one stream: twice what a data plane keeps on the way
/// (it sends at most 8 unacked batches per stream), so a well-behaved one is never refused.
pub const QUEUE: usize = 16;

/// The sending half of a config stream.
pub type Outbound = mpsc::Sender<Result<ControlPlaneMessage, Status>>;

/// Where a stream loop puts the batches it receives. Dropping it ends the worker once the
/// queued batches are stored.
pub struct IngestQueue {
    batches: mpsc::Sender<pb::AuditBatch>,
    audit: Arc<Audit>,
    node_id: String,
}

impl IngestQueue {
    /// Start the worker of the stream of `node_id`, answering on `outbound`.
    pub fn start(audit: Arc<Audit>, node_id: String, outbound: Outbound) -> Self {
        let (batches, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(audit.clone(), node_id.clone(), receiver, outbound));
        Self {
            batches,
            audit,
            node_id,
        }
    }

    /// Queue a batch without waiting; a full queue refuses it (no ack, counted).
    pub fn offer(&self, batch: pb::AuditBatch) {
        match self.batches.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(batch) | TrySendError::Closed(batch)) => {
                self.audit.metrics.audit_ingest_failures.inc();
                tracing::warn!(
                    node_id = %self.node_id,
                    sequence = batch.sequence,
                    "audit ingest is {QUEUE} batches behind; batch not acknowledged (the data plane sends it again)"
                );
            }
        }
    }
}

async fn run(
    audit: Arc<Audit>,
    node_id: String,
    mut batches: mpsc::Receiver<pb::AuditBatch>,
    outbound: Outbound,
) {
    // Log the first failure of a run of failures only; the counter has every one.
    let mut failing = false;
    while let Some(first) = batches.recv().await {
        // What arrived while the previous commit ran is stored in the same commit.
        let mut group = vec![first];
        while let Ok(batch) = batches.try_recv() {
            group.push(batch);
        }
        let sequences: Vec<u64> = group.iter().map(|batch| batch.sequence).collect();
        let sequence = sequences[0];
        match audit.ingest_all(&node_id, group).await {
            Ok(_) => {
                failing = false;
                for sequence in sequences {
                    let ack = ControlPlaneMessage {
                        kind: Some(control_plane_message::Kind::AuditAck(pb::AuditAck {
                            sequence,
                        })),
                    };
                    if outbound.send(Ok(ack)).await.is_err() {
                        // The stream is gone; the data plane resends on its next stream
                        // and the stored ids make that a no-op.
                        return;
                    }
                }
            }
            Err(error) => {
                audit
                    .metrics
                    .audit_ingest_failures
                    .inc_by(sequences.len() as u64);
                if !failing {
                    tracing::error!(%node_id, sequence, %error, "cannot store an audit batch; not acknowledged");
                } else {
                    tracing::debug!(%node_id, sequence, %error, "cannot store an audit batch");
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::Metrics;

    fn batch(sequence: u64) -> pb::AuditBatch {
        pb::AuditBatch {
            sequence,
            records: vec![pb::AuditRecord {
                id: format!("{sequence:032x}"),
                time_unix_ms: chrono::Utc::now().timestamp_millis(),
                status: "ok".into(),
                ..pb::AuditRecord::default()
            }],
            dropped: 0,
        }
    }

    fn setup() -> (tempfile::TempDir, Arc<Audit>, Arc<Metrics>) {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let audit = Arc::new(Audit::open(dir.path(), metrics.clone()).unwrap());
        (dir, audit, metrics)
    }

    async fn next_ack(receiver: &mut mpsc::Receiver<Result<ControlPlaneMessage, Status>>) -> u64 {
        let message = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .expect("an ack in time")
            .expect("the worker is alive")
            .expect("not an error");
        match message.kind {
            Some(control_plane_message::Kind::AuditAck(ack)) => ack.sequence,
            other => panic!("expected an AuditAck, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn acks_in_order_and_refuses_past_the_queue() {
        let (_dir, audit, metrics) = setup();
        let (outbound, mut receiver) = mpsc::channel(4);
        let queue = IngestQueue::start(audit.clone(), "dp-1".into(), outbound);
        // The worker cannot run before this test yields, so the queue fills up.
        for sequence in 1..=QUEUE as u64 + 2 {
            queue.offer(batch(sequence));
        }
        assert_eq!(metrics.audit_ingest_failures.get(), 2);
        for sequence in 1..=QUEUE as u64 {
            assert_eq!(next_ack(&mut receiver).await, sequence);
        }
        assert_eq!(metrics.audit_records.get(), QUEUE as u64);
        // Dropping the queue ends the worker, which drops its sender.
        drop(queue);
        assert!(receiver.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_batch_that_cannot_be_stored_is_not_acked() {
        let (dir, audit, metrics) = setup();
        let (outbound, mut receiver) = mpsc::channel(4);
        let queue = IngestQueue::start(audit.clone(), "dp-1".into(), outbound);
        queue.offer(batch(1));
        assert_eq!(next_ack(&mut receiver).await, 1);
        // Break the database under the running server.
        rusqlite::Connection::open(dir.path().join(crate::audit::AUDIT_DB_FILE))
            .unwrap()
            .execute_batch("DROP TABLE audit_records")
            .unwrap();
        queue.offer(batch(2));
        queue.offer(batch(3));
        drop(queue);
        assert!(
            receiver.recv().await.is_none(),
            "no ack for the failed batches"
        );
        assert_eq!(metrics.audit_ingest_failures.get(), 2);
        assert_eq!(metrics.audit_records.get(), 1);
    }
}
