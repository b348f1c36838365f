use std::sync::Arc;

use arc_swap::ArcSwap;
use conduit_proto::v1::Heartbeat;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::*;
use crate::metrics::Metrics;
use crate::runtime::Runtime;

type Inbound = mpsc::Sender<Result<ControlPlaneMessage, tonic::Status>>;

fn context(token: Option<&str>) -> SessionContext {
    let runtime = Arc::new(ArcSwap::from_pointee(Runtime::empty()));
    let metrics = Arc::new(Metrics::new());
    SessionContext {
        audit: Arc::new(crate::audit::Queue::new(&metrics)),
        applier: Applier::new(runtime, metrics),
        token: token.map(Into::into),
        state: None,
        writer: None,
        idle_timeout: Duration::from_secs(15),
    }
}

fn snapshot(version: u64, config_json: &str, token: Option<&str>) -> ControlPlaneMessage {
    let hash = hex::encode(Sha256::digest(config_json.as_bytes()));
    ControlPlaneMessage {
        kind: Some(control_plane_message::Kind::Snapshot(v1::Snapshot {
            version,
            nonce: format!("n{version}"),
            signature: token
                .map(|t| crate::snapshot::sign(t, version, &hash))
                .unwrap_or_default(),
            hash,
            config_json: config_json.into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            session_keys: None,
            approval_key: None,
        })),
    }
}

fn heartbeat() -> ControlPlaneMessage {
    ControlPlaneMessage {
        kind: Some(control_plane_message::Kind::Heartbeat(Heartbeat {
            current_version: 1,
        })),
    }
}

/// Runs a session in the background; returns the inbound sender, the replies, and the
/// session's report.
fn start(
    context: SessionContext,
) -> (
    Inbound,
    mpsc::Receiver<DataPlaneMessage>,
    tokio::task::JoinHandle<SessionReport>,
) {
    let (inbound, inbound_rx) = mpsc::channel(8);
    let (outbound, replies) = mpsc::channel(8);
    let session = tokio::spawn(async move {
        drive(
            &context,
            ReceiverStream::new(inbound_rx),
            &outbound,
            &CancellationToken::new(),
        )
        .await
    });
    (inbound, replies, session)
}

const GOOD: &str = r#"{"servers":[{"id":"a","url":"http://127.0.0.1:1/mcp"}]}"#;

#[tokio::test(start_paused = true)]
async fn acks_an_applied_snapshot_and_nacks_a_bad_one() {
    let context = context(Some("tok"));
    let applier = context.applier.clone();
    let (inbound, mut replies, session) = start(context);

    inbound
        .send(Ok(snapshot(1, GOOD, Some("tok"))))
        .await
        .unwrap();
    let Some(data_plane_message::Kind::Ack(ack)) = replies.recv().await.unwrap().kind else {
        panic!("expected an ack");
    };
    assert_eq!((ack.version, ack.nonce.as_str()), (1, "n1"));
    assert_eq!(applier.current().map(|a| a.version), Some(1));

    // Signed with another token: rejected, version 1 keeps serving.
    inbound
        .send(Ok(snapshot(2, GOOD, Some("other"))))
        .await
        .unwrap();
    let Some(data_plane_message::Kind::Nack(nack)) = replies.recv().await.unwrap().kind else {
        panic!("expected a nack");
    };
    assert_eq!((nack.version, nack.nonce.as_str()), (2, "n2"));
    assert!(nack.errors[0].message.contains("signature"), "{nack:?}");

    // A reference that cannot be resolved here: every error carries its path.
    let missing = r#"{"servers":[{"id":"a","url":"${env:CONDUIT_TEST_SURELY_UNSET_VAR}"}]}"#;
    inbound
        .send(Ok(snapshot(3, missing, Some("tok"))))
        .await
        .unwrap();
    let Some(data_plane_message::Kind::Nack(nack)) = replies.recv().await.unwrap().kind else {
        panic!("expected a nack");
    };
    assert_eq!(nack.errors[0].path, "servers[0].url", "{nack:?}");
    assert_eq!(applier.current().map(|a| a.version), Some(1));

    drop(inbound);
    assert_eq!(
        session.await.unwrap(),
        SessionReport {
            end: SessionEnd::Closed,
            progressed: true
        }
    );
}

