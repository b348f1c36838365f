//! Assembles and runs the control plane: opens the store, loads versions and the fleet,
//! binds both listeners and serves until shutdown.
//!
//! [`start`] returns once the listeners are bound, with their actual addresses, so tests can
//! run a real server on port 0 in-process; the binary calls it and waits for a signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use conduit_proto::v1::admin_server::AdminServer;
use conduit_proto::v1::config_discovery_server::ConfigDiscoveryServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::admin::AdminService;
use crate::approvals::Approvals;
use crate::audit::Audit;
use crate::auth::BearerAuth;
use crate::clock;
use crate::discovery::Discovery;
use crate::fleet::Fleet;
use crate::http::{self, HttpState};
use crate::key_rotation;
use crate::metrics::Metrics;
use crate::principals::{AdminAuth, Principals, PrincipalsError};
use conduit_process::internal_http::InternalSettings;

use crate::session_keys::{self, KeyPolicy};
use crate::store::{Store, StoreError};
use crate::tls::{TlsError, TlsFiles};
use crate::versions::Versions;

/// Largest gRPC message accepted or sent, on the config stream and the Admin API: whole
/// config documents travel in one message. Data planes keep their audit batches far under
/// it and decode twice as much themselves (`conduit_proto::limits`).
pub const MAX_MESSAGE_BYTES: usize = conduit_proto::limits::MAX_STREAM_MESSAGE_BYTES;
/// HTTP/2 pings keep idle config streams open through middleboxes and detect dead peers.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// Host policy and header read timeout of the `--http-listen` listener.
    pub http_settings: InternalSettings,
    pub data_dir: PathBuf,
    pub tls: Option<TlsFiles>,
    pub heartbeat_interval: Duration,
    /// Rotation of the session token keys shipped with snapshots.
    pub session_keys: KeyPolicy,
    pub admin_token: Option<String>,
    /// `--admin-tokens-file`: more named Admin API principals with roles.
    pub admin_tokens_file: Option<PathBuf>,
    pub dp_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on non-loopback address {0} without authentication: set both \
         CONDUIT_ADMIN_TOKEN (or --admin-tokens-file) and CONDUIT_DP_TOKEN, or use a loopback \
         --listen address"
    )]
    Unauthenticated(SocketAddr),
    #[error(
        "CONDUIT_DP_TOKEN is also the Admin API token of principal {principal:?} (role \
         {role}): a data plane, or whoever reads its token, would hold that role; give data \
         planes a token of their own"
    )]
    TokenReuse { principal: String, role: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Principals(#[from] PrincipalsError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    #[error("startup task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot listen for SIGTERM/SIGINT: {0}")]
    Signals(std::io::Error),
}

/// A started control plane.
pub struct RunningServer {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// Begin a graceful shutdown: streams end, listeners close, fleet state is flushed.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Resolves once shutdown has begun, requested or because a listener failed.
    pub async fn stopping(&self) {
        self.shutdown.cancelled().await;
    }

    /// Wait until the server has stopped (after [`RunningServer::shutdown`] or a failure).
    pub async fn wait(self) -> Result<(), ServeError> {
        self.task.await?
    }
}

/// Check the configuration, open the store, bind both listeners and start serving.
pub async fn start(config: ServeConfig) -> Result<RunningServer, ServeError> {
    let principals = Principals::load(
        config.admin_token.as_deref(),
        config.admin_tokens_file.as_deref(),
    )?;
    check_exposure(&config, !principals.is_empty())?;
    // Data planes present their token on every stream; one that also opens the Admin API
    // would turn any data plane host into an admin console.
    if let Some(principal) = config
        .dp_token
        .as_deref()
        .and_then(|token| principals.authenticate(token))
    {
        return Err(ServeError::TokenReuse {
            principal: principal.name.to_string(),
            role: principal.role.to_string(),
        });
    }
    let tls = config
        .tls
        .as_ref()
        .map(TlsFiles::server_config)
        .transpose()?;

    let data_dir = config.data_dir.clone();
    let store = Arc::new(tokio::task::spawn_blocking(move || Store::open(&data_dir)).await??);
    let metrics = Arc::new(Metrics::new());
    let (versions, approvals, rows) = {
        let store = store.clone();
        let metrics = metrics.clone();
        let dp_token = config.dp_token.clone();
        let policy = config.session_keys;
        tokio::task::spawn_blocking(move || {
            let versions = Versions::load(store.clone(), dp_token, metrics)?;
            let (keys, _) = session_keys::refresh(&store, &policy, clock::unix_now())?;
            versions.set_session_keys(keys);
            let versions = Arc::new(versions);
            let approvals = Approvals::load(store.clone(), versions.clone())?;
            versions.set_approval_key(approvals.public_key().to_vec());
            Ok::<_, StoreError>((versions, Arc::new(approvals), store.load_data_planes()?))
        })
        .await??
    };
    let fleet = Arc::new(Fleet::new(rows));
    let audit = {
        let data_dir = config.data_dir.clone();
        let metrics = metrics.clone();
        Arc::new(tokio::task::spawn_blocking(move || Audit::open(&data_dir, metrics)).await??)
    };
    tracing::info!(
        database = %store.path().display(),
        audit_database = %audit.db().path().display(),
        current_version = versions.current_version(),
        "store opened"
    );

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    let grpc_listener = bind(config.listen).await?;
    let http_listener = bind(config.http_listen).await?;
    let local = |listener: &TcpListener, addr| {
        listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })
    };
    let grpc_addr = local(&grpc_listener, config.listen)?;
    let http_addr = local(&http_listener, config.http_listen)?;

    let shutdown = CancellationToken::new();
    let admin = AdminServer::new(AdminService::new(
        versions.clone(),
        fleet.clone(),
        metrics.clone(),
        approvals.clone(),
        audit.clone(),
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let discovery = ConfigDiscoveryServer::new(Discovery::new(
        versions.clone(),
        approvals.clone(),
        audit.clone(),
        fleet.clone(),
        metrics.clone(),
        config.heartbeat_interval,
        shutdown.clone(),
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let router = builder
        .add_service(InterceptedService::new(admin, AdminAuth::new(principals)))
        .add_service(InterceptedService::new(
            discovery,
            BearerAuth::new(config.dp_token.as_deref(), "data plane"),
        ));
    let incoming = TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
    let grpc = tokio::spawn(
        router.serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned()),
    );
    let http = tokio::spawn(http::serve(
        http_listener,
        HttpState {
            store: store.clone(),
            versions: versions.clone(),
            fleet: fleet.clone(),
            metrics,
        },
        config.http_settings.clone(),
        shutdown.clone(),
    ));
    let rotation = tokio::spawn(key_rotation::run(
        store.clone(),
        versions.clone(),
        config.session_keys,
        shutdown.clone(),
    ));
    let persistence = tokio::spawn(fleet.run_persistence(store, shutdown.clone()));
    let sweeper = tokio::spawn(approvals.run_sweeper(shutdown.clone()));
    let checkpoints = tokio::spawn(audit.clone().run_checkpoints(shutdown.clone()));
    let retention = tokio::spawn(audit.run_retention(versions.clone(), shutdown.clone()));

    tracing::info!(
        grpc = %grpc_addr,
        http = %http_addr,
        tls = config.tls.is_some(),
        "control plane listening"
    );
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        // Whichever listener stops first (shutdown or failure) stops the whole server.
        let stopped_early = |name: &str| {
            if !stop.is_cancelled() {
                tracing::error!(listener = name, "listener stopped; shutting down");
            }
            stop.cancel();
        };
        let (grpc, http) = tokio::join!(
            async {
                let result = grpc.await;
                stopped_early("grpc");
                result
            },
            async {
                let result = http.await;
                stopped_early("http");
                result
            },
        );
        persistence.await?;
        rotation.await?;
        sweeper.await?;
        retention.await?;
        checkpoints.await?;
        grpc??;
        http?.map_err(ServeError::Http)?;
        tracing::info!("control plane stopped");
        Ok(())
    });
    Ok(RunningServer {
        grpc_addr,
        http_addr,
        shutdown,
        task,
    })
}

