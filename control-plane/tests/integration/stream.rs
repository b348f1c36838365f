//! Config stream protocol: no resend to an up-to-date data plane, heartbeats, protocol
//! errors, replacement of a node's stream and disconnect tracking.

use std::time::Duration;

use anyhow::Context as _;
use conduit_proto::v1::{Ack, FleetStatusRequest, control_plane_message, data_plane_message};
use tonic::Code;

use super::common::{DataPlane, Options, TestServer, config, wait_for_fleet};

#[tokio::test]
async fn hello_with_the_current_version_gets_no_resend() -> anyhow::Result<()> {
    let server = TestServer::start(Options {
        heartbeat: Some(Duration::from_millis(50)),
        ..Options::default()
    })
    .await?;
    let applied = server.apply(&config(1)).await?;

    let keys = server.session_keys_id()?;
    let mut current = server
        .data_plane_with_keys("dp-current", (1, &applied.hash), &keys)
        .await?;
    // Only heartbeats follow: the first at once, then one per interval.
    for _ in 0..3 {
        assert_eq!(current.expect_heartbeat().await?, 1);
    }
    let mut admin = server.admin().await?;
    let fleet = admin
        .fleet_status(FleetStatusRequest {})
        .await?
        .into_inner();
    assert_eq!(fleet.data_planes[0].applied_version, 1, "taken from Hello");

    // Same version number, different content (e.g. a rebuilt control plane): resend.
    let mut stale = server.data_plane("dp-stale", (1, "other-hash")).await?;
    assert_eq!(stale.expect_snapshot().await?.hash, applied.hash);
    let mut behind = server.data_plane("dp-behind", (0, "")).await?;
    let snapshot = behind.expect_snapshot().await?;
    assert_eq!(snapshot.version, 1);
    assert_eq!(
        snapshot.session_keys.context("session keys")?.keys[0].id,
        keys
    );
    // The current version without the current keys (a rotation missed while away): resend.
    let mut rekey = server.data_plane("dp-rekey", (1, &applied.hash)).await?;
    let snapshot = rekey.expect_snapshot().await?;
    assert_eq!((snapshot.version, snapshot.hash), (1, applied.hash));
    Ok(())
}

#[tokio::test]
async fn first_message_must_be_hello() -> anyhow::Result<()> {
    let server = TestServer::start(Options::default()).await?;
    let ack = data_plane_message::Kind::Ack(Ack {
        version: 1,
        nonce: "n".to_owned(),
    });
    let Err(error) = DataPlane::open(&server, None, ack).await else {
        panic!("stream accepted without Hello");
    };
    let status = error
        .downcast_ref::<tonic::Status>()
        .expect("a gRPC status");
    assert_eq!(status.code(), Code::InvalidArgument);
    Ok(())
}

#[tokio::test]
async fn ack_with_a_foreign_nonce_is_ignored() -> anyhow::Result<()> {
    let server = TestServer::start(Options::default()).await?;
    server.apply(&config(1)).await?;
    let mut dp = server.data_plane("dp-1", (0, "")).await?;
    let mut snapshot = dp.expect_snapshot().await?;
    let nonce = std::mem::replace(&mut snapshot.nonce, "forged".to_owned());
    dp.ack(&snapshot).await?;
    snapshot.nonce = nonce;
    dp.ack(&snapshot).await?;
    let mut admin = server.admin().await?;
    wait_for_fleet(&mut admin, |fleet| {
        fleet.data_planes[0].applied_version == 1
    })
    .await?;
    assert_eq!(
        server
            .http_get("/metrics")
            .await?
            .1
            .lines()
            .find(|l| l.starts_with("conduit_cp_snapshot_acks_total")),
        Some("conduit_cp_snapshot_acks_total 1"),
        "only the matching ACK counts"
    );
    Ok(())
}

#[tokio::test]
async fn a_second_stream_replaces_the_first_and_disconnects_are_tracked() -> anyhow::Result<()> {
    let server = TestServer::start(Options::default()).await?;
    let mut admin = server.admin().await?;
    let mut first = server.data_plane("dp-1", (0, "")).await?;
    first.expect_heartbeat().await?;
    let mut second = server.data_plane("dp-1", (0, "")).await?;
    second.expect_heartbeat().await?;

    // The grant set that follows the first heartbeat, then the end.
    let ended = loop {
        let next = tokio::time::timeout(super::common::WAIT, first.inbound.message()).await?;
        if !matches!(
            next,
            Ok(Some(conduit_proto::v1::ControlPlaneMessage {
                kind: Some(conduit_proto::v1::control_plane_message::Kind::GrantSet(_))
            }))
        ) {
            break next;
        }
    };
    assert_eq!(
        ended.unwrap_err().code(),
        Code::Aborted,
        "the old stream is ended"
    );
    let fleet = admin
        .fleet_status(FleetStatusRequest {})
        .await?
        .into_inner();
    assert_eq!(fleet.data_planes.len(), 1);
    assert!(
        fleet.data_planes[0].connected,
        "the old stream's end does not count"
    );

    // The new stream still receives snapshots.
    server.apply(&config(1)).await?;
    let snapshot = second.expect_snapshot().await?;
    second.ack(&snapshot).await?;
    wait_for_fleet(&mut admin, |fleet| {
        fleet.data_planes[0].applied_version == 1
    })
    .await?;

    drop(second);
    wait_for_fleet(&mut admin, |fleet| !fleet.data_planes[0].connected).await?;
    Ok(())
}

#[tokio::test]
async fn a_key_rotation_sends_the_same_version_with_new_keys() -> anyhow::Result<()> {
    let server = TestServer::start(Options {
        tokens: true,
        key_rotation: Some(Duration::from_secs(2)),
        ..Options::default()
    })
    .await?;
    let applied = server.apply(&config(1)).await?;
    let mut dp = server.data_plane("dp-1", (0, "")).await?;
    let first = dp.expect_snapshot().await?;
    let first_keys = first.session_keys.clone().context("session keys")?;
    assert_eq!(first_keys.keys.len(), 1);
    assert_eq!(first_keys.keys[0].key.len(), 32);
    assert!(!first_keys.signature.is_empty(), "signed with the DP token");
    dp.ack(&first).await?;

    // Heartbeats until the rotation; then version 1 again, new key first, old key kept.
    let rotated = loop {
        match dp.next().await? {
            control_plane_message::Kind::Snapshot(snapshot) => break snapshot,
            control_plane_message::Kind::Heartbeat(_) => {}
            control_plane_message::Kind::GrantSet(_) => unreachable!("next() keeps grant sets"),
            control_plane_message::Kind::AuditAck(_) => unreachable!("no audit batch was sent"),
        }
    };
    assert_eq!((rotated.version, &rotated.hash), (1, &applied.hash));
    let keys = rotated.session_keys.clone().context("session keys")?;
    assert_eq!(keys.keys.len(), 2, "{keys:?}");
    assert_ne!(keys.keys[0].id, first_keys.keys[0].id);
    assert_eq!(keys.keys[1].id, first_keys.keys[0].id);
    assert!(
        keys.keys[0].activates_at > keys.keys[0].created_at,
        "shipped ahead"
    );
    assert_ne!(keys.signature, first_keys.signature);
    dp.ack(&rotated).await?;

    let mut admin = server.admin().await?;
    let fleet = wait_for_fleet(&mut admin, |fleet| {
        fleet
            .data_planes
            .first()
            .is_some_and(|dp| dp.applied_version == 1)
    })
    .await?;
    assert_eq!(fleet.current_version, 1, "a rotation creates no version");
    Ok(())
}