/// `message` (a snapshot) carrying one session key `id`, signed with `token`.
fn with_key(mut message: ControlPlaneMessage, id: &str, token: &str) -> ControlPlaneMessage {
    let Some(control_plane_message::Kind::Snapshot(snapshot)) = &mut message.kind else {
        unreachable!()
    };
    let mut set = crate::snapshot::SessionKeySet {
        keys: vec![crate::snapshot::WireSessionKey {
            id: id.into(),
            key: vec![3; 32],
            created_at: 0,
            activates_at: 0,
        }],
        max_age_seconds: 3600,
        signature: String::new(),
    };
    set.signature = crate::snapshot::sign_session_keys(token, snapshot.version, &set);
    snapshot.session_keys = Some(v1::SessionKeySet {
        keys: set
            .keys
            .iter()
            .map(|key| v1::SessionKey {
                id: key.id.clone(),
                key: key.key.clone(),
                created_at: key.created_at,
                activates_at: key.activates_at,
            })
            .collect(),
        max_age_seconds: set.max_age_seconds,
        signature: set.signature,
    });
    message
}

#[tokio::test(start_paused = true)]
async fn the_serving_version_sent_again_only_updates_the_session_keys() {
    let context = context(Some("tok"));
    let applier = context.applier.clone();
    let (inbound, mut replies, _session) = start(context);
    let mut expect_ack = async |message| {
        inbound.send(Ok(message)).await.unwrap();
        match replies.recv().await.unwrap().kind {
            Some(data_plane_message::Kind::Ack(ack)) => ack,
            other => panic!("expected an ack, got {other:?}"),
        }
    };

    let ack = expect_ack(with_key(snapshot(1, GOOD, Some("tok")), "k1", "tok")).await;
    assert_eq!(ack.version, 1);
    let applied = applier.current().unwrap();
    assert_eq!(applier.key_ring().fleet_newest_id().as_deref(), Some("k1"));

    // A rotation: same version, new keys. ACKed as that version, not applied again.
    let ack = expect_ack(with_key(snapshot(1, GOOD, Some("tok")), "k2", "tok")).await;
    assert_eq!(ack.version, 1);
    assert_eq!(applier.current().unwrap().applied_at, applied.applied_at);
    assert_eq!(applier.key_ring().fleet_newest_id().as_deref(), Some("k2"));
    assert_eq!(
        applier.key_ring().keys(None).max_age(),
        Duration::from_secs(3600)
    );

    // Keys signed with another token are refused with the snapshot.
    inbound
        .send(Ok(with_key(snapshot(1, GOOD, Some("tok")), "k3", "other")))
        .await
        .unwrap();
    let Some(data_plane_message::Kind::Nack(nack)) = replies.recv().await.unwrap().kind else {
        panic!("expected a nack");
    };
    assert!(nack.errors[0].message.contains("session keys"), "{nack:?}");
    assert_eq!(applier.key_ring().fleet_newest_id().as_deref(), Some("k2"));
}

#[tokio::test(start_paused = true)]
async fn silence_longer_than_the_idle_timeout_ends_the_session() {
    let (inbound, _replies, session) = start(context(None));
    let started = Instant::now();
    // Heartbeats keep the session alive past the idle timeout...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        inbound.send(Ok(heartbeat())).await.unwrap();
    }
    // ...then silence ends it 15 s after the last message.
    let report = session.await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(45));
    assert!(report.progressed);
    assert!(
        matches!(&report.end, SessionEnd::Failed(reason) if reason.contains("no message")),
        "{report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn stream_errors_are_classified() {
    let (inbound, _replies, session) = start(context(None));
    inbound
        .send(Err(tonic::Status::unauthenticated("bad token")))
        .await
        .unwrap();
    let report = session.await.unwrap();
    assert!(matches!(report.end, SessionEnd::Refused(_)), "{report:?}");
    assert!(!report.progressed);

    let (inbound, _replies, session) = start(context(None));
    inbound
        .send(Err(tonic::Status::unavailable("going away")))
        .await
        .unwrap();
    assert!(matches!(session.await.unwrap().end, SessionEnd::Failed(_)));
}

