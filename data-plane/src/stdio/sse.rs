//! Server-sent events towards clients: the framing of one JSON-RPC message as an event, a
//! response body fed by a channel, and the `GET /mcp/{server_id}` streams of a process
//! ([`Listeners`]), which outlive restarts of the process.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde_json::Value;
use tokio::sync::mpsc;

use super::Principal;
use crate::http::BodyError;

/// Events buffered per open `GET` stream; a client that falls this far behind is
/// disconnected (it can reconnect) rather than silently missing messages.
const LISTENER_BUFFER: usize = 256;

/// One JSON-RPC message as an SSE `message` event.
pub(super) fn event(message: &Value) -> Bytes {
    crate::sse::message_event(&message.to_string())
}

/// A response body that sends what arrives on a channel and ends when every sender is
/// gone. Dropping it (the client went away) closes the channel, which tells the producer.
pub struct EventBody {
    events: mpsc::Receiver<Bytes>,
    /// Keeps a `GET` stream registered for as long as the body lives.
    _listener: Option<ListenerGuard>,
}

impl EventBody {
    pub fn new(events: mpsc::Receiver<Bytes>) -> EventBody {
        EventBody {
            events,
            _listener: None,
        }
    }
}

impl Body for EventBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.events
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// The open `GET` streams of one stdio process, oldest first, each with the principal of
/// the caller that opened it.
#[derive(Debug, Default)]
pub struct Listeners {
    streams: Mutex<BTreeMap<u64, Listener>>,
    next: AtomicU64,
}

#[derive(Debug)]
struct Listener {
    principal: Principal,
    sender: mpsc::Sender<Bytes>,
}

impl Listeners {
    /// Open a stream for `principal`: the returned body receives what is sent to it.
    pub fn open(self: &Arc<Self>, principal: Principal) -> EventBody {
        let (sender, events) = mpsc::channel(LISTENER_BUFFER);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, Listener { principal, sender });
        EventBody {
            events,
            _listener: Some(ListenerGuard {
                listeners: Arc::clone(self),
                id,
            }),
        }
    }

    /// Send `event` to every open stream (what every caller may see; the proxy filters
    /// each stream through its caller's view).
    pub fn broadcast(&self, event: &Bytes) {
        self.lock()
            .retain(|id, listener| deliver(*id, &listener.sender, event.clone()));
    }

    /// Send `event` to every open stream of `principal`; `false` when it has none.
    pub fn broadcast_to(&self, principal: &Principal, event: &Bytes) -> bool {
        let mut delivered = false;
        self.lock().retain(|id, listener| {
            if listener.principal != *principal {
                return true;
            }
            let kept = deliver(*id, &listener.sender, event.clone());
            delivered |= kept;
            kept
        });
        delivered
    }

    /// Send `event` to the oldest open stream of `principal`; `false` when it has none.
    pub fn send_to_oldest_of(&self, principal: &Principal, event: &Bytes) -> bool {
        let mut streams = self.lock();
        let ids: Vec<u64> = streams
            .iter()
            .filter(|(_, listener)| listener.principal == *principal)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(listener) = streams.get(&id) else {
                continue;
            };
            if deliver(id, &listener.sender, event.clone()) {
                return true;
            }
            streams.remove(&id);
        }
        false
    }

    /// The principal of every open stream, when they all have the same one.
    pub fn sole_principal(&self) -> Option<Principal> {
        let streams = self.lock();
        let mut principals = streams
            .values()
            .filter(|listener| !listener.sender.is_closed())
            .map(|listener| &listener.principal);
        let first = principals.next()?;
        principals.all(|p| p == first).then(|| first.clone())
    }

    /// How many streams are open.
    pub fn open_streams(&self) -> usize {
        self.lock().len()
    }

    /// End every open stream (the server is stopping).
    pub fn close_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Listener>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `false` when the stream must be dropped: its client left, or fell too far behind.
fn deliver(id: u64, stream: &mpsc::Sender<Bytes>, event: Bytes) -> bool {
    match stream.try_send(event) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(
                listener = id,
                "a GET event stream fell behind by {LISTENER_BUFFER} events; closing it"
            );
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Unregisters a `GET` stream when its body is dropped.
#[derive(Debug)]
struct ListenerGuard {
    listeners: Arc<Listeners>,
    id: u64,
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.listeners.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use serde_json::json;

    use super::*;

    #[test]
    fn frames_one_message_per_event() {
        let frame = event(&json!({"jsonrpc": "2.0", "method": "m", "params": {"t": "a\nb"}}));
        assert_eq!(
            &frame[..],
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"t\":\"a\\nb\"}}\n\n"
        );
    }

    fn principal(tenant: &str) -> Principal {
        Principal {
            tenant: tenant.into(),
            client: "c".into(),
        }
    }

    #[tokio::test]
    async fn listeners_get_broadcasts_and_only_their_principals_messages() {
        let listeners = Arc::new(Listeners::default());
        let (a, b) = (principal("a"), principal("b"));
        let mut first = listeners.open(a.clone());
        let mut second = listeners.open(b.clone());
        let mut third = listeners.open(a.clone());
        assert_eq!(listeners.sole_principal(), None);
        listeners.broadcast(&Bytes::from_static(b"all"));
        assert!(listeners.send_to_oldest_of(&b, &Bytes::from_static(b"one")));
        assert!(listeners.broadcast_to(&a, &Bytes::from_static(b"a's")));
        let next = |body: &mut EventBody| body.events.try_recv().ok();
        assert_eq!(next(&mut first).as_deref(), Some(&b"all"[..]));
        assert_eq!(next(&mut first).as_deref(), Some(&b"a's"[..]));
        assert_eq!(next(&mut first), None);
        assert_eq!(next(&mut second).as_deref(), Some(&b"all"[..]));
        assert_eq!(next(&mut second).as_deref(), Some(&b"one"[..]));
        assert_eq!(next(&mut second), None);
        assert_eq!(next(&mut third).as_deref(), Some(&b"all"[..]));
        assert_eq!(next(&mut third).as_deref(), Some(&b"a's"[..]));

        // A closed stream is unregistered, so the next oldest of the principal takes over.
        drop(second);
        assert!(!listeners.send_to_oldest_of(&b, &Bytes::from_static(b"none")));
        assert_eq!(listeners.sole_principal(), Some(a.clone()));
        drop(first);
        assert!(listeners.send_to_oldest_of(&a, &Bytes::from_static(b"two")));
        assert_eq!(next(&mut third).as_deref(), Some(&b"two"[..]));
        assert_eq!(listeners.open_streams(), 1);

        listeners.close_all();
        assert!(!listeners.broadcast_to(&a, &Bytes::from_static(b"none")));
        let rest = third.collect().await.expect("ends cleanly").to_bytes();
        assert!(rest.is_empty());
    }
}
