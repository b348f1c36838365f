//! Test harness: fake control plane, fake MCP upstream, HTTP helpers, data plane start-up.

pub mod control_plane;
pub mod http;
pub mod upstream;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use conduit_data_plane::backoff::Backoff;
use conduit_data_plane::lifecycle::{DataPlane, Settings, SourceSettings};

/// Longest a test waits for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn settings(source: SourceSettings) -> Settings {
    Settings {
        source,
        listen: local(),
        admin_listen: local(),
        node_id: "dp-test".into(),
        labels: BTreeMap::from([("zone".to_owned(), "test".to_owned())]),
        token: None,
        drain_timeout: Duration::from_secs(5),
        header_read_timeout: conduit_data_plane::server::DEFAULT_HEADER_READ_TIMEOUT,
        body_read_timeout: conduit_data_plane::proxy::DEFAULT_BODY_READ_TIMEOUT,
        max_connections: conduit_data_plane::connection_limit::DEFAULT_MAX_CONNECTIONS,
        max_connections_per_address:
            conduit_data_plane::connection_limit::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        admin_allowed_hosts: Default::default(),
        stream_idle_timeout: Duration::from_secs(60),
        audit_queue_capacity: conduit_data_plane::audit::queue::CAPACITY,
        audit_queue_bytes: conduit_data_plane::audit::queue::CAPACITY_BYTES,
        backoff: Backoff::try_new(Duration::from_millis(20), Duration::from_millis(200))
            .expect("valid backoff"),
        references: conduit_data_plane::references::ReferencePolicy::default(),
    }
}

pub fn file_source(path: &Path) -> SourceSettings {
    SourceSettings::File {
        path: path.to_path_buf(),
        // Long enough that reloads in tests come from the directory watch, not the poll.
        poll_interval: Duration::from_secs(3600),
    }
}

pub fn control_plane_source(addr: SocketAddr, state_dir: Option<&Path>) -> SourceSettings {
    SourceSettings::ControlPlane {
        url: format!("http://{addr}"),
        ca_file: None,
        state_dir: state_dir.map(Path::to_path_buf),
    }
}

pub async fn start(settings: Settings) -> DataPlane {
    init();
    DataPlane::start(settings).await.expect("data plane starts")
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

/// Poll `check` until it returns `Some`, failing the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The admin `/config_dump` document, or `None` before the first apply.
pub async fn config_dump(data_plane: &DataPlane) -> Option<serde_json::Value> {
    let response = http::get(data_plane.admin_addr(), "/config_dump").await;
    (response.status == 200).then(|| response.json())
}

/// Waits until `/config_dump` reports `version`.
pub async fn wait_for_version(data_plane: &DataPlane, version: u64) -> serde_json::Value {
    eventually(&format!("config version {version}"), || async {
        config_dump(data_plane)
            .await
            .filter(|dump| dump["version"] == version)
    })
    .await
}