/// A grant set over `ids`, signed with `key`.
fn grant_set(key: &aws_lc_rs::signature::Ed25519KeyPair, ids: &[&str]) -> ControlPlaneMessage {
    use prost::Message as _;
    let list = v1::GrantList {
        issued_at_ms: 1,
        grants: ids
            .iter()
            .map(|id| v1::Grant {
                id: (*id).into(),
                expires_at: i64::MAX / 2,
                ..Default::default()
            })
            .collect(),
    };
    let grants = list.encode_to_vec();
    let mut message = crate::approvals::grants::GRANT_SET_CONTEXT.to_vec();
    message.extend_from_slice(&grants);
    ControlPlaneMessage {
        kind: Some(control_plane_message::Kind::GrantSet(v1::GrantSet {
            signature: key.sign(&message).as_ref().to_vec(),
            grants,
        })),
    }
}

#[tokio::test(start_paused = true)]
async fn grant_sets_verify_with_the_applied_snapshots_key_and_requests_go_out() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

    let context = context(Some("tok"));
    let applier = context.applier.clone();
    // Queued while no stream was open: sent as soon as one is.
    applier.approvals().outbox().push(v1::ApprovalRequest {
        id: "apr_queued".into(),
        expires_at: i64::MAX / 2,
        ..Default::default()
    });
    let (inbound, mut replies, session) = start(context);
    let Some(data_plane_message::Kind::ApprovalRequest(sent)) = replies.recv().await.unwrap().kind
    else {
        panic!("expected the queued approval request");
    };
    assert_eq!(sent.id, "apr_queued");

    let key = Ed25519KeyPair::generate().unwrap();
    // Before a snapshot brings the key, a grant set is refused.
    inbound
        .send(Ok(grant_set(&key, &["apr_early"])))
        .await
        .unwrap();
    let mut message = snapshot(1, GOOD, Some("tok"));
    let Some(control_plane_message::Kind::Snapshot(snapshot)) = &mut message.kind else {
        unreachable!()
    };
    let public_key = key.public_key().as_ref().to_vec();
    let mut wire_key = crate::snapshot::ApprovalKey {
        public_key: public_key.clone(),
        signature: String::new(),
    };
    wire_key.signature = crate::snapshot::sign_approval_key("tok", 1, &wire_key);
    snapshot.approval_key = Some(v1::ApprovalKey {
        public_key,
        signature: wire_key.signature,
    });
    inbound.send(Ok(message)).await.unwrap();
    let Some(data_plane_message::Kind::Ack(_)) = replies.recv().await.unwrap().kind else {
        panic!("expected an ack");
    };
    // Signed by another key: refused; by the snapshot's key: used.
    let other = Ed25519KeyPair::generate().unwrap();
    inbound
        .send(Ok(grant_set(&other, &["apr_forged"])))
        .await
        .unwrap();
    inbound
        .send(Ok(grant_set(&key, &["apr_a", "apr_b"])))
        .await
        .unwrap();
    // A request pushed while the stream is open goes out at once.
    applier.approvals().outbox().push(v1::ApprovalRequest {
        id: "apr_live".into(),
        expires_at: i64::MAX / 2,
        ..Default::default()
    });
    let Some(data_plane_message::Kind::ApprovalRequest(sent)) = replies.recv().await.unwrap().kind
    else {
        panic!("expected the live approval request");
    };
    assert_eq!(sent.id, "apr_live");
    drop(inbound);
    session.await.unwrap();
    assert_eq!(applier.approvals().grant_count(), 2);
}

fn audit_record(n: usize) -> v1::AuditRecord {
    v1::AuditRecord {
        id: format!("{n:032x}"),
        ..Default::default()
    }
}

fn audit_ack(sequence: u64) -> ControlPlaneMessage {
    ControlPlaneMessage {
        kind: Some(control_plane_message::Kind::AuditAck(v1::AuditAck {
            sequence,
        })),
    }
}

