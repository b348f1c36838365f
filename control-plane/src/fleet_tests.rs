use std::collections::BTreeMap;

use super::*;

fn hello(node_id: &str, applied_version: u64) -> Hello {
    Hello {
        node_id: node_id.into(),
        labels: BTreeMap::from([("zone".into(), "a".into())]),
        build_version: "0.1.0".into(),
        applied_version,
        applied_hash: format!("h{applied_version}"),
    }
}

fn error(path: &str) -> StoredError {
    StoredError {
        path: path.into(),
        message: "bad".into(),
    }
}

fn status(fleet: &Fleet, node_id: &str) -> NodeStatus {
    fleet
        .statuses()
        .into_iter()
        .find(|status| status.row.node_id == node_id)
        .unwrap()
}

#[test]
fn ack_and_nack_state_machine() {
    let fleet = Fleet::new(Vec::new());
    let peer = "127.0.0.1:4000".parse().ok();
    let session = fleet.connect(hello("dp-1", 1), peer);
    let dp = status(&fleet, "dp-1");
    assert!(dp.connected);
    assert_eq!(dp.row.applied_version, 1);
    assert_eq!(dp.row.peer_address, "127.0.0.1:4000");
    assert_eq!(dp.rollout_state(1), RolloutState::Converged);
    assert_eq!(dp.rollout_state(2), RolloutState::Pending);

    fleet.nacked(&session, 2, vec![error("servers[0].url")]);
    let dp = status(&fleet, "dp-1");
    assert_eq!(
        dp.row.applied_version, 1,
        "a NACK keeps the previous version"
    );
    assert_eq!(dp.row.rejected_version, 2);
    assert_eq!(dp.rollout_state(2), RolloutState::Rejected);
    assert_eq!(fleet.counts(2).rejecting, 1);

    // An ACK of an older version does not clear a newer rejection.
    fleet.acked(&session, 1, "h1");
    assert_eq!(status(&fleet, "dp-1").row.rejected_version, 2);

    fleet.acked(&session, 3, "h3");
    let dp = status(&fleet, "dp-1");
    assert_eq!(
        (dp.row.applied_version, dp.row.applied_hash.as_str()),
        (3, "h3")
    );
    assert_eq!(dp.row.rejected_version, 0);
    assert!(dp.row.rejected_errors.is_empty());
    assert_eq!(dp.rollout_state(2), RolloutState::Converged);
    assert_eq!(
        fleet.counts(3),
        FleetCounts {
            connected: 1,
            converged: 1,
            ..FleetCounts::default()
        }
    );

    // Hello may claim more than this control plane has (its database was replaced); the
    // next ACK says what really runs.
    fleet.disconnect(&session);
    assert!(!status(&fleet, "dp-1").connected);
    assert_eq!(fleet.counts(3).disconnected, 1);
    let session = fleet.connect(hello("dp-1", 9), None);
    fleet.acked(&session, 2, "h2");
    assert_eq!(status(&fleet, "dp-1").row.applied_version, 2);
}

#[tokio::test]
async fn second_stream_replaces_the_first() {
    let fleet = Fleet::new(Vec::new());
    let mut first = fleet.connect(hello("dp-1", 0), None);
    let second = fleet.connect(hello("dp-1", 0), None);
    (&mut first.replaced)
        .await
        .expect("the old stream is told to end");

    // The replaced stream's late messages and its close change nothing.
    fleet.acked(&first, 5, "h5");
    fleet.disconnect(&first);
    let dp = status(&fleet, "dp-1");
    assert!(dp.connected);
    assert_eq!(dp.row.applied_version, 0);

    fleet.acked(&second, 5, "h5");
    assert_eq!(status(&fleet, "dp-1").row.applied_version, 5);
    assert_eq!(fleet.statuses().len(), 1);
}

#[tokio::test]
async fn every_change_wakes_subscribers() {
    let fleet = Fleet::new(Vec::new());
    let mut changes = fleet.subscribe();
    let session = fleet.connect(hello("dp-1", 0), None);
    assert!(changes.has_changed().unwrap());
    changes.borrow_and_update();
    fleet.acked(&session, 1, "h1");
    assert!(changes.has_changed().unwrap());
    changes.borrow_and_update();
    // Heartbeat bookkeeping is not a state change.
    fleet.seen(&session);
    assert!(!changes.has_changed().unwrap());
}

#[tokio::test(start_paused = true)]
async fn persists_behind_and_reloads_disconnected() {
    let temp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(temp.path()).unwrap());
    let fleet = Arc::new(Fleet::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        fleet
            .clone()
            .run_persistence(store.clone(), shutdown.clone()),
    );

    let session = fleet.connect(hello("dp-1", 0), None);
    fleet.nacked(&session, 1, vec![error("servers[0].url")]);
    // Nothing is written until the coalescing window has passed.
    assert!(store.load_data_planes().unwrap().is_empty());
    tokio::time::sleep(PERSIST_COALESCE * 2).await;
    // The write runs on the blocking pool; give it real time to finish.
    for _ in 0..100 {
        if !store.load_data_planes().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        tokio::task::yield_now().await;
    }
    let rows = store.load_data_planes().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].rejected_version, 1);

    fleet.acked(&session, 1, "h1");
    shutdown.cancel();
    task.await.unwrap();
    let rows = store.load_data_planes().unwrap();
    assert_eq!(rows[0].applied_version, 1, "shutdown flushes pending rows");

    let reloaded = Fleet::new(rows);
    let dp = status(&reloaded, "dp-1");
    assert!(!dp.connected);
    assert_eq!(dp.row.applied_version, 1);
    assert_eq!(dp.row.labels.get("zone").map(String::as_str), Some("a"));
}

#[test]
fn rollout_summary_counts_connected_nodes_only() {
    let fleet = Fleet::new(Vec::new());
    assert_eq!(fleet.rollout_summary(1), RolloutSummary::default());
    let done = fleet.connect(hello("done", 1), None);
    let gone = fleet.connect(hello("gone", 0), None);
    fleet.disconnect(&gone);
    assert_eq!(fleet.rollout_summary(1), RolloutSummary::default());
    let rejecting = fleet.connect(hello("rejecting", 0), None);
    fleet.nacked(&rejecting, 1, vec![error("")]);
    let _pending = fleet.connect(hello("pending", 0), None);
    assert_eq!(
        fleet.rollout_summary(1),
        RolloutSummary {
            rejected: true,
            pending: true
        }
    );
    fleet.disconnect(&done);
    assert_eq!(fleet.counts(1).disconnected, 2);
}
