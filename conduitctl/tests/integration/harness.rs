//! A real control plane (the `conduit-control-plane` library, real SQLite in a temp dir)
//! started in-process on port 0, and scripted data planes that speak the real config stream
//! to it, so `conduitctl` can be driven through every rollout outcome.

use std::time::{Duration, Instant};

use conduit_control_plane::{RunningServer, ServeConfig};
use conduit_proto::v1::config_discovery_client::ConfigDiscoveryClient;
use conduit_proto::v1::{
    Ack, AuditBatch, ConfigError, DataPlaneMessage, Hello, Nack, control_plane_message,
    data_plane_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{code, conduitctl_with_stdin, stderr};

pub const ADMIN_TOKEN: &str = "admin-token-for-tests";

/// A control plane running on its own tokio runtime; stopped when dropped.
pub struct ControlPlane {
    runtime: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    url: String,
    _data_dir: tempfile::TempDir,
}

impl ControlPlane {
    pub fn start() -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let data_dir = tempfile::tempdir().expect("temp dir");
        let config = ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            http_settings: Default::default(),
            data_dir: data_dir.path().join("cp"),
            tls: None,
            heartbeat_interval: Duration::from_millis(200),
            session_keys: Default::default(),
            admin_token: Some(ADMIN_TOKEN.to_string()),
            admin_tokens_file: None,
            dp_token: None,
        };
        let server = runtime
            .block_on(conduit_control_plane::start(config))
            .expect("control plane starts");
        let url = format!("http://{}", server.grpc_addr);
        Self {
            runtime,
            server: Some(server),
            url,
            _data_dir: data_dir,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `conduitctl --server URL --token ADMIN_TOKEN ARGS...`.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        self.ctl_with_token(Some(ADMIN_TOKEN), args)
    }

    pub fn ctl_with_token(&self, token: Option<&str>, args: &[&str]) -> std::process::Output {
        let mut full = vec!["--server", self.url.as_str()];
        if let Some(token) = token {
            full.extend(["--token", token]);
        }
        full.extend_from_slice(args);
        conduitctl_with_stdin(&full, None)
    }

    /// Starts a scripted data plane and waits until the control plane lists it connected.
    pub fn data_plane(&self, node_id: &str, behaviour: Behaviour) -> DataPlane {
        let task = self.runtime.spawn(run_data_plane(
            self.url.clone(),
            node_id.to_string(),
            behaviour,
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.status_json();
            let connected = status["data_planes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|dp| dp["node_id"] == node_id && dp["connected"] == true);
            if connected {
                return DataPlane { task };
            }
            assert!(
                Instant::now() < deadline,
                "{node_id} did not connect: {status}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `batch` on a config stream of `node_id` and waits for its AuditAck, so the
    /// records are stored when this returns.
    pub fn send_audit(&self, node_id: &str, batch: AuditBatch) {
        let url = self.url.clone();
        let node_id = node_id.to_string();
        self.runtime.block_on(async move {
            let mut client = ConfigDiscoveryClient::connect(url)
                .await
                .expect("data plane connects");
            let (tx, rx) = mpsc::channel(4);
            let sequence = batch.sequence;
            for kind in [
                data_plane_message::Kind::Hello(Hello {
                    node_id,
                    ..Hello::default()
                }),
                data_plane_message::Kind::AuditBatch(batch),
            ] {
                tx.send(message(kind)).await.expect("queued");
            }
            let mut inbound = client
                .stream(ReceiverStream::new(rx))
                .await
                .expect("stream opens")
                .into_inner();
            let acked = tokio::time::timeout(Duration::from_secs(10), async {
                while let Ok(Some(reply)) = inbound.message().await {
                    if let Some(control_plane_message::Kind::AuditAck(ack)) = reply.kind {
                        return ack.sequence;
                    }
                }
                panic!("stream ended before the AuditAck");
            })
            .await
            .expect("AuditAck in time");
            assert_eq!(acked, sequence);
        });
    }

    pub fn status_json(&self) -> serde_json::Value {
        let output = self.ctl(&["status", "-o", "json"]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).expect("status -o json prints JSON")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), server.wait()).await
            });
        }
    }
}

/// How a scripted data plane answers snapshots.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// ACK every snapshot (a healthy data plane).
    Ack,
    /// NACK every snapshot with these errors (`path`, `message`).
    Nack(Vec<(&'static str, &'static str)>),
    /// Never answer (a data plane stuck applying).
    Silent,
}

/// A scripted data plane; its stream closes when dropped.
pub struct DataPlane {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run_data_plane(url: String, node_id: String, behaviour: Behaviour) {
    let mut client = ConfigDiscoveryClient::connect(url)
        .await
        .expect("data plane connects");
    let (tx, rx) = mpsc::channel(16);
    let hello = Hello {
        node_id,
        labels: [("zone".to_string(), "test".to_string())].into(),
        build_version: "scripted".to_string(),
        last_applied_version: 0,
        last_applied_hash: String::new(),
        session_keys_id: String::new(),
    };
    tx.send(message(data_plane_message::Kind::Hello(hello)))
        .await
        .expect("hello queued");
    let mut inbound = client
        .stream(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    while let Ok(Some(reply)) = inbound.message().await {
        let Some(control_plane_message::Kind::Snapshot(snapshot)) = reply.kind else {
            continue;
        };
        let answer = match &behaviour {
            Behaviour::Ack => data_plane_message::Kind::Ack(Ack {
                version: snapshot.version,
                nonce: snapshot.nonce,
            }),
            Behaviour::Nack(errors) => data_plane_message::Kind::Nack(Nack {
                version: snapshot.version,
                nonce: snapshot.nonce,
                errors: errors
                    .iter()
                    .map(|(path, message)| ConfigError {
                        path: path.to_string(),
                        message: message.to_string(),
                    })
                    .collect(),
            }),
            Behaviour::Silent => continue,
        };
        if tx.send(message(answer)).await.is_err() {
            return;
        }
    }
}

fn message(kind: data_plane_message::Kind) -> DataPlaneMessage {
    DataPlaneMessage { kind: Some(kind) }
}
