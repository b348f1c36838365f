//! Apply, rollback, reads and rollout waiting, with a scripted data plane on the stream.

use conduit_proto::v1::wait_rollout_response::Outcome;
use conduit_proto::v1::{
    ApplyRequest, ConfigErrors, FleetStatusRequest, GetConfigRequest, ListVersionsRequest,
    RollbackRequest, WaitRolloutRequest,
};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::Code;

use super::common::{Options, TestServer, WAIT, config, wait_for_fleet};

#[tokio::test]
async fn apply_reaches_the_data_plane_and_the_rollout_converges() -> anyhow::Result<()> {
    let server = TestServer::start(Options::default()).await?;
    let mut admin = server.admin().await?;
    let mut dp = server.data_plane("dp-1", (0, "")).await?;
    assert_eq!(
        dp.expect_heartbeat().await?,
        0,
        "nothing to send before the first apply"
    );

    let applied = server.apply(&config(1)).await?;
    assert_eq!((applied.version, applied.changed), (1, true));
    let snapshot = dp.expect_snapshot().await?;
    assert_eq!(snapshot.version, 1);
    assert_eq!(snapshot.hash, applied.hash);
    assert_eq!(
        snapshot.hash,
        hex::encode(Sha256::digest(&snapshot.config_json))
    );
    assert_eq!(snapshot.signature, "", "no DP token, no signature");
    assert!(!snapshot.created_at.is_empty());

    // WaitRollout is pending until the ACK arrives, then returns at once.
    let mut waiter = admin.clone();
    let wait = tokio::spawn(async move {
        waiter
            .wait_rollout(WaitRolloutRequest {
                version: 1,
                timeout_ms: 10_000,
            })
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !wait.is_finished(),
        "no data plane has applied version 1 yet"
    );
    dp.ack(&snapshot).await?;
    let rollout = tokio::time::timeout(WAIT, wait).await???.into_inner();
    assert_eq!(rollout.outcome(), Outcome::Converged);
    assert_eq!(rollout.data_planes.len(), 1);
    assert_eq!(rollout.data_planes[0].applied_version, 1);

    let fleet = admin
        .fleet_status(FleetStatusRequest {})
        .await?
        .into_inner();
    assert_eq!(fleet.current_version, 1);
    let status = &fleet.data_planes[0];
    assert_eq!(status.node_id, "dp-1");
    assert!(status.connected);
    assert_eq!(status.applied_hash, applied.hash);
    assert_eq!(status.labels.get("zone").map(String::as_str), Some("test"));
    assert_eq!(status.build_version, "test-build");
    assert!(status.peer_address.starts_with("127.0.0.1:"));
    assert!(!status.connected_since.is_empty() && !status.last_seen.is_empty());

    // The same document again creates nothing.
    let again = server.apply(&config(1)).await?;
    assert_eq!((again.version, again.changed), (1, false));
    let current = admin
        .get_config(GetConfigRequest { version: 0 })
        .await?
        .into_inner();
    assert_eq!(current.version, 1);
    assert_eq!(current.config_json, snapshot.config_json);
    assert_eq!(
        (current.author.as_str(), current.message.as_str()),
        ("tester", "test")
    );
    Ok(())
}

#[tokio::test]
async fn nack_is_shown_and_rejects_the_rollout() -> anyhow::Result<()> {
    let server = TestServer::start(Options::default()).await?;
    let mut admin = server.admin().await?;
    let mut good = server.data_plane("dp-good", (0, "")).await?;
    let mut bad = server.data_plane("dp-bad", (0, "")).await?;
    good.expect_heartbeat().await?;
    bad.expect_heartbeat().await?;

    server.apply(&config(1)).await?;
    let snapshot = good.expect_snapshot().await?;
    good.ack(&snapshot).await?;
    let snapshot = bad.expect_snapshot().await?;
    bad.nack(
        &snapshot,
        &[("servers[0].url", "${env:MISSING} is not set")],
    )
    .await?;

    let rollout = admin
        .wait_rollout(WaitRolloutRequest {
            version: 1,
            timeout_ms: 10_000,
        })
        .await?
        .into_inner();
    assert_eq!(rollout.outcome(), Outcome::Rejected);
    let fleet = admin
        .fleet_status(FleetStatusRequest {})
        .await?
        .into_inner();
    let bad_status = fleet
        .data_planes
        .iter()
        .find(|status| status.node_id == "dp-bad")
        .unwrap();
    assert_eq!(
        bad_status.applied_version, 0,
        "a NACK keeps the previous version"
    );
    assert_eq!(bad_status.rejected_version, 1);
    assert_eq!(bad_status.rejected_errors[0].path, "servers[0].url");
    assert_eq!(
        bad_status.rejected_errors[0].message,
        "${env:MISSING} is not set"
    );

    // A later ACK clears the rejection.
    server.apply(&config(2)).await?;
    let snapshot = bad.expect_snapshot().await?;
    bad.ack(&snapshot).await?;
    let fleet = wait_for_fleet(&mut admin, |fleet| {
        fleet
            .data_planes
            .iter()
            .any(|dp| dp.node_id == "dp-bad" && dp.applied_version == 2)
    })
    .await?;
    let bad_status = fleet
        .data_planes
        .iter()
        .find(|dp| dp.node_id == "dp-bad")
        .unwrap();
    assert_eq!(bad_status.rejected_version, 0);
    assert!(bad_status.rejected_errors.is_empty());

    // dp-good has not applied version 2: the rollout times out.
    let rollout = admin
        .wait_rollout(WaitRolloutRequest {
            version: 2,
            timeout_ms: 100,
        })
        .await?
        .into_inner();
    assert_eq!(rollout.outcome(), Outcome::TimedOut);
    Ok(())
}

#[tokio::test]
async fn invalid_apply_reports_every_error_and_creates_nothing() -> anyhow::Result<()> {
    let server = TestServer::start(Options::default()).await?;
    let mut admin = server.admin().await?;
    let document = "servers:\n  - id: a\n    url: not a url\n    bogus: 1\n  - id: a\n    url: http://127.0.0.1:9/mcp\n";
    let status = admin
        .apply(ApplyRequest {
            document: document.to_owned(),
            ..ApplyRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let errors = ConfigErrors::decode(status.details())?.errors;
    assert!(errors.len() >= 2, "every problem is reported: {errors:?}");
    let expected = conduit_config::Document::from_text(document).unwrap_err();
    assert_eq!(errors.len(), expected.0.len());
    assert_eq!(status.message(), expected.to_string());
    for error in &errors {
        let line = if error.path.is_empty() {
            error.message.clone()
        } else {
            format!("{}: {}", error.path, error.message)
        };
        assert!(
            status.message().lines().any(|l| l == line),
            "{line} missing"
        );
    }
    let versions = admin
        .list_versions(ListVersionsRequest { limit: 0 })
        .await?
        .into_inner();
    assert!(versions.versions.is_empty());
    let missing = admin
        .get_config(GetConfigRequest { version: 0 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let dry = admin
        .apply(ApplyRequest {
            document: config(1),
            dry_run: true,
            ..ApplyRequest::default()
        })
        .await?
        .into_inner();
    assert!(dry.dry_run && dry.changed);
    let versions = admin
        .list_versions(ListVersionsRequest { limit: 0 })
        .await?;
    assert!(
        versions.into_inner().versions.is_empty(),
        "a dry run stores nothing"
    );
    Ok(())
}

#[tokio::test]
async fn rollback_stores_the_old_document_as_a_new_version() -> anyhow::Result<()> {
    let server = TestServer::start(Options::default()).await?;
    let mut admin = server.admin().await?;
    let first = server.apply(&config(1)).await?;
    server.apply(&config(2)).await?;
    let mut dp = server
        .data_plane_with_keys("dp-1", (2, ""), &server.session_keys_id()?)
        .await?;
    assert_eq!(dp.expect_heartbeat().await?, 2);

    let rolled = admin
        .rollback(RollbackRequest {
            to_version: 1,
            message: "bad deploy".to_owned(),
            author: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!((rolled.version, rolled.changed), (3, true));
    assert_eq!(rolled.hash, first.hash);
    let snapshot = dp.expect_snapshot().await?;
    assert_eq!(
        (snapshot.version, snapshot.hash.as_str()),
        (3, first.hash.as_str())
    );

    let history = admin
        .list_versions(ListVersionsRequest { limit: 0 })
        .await?
        .into_inner()
        .versions;
    let summary: Vec<(u64, u64, &str, &str)> = history
        .iter()
        .map(|v| {
            (
                v.version,
                v.rolled_back_from,
                v.author.as_str(),
                v.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, 1, "unknown", "bad deploy"),
            (2, 0, "tester", "test"),
            (1, 0, "tester", "test")
        ]
    );
    assert!(
        history.iter().all(|v| v.config_json.is_empty()),
        "listings omit documents"
    );

    // Rolling back to what is already current changes nothing.
    let same = admin
        .rollback(RollbackRequest {
            to_version: 1,
            ..RollbackRequest::default()
        })
        .await?
        .into_inner();
    assert_eq!((same.version, same.changed), (3, false));
    let unknown = admin
        .rollback(RollbackRequest {
            to_version: 99,
            ..RollbackRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let unknown = admin
        .get_config(GetConfigRequest { version: 99 })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let wait = admin
        .wait_rollout(WaitRolloutRequest {
            version: 99,
            timeout_ms: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(wait.code(), Code::NotFound);
    Ok(())
}
