//! The config stream against a fake control plane: ACK/NACK, readiness, signatures,
//! credentials and reconnects.

use std::time::Duration;

use conduit_data_plane::lifecycle::DataPlane;
use serde_json::json;

use super::support::control_plane::{FakeControlPlane, Report};
use super::support::upstream::Upstream;
use super::support::{
    config_dump, control_plane_source, eventually, http, settings, start, wait_for_version,
};

const TOKEN: &str = "dp-secret";

fn config(url: &str) -> String {
    format!("servers:\n  - id: alpha\n    url: {url}\n")
}

async fn data_plane(control_plane: &FakeControlPlane, token: Option<&str>) -> DataPlane {
    let mut settings = settings(control_plane_source(control_plane.addr, None));
    settings.token = token.map(Into::into);
    start(settings).await
}

async fn ack(control_plane: &FakeControlPlane) -> conduit_proto::v1::Ack {
    match control_plane.next_report().await {
        Report::Ack(ack) => ack,
        Report::Nack(nack) => panic!("expected an ack, got {nack:?}"),
    }
}

async fn nack(control_plane: &FakeControlPlane) -> conduit_proto::v1::Nack {
    match control_plane.next_report().await {
        Report::Nack(nack) => nack,
        Report::Ack(ack) => panic!("expected a nack, got {ack:?}"),
    }
}

async fn call_alpha(data_plane: &DataPlane) -> u16 {
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    http::post_mcp(data_plane.proxy_addr(), "alpha", &[], message)
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn applied_snapshot_is_acked_and_makes_the_data_plane_ready() {
    let upstream = Upstream::start().await;
    let control_plane = FakeControlPlane::start(Some(TOKEN)).await;
    let data_plane = data_plane(&control_plane, Some(TOKEN)).await;

    let hello = control_plane.next_hello().await;
    assert_eq!(hello.node_id, "dp-test");
    assert_eq!(hello.labels.get("zone").map(String::as_str), Some("test"));
    assert_eq!(hello.last_applied_version, 0);
    assert!(!hello.build_version.is_empty());
    let ready = http::get(data_plane.admin_addr(), "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(call_alpha(&data_plane).await, 503);

    control_plane.push(1, &config(&upstream.url()));
    let ack = ack(&control_plane).await;
    assert_eq!(ack.version, 1);
    assert!(ack.nonce.starts_with("nonce-"), "{ack:?}");

    // ACK means applied: ready and routing without further waiting.
    assert_eq!(
        http::get(data_plane.admin_addr(), "/readyz").await.status,
        200
    );
    let dump = config_dump(&data_plane).await.expect("config dump");
    assert_eq!(dump["version"], 1);
    assert_eq!(dump["source"], "control-plane");
    assert_eq!(dump["config"]["servers"][0]["id"], "alpha");
    assert_eq!(call_alpha(&data_plane).await, 200);

    let metrics = http::get(data_plane.admin_addr(), "/metrics").await.text();
    assert!(metrics.contains("conduit_dp_config_version 1"), "{metrics}");
    assert!(
        metrics.contains("conduit_dp_control_plane_connected 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("conduit_dp_config_applies_total{outcome=\"applied\"} 1"),
        "{metrics}"
    );
    data_plane.shutdown().await;
}

#[tokio::test]
async fn unresolvable_snapshot_is_nacked_and_the_previous_version_keeps_serving() {
    let upstream = Upstream::start().await;
    let control_plane = FakeControlPlane::start(Some(TOKEN)).await;
    let data_plane = data_plane(&control_plane, Some(TOKEN)).await;

    control_plane.push(1, &config(&upstream.url()));
    assert_eq!(ack(&control_plane).await.version, 1);

    control_plane.push(2, &config("${env:CONDUIT_TEST_SURELY_UNSET_VARIABLE}"));
    let nack = nack(&control_plane).await;
    assert_eq!(nack.version, 2);
    assert!(nack.nonce.starts_with("nonce-"), "{nack:?}");
    assert_eq!(nack.errors.len(), 1, "{nack:?}");
    assert_eq!(nack.errors[0].path, "servers[0].url");
    assert!(
        nack.errors[0]
            .message
            .contains("CONDUIT_TEST_SURELY_UNSET_VARIABLE"),
        "{nack:?}"
    );

    assert_eq!(config_dump(&data_plane).await.expect("dump")["version"], 1);
    assert_eq!(call_alpha(&data_plane).await, 200);
    assert_eq!(
        data_plane
            .metrics()
            .config_applies
            .with_label_values(&["rejected"])
            .get(),
        1
    );
    data_plane.shutdown().await;
}

#[tokio::test]
async fn snapshot_with_a_bad_signature_is_nacked() {
    let upstream = Upstream::start().await;
    let control_plane = FakeControlPlane::start_with(Some(TOKEN), Some("another-key")).await;
    let data_plane = data_plane(&control_plane, Some(TOKEN)).await;

    control_plane.push(1, &config(&upstream.url()));
    let nack = nack(&control_plane).await;
    assert!(nack.errors[0].message.contains("signature"), "{nack:?}");
    assert_eq!(
        http::get(data_plane.admin_addr(), "/readyz").await.status,
        503
    );
    data_plane.shutdown().await;
}

#[tokio::test]
async fn wrong_token_is_refused_and_retried() {
    let control_plane = FakeControlPlane::start(Some(TOKEN)).await;
    let data_plane = data_plane(&control_plane, Some("wrong")).await;

    // The test backoff caps at 200 ms, so refusals repeat quickly.
    eventually("two refused attempts", || async {
        (control_plane.refused() >= 2).then_some(())
    })
    .await;
    assert_eq!(
        http::get(data_plane.admin_addr(), "/readyz").await.status,
        503
    );
    assert_eq!(data_plane.metrics().control_plane_connected.get(), 0);
    assert!(data_plane.metrics().stream_reconnects.get() >= 1);
    data_plane.shutdown().await;
}

#[tokio::test]
async fn reconnects_after_a_clean_close_and_reports_its_version() {
    let upstream = Upstream::start().await;
    let control_plane = FakeControlPlane::start(None).await;
    let data_plane = data_plane(&control_plane, None).await;
    assert_eq!(control_plane.next_hello().await.last_applied_version, 0);

    control_plane.push(1, &config(&upstream.url()));
    assert_eq!(ack(&control_plane).await.version, 1);
    let hash = config_dump(&data_plane).await.expect("dump")["hash"].clone();

    control_plane.disconnect_all();
    let hello = control_plane.next_hello().await;
    assert_eq!(hello.last_applied_version, 1);
    assert_eq!(json!(hello.last_applied_hash), hash);

    // The new stream works: a newer version arrives and is acknowledged.
    control_plane.push(2, &config(&upstream.url()).replace("alpha", "beta"));
    assert_eq!(ack(&control_plane).await.version, 2);
    wait_for_version(&data_plane, 2).await;
    assert!(data_plane.metrics().stream_reconnects.get() >= 1);
    data_plane.shutdown().await;
}

#[tokio::test]
async fn a_silent_control_plane_is_abandoned_after_the_idle_timeout() {
    let control_plane = FakeControlPlane::start(None).await;
    let mut settings = settings(control_plane_source(control_plane.addr, None));
    settings.stream_idle_timeout = Duration::from_millis(300);
    let data_plane = start(settings).await;

    // The fake never sends heartbeats: the data plane gives up on the stream and reconnects.
    control_plane.next_hello().await;
    control_plane.next_hello().await;
    assert!(data_plane.metrics().stream_reconnects.get() >= 1);
    data_plane.shutdown().await;
}
