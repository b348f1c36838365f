//! A scripted fake control plane: a real tonic `ConfigDiscovery` server on 127.0.0.1 that
//! the test feeds snapshots to and reads Hellos, Acks and Nacks from.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use conduit_config::Document;
use conduit_data_plane::snapshot::sign;
use conduit_proto::v1::config_discovery_server::{ConfigDiscovery, ConfigDiscoveryServer};
use conduit_proto::v1::{
    self, ControlPlaneMessage, DataPlaneMessage, Hello, control_plane_message, data_plane_message,
};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::PATIENCE;

/// What the data plane reported on a stream.
#[derive(Debug, Clone)]
pub enum Report {
    Ack(v1::Ack),
    Nack(v1::Nack),
}

pub struct FakeControlPlane {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    hellos: Mutex<mpsc::UnboundedReceiver<Hello>>,
    reports: Mutex<mpsc::UnboundedReceiver<Report>>,
    audits: Mutex<mpsc::UnboundedReceiver<v1::AuditBatch>>,
    stop: CancellationToken,
}

struct Shared {
    /// Bearer token required on the stream.
    token: Option<String>,
    /// Key signing snapshots.
    signing_key: Option<String>,
    current: watch::Sender<Option<v1::Snapshot>>,
    /// Bumped to end every open stream cleanly.
    generation: watch::Sender<u64>,
    hellos: mpsc::UnboundedSender<Hello>,
    reports: mpsc::UnboundedSender<Report>,
    audits: mpsc::UnboundedSender<v1::AuditBatch>,
    /// Whether audit batches are acked (a control plane that stores them).
    ack_audits: AtomicBool,
    refused: AtomicUsize,
    nonce: AtomicU64,
}

#[derive(Clone)]
struct Service(Arc<Shared>);

impl FakeControlPlane {
    /// A control plane requiring `token` and signing with it.
    pub async fn start(token: Option<&str>) -> FakeControlPlane {
        Self::start_with(token, token).await
    }

    pub async fn start_with(token: Option<&str>, signing_key: Option<&str>) -> FakeControlPlane {
        super::init();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (hello_tx, hellos) = mpsc::unbounded_channel();
        let (report_tx, reports) = mpsc::unbounded_channel();
        let (audit_tx, audits) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            token: token.map(Into::into),
            signing_key: signing_key.map(Into::into),
            current: watch::channel(None).0,
            generation: watch::channel(0).0,
            hellos: hello_tx,
            reports: report_tx,
            audits: audit_tx,
            ack_audits: AtomicBool::new(true),
            refused: AtomicUsize::new(0),
            nonce: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .add_service(ConfigDiscoveryServer::new(Service(Arc::clone(&shared))))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                stop.clone().cancelled_owned(),
            );
        tokio::spawn(server);
        FakeControlPlane {
            addr,
            shared,
            hellos: Mutex::new(hellos),
            reports: Mutex::new(reports),
            audits: Mutex::new(audits),
            stop,
        }
    }

    /// Publish `document` (YAML or JSON) as `version` to every connected data plane.
    pub fn push(&self, version: u64, document: &str) {
        let config_json = Document::from_text(document)
            .unwrap_or_else(|errors| panic!("test document is invalid: {errors}"))
            .canonical_json();
        let hash = hex::encode(Sha256::digest(config_json.as_bytes()));
        let signature = self
            .shared
            .signing_key
            .as_deref()
            .map(|key| sign(key, version, &hash))
            .unwrap_or_default();
        self.shared.current.send_replace(Some(v1::Snapshot {
            version,
            nonce: String::new(),
            hash,
            signature,
            config_json,
            created_at: "2026-01-01T00:00:00Z".into(),
            session_keys: None,
            approval_key: None,
        }));
    }

    pub async fn next_hello(&self) -> Hello {
        let mut hellos = self.hellos.lock().await;
        tokio::time::timeout(PATIENCE, hellos.recv())
            .await
            .expect("a hello in time")
            .expect("hello channel open")
    }

    pub async fn next_report(&self) -> Report {
        let mut reports = self.reports.lock().await;
        tokio::time::timeout(PATIENCE, reports.recv())
            .await
            .expect("an ack or nack in time")
            .expect("report channel open")
    }

    /// The next audit batch a data plane sent (acked unless [`Self::ack_audits`] is off).
    pub async fn next_audit_batch(&self) -> v1::AuditBatch {
        let mut audits = self.audits.lock().await;
        tokio::time::timeout(PATIENCE, audits.recv())
            .await
            .expect("an audit batch in time")
            .expect("audit channel open")
    }

    /// Whether audit batches are acked from now on.
    pub fn ack_audits(&self, ack: bool) {
        self.shared.ack_audits.store(ack, Ordering::SeqCst);
    }

    /// End every open stream cleanly (as a control plane restart would).
    pub fn disconnect_all(&self) {
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Stream attempts refused for a bad or missing token.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.disconnect_all();
        self.stop.cancel();
    }
}

