//! The per-server `timeout_ms` as a deadline on a whole POST exchange, body included.
//!
//! Streamable-HTTP servers often answer a POST at once with `200 text/event-stream` and
//! send the result later on that stream, so a timeout on the response headers alone would
//! never fire for a slow tool. [`DeadlineBody`] ends such a response at the deadline: an
//! event stream gets a final `message` event holding a JSON-RPC error with the request id
//! (the client sees a timely, well-formed answer); any other body is cut with an error.
//! GET event streams are long-lived by design and are never wrapped.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use serde_json::json;
use tokio::time::{Instant, Sleep};

use crate::jsonrpc::{self, RequestId};

/// Errors a proxied response body can end with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The upstream did not finish its answer before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("upstream server {server_id} did not finish its answer within {timeout}")]
pub struct DeadlineExceeded {
    pub server_id: String,
    pub timeout: String,
}

/// An upstream response body that ends at a deadline.
pub struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<Sleep>>,
    /// What to do when the deadline passes; taken when it fires.
    on_deadline: Option<OnDeadline>,
    finished: bool,
}

enum OnDeadline {
    /// Send this final SSE event, then end the stream.
    Event(Bytes),
    /// End the body with this error.
    Fail(DeadlineExceeded),
}

impl DeadlineBody {
    /// Wrap `inner`, ending it at `deadline`. `event_stream` says whether the response is
    /// `text/event-stream`; `id` is the request's JSON-RPC id.
    pub fn new(
        inner: Incoming,
        deadline: Instant,
        event_stream: bool,
        id: &RequestId,
        server_id: &str,
        timeout: Duration,
    ) -> Self {
        let timeout = humantime::format_duration(timeout).to_string();
        let failure = DeadlineExceeded {
            server_id: server_id.to_owned(),
            timeout,
        };
        let on_deadline = if event_stream {
            let error = json!({
                "jsonrpc": "2.0",
                "id": id.0,
                "error": {"code": jsonrpc::INTERNAL_ERROR, "message": failure.to_string()},
            });
            OnDeadline::Event(Bytes::from(format!("event: message\ndata: {error}\n\n")))
        } else {
            OnDeadline::Fail(failure)
        };
        DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            on_deadline: Some(on_deadline),
            finished: false,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(frame)) => return Poll::Ready(Some(frame.map_err(Into::into))),
            Poll::Ready(None) => {
                self.finished = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.finished = true;
        match self.on_deadline.take() {
            Some(OnDeadline::Event(event)) => {
                tracing::warn!("upstream answer cut at its deadline");
                Poll::Ready(Some(Ok(Frame::data(event))))
            }
            Some(OnDeadline::Fail(failure)) => {
                tracing::warn!(%failure, "upstream answer cut at its deadline");
                Poll::Ready(Some(Err(failure.into())))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // The deadline may append an event, so the upstream's exact length cannot be promised.
        let mut hint = SizeHint::new();
        hint.set_lower(self.inner.size_hint().lower());
        hint
    }
}
