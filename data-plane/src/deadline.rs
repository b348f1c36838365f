//! The per-server `timeout_ms` as a deadline on a whole POST exchange, body included.
//!
//! Streamable-HTTP servers often answer a POST at once with `200 text/event-stream` and
//! send the result later on that stream, so a timeout on the response headers alone would
//! never fire for a slow tool. [`DeadlineBody`] ends such a response at the deadline with a
//! final `message` event holding a JSON-RPC error with the request id (the client sees a
//! timely, well-formed answer). Other answers to a POST are read whole within the same
//! deadline by `answer_check`. An event stream that ends or breaks before the reply to its request went by is closed
//! the same way, with a JSON-RPC error carrying the id, so the client is never left waiting.
//! GET event streams are long-lived by design and are never wrapped.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::http::BodyError;
use crate::jsonrpc::{self, RequestId};
use crate::sse;

/// The upstream did not finish its answer before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("upstream server {server_id} did not finish its answer within {timeout}")]
pub(crate) struct DeadlineExceeded {
    pub server_id: String,
    pub timeout: String,
}

/// An upstream event stream answering a POST, ended at a deadline.
pub(crate) struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<Sleep>>,
    /// Whom to blame when the deadline passes; taken when it fires.
    cut: Option<Cut>,
    /// On an event stream answering a request: whether the reply went by yet.
    watch: Option<ReplyWatch>,
    finished: bool,
}

/// Follows an event stream for the reply to one request, so a stream that ends or breaks
/// before it can still be closed with a JSON-RPC error the client can match.
struct ReplyWatch {
    parser: sse::Parser,
    id: serde_json::Value,
    server_id: String,
    answered: bool,
}

impl ReplyWatch {
    fn observe(&mut self, data: &[u8]) {
        if self.answered {
            return;
        }
        let Ok(events) = self.parser.feed(data) else {
            return;
        };
        self.answered = events.iter().any(|event| {
            serde_json::from_str::<serde_json::Value>(&event.data).is_ok_and(|message| {
                message.get("id") == Some(&self.id) && message.get("method").is_none()
            })
        });
    }

    /// The final event when the stream ended unanswered; `failure` says how it ended.
    fn closing_event(&self, failure: Option<&BodyError>) -> Option<Bytes> {
        if self.answered {
            return None;
        }
        let message = match failure {
            Some(failure) => format!(
                "upstream server {} broke off its event stream before answering: {failure}",
                self.server_id
            ),
            None => format!(
                "upstream server {} ended its event stream before answering",
                self.server_id
            ),
        };
        tracing::warn!(server = %self.server_id, %message, "unanswered request");
        let error = jsonrpc::error_object(
            &RequestId(self.id.clone()),
            jsonrpc::INTERNAL_ERROR,
            message,
        );
        Some(sse::message_event(&error.to_string()))
    }
}

/// What a cut answer says. Its text is only written when the deadline fires, so an answer
/// that arrives in time costs no formatting.
struct Cut {
    id: RequestId,
    server_id: String,
    timeout: Duration,
}

impl Cut {
    fn failure(&self) -> DeadlineExceeded {
        DeadlineExceeded {
            server_id: self.server_id.clone(),
            timeout: humantime::format_duration(self.timeout).to_string(),
        }
    }

    /// The final SSE event: a JSON-RPC error with the request id.
    fn event(&self) -> Bytes {
        let error = jsonrpc::error_object(
            &self.id,
            jsonrpc::INTERNAL_ERROR,
            self.failure().to_string(),
        );
        sse::message_event(&error.to_string())
    }
}

impl DeadlineBody {
    /// Wrap the event stream `inner`, ending it at `deadline`; `id` is the request's
    /// JSON-RPC id (`null` for a notification, whose stream carries no reply to watch for).
    pub(crate) fn new(
        inner: Incoming,
        deadline: Instant,
        id: &RequestId,
        server_id: &str,
        timeout: Duration,
    ) -> Self {
        let watch = (!id.0.is_null()).then(|| ReplyWatch {
            parser: sse::Parser::new(),
            id: id.0.clone(),
            server_id: server_id.to_owned(),
            answered: false,
        });
        DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            cut: Some(Cut {
                id: id.clone(),
                server_id: server_id.to_owned(),
                timeout,
            }),
            watch,
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
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(watch), Some(data)) = (self.watch.as_mut(), frame.data_ref()) {
                    watch.observe(data);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(end) => {
                self.finished = true;
                let failure: Option<BodyError> = match end {
                    Some(Err(failure)) => Some(failure.into()),
                    _ => None,
                };
                let closing = self
                    .watch
                    .as_ref()
                    .and_then(|watch| watch.closing_event(failure.as_ref()));
                return match (closing, failure) {
                    (Some(event), _) => Poll::Ready(Some(Ok(Frame::data(event)))),
                    (None, Some(failure)) => Poll::Ready(Some(Err(failure))),
                    (None, None) => Poll::Ready(None),
                };
            }
            Poll::Pending => {}
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.finished = true;
        match self.cut.take() {
            Some(cut) => {
                tracing::warn!(failure = %cut.failure(), "upstream answer cut at its deadline");
                Poll::Ready(Some(Ok(Frame::data(cut.event()))))
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