/// Refuse an exposed listener without tokens; warn about an open loopback one.
/// `admin_auth`: whether the Admin API has any principal (token or tokens file).
fn check_exposure(config: &ServeConfig, admin_auth: bool) -> Result<(), ServeError> {
    let loopback = config.listen.ip().is_loopback();
    if !loopback && (!admin_auth || config.dp_token.is_none()) {
        return Err(ServeError::Unauthenticated(config.listen));
    }
    if !admin_auth {
        tracing::warn!(
            listen = %config.listen,
            "CONDUIT_ADMIN_TOKEN is not set: the Admin API is open to anyone who can reach this loopback address"
        );
    }
    if config.dp_token.is_none() {
        tracing::warn!(
            listen = %config.listen,
            "CONDUIT_DP_TOKEN is not set: any local process can join as a data plane and snapshots are unsigned"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, admin: Option<&str>, dp: Option<&str>) -> ServeConfig {
        ServeConfig {
            listen: listen.parse().unwrap(),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            http_settings: Default::default(),
            data_dir: PathBuf::from("unused"),
            tls: None,
            heartbeat_interval: Duration::from_secs(5),
            session_keys: KeyPolicy::default(),
            admin_token: admin.map(str::to_owned),
            admin_tokens_file: None,
            dp_token: dp.map(str::to_owned),
        }
    }

    #[test]
    fn exposed_listener_needs_both_tokens() {
        let check = |config: &ServeConfig| check_exposure(config, config.admin_token.is_some());
        assert!(check(&config("127.0.0.1:7700", None, None)).is_ok());
        assert!(check(&config("[::1]:7700", None, None)).is_ok());
        assert!(check(&config("0.0.0.0:7700", Some("a"), Some("d"))).is_ok());
        // A tokens file is admin authentication too.
        assert!(check_exposure(&config("0.0.0.0:7700", None, Some("d")), true).is_ok());
        for (admin, dp) in [(None, None), (Some("a"), None), (None, Some("d"))] {
            let error = check(&config("0.0.0.0:7700", admin, dp)).unwrap_err();
            assert!(matches!(error, ServeError::Unauthenticated(_)));
            assert!(error.to_string().contains("CONDUIT_DP_TOKEN"));
        }
    }
}
