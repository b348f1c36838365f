//! One incarnation of a stdio process as a JSON-RPC peer shared by many callers: the
//! tables that remap ids between callers and the process, and what callers send through
//! them. What the process writes is routed by [`dispatch`].
//!
//! Every entry carries the [`Principal`] (tenant and client) of its caller: a client's ids
//! are its own, so a cancellation or an answer only ever matches entries of the principal
//! that sent it. Gateway ids are a counter, unique for the life of the connection, so two
//! callers using the same id never collide. An entry leaves the table exactly once: answered, cancelled
//! by its client, abandoned by its caller (timeout, disconnect: the process is then sent
//! `notifications/cancelled`) or failed when the process ends. The table's lock is never
//! held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::Principal;
use super::remap;
use super::sse::Listeners;
use crate::metrics::Metrics;

mod dispatch;

/// Why a caller gets no answer from the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status of a plain JSON answer (502, 503 or 504).
    pub status: StatusCode,
    pub message: String,
}

impl Failure {
    pub fn bad_gateway(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::BAD_GATEWAY,
            message: message.into(),
        }
    }

    pub fn timeout(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: message.into(),
        }
    }
}

/// How a caller's request ended.
#[derive(Debug)]
pub enum Outcome {
    /// The process answered; the id is the caller's again.
    Answer(Value),
    /// The process cannot answer (it ended or was stopped).
    Failed(Failure),
    /// The caller's client cancelled it (`notifications/cancelled`).
    Cancelled,
}

/// A registered request: its answer arrives on `done`. Dropping it before the answer
/// abandons the request.
#[derive(Debug)]
pub struct Call {
    pub done: oneshot::Receiver<Outcome>,
    _guard: CallGuard,
}

/// The process side of one stdio server incarnation.
#[derive(Debug)]
pub struct Connection {
    server_id: Arc<str>,
    /// Lines for the process's stdin.
    outbox: mpsc::Sender<Bytes>,
    table: Mutex<Table>,
    next_id: AtomicU64,
    /// Woken when the last outstanding request leaves the table.
    idle: Notify,
    listeners: Arc<Listeners>,
    unrouted: Unrouted,
}

/// Counts of the process's messages that named no caller when several could have caused
/// them (`conduit_dp_stdio_unrouted_total`).
#[derive(Debug, Clone)]
pub struct Unrouted {
    /// Server→client requests, answered with an error.
    pub requests: prometheus::IntCounter,
    /// Notifications, dropped.
    pub notifications: prometheus::IntCounter,
}

