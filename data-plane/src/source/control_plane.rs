//! `--control-plane URL`: the gRPC client side of `ConfigDiscovery.Stream`.
//!
//! Owns the transport (endpoint, TLS trust, bearer token, message size limit), the Hello
//! that opens every session, and the connected gauge. What happens on an open stream is
//! `session`; when to reconnect is `reconnect`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use conduit_proto::v1::config_discovery_client::ConfigDiscoveryClient;
use conduit_proto::v1::{DataPlaneMessage, Hello, data_plane_message};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use super::reconnect::{self, SessionEnd, SessionReport};
use super::session::{self, SessionContext};
use crate::backoff::Backoff;
use crate::metrics::Metrics;

/// Snapshots carry whole documents; tonic's 4 MiB default is too small for large fleets'
/// configs, and the control plane is trusted. Twice what the control plane encodes at
/// most, so nothing it sends on the stream can be refused here.
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
const _: () = assert!(MAX_MESSAGE_SIZE >= 2 * conduit_proto::limits::MAX_STREAM_MESSAGE_BYTES);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// How to reach the control plane and who this data plane is.
#[derive(Debug, Clone)]
pub struct ControlPlaneSettings {
    pub url: String,
    /// PEM bundle of the CA that signed the control plane's certificate (https only); the
    /// only roots trusted when set.
    pub ca_pem: Option<Vec<u8>>,
    pub node_id: String,
    pub labels: BTreeMap<String, String>,
    pub backoff: Backoff,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("invalid control plane URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("--control-plane-ca is only used with an https:// control plane URL")]
    CaWithoutTls,
    #[error("invalid TLS configuration for the control plane: {0}")]
    Tls(String),
    #[error("CONDUIT_DP_TOKEN contains characters that cannot be sent in a header")]
    InvalidToken,
}

/// The config stream client of one data plane.
#[derive(Debug)]
pub struct ControlPlaneSource {
    endpoint: Endpoint,
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    node_id: String,
    labels: BTreeMap<String, String>,
    backoff: Backoff,
    context: SessionContext,
    metrics: Arc<Metrics>,
}

impl ControlPlaneSource {
    pub fn new(
        settings: ControlPlaneSettings,
        context: SessionContext,
        metrics: Arc<Metrics>,
    ) -> Result<ControlPlaneSource, ControlPlaneError> {
        let invalid = |reason: String| ControlPlaneError::InvalidUrl {
            url: settings.url.clone(),
            reason,
        };
        let endpoint = Endpoint::from_shared(settings.url.clone())
            .map_err(|error| invalid(error.to_string()))?;
        let endpoint = match endpoint.uri().scheme_str() {
            Some("https") => {
                // The operator's private CA replaces the system trust store: with it, no
                // public CA (nor one an attacker got into the system store) can vouch for
                // a control plane. Without it, the system roots.
                let tls = match &settings.ca_pem {
                    Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
                    None => ClientTlsConfig::new().with_native_roots(),
                };
                endpoint
                    .tls_config(tls)
                    .map_err(|error| ControlPlaneError::Tls(error.to_string()))?
            }
            Some("http") if settings.ca_pem.is_some() => {
                return Err(ControlPlaneError::CaWithoutTls);
            }
            Some("http") => endpoint,
            _ => return Err(invalid("the scheme must be http or https".into())),
        };
        let endpoint = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_while_idle(true);
        let authorization = context
            .token
            .as_deref()
            .map(|token| {
                MetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| ControlPlaneError::InvalidToken)
            })
            .transpose()?;
        Ok(ControlPlaneSource {
            endpoint,
            authorization,
            node_id: settings.node_id,
            labels: settings.labels,
            backoff: settings.backoff,
            context,
            metrics,
        })
    }

    /// Keep a session open (reconnecting as needed) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            url = %self.endpoint.uri(),
            node_id = %self.node_id,
            "connecting to the control plane"
        );
        reconnect::run(
            self.backoff.clone(),
            shutdown.clone(),
            &self.metrics,
            || self.session(&shutdown),
        )
        .await;
    }

    async fn session(&self, shutdown: &CancellationToken) -> SessionReport {
        let failed = |reason: String| SessionReport {
            end: SessionEnd::Failed(reason),
            progressed: false,
        };
        let channel = tokio::select! {
            () = shutdown.cancelled() => return SessionReport { end: SessionEnd::Shutdown, progressed: false },
            connected = self.endpoint.connect() => match connected {
                Ok(channel) => channel,
                Err(error) => return failed(format!("cannot connect: {}", crate::error_chain(&error))),
            },
        };
        let mut client =
            ConfigDiscoveryClient::new(channel).max_decoding_message_size(MAX_MESSAGE_SIZE);

        let (outbound, receiver) = mpsc::channel(8);
        outbound
            .try_send(self.hello())
            .expect("a fresh channel has room for the hello");
        let mut request = tonic::Request::new(ReceiverStream::new(receiver));
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        let inbound = tokio::select! {
            () = shutdown.cancelled() => return SessionReport { end: SessionEnd::Shutdown, progressed: false },
            response = client.stream(request) => match response {
                Ok(response) => response.into_inner(),
                Err(status) => return SessionReport { end: session::classify(&status), progressed: false },
            },
        };

        tracing::info!("config stream open");
        self.metrics.control_plane_connected.set(1);
        let report = session::drive(&self.context, inbound, &outbound, shutdown).await;
        self.metrics.control_plane_connected.set(0);
        report
    }

    fn hello(&self) -> DataPlaneMessage {
        let applied = self.context.applier.current();
        DataPlaneMessage {
            kind: Some(data_plane_message::Kind::Hello(Hello {
                node_id: self.node_id.clone(),
                labels: self
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                build_version: env!("CARGO_PKG_VERSION").to_owned(),
                last_applied_version: applied.as_ref().map_or(0, |a| a.version),
                last_applied_hash: applied.map(|a| a.hash).unwrap_or_default(),
                session_keys_id: self
                    .context
                    .applier
                    .key_ring()
                    .fleet_newest_id()
                    .unwrap_or_default(),
            })),
        }
    }
}
