//! The fleet registry: what the control plane knows about every data plane.
//!
//! The in-memory map is the truth while the process runs. Every change bumps a generation
//! counter in a `watch`, so `WaitRollout` wakes on the very ACK that completes a rollout
//! instead of polling. SQLite is written behind the map by [`Fleet::run_persistence`]: changed
//! rows are collected and upserted in one transaction per batch, so a fan-out to many data
//! planes costs a handful of writes, off the ACK path.
//!
//! Each config stream is a *session* of its node. A second stream with the same node id
//! replaces the first (whose stream is told to end); updates from a replaced session are
//! ignored, so an old stream closing late cannot mark the new one disconnected.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::now_rfc3339;
pub use crate::metrics::FleetCounts;
use crate::store::fleet::StoredError;
use crate::store::{DataPlaneRow, Store};

/// How long the persistence task waits after a change to collect more changes into the
/// same transaction.
const PERSIST_COALESCE: Duration = Duration::from_millis(100);

/// One data plane as shown by `FleetStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub row: DataPlaneRow,
    pub connected: bool,
}

/// How a data plane stands with respect to one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    /// Applied this version or a newer one.
    Converged,
    /// Rejected this version or a newer one, and has applied neither.
    Rejected,
    Pending,
}

impl NodeStatus {
    pub fn rollout_state(&self, version: u64) -> RolloutState {
        if self.row.applied_version >= version {
            RolloutState::Converged
        } else if self.row.rejected_version >= version {
            RolloutState::Rejected
        } else {
            RolloutState::Pending
        }
    }
}

/// Whether any connected node rejected or has yet to apply a version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolloutSummary {
    pub rejected: bool,
    pub pending: bool,
}

/// A live config stream's claim on its node.
#[derive(Debug)]
pub struct Session {
    pub node_id: String,
    pub id: u64,
    /// Completes when a newer stream of the same node replaced this one.
    pub replaced: oneshot::Receiver<()>,
}

/// What a data plane says about itself when its stream opens.
#[derive(Debug, Clone, Default)]
pub struct Hello {
    pub node_id: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub build_version: String,
    pub applied_version: u64,
    pub applied_hash: String,
}

struct Node {
    status: NodeStatus,
    /// The live session and the sender that ends it when replaced.
    session: Option<(u64, oneshot::Sender<()>)>,
}

#[derive(Default)]
struct Inner {
    nodes: HashMap<String, Node>,
    next_session: u64,
    /// Node ids whose persisted row is stale.
    dirty: HashSet<String>,
}

/// The registry. Share it behind an `Arc`.
pub struct Fleet {
    inner: Mutex<Inner>,
    generation: watch::Sender<u64>,
    dirty: Notify,
}

impl Fleet {
    /// A registry seeded with persisted rows, all disconnected.
    pub fn new(rows: Vec<DataPlaneRow>) -> Self {
        let nodes = rows
            .into_iter()
            .map(|row| {
                let node = Node {
                    status: NodeStatus {
                        row,
                        connected: false,
                    },
                    session: None,
                };
                (node.status.row.node_id.clone(), node)
            })
            .collect();
        Self {
            inner: Mutex::new(Inner {
                nodes,
                ..Inner::default()
            }),
            generation: watch::Sender::new(0),
            dirty: Notify::new(),
        }
    }

    /// A receiver that changes whenever any node changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Register a newly opened stream, replacing any live stream of the same node.
    pub fn connect(&self, hello: Hello, peer: Option<SocketAddr>) -> Session {
        let (replace_tx, replaced) = oneshot::channel();
        let now = now_rfc3339();
        let mut inner = self.lock();
        inner.next_session += 1;
        let id = inner.next_session;
        let node = inner
            .nodes
            .entry(hello.node_id.clone())
            .or_insert_with(|| Node {
                status: NodeStatus {
                    row: DataPlaneRow {
                        node_id: hello.node_id.clone(),
                        ..DataPlaneRow::default()
                    },
                    connected: false,
                },
                session: None,
            });
        if let Some((old, end_old)) = node.session.take() {
            tracing::info!(node_id = %hello.node_id, old_session = old, "new stream replaces the old one");
            let _ = end_old.send(());
        }
        node.session = Some((id, replace_tx));
        let row = &mut node.status.row;
        row.labels = hello.labels;
        row.build_version = hello.build_version;
        // The data plane knows best what it runs (it may have restarted from its cache).
        row.applied_version = hello.applied_version;
        row.applied_hash = hello.applied_hash;
        if row.rejected_version != 0 && row.rejected_version <= row.applied_version {
            clear_rejection(row);
        }
        row.last_seen.clone_from(&now);
        row.connected_since = now;
        row.peer_address = peer.map(|peer| peer.to_string()).unwrap_or_default();
        node.status.connected = true;
        self.changed(inner, &hello.node_id);
        Session {
            node_id: hello.node_id,
            id,
            replaced,
        }
    }