impl Unrouted {
    pub fn new(metrics: &Metrics, server_id: &str) -> Unrouted {
        Unrouted {
            requests: metrics
                .stdio_unrouted
                .with_label_values(&[server_id, "request"]),
            notifications: metrics
                .stdio_unrouted
                .with_label_values(&[server_id, "notification"]),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    /// Outstanding caller requests by gateway id; the oldest first.
    requests: BTreeMap<u64, Outstanding>,
    /// Server→client requests awaiting a client's answer, by the id the client was given.
    server_requests: HashMap<String, ServerRequest>,
    /// Set when the incarnation ended: nothing new is accepted.
    closed: Option<Failure>,
}

#[derive(Debug)]
struct Outstanding {
    /// Whose request it is.
    principal: Principal,
    client_id: Value,
    /// The caller's `_meta.progressToken`; the process knows it as the gateway id.
    progress_token: Option<Value>,
    /// The caller's event stream, when it accepts one.
    events: Option<mpsc::Sender<Bytes>>,
    done: oneshot::Sender<Outcome>,
    /// Whether the process is told when the request is abandoned (`initialize` must not
    /// be cancelled).
    cancellable: bool,
}

#[derive(Debug)]
struct ServerRequest {
    /// The id the process gave the request.
    process_id: Value,
    /// The caller request whose stream it went to; `None` for a `GET` stream.
    owner: Option<u64>,
    /// The only principal whose answer is taken.
    principal: Principal,
}

impl Connection {
    pub fn new(
        server_id: Arc<str>,
        listeners: Arc<Listeners>,
        outbox: mpsc::Sender<Bytes>,
        unrouted: Unrouted,
    ) -> Arc<Connection> {
        Arc::new(Connection {
            server_id,
            outbox,
            table: Mutex::default(),
            next_id: AtomicU64::new(1),
            idle: Notify::new(),
            listeners,
            unrouted,
        })
    }

    /// Register `principal`'s request and rewrite it for the process (gateway id, gateway
    /// progress token). `events` receives the messages attributed to it.
    pub fn register(
        self: &Arc<Self>,
        request: &mut Value,
        events: Option<&mpsc::Sender<Bytes>>,
        principal: &Principal,
    ) -> Result<Call, Failure> {
        let mut table = self.lock();
        if let Some(failure) = &table.closed {
            return Err(failure.clone());
        }
        let gid = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancellable = remap::method(request) != Some("initialize");
        let client_id = remap::replace_id(request, gid.into());
        let progress_token = remap::replace_request_progress_token(request, gid.into());
        let (done, receiver) = oneshot::channel();
        table.requests.insert(
            gid,
            Outstanding {
                principal: principal.clone(),
                client_id,
                progress_token,
                events: events.cloned(),
                done,
                cancellable,
            },
        );
        Ok(Call {
            done: receiver,
            _guard: CallGuard {
                connection: Arc::clone(self),
                gid,
            },
        })
    }

    /// Write one line to the process, waiting for room in its input until `deadline`.
    pub async fn send(&self, line: Bytes, deadline: Instant) -> Result<(), Failure> {
        match tokio::time::timeout_at(deadline, self.outbox.send(line)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.lock().closed.clone().unwrap_or_else(|| {
                Failure::bad_gateway(format!(
                    "the stdio server {} no longer reads its input",
                    self.server_id
                ))
            })),
            Err(_) => Err(Failure::timeout(format!(
                "the stdio server {} did not read its input in time",
                self.server_id
            ))),
        }
    }

    /// `principal`'s answer to a server→client request sent to it, rewritten for the
    /// process.
    pub fn client_response(
        &self,
        mut response: Value,
        principal: &Principal,
    ) -> Result<Bytes, String> {
        let id = remap::id(&response);
        let request = id.as_str().and_then(|id| {
            let mut table = self.lock();
            // Another principal's answer is refused like an unknown id, and leaves the
            // request to its own recipient.
            match table.server_requests.get(id) {
                Some(request) if request.principal == *principal => {
                    table.server_requests.remove(id)
                }
                _ => None,
            }
        });
        let Some(request) = request else {
            return Err(format!(
                "no request of server {} with id {id} is awaiting an answer \
                 (answered already, ended, or never sent)",
                self.server_id
            ));
        };
        remap::replace_id(&mut response, request.process_id);
        Ok(remap::line(&response))
    }

    /// `principal`'s `notifications/cancelled`, rewritten for the process; `None` when its
    /// `requestId` names no single outstanding request of that principal (see the module
    /// doc of [`super`]).
    pub fn client_cancel(&self, mut notification: Value, principal: &Principal) -> Option<Bytes> {
        let request_id = remap::param(&notification, "requestId")?.clone();
        let mut table = self.lock();
        let mut matching = table
            .requests
            .iter()
            .filter(|(_, request)| request.principal == *principal)
            .filter(|(_, request)| request.client_id == request_id)
            .map(|(gid, _)| *gid);
        let (Some(gid), None) = (matching.next(), matching.next()) else {
            tracing::debug!(
                server = %self.server_id,
                request_id = %request_id,
                "cancellation names no single outstanding request of its client; dropped"
            );
            return None;
        };
        let request = self.take(&mut table, gid)?;
        drop(table);
        let _ = request.done.send(Outcome::Cancelled);
        remap::replace_param(&mut notification, "requestId", gid.into());
        Some(remap::line(&notification))
    }

    /// Fail every outstanding request with `failure` and accept nothing new.
    pub fn close(&self, failure: Failure) {
        let requests = {
            let mut table = self.lock();
            table.closed = Some(failure.clone());
            table.server_requests.clear();
            std::mem::take(&mut table.requests)
        };
        self.idle.notify_waiters();
        for request in requests.into_values() {
            let _ = request.done.send(Outcome::Failed(failure.clone()));
        }
    }

    /// Returns once no caller request is outstanding.
    pub async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.lock().requests.is_empty() {
                return;
            }
            idle.await;
        }
    }

    /// How many caller requests are outstanding.
    pub fn outstanding(&self) -> usize {
        self.lock().requests.len()
    }

    /// Remove an outstanding request and what was sent on its behalf.
    fn take(&self, table: &mut Table, gid: u64) -> Option<Outstanding> {
        let request = table.requests.remove(&gid)?;
        table
            .server_requests
            .retain(|_, server_request| server_request.owner != Some(gid));
        if table.requests.is_empty() {
            self.idle.notify_waiters();
        }
        Some(request)
    }

    /// A caller gave up its request (timeout or disconnect): tell the process.
    fn abandon(&self, gid: u64) {
        let abandoned = {
            let mut table = self.lock();
            let request = self.take(&mut table, gid);
            request.is_some_and(|request| request.cancellable) && table.closed.is_none()
        };
        if abandoned {
            let mut params = Map::new();
            params.insert("requestId".into(), gid.into());
            params.insert(
                "reason".into(),
                "the gateway's caller gave up (timeout or disconnect)".into(),
            );
            self.reply(remap::notification("notifications/cancelled", params));
        }
    }

    /// Write a message of the gateway's own to the process without waiting: dispatch runs
    /// on the task that reads the process's output, which must never block on its input.
    fn reply(&self, message: Value) {
        match self.outbox.try_send(remap::line(&message)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => tracing::warn!(
                server = %self.server_id,
                "the stdio server's input is full; a gateway message to it was dropped"
            ),
            // The process is gone; it would not read it anyway.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Abandons its request when dropped before the answer.
#[derive(Debug)]
struct CallGuard {
    connection: Arc<Connection>,
    gid: u64,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.connection.abandon(self.gid);
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
