//! Start-up and shutdown of a whole data plane: bind both listeners, restore the persisted
//! snapshot, start the configuration source, and on shutdown report not-ready, stop the
//! source, drain the public listener, then stop the admin listener.
//!
//! Everything runs in-process from [`DataPlane::start`], which the binary and the
//! integration tests both use; listeners may bind port 0 and report the real address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use conduit_process::internal_http::{AllowedHosts, InternalSettings};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::apply::{Applier, SharedRuntime};
use crate::audit::{self, Auditor};
use crate::backoff::Backoff;
use crate::balancer::metrics::ReplicaMetrics;
use crate::connection_limit::ConnectionLimits;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::public_tls;
use crate::references::ReferencePolicy;
use crate::runtime::{ConfigSource, Runtime};
use crate::server::{self, ListenerSettings};
use crate::source::control_plane::{ControlPlaneError, ControlPlaneSettings, ControlPlaneSource};
use crate::source::file::{FileSource, FileSourceError};
use crate::source::session::SessionContext;
use crate::state::{StateDir, StateError, StateWriter};
use crate::stdio;
use crate::telemetry::Telemetry;
use crate::webhook::{WebhookOptions, Webhooks};

/// Where configuration comes from.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    ControlPlane {
        url: String,
        /// CA bundle (PEM) trusted for an https control plane.
        ca_file: Option<PathBuf>,
        /// Directory persisting the last applied snapshot.
        state_dir: Option<PathBuf>,
    },
    File {
        path: PathBuf,
        poll_interval: Duration,
    },
}