    /// The node applied `version` (its content `hash`).
    pub fn acked(&self, session: &Session, version: u64, hash: &str) {
        self.update(session, true, |row| {
            // Unconditional: messages on one stream arrive in order, so the latest ACK is
            // what runs now, even if Hello claimed a higher version (a control plane whose
            // database was replaced may legitimately send an older number).
            row.applied_version = version;
            hash.clone_into(&mut row.applied_hash);
            if row.rejected_version != 0 && version >= row.rejected_version {
                clear_rejection(row);
            }
        });
    }

    /// The node rejected `version` and keeps running what it had.
    pub fn nacked(&self, session: &Session, version: u64, errors: Vec<StoredError>) {
        self.update(session, true, |row| {
            if version >= row.rejected_version {
                row.rejected_version = version;
                row.rejected_errors = errors;
            }
        });
    }

    /// The stream is alive (heartbeat sent); kept in memory only.
    pub fn seen(&self, session: &Session) {
        self.update(session, false, |_| {});
    }

    /// The stream ended. Ignored when a newer stream already replaced it.
    pub fn disconnect(&self, session: &Session) {
        let mut inner = self.lock();
        let Some(node) = inner.nodes.get_mut(&session.node_id) else {
            return;
        };
        if node.session.as_ref().map(|(id, _)| *id) != Some(session.id) {
            return;
        }
        node.session = None;
        node.status.connected = false;
        node.status.row.last_seen = now_rfc3339();
        self.changed(inner, &session.node_id);
    }

    /// Every known node, ordered by node id.
    pub fn statuses(&self) -> Vec<NodeStatus> {
        let inner = self.lock();
        let mut statuses: Vec<NodeStatus> = inner
            .nodes
            .values()
            .map(|node| node.status.clone())
            .collect();
        statuses.sort_by(|a, b| a.row.node_id.cmp(&b.row.node_id));
        statuses
    }

    /// How the connected nodes stand with respect to `version`, without copying them:
    /// `WaitRollout` asks this on every fleet change.
    pub fn rollout_summary(&self, version: u64) -> RolloutSummary {
        let inner = self.lock();
        let mut summary = RolloutSummary::default();
        for node in inner.nodes.values().filter(|node| node.status.connected) {
            match node.status.rollout_state(version) {
                RolloutState::Converged => {}
                RolloutState::Rejected => summary.rejected = true,
                RolloutState::Pending => summary.pending = true,
            }
        }
        summary
    }

    /// Census relative to the current version.
    pub fn counts(&self, current_version: u64) -> FleetCounts {
        let inner = self.lock();
        let mut counts = FleetCounts::default();
        for node in inner.nodes.values() {
            let status = &node.status;
            if !status.connected {
                counts.disconnected += 1;
                continue;
            }
            counts.connected += 1;
            if current_version != 0 && status.row.applied_version == current_version {
                counts.converged += 1;
            }
            if status.row.rejected_version != 0 {
                counts.rejecting += 1;
            }
        }
        counts
    }

    /// Write changed rows behind the in-memory map until `shutdown`, then flush once more.
    pub async fn run_persistence(self: Arc<Self>, store: Arc<Store>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = self.dirty.notified() => {}
                () = shutdown.cancelled() => break,
            }
            tokio::select! {
                () = tokio::time::sleep(PERSIST_COALESCE) => {}
                () = shutdown.cancelled() => break,
            }
            self.flush(&store).await;
        }
        self.flush(&store).await;
    }

    /// Persist every changed row now.
    pub async fn flush(&self, store: &Arc<Store>) {
        let rows: Vec<DataPlaneRow> = {
            let mut inner = self.lock();
            let dirty = std::mem::take(&mut inner.dirty);
            dirty
                .iter()
                .filter_map(|node_id| inner.nodes.get(node_id))
                .map(|node| node.status.row.clone())
                .collect()
        };
        if rows.is_empty() {
            return;
        }
        let writer = store.clone();
        let pending = rows.clone();
        let result = tokio::task::spawn_blocking(move || writer.upsert_data_planes(&pending)).await;
        let error = match result {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        };
        tracing::error!(%error, rows = rows.len(), "cannot persist fleet state; will retry");
        // Keep them dirty so the next change (or shutdown) retries.
        let mut inner = self.lock();
        inner.dirty.extend(rows.into_iter().map(|row| row.node_id));
    }

    fn update(&self, session: &Session, persist: bool, change: impl FnOnce(&mut DataPlaneRow)) {
        let mut inner = self.lock();
        let Some(node) = inner.nodes.get_mut(&session.node_id) else {
            return;
        };
        if node.session.as_ref().map(|(id, _)| *id) != Some(session.id) {
            return;
        }
        change(&mut node.status.row);
        node.status.row.last_seen = now_rfc3339();
        if persist {
            self.changed(inner, &session.node_id);
        }
    }

    /// Record a change of `node_id`: mark it dirty, release the lock, wake waiters.
    fn changed(&self, mut inner: MutexGuard<'_, Inner>, node_id: &str) {
        if !inner.dirty.contains(node_id) {
            inner.dirty.insert(node_id.to_owned());
        }
        drop(inner);
        self.generation.send_modify(|generation| *generation += 1);
        self.dirty.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the map consistent, so a poisoned lock is usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn clear_rejection(row: &mut DataPlaneRow) {
    row.rejected_version = 0;
    row.rejected_errors.clear();
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
mod tests;
