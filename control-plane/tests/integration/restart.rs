//! State that must survive a restart (versions, fleet rows) and the HTTP endpoints.

use conduit_proto::v1::{FleetStatusRequest, ListVersionsRequest};

use super::common::{Options, TestServer, config, wait_for_fleet};

#[tokio::test]
async fn restart_keeps_versions_and_fleet_rows() -> anyhow::Result<()> {
    let mut server = TestServer::start(Options::default()).await?;
    server.apply(&config(1)).await?;
    let applied = server.apply(&config(2)).await?;
    {
        let mut dp = server.data_plane("dp-1", (0, "")).await?;
        let snapshot = dp.expect_snapshot().await?;
        dp.nack(&snapshot, &[("servers[0].url", "unreachable")])
            .await?;
        let mut admin = server.admin().await?;
        wait_for_fleet(&mut admin, |fleet| {
            fleet.data_planes[0].rejected_version == 2
        })
        .await?;
        // The data plane stays connected while the server shuts down.
        server.stop().await?;
        drop(dp);
    }
    server.restart().await?;

    let mut admin = server.admin().await?;
    let versions = admin
        .list_versions(ListVersionsRequest { limit: 0 })
        .await?
        .into_inner()
        .versions;
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    let fleet = admin
        .fleet_status(FleetStatusRequest {})
        .await?
        .into_inner();
    assert_eq!(fleet.current_version, 2);
    let dp = &fleet.data_planes[0];
    assert_eq!(dp.node_id, "dp-1");
    assert!(!dp.connected, "shown disconnected until it reconnects");
    assert_eq!(dp.rejected_version, 2);
    assert_eq!(dp.rejected_errors[0].message, "unreachable");
    assert_eq!(dp.labels.get("zone").map(String::as_str), Some("test"));

    // It reconnects running version 2 (say, after fixing its environment): no resend.
    let mut dp = server
        .data_plane_with_keys("dp-1", (2, &applied.hash), &server.session_keys_id()?)
        .await?;
    assert_eq!(dp.expect_heartbeat().await?, 2);
    let fleet = wait_for_fleet(&mut admin, |fleet| fleet.data_planes[0].connected).await?;
    assert_eq!(fleet.data_planes[0].applied_version, 2);
    assert_eq!(fleet.data_planes[0].rejected_version, 0);
    Ok(())
}

#[tokio::test]
async fn health_readiness_and_metrics() -> anyhow::Result<()> {
    let server = TestServer::start(Options::default()).await?;
    assert_eq!(server.http_get("/healthz").await?, (200, "ok".to_owned()));
    assert_eq!(server.http_get("/readyz").await?.0, 200);
    assert_eq!(server.http_get("/nope").await?.0, 404);

    server.apply(&config(1)).await?;
    let mut dp = server.data_plane("dp-1", (0, "")).await?;
    let snapshot = dp.expect_snapshot().await?;
    dp.ack(&snapshot).await?;
    let mut admin = server.admin().await?;
    wait_for_fleet(&mut admin, |fleet| {
        fleet.data_planes[0].applied_version == 1
    })
    .await?;

    let (status, metrics) = server.http_get("/metrics").await?;
    assert_eq!(status, 200);
    for line in [
        "conduit_cp_config_version 1",
        "conduit_cp_config_versions_created_total 1",
        "conduit_cp_data_planes{state=\"connected\"} 1",
        "conduit_cp_data_planes{state=\"converged\"} 1",
        "conduit_cp_snapshot_acks_total 1",
        "conduit_cp_admin_requests_total{method=\"apply\",outcome=\"ok\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line} in\n{metrics}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn data_directory_and_database_are_private() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start(Options::default()).await?;
    let mode = |path: std::path::PathBuf| -> anyhow::Result<u32> {
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
    };
    assert_eq!(mode(server.data_dir())?, 0o700);
    assert_eq!(mode(server.data_dir().join("conduit.db"))?, 0o600);
    assert!(server.dir().exists());
    Ok(())
}