/// Everything a data plane needs to run; the CLI builds this from its flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: SourceSettings,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub node_id: String,
    pub labels: BTreeMap<String, String>,
    /// `CONDUIT_DP_TOKEN`: authenticates the stream and verifies snapshot signatures.
    pub token: Option<String>,
    pub drain_timeout: Duration,
    /// Time a client has to send a request head, on the public and the admin listener.
    pub header_read_timeout: Duration,
    /// Time a client has to send a whole request body on the public listener.
    pub body_read_timeout: Duration,
    /// Connections the public listener holds at most, in all and per client address.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Host names the admin listener answers to besides addresses and `localhost`.
    pub admin_allowed_hosts: AllowedHosts,
    /// Reconnect when the control plane sends nothing (not even a heartbeat) for this long.
    pub stream_idle_timeout: Duration,
    /// Audit records held for the control plane (waiting or unacked) before new ones are
    /// dropped.
    pub audit_queue_capacity: usize,
    /// Encoded bytes of those records before new ones are dropped.
    pub audit_queue_bytes: usize,
    pub backoff: Backoff,
    /// What `${file:}` / `${env:}` references may read (`--secret-dir`, …).
    pub references: ReferencePolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the control plane CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    #[error(transparent)]
    File(#[from] FileSourceError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// A running data plane.
#[derive(Debug)]
pub struct DataPlane {
    proxy_addr: SocketAddr,
    admin_addr: SocketAddr,
    runtime: SharedRuntime,
    metrics: Arc<Metrics>,
    draining: Arc<AtomicBool>,
    /// Stops the source and the public listener (which then drains).
    stop_traffic: CancellationToken,
    /// Stops the admin listener, after the drain.
    stop_admin: CancellationToken,
    traffic_tasks: JoinSet<()>,
    admin_task: tokio::task::JoinHandle<()>,
    /// Stopped after the drain: in-flight requests to stdio servers finish first.
    stdio: stdio::Pool,
    /// Flushed after the drain, so the spans of the last requests are exported.
    telemetry: Telemetry,
}

impl DataPlane {
    pub async fn start(settings: Settings) -> Result<DataPlane, StartError> {
        let metrics = Arc::new(Metrics::new());
        // Each feature labels its own series; all exist from the start.
        crate::auth::register_metrics(&metrics);
        crate::rate_limit::register_metrics(&metrics);
        crate::approvals::register_metrics(&metrics);
        let runtime: SharedRuntime = Arc::new(ArcSwap::from_pointee(Runtime::empty()));
        // One webhook sender per process (its delivery task runs on this Tokio runtime).
        let webhooks = Webhooks::start(&metrics, WebhookOptions::default());
        let telemetry = Telemetry::new(settings.node_id.clone());
        let applier = Applier::new(Arc::clone(&runtime), Arc::clone(&metrics))
            .with_webhooks(webhooks)
            .with_telemetry(telemetry.clone())
            .with_references(settings.references.clone());
        metrics
            .register(Box::new(ReplicaMetrics::new(Arc::clone(&runtime))))
            .expect("replica metric names are unique");
        let stdio = applier.stdio().clone();
        let key_ring = Arc::clone(applier.key_ring());
        let services = applier.services().clone();
        let draining = Arc::new(AtomicBool::new(false));
        let stop_traffic = CancellationToken::new();
        let stop_admin = CancellationToken::new();

        let admin_listener = bind("admin", settings.admin_listen).await?;
        let proxy_listener = bind("public", settings.listen).await?;
        let admin_addr = local_addr("admin", &admin_listener, settings.admin_listen)?;
        let proxy_addr = local_addr("public", &proxy_listener, settings.listen)?;

        let mut traffic_tasks = JoinSet::new();
        let node_id = settings.node_id.clone();
        let auditor = match settings.source {
            SourceSettings::ControlPlane {
                url,
                ca_file,
                state_dir,
            } => {
                let ca_pem = match ca_file {
                    Some(path) => Some(
                        std::fs::read(&path)
                            .map_err(|source| StartError::CaFile { path, source })?,
                    ),
                    None => None,
                };
                let state = state_dir.map(StateDir::open).transpose()?;
                applier.approvals().use_control_plane(&node_id);
                metrics.contact.use_control_plane();
                let queue = Arc::new(audit::Queue::with_limits(
                    &metrics,
                    settings.audit_queue_capacity,
                    settings.audit_queue_bytes,
                ));
                let context = SessionContext {
                    applier,
                    token: settings.token,
                    writer: state.clone().map(StateWriter::spawn),
                    state,
                    idle_timeout: settings.stream_idle_timeout,
                    audit: Arc::clone(&queue),
                };
                let source = ControlPlaneSource::new(
                    ControlPlaneSettings {
                        url,
                        ca_pem,
                        node_id: settings.node_id,
                        labels: settings.labels,
                        backoff: settings.backoff,
                    },
                    context.clone(),
                    Arc::clone(&metrics),
                )?;
                // Serve the persisted snapshot before the first connection attempt, so a
                // data plane restarted while the control plane is down is ready at once.
                restore(&context).await;
                traffic_tasks.spawn(source.run(stop_traffic.clone()));
                Auditor::to_queue(node_id, queue, &metrics)
            }
            SourceSettings::File {
                path,
                poll_interval,
            } => {
                let source = FileSource::new(path, applier, poll_interval)?;
                traffic_tasks.spawn(source.run(stop_traffic.clone()));
                Auditor::to_log(node_id, &metrics)
            }
        };

        let proxy = Arc::new(
            Proxy::new(Arc::clone(&runtime), services)
                .with_key_ring(key_ring)
                .with_telemetry(telemetry.clone())
                .with_audit(Arc::new(auditor))
                .with_body_read_timeout(settings.body_read_timeout),
        );
        let limits = ConnectionLimits::new(
            settings.max_connections,
            settings.max_connections_per_address,
            &metrics,
        );
        traffic_tasks.spawn(server::serve(
            proxy_listener,
            proxy,
            Arc::clone(&runtime),
            stop_traffic.clone(),
            ListenerSettings {
                drain_timeout: settings.drain_timeout,
                header_read_timeout: settings.header_read_timeout,
            },
            limits,
        ));
        let serving = Arc::clone(&runtime);
        traffic_tasks.spawn(public_tls::reload_on_change(
            move || serving.load().tls().cloned(),
            public_tls::RELOAD_INTERVAL,
            stop_traffic.clone(),
        ));
        let admin_state = AdminState {
            runtime: Arc::clone(&runtime),
            metrics: Arc::clone(&metrics),
            draining: Arc::clone(&draining),
        };
        let admin_settings = InternalSettings {
            header_read_timeout: settings.header_read_timeout,
            allowed_hosts: settings.admin_allowed_hosts,
        };
        let admin_task = tokio::spawn({
            let stop_admin = stop_admin.clone();
            async move {
                let served = admin::serve(admin_listener, admin_state, admin_settings, stop_admin);
                if let Err(error) = served.await {
                    tracing::error!(%error, "admin listener failed");
                }
            }
        });
        tracing::info!(%proxy_addr, %admin_addr, "data plane listening");

        Ok(DataPlane {
            proxy_addr,
            admin_addr,
            runtime,
            metrics,
            draining,
            stop_traffic,
            stop_admin,
            traffic_tasks,
            admin_task,
            stdio,
            telemetry,
        })
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn runtime(&self) -> &SharedRuntime {
        &self.runtime
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Report not-ready, stop the source and stop accepting, drain in-flight requests (up
    /// to the drain timeout), stop the stdio servers, then stop the admin listener.
    pub async fn shutdown(mut self) {
        self.draining.store(true, Ordering::Relaxed);
        self.stop_traffic.cancel();
        // Long-lived GET streams would hold the drain for its whole timeout.
        self.stdio.close_streams();
        while let Some(joined) = self.traffic_tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "a data plane task failed");
            }
        }
        self.stdio.shutdown().await;
        self.telemetry.shutdown().await;
        self.stop_admin.cancel();
        if let Err(error) = self.admin_task.await {
            tracing::error!(%error, "the admin task failed");
        }
        tracing::info!("data plane stopped");
    }
}

/// Apply the snapshot persisted in the state directory, if any.
async fn restore(context: &SessionContext) {
    let Some(state) = &context.state else {
        return;
    };
    let loaded = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.load()).await
    };
    match loaded {
        Ok(Ok(Some(snapshot))) => {
            let version = snapshot.version;
            match context.accept(&snapshot, ConfigSource::StateDir).await {
                Ok(_) => tracing::info!(version, "restored the persisted snapshot"),
                Err(errors) => tracing::warn!(
                    version,
                    %errors,
                    "the persisted snapshot cannot be applied; waiting for the control plane"
                ),
            }
        }
        Ok(Ok(None)) => tracing::debug!("no persisted snapshot"),
        Ok(Err(error)) => tracing::warn!(%error, "ignoring the persisted snapshot"),
        Err(error) => tracing::error!(%error, "loading the persisted snapshot panicked"),
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

fn local_addr(
    what: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Bind { what, addr, source })
}
