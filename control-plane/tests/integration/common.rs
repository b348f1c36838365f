//! Harness: a server on ephemeral ports with its own data directory, Admin clients with or
//! without a token, and a scripted data plane speaking the config stream.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use conduit_control_plane::{RunningServer, ServeConfig, start};
use conduit_proto::v1::admin_client::AdminClient;
use conduit_proto::v1::config_discovery_client::ConfigDiscoveryClient;
use conduit_proto::v1::{
    Ack, ApplyRequest, ApplyResponse, ConfigError, ControlPlaneMessage, DataPlaneMessage, GrantSet,
    Hello, Nack, Snapshot, control_plane_message, data_plane_message,
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Upper bound for anything a test waits for; only reached when the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub const ADMIN_TOKEN: &str = "admin-secret";
pub const DP_TOKEN: &str = "dp-secret";

/// A valid document with one server; `n` makes the content differ.
pub fn config(n: u32) -> String {
    format!("servers:\n  - id: server-{n}\n    url: http://127.0.0.1:9/mcp\n")
}

pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// How to start the server under test.
#[derive(Clone, Default)]
pub struct Options {
    pub tokens: bool,
    /// (cert PEM, key PEM) for the gRPC listener.
    pub tls: Option<(String, String)>,
    pub heartbeat: Option<Duration>,
    /// `--session-key-rotation`; default 24 h.
    pub key_rotation: Option<Duration>,
    /// `--admin-tokens-file`.
    pub admin_tokens_file: Option<PathBuf>,
}

/// A running control plane and the directory it keeps its data in.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub config: ServeConfig,
    pub ca_pem: Option<String>,
    dir: TempDir,
}

impl TestServer {
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        init();
        let dir = tempfile::tempdir()?;
        let tls = match &options.tls {
            Some((cert, key)) => {
                let cert_path = dir.path().join("cert.pem");
                let key_path = dir.path().join("key.pem");
                std::fs::write(&cert_path, cert)?;
                std::fs::write(&key_path, key)?;
                Some(conduit_control_plane::tls::TlsFiles {
                    cert: cert_path,
                    key: key_path,
                })
            }
            None => None,
        };
        let config = ServeConfig {
            listen: "127.0.0.1:0".parse()?,
            http_listen: "127.0.0.1:0".parse()?,
            http_settings: Default::default(),
            data_dir: dir.path().join("data"),
            tls,
            heartbeat_interval: options.heartbeat.unwrap_or(Duration::from_secs(30)),
            session_keys: conduit_control_plane::session_keys::KeyPolicy {
                rotation: options
                    .key_rotation
                    .unwrap_or(conduit_control_plane::session_keys::DEFAULT_ROTATION),
                ..Default::default()
            },
            admin_token: options.tokens.then(|| ADMIN_TOKEN.to_owned()),
            admin_tokens_file: options.admin_tokens_file.clone(),
            dp_token: options.tokens.then(|| DP_TOKEN.to_owned()),
        };
        let server = start(config.clone()).await?;
        Ok(Self {
            server: Some(server),
            config,
            ca_pem: options.tls.map(|(cert, _)| cert),
            dir,
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    /// Graceful stop, then start again on new ports with the same data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.server = Some(start(self.config.clone()).await?);
        Ok(())
    }

    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.shutdown();
            tokio::time::timeout(WAIT, server.wait())
                .await
                .context("server did not stop")??;
        }
        Ok(())
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let addr = self.running().grpc_addr;
        let endpoint = match &self.ca_pem {
            Some(ca) => Endpoint::from_shared(format!("https://localhost:{}", addr.port()))?
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                        .domain_name("localhost"),
                )?,
            None => Endpoint::from_shared(format!("http://{addr}"))?,
        };
        Ok(endpoint.connect_timeout(WAIT).connect().await?)
    }

    /// An Admin client sending `token` (none when `None`).
    pub async fn admin_with(&self, token: Option<&str>) -> anyhow::Result<Admin> {
        let token = Token(token.map(str::to_owned));
        Ok(AdminClient::with_interceptor(self.channel().await?, token))
    }

    /// An Admin client with the right token for this server.
    pub async fn admin(&self) -> anyhow::Result<Admin> {
        let token = self.config.admin_token.clone();
        self.admin_with(token.as_deref()).await
    }

    pub async fn apply(&self, document: &str) -> anyhow::Result<ApplyResponse> {
        let response = self
            .admin()
            .await?
            .apply(ApplyRequest {
                document: document.to_owned(),
                message: "test".to_owned(),
                author: "tester".to_owned(),
                dry_run: false,
            })
            .await?;
        Ok(response.into_inner())
    }

    /// A data plane with this server's DP token, holding no session keys yet.
    pub async fn data_plane(
        &self,
        node_id: &str,
        last_applied: (u64, &str),
    ) -> anyhow::Result<DataPlane> {
        self.data_plane_with_keys(node_id, last_applied, "").await
    }

    /// A data plane that also reports the session key set it holds.
    pub async fn data_plane_with_keys(
        &self,
        node_id: &str,
        last_applied: (u64, &str),
        session_keys_id: &str,
    ) -> anyhow::Result<DataPlane> {
        let token = self.config.dp_token.clone();
        DataPlane::connect(
            self,
            node_id,
            last_applied,
            session_keys_id,
            token.as_deref(),
        )
        .await
    }

    /// Id of the newest session key in the store, as a data plane holding the current
    /// keys reports it.
    pub fn session_keys_id(&self) -> anyhow::Result<String> {
        let store = conduit_control_plane::store::Store::open(&self.data_dir())?;
        let keys = store.load_session_keys()?;
        Ok(keys.first().context("no session key stored")?.id.clone())
    }

    /// GET `path` on the internal HTTP listener: (status code, body).
    pub async fn http_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(self.running().http_addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let status = response
            .split_whitespace()
            .nth(1)
            .context("no status line")?
            .parse()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}

