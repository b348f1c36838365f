//! `--state-dir`: the applied snapshot is persisted as received and served after a restart
//! while the control plane is unreachable.

use std::os::unix::fs::PermissionsExt;

use conduit_data_plane::references::ReferencePolicy;

use serde_json::json;

use super::support::control_plane::{FakeControlPlane, Report};
use super::support::upstream::{Upstream, dead_addr};
use super::support::{config_dump, control_plane_source, eventually, http, settings, start};

#[tokio::test]
async fn persisted_snapshot_serves_after_a_restart_without_the_control_plane() {
    let upstream = Upstream::start().await;
    let temp = tempfile::tempdir().expect("temp dir");
    let state_dir = temp.path().join("state");
    // The upstream URL is a reference, resolved on the data plane only.
    let url_file = temp.path().join("upstream-url");
    std::fs::write(&url_file, upstream.url()).expect("write url");
    let document = format!(
        "servers:\n  - id: alpha\n    url: \"${{file:{}}}\"\n",
        url_file.display()
    );

    // `${file:}` reads only under a --secret-dir.
    let with_secrets = |source| {
        let mut settings = settings(source);
        settings.references = ReferencePolicy::new(
            &[temp.path().to_path_buf()],
            Vec::new(),
            conduit_data_plane::references::DEFAULT_MAX_BYTES,
            std::time::Duration::from_secs(5),
        )
        .expect("policy");
        settings
    };

    let control_plane = FakeControlPlane::start(None).await;
    let first = start(with_secrets(control_plane_source(
        control_plane.addr,
        Some(&state_dir),
    )))
    .await;
    control_plane.push(1, &document);
    assert!(matches!(control_plane.next_report().await, Report::Ack(_)));

    // Persisted right after the ACK is sent.
    let snapshot_path = state_dir.join("snapshot.json");
    let metadata = eventually("the snapshot file", || {
        let found = std::fs::metadata(&snapshot_path).ok();
        async move { found }
    })
    .await;
    let mode = metadata.permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&snapshot_path).expect("read")).expect("json");
    assert_eq!(stored["version"], 1);
    let config_json = stored["config_json"].as_str().expect("config_json");
    assert!(config_json.contains("${file:"), "{config_json}");
    assert!(!config_json.contains(&upstream.url()), "{config_json}");
    first.shutdown().await;
    control_plane.stop();

    // Restart with the control plane gone: ready from the state directory alone.
    let restarted_settings =
        with_secrets(control_plane_source(dead_addr().await, Some(&state_dir)));
    let restarted = start(restarted_settings).await;
    assert_eq!(
        http::get(restarted.admin_addr(), "/readyz").await.status,
        200
    );
    let dump = config_dump(&restarted).await.expect("dump");
    assert_eq!(dump["version"], 1);
    assert_eq!(dump["source"], "state-dir");
    let reply = http::post_mcp(
        restarted.proxy_addr(),
        "alpha",
        &[],
        json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["id"], 9);
    restarted.shutdown().await;

    // Back with a control plane: the Hello carries the restored version.
    let control_plane = FakeControlPlane::start(None).await;
    let reconnected = start(with_secrets(control_plane_source(
        control_plane.addr,
        Some(&state_dir),
    )))
    .await;
    let hello = control_plane.next_hello().await;
    assert_eq!(hello.last_applied_version, 1);
    assert_eq!(json!(hello.last_applied_hash), stored["hash"]);
    eventually("ready from state", || async {
        (http::get(reconnected.admin_addr(), "/readyz").await.status == 200).then_some(())
    })
    .await;
    reconnected.shutdown().await;
}

#[tokio::test]
async fn a_tampered_state_file_is_not_served() {
    let temp = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        temp.path().join("snapshot.json"),
        json!({
            "version": 3,
            "hash": "0000",
            "signature": "",
            "created_at": "2026-01-01T00:00:00Z",
            "config_json": "{\"servers\":[]}",
        })
        .to_string(),
    )
    .expect("write");
    let control_plane = FakeControlPlane::start(None).await;
    let data_plane = start(settings(control_plane_source(
        control_plane.addr,
        Some(temp.path()),
    )))
    .await;
    assert_eq!(control_plane.next_hello().await.last_applied_version, 0);
    assert_eq!(
        http::get(data_plane.admin_addr(), "/readyz").await.status,
        503
    );
    data_plane.shutdown().await;
}