impl Drop for FakeControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tonic::async_trait]
impl ConfigDiscovery for Service {
    type StreamStream = ReceiverStream<Result<ControlPlaneMessage, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<DataPlaneMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let shared = Arc::clone(&self.0);
        if let Some(token) = &shared.token {
            let expected = format!("Bearer {token}");
            let given = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if given != Some(expected.as_str()) {
                shared.refused.fetch_add(1, Ordering::SeqCst);
                return Err(Status::unauthenticated("invalid data-plane token"));
            }
        }
        let mut inbound = request.into_inner();
        let (outbound, stream) = mpsc::channel(8);
        tokio::spawn(async move {
            let Ok(Some(DataPlaneMessage {
                kind: Some(data_plane_message::Kind::Hello(hello)),
            })) = inbound.message().await
            else {
                return;
            };
            let applied = hello.last_applied_version;
            let _ = shared.hellos.send(hello);
            let mut current = shared.current.subscribe();
            let mut generation = shared.generation.subscribe();
            generation.borrow_and_update();
            let initial = current.borrow_and_update().clone();
            if let Some(snapshot) = initial.filter(|s| s.version != applied)
                && !send_snapshot(&shared, &outbound, snapshot).await
            {
                return;
            }
            loop {
                tokio::select! {
                    changed = current.changed() => {
                        if changed.is_err() { return; }
                        let snapshot = current.borrow_and_update().clone();
                        if let Some(snapshot) = snapshot
                            && !send_snapshot(&shared, &outbound, snapshot).await
                        {
                            return;
                        }
                    }
                    message = inbound.message() => match message {
                        Ok(Some(DataPlaneMessage { kind: Some(data_plane_message::Kind::Ack(ack)) })) => {
                            let _ = shared.reports.send(Report::Ack(ack));
                        }
                        Ok(Some(DataPlaneMessage { kind: Some(data_plane_message::Kind::Nack(nack)) })) => {
                            let _ = shared.reports.send(Report::Nack(nack));
                        }
                        Ok(Some(DataPlaneMessage { kind: Some(data_plane_message::Kind::AuditBatch(batch)) })) => {
                            let sequence = batch.sequence;
                            let _ = shared.audits.send(batch);
                            if shared.ack_audits.load(Ordering::SeqCst) {
                                let ack = ControlPlaneMessage {
                                    kind: Some(control_plane_message::Kind::AuditAck(v1::AuditAck { sequence })),
                                };
                                if outbound.send(Ok(ack)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => return,
                    },
                    // Dropping `outbound` ends the response stream with an OK status.
                    _ = generation.changed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}

async fn send_snapshot(
    shared: &Shared,
    outbound: &mpsc::Sender<Result<ControlPlaneMessage, Status>>,
    mut snapshot: v1::Snapshot,
) -> bool {
    snapshot.nonce = format!("nonce-{}", shared.nonce.fetch_add(1, Ordering::SeqCst));
    let message = ControlPlaneMessage {
        kind: Some(control_plane_message::Kind::Snapshot(snapshot)),
    };
    tokio::time::timeout(Duration::from_secs(5), outbound.send(Ok(message)))
        .await
        .is_ok_and(|sent| sent.is_ok())
}