pub type Admin = AdminClient<InterceptedService<Channel, Token>>;

/// Adds `authorization: Bearer <token>` when a token is given.
#[derive(Clone)]
pub struct Token(pub Option<String>);

impl Interceptor for Token {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| tonic::Status::internal("bad token"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// A scripted data plane: one open config stream.
pub struct DataPlane {
    outbound: mpsc::Sender<DataPlaneMessage>,
    pub inbound: Streaming<ControlPlaneMessage>,
    /// Grant sets received so far, oldest first; [`DataPlane::next`] sets them aside.
    pub grant_sets: Vec<GrantSet>,
}

impl DataPlane {
    pub async fn connect(
        server: &TestServer,
        node_id: &str,
        (last_applied_version, last_applied_hash): (u64, &str),
        session_keys_id: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::open(
            server,
            token,
            data_plane_message::Kind::Hello(Hello {
                node_id: node_id.to_owned(),
                labels: [("zone".to_owned(), "test".to_owned())].into(),
                build_version: "test-build".to_owned(),
                last_applied_version,
                last_applied_hash: last_applied_hash.to_owned(),
                session_keys_id: session_keys_id.to_owned(),
            }),
        )
        .await
    }

    /// Open a stream whose first message is `first` (not necessarily a Hello).
    pub async fn open(
        server: &TestServer,
        token: Option<&str>,
        first: data_plane_message::Kind,
    ) -> anyhow::Result<Self> {
        let (outbound, receiver) = mpsc::channel(16);
        outbound
            .send(DataPlaneMessage { kind: Some(first) })
            .await?;
        let mut client = ConfigDiscoveryClient::with_interceptor(
            server.channel().await?,
            Token(token.map(str::to_owned)),
        );
        let inbound = client
            .stream(ReceiverStream::new(receiver))
            .await?
            .into_inner();
        Ok(Self {
            outbound,
            inbound,
            grant_sets: Vec::new(),
        })
    }

    /// The next snapshot or heartbeat (grant sets are kept in `grant_sets`).
    pub async fn next(&mut self) -> anyhow::Result<control_plane_message::Kind> {
        loop {
            match self.next_any().await? {
                control_plane_message::Kind::GrantSet(set) => self.grant_sets.push(set),
                other => return Ok(other),
            }
        }
    }

    /// The next message of any kind.
    pub async fn next_any(&mut self) -> anyhow::Result<control_plane_message::Kind> {
        let message = tokio::time::timeout(WAIT, self.inbound.message())
            .await
            .context("no message from the control plane")??
            .context("stream ended")?;
        message.kind.context("empty message")
    }

    /// The next grant set (snapshots and heartbeats in between are skipped).
    pub async fn next_grant_set(&mut self) -> anyhow::Result<GrantSet> {
        loop {
            if let control_plane_message::Kind::GrantSet(set) = self.next_any().await? {
                return Ok(set);
            }
        }
    }

    pub async fn expect_snapshot(&mut self) -> anyhow::Result<Snapshot> {
        match self.next().await? {
            control_plane_message::Kind::Snapshot(snapshot) => Ok(snapshot),
            other => bail!("expected a snapshot, got {other:?}"),
        }
    }

    /// The next message must be a heartbeat; returns its current version.
    pub async fn expect_heartbeat(&mut self) -> anyhow::Result<u64> {
        match self.next().await? {
            control_plane_message::Kind::Heartbeat(heartbeat) => Ok(heartbeat.current_version),
            other => bail!("expected a heartbeat, got {other:?}"),
        }
    }

    pub async fn ack(&self, snapshot: &Snapshot) -> anyhow::Result<()> {
        self.send(data_plane_message::Kind::Ack(Ack {
            version: snapshot.version,
            nonce: snapshot.nonce.clone(),
        }))
        .await
    }

    pub async fn nack(&self, snapshot: &Snapshot, errors: &[(&str, &str)]) -> anyhow::Result<()> {
        self.send(data_plane_message::Kind::Nack(Nack {
            version: snapshot.version,
            nonce: snapshot.nonce.clone(),
            errors: errors
                .iter()
                .map(|(path, message)| ConfigError {
                    path: (*path).to_owned(),
                    message: (*message).to_owned(),
                })
                .collect(),
        }))
        .await
    }

    pub async fn send(&self, kind: data_plane_message::Kind) -> anyhow::Result<()> {
        self.outbound
            .send(DataPlaneMessage { kind: Some(kind) })
            .await
            .context("stream closed")
    }
}

/// Wait until `check` holds for the fleet as FleetStatus reports it.
pub async fn wait_for_fleet(
    admin: &mut Admin,
    mut check: impl FnMut(&conduit_proto::v1::FleetStatusResponse) -> bool,
) -> anyhow::Result<conduit_proto::v1::FleetStatusResponse> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = admin
            .fleet_status(conduit_proto::v1::FleetStatusRequest {})
            .await?
            .into_inner();
        if check(&status) {
            return Ok(status);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("fleet never reached the expected state: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