async fn next_audit_batch(replies: &mut mpsc::Receiver<DataPlaneMessage>) -> v1::AuditBatch {
    match replies.recv().await.expect("the session is running").kind {
        Some(data_plane_message::Kind::AuditBatch(batch)) => batch,
        other => panic!("expected an audit batch, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn audit_records_go_out_in_batches_every_second_or_when_full() {
    let context = context(None);
    let queue = Arc::clone(&context.audit);
    let metrics = Arc::clone(context.applier.metrics());
    for n in 0..3 {
        queue.push(audit_record(n));
    }
    let (inbound, mut replies, _session) = start(context);
    let batch = next_audit_batch(&mut replies).await;
    assert_eq!(
        (batch.sequence, batch.records.len(), batch.dropped),
        (1, 3, 0)
    );

    // A partial batch waits for the next tick.
    let started = Instant::now();
    queue.push(audit_record(3));
    let batch = next_audit_batch(&mut replies).await;
    assert_eq!((batch.sequence, batch.records.len()), (2, 1));
    assert_eq!(started.elapsed(), Duration::from_secs(1));

    // A full one goes at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    for n in 0..crate::audit::queue::BATCH_RECORDS {
        queue.push(audit_record(10 + n));
    }
    let batch = next_audit_batch(&mut replies).await;
    assert_eq!(batch.records.len(), crate::audit::queue::BATCH_RECORDS);
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(metrics.audit_queue_depth.get(), 504);

    // Acked batches are forgotten; the others wait for theirs.
    inbound.send(Ok(audit_ack(1))).await.unwrap();
    inbound.send(Ok(audit_ack(3))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(queue.depth(), 1);
    assert_eq!(metrics.audit_queue_depth.get(), 1);
    // No more records: the ticks send nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(replies.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn unacked_audit_batches_are_sent_again_first_on_the_next_stream() {
    let context = context(None);
    let queue = Arc::clone(&context.audit);
    queue.push(audit_record(1));
    let (inbound, mut replies, session) = start(context.clone());
    let lost = next_audit_batch(&mut replies).await;
    // The stream ends before the control plane acks.
    drop(inbound);
    session.await.unwrap();
    queue.push(audit_record(2));

    let (inbound, mut replies, _session) = start(context);
    let again = next_audit_batch(&mut replies).await;
    assert_eq!(again, lost, "the same batch, same sequence and record ids");
    let next = next_audit_batch(&mut replies).await;
    assert_eq!(next.sequence, lost.sequence + 1);
    assert_eq!(next.records[0].id, audit_record(2).id);
    inbound.send(Ok(audit_ack(lost.sequence))).await.unwrap();
    inbound.send(Ok(audit_ack(next.sequence))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(queue.depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn records_beyond_the_capacity_are_dropped_counted_and_reported() {
    use crate::audit::queue::{BATCH_RECORDS, CAPACITY};
    let context = context(None);
    let queue = Arc::clone(&context.audit);
    let metrics = Arc::clone(context.applier.metrics());
    // The control plane is away: the queue holds what it can.
    for n in 0..CAPACITY + 5 {
        queue.push(audit_record(n));
    }
    assert_eq!(metrics.audit_dropped.get(), 5);
    assert_eq!(metrics.audit_queue_depth.get(), CAPACITY as i64);

    let (_inbound, mut replies, _session) = start(context);
    let first = next_audit_batch(&mut replies).await;
    assert_eq!((first.records.len(), first.dropped), (BATCH_RECORDS, 5));
    let second = next_audit_batch(&mut replies).await;
    assert_eq!(second.dropped, 0, "drops are reported once");
    assert_eq!(second.records[0].id, audit_record(BATCH_RECORDS).id);
}

#[tokio::test(start_paused = true)]
async fn on_shutdown_the_last_records_go_out_and_their_ack_is_awaited_briefly() {
    let context = context(None);
    let queue = Arc::clone(&context.audit);
    let (inbound, inbound_rx) = mpsc::channel(8);
    let (outbound, mut replies) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let session = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            drive(
                &context,
                ReceiverStream::new(inbound_rx),
                &outbound,
                &shutdown,
            )
            .await
        }
    });
    // Let the session start and pass its first (empty) tick.
    tokio::time::sleep(Duration::from_millis(10)).await;
    queue.push(audit_record(1));
    shutdown.cancel();
    let last = next_audit_batch(&mut replies).await;
    assert_eq!(last.records.len(), 1);
    let started = Instant::now();
    inbound.send(Ok(audit_ack(last.sequence))).await.unwrap();
    assert_eq!(session.await.unwrap().end, SessionEnd::Shutdown);
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(queue.depth(), 0);

    // Without an ack, the grace ends it.
    let context = self::context(None);
    context.audit.push(audit_record(2));
    let (_inbound, inbound_rx) = mpsc::channel::<Result<ControlPlaneMessage, tonic::Status>>(8);
    let (outbound, mut replies) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let started = Instant::now();
    let report = drive(
        &context,
        ReceiverStream::new(inbound_rx),
        &outbound,
        &shutdown,
    )
    .await;
    assert_eq!(report.end, SessionEnd::Shutdown);
    assert_eq!(started.elapsed(), SHUTDOWN_AUDIT_GRACE);
    assert_eq!(next_audit_batch(&mut replies).await.records.len(), 1);
    assert_eq!(context.audit.depth(), 1, "kept, though the process ends");
}

/// The status with which the control plane ends a stream whose message it cannot take.
fn refused_as_too_large() -> tonic::Status {
    tonic::Status::out_of_range(format!(
        "{}: Error, decoded message length too large: found 37748736 bytes, the limit is: \
         33554432 bytes",
        conduit_proto::limits::REFUSED_DATA_PLANE_MESSAGE
    ))
}

#[tokio::test(start_paused = true)]
async fn a_batch_the_control_plane_refuses_is_dropped_after_a_few_streams_not_resent_forever() {
    let context = context(None);
    let queue = Arc::clone(&context.audit);
    let metrics = Arc::clone(context.applier.metrics());
    queue.push(audit_record(1));
    queue.push(audit_record(2));
    // A control plane that refuses whatever batch comes first, as it did with a batch of
    // huge records: a stream per attempt, each ending in the refusal.
    let mut streams = 0;
    while metrics.audit_undeliverable.get() < 2 {
        streams += 1;
        assert!(streams <= 4, "still resending after {streams} streams");
        let (inbound, mut replies, session) = start(context.clone());
        let batch = next_audit_batch(&mut replies).await;
        inbound.send(Ok(heartbeat())).await.unwrap();
        inbound.send(Err(refused_as_too_large())).await.unwrap();
        let report = session.await.unwrap();
        assert!(
            matches!(&report.end, SessionEnd::Rejected(reason) if reason.contains("too large")),
            "{report:?}"
        );
        assert!(report.progressed, "a heartbeat came first");
        assert!(
            replies.try_recv().is_err(),
            "batch {} went alone",
            batch.sequence
        );
    }
    // Marked, split, then each half refused alone: four streams, both records counted.
    assert_eq!(streams, 4);
    assert_eq!(queue.depth(), 0);
    assert_eq!(metrics.audit_queue_depth.get(), 0);

    // The next stream works again, and reports the drops with the next records.
    queue.push(audit_record(3));
    let (inbound, mut replies, _session) = start(context);
    let batch = next_audit_batch(&mut replies).await;
    assert_eq!((batch.records.len(), batch.dropped), (1, 2));
    inbound.send(Ok(audit_ack(batch.sequence))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(queue.depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failure_of_the_control_plane_own_makes_no_batch_a_suspect() {
    let context = context(None);
    let queue = Arc::clone(&context.audit);
    let metrics = Arc::clone(context.applier.metrics());
    for n in 0..crate::audit::queue::BATCH_RECORDS * 2 {
        queue.push(audit_record(n));
    }
    for _ in 0..3 {
        let (inbound, mut replies, session) = start(context.clone());
        next_audit_batch(&mut replies).await;
        next_audit_batch(&mut replies).await;
        // Its own snapshot did not fit: no message of this data plane was refused.
        inbound
            .send(Err(tonic::Status::out_of_range(
                "Error, encoded message length too large",
            )))
            .await
            .unwrap();
        let report = session.await.unwrap();
        assert!(matches!(report.end, SessionEnd::Rejected(_)), "{report:?}");
    }
    assert_eq!(metrics.audit_undeliverable.get(), 0);
    assert_eq!(queue.depth(), crate::audit::queue::BATCH_RECORDS * 2);
}

#[tokio::test(start_paused = true)]
async fn an_approval_request_too_large_for_the_stream_goes_cut() {
    let context = context(None);
    let applier = context.applier.clone();
    applier.approvals().outbox().push(v1::ApprovalRequest {
        id: "apr_huge".into(),
        tool: "t".repeat(conduit_proto::limits::MAX_STREAM_MESSAGE_BYTES),
        arguments_json: "{}".into(),
        expires_at: i64::MAX / 2,
        ..Default::default()
    });
    let (_inbound, mut replies, _session) = start(context);
    let Some(data_plane_message::Kind::ApprovalRequest(sent)) = replies.recv().await.unwrap().kind
    else {
        panic!("expected the approval request");
    };
    assert_eq!(sent.id, "apr_huge");
    assert!(sent.tool.len() <= conduit_proto::limits::AUDIT_TARGET_MAX_BYTES);
    assert!(sent.tool.ends_with(" bytes truncated]"), "{}", sent.tool);
    assert_eq!(applier.metrics().approval_requests_dropped.get(), 0);
}
