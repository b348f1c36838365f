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

use crate::deadline::BodyError;

/// Events buffered per open `GET` stream; a client that falls this far behind is
/// disconnected (it can reconnect) rather than silently missing messages.
const LISTENER_BUFFER: usize = 256;

/// One JSON-RPC message as an SSE `message` event.
pub fn event(message: &Value) -> Bytes {
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

/// The open `GET` streams of one stdio server, oldest first.
#[derive(Debug, Default)]
pub struct Listeners {
    streams: Mutex<BTreeMap<u64, mpsc::Sender<Bytes>>>,
    next: AtomicU64,
}

impl Listeners {
    /// Open a stream: the returned body receives what is sent to this listener.
    pub fn open(self: &Arc<Self>) -> EventBody {
        let (sender, events) = mpsc::channel(LISTENER_BUFFER);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, sender);
        EventBody {
            events,
            _listener: Some(ListenerGuard {
                listeners: Arc::clone(self),
                id,
            }),
        }
    }

    /// Send `event` to every open stream.
    pub fn broadcast(&self, event: &Bytes) {
        self.lock()
            .retain(|id, stream| deliver(*id, stream, event.clone()));
    }

    /// Send `event` to the oldest open stream; `false` when there is none.
    pub fn send_to_oldest(&self, event: Bytes) -> bool {
        let mut streams = self.lock();
        while let Some(mut entry) = streams.first_entry() {
            if deliver(*entry.key(), entry.get_mut(), event.clone()) {
                return true;
            }
            entry.remove();
        }
        false
    }

    /// End every open stream (the server is stopping).
    pub fn close_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, mpsc::Sender<Bytes>>> {
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

    #[tokio::test]
    async fn listeners_get_broadcasts_and_the_oldest_gets_requests() {
        let listeners = Arc::new(Listeners::default());
        let mut first = listeners.open();
        let mut second = listeners.open();
        listeners.broadcast(&Bytes::from_static(b"all"));
        assert!(listeners.send_to_oldest(Bytes::from_static(b"one")));
        let next = |body: &mut EventBody| body.events.try_recv().ok();
        assert_eq!(next(&mut first).as_deref(), Some(&b"all"[..]));
        assert_eq!(next(&mut first).as_deref(), Some(&b"one"[..]));
        assert_eq!(next(&mut second).as_deref(), Some(&b"all"[..]));
        assert_eq!(next(&mut second), None);

        // A closed stream is unregistered, so the next oldest takes over.
        drop(first);
        assert!(listeners.send_to_oldest(Bytes::from_static(b"two")));
        assert_eq!(next(&mut second).as_deref(), Some(&b"two"[..]));

        listeners.close_all();
        assert!(!listeners.send_to_oldest(Bytes::from_static(b"none")));
        let rest = second.collect().await.expect("ends cleanly").to_bytes();
        assert!(rest.is_empty());
    }
}
