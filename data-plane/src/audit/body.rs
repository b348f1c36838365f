//! The response body that completes a request's audit records when it ends.
//!
//! It counts the bytes sent, keeps the chunks of a small JSON answer (references, no copy)
//! so its JSON-RPC error can be read, reads the events of an event stream until the
//! response among them (for its error), and writes the records when the last frame is taken,
//! when the body breaks, or when it is dropped: dropped before its end means the client
//! went away (`client_closed`). GET event streams end that way by design.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::Auditor;
use super::ledger::Ledger;
use super::record::{Ending, json_rpc_error};
use crate::deadline::DeadlineExceeded;
use crate::http::BodyError;
use crate::http::ProxyBody;
use crate::http::status::{Answered, Status};
use crate::sse;

/// Largest answer kept to look for a JSON-RPC error (or to record with `log_responses`).
/// An error answer is small; a result this large is recorded without looking into it.
const MAX_CAPTURE_BYTES: usize = 256 * 1024;

/// A response body that writes its request's audit records when it ends.
pub struct AuditedBody {
    inner: ProxyBody,
    watch: Option<Watch>,
}

/// What the records need from the body, until it ends.
struct Watch {
    auditor: Arc<Auditor>,
    ledger: Ledger,
    server: String,
    http: http::StatusCode,
    answered: Option<Answered>,
    event_stream: bool,
    bytes: u64,
    /// `None` once the answer is too large (or never JSON) to look into.
    captured: Option<Vec<Bytes>>,
    captured_bytes: usize,
    /// The events of an event stream, read until the response is found (or
    /// [`MAX_CAPTURE_BYTES`] were read without it).
    events: Option<sse::Parser>,
    stream_error: Option<(i64, String)>,
}

impl AuditedBody {
    /// `inner` without records (auditing is off).
    pub fn plain(inner: ProxyBody) -> AuditedBody {
        AuditedBody { inner, watch: None }
    }

    pub(super) fn watched(
        inner: ProxyBody,
        auditor: Arc<Auditor>,
        ledger: Ledger,
        server: String,
        http: http::StatusCode,
        answered: Option<Answered>,
        event_stream: bool,
    ) -> AuditedBody {
        AuditedBody {
            inner,
            watch: Some(Watch {
                auditor,
                ledger,
                server,
                http,
                answered,
                event_stream,
                bytes: 0,
                // The gateway's own answers need no look; event streams are not JSON.
                captured: None,
                captured_bytes: 0,
                events: None,
                stream_error: None,
            }),
        }
        .capturing(!event_stream)
        .reading_events(event_stream)
    }

    fn capturing(mut self, capture: bool) -> AuditedBody {
        if let Some(watch) = &mut self.watch
            && capture
            && watch.answered.is_none()
        {
            watch.captured = Some(Vec::new());
        }
        self
    }

    fn reading_events(mut self, event_stream: bool) -> AuditedBody {
        if let Some(watch) = &mut self.watch
            && event_stream
            && watch.answered.is_none()
        {
            watch.events = Some(sse::Parser::new());
        }
        self
    }

    fn complete(&mut self, failure: Option<(Status, String)>, client_closed: bool) {
        let Some(watch) = self.watch.take() else {
            return;
        };
        let ending = Ending {
            http: watch.http,
            answered: watch.answered,
            event_stream: watch.event_stream,
            bytes: watch.bytes,
            failure,
            client_closed,
            captured: watch.captured,
            stream_error: watch.stream_error,
            duration_micros: u64::try_from(watch.ledger.shared().started.elapsed().as_micros())
                .unwrap_or(u64::MAX),
        };
        watch
            .auditor
            .complete(&watch.ledger, &watch.server, &ending);
    }
}

impl Watch {
    fn observe(&mut self, data: &Bytes) {
        self.bytes += data.len() as u64;
        if let Some(chunks) = &mut self.captured {
            self.captured_bytes += data.len();
            if self.captured_bytes > MAX_CAPTURE_BYTES {
                self.captured = None;
            } else {
                chunks.push(data.clone());
            }
        }
        if let Some(parser) = &mut self.events {
            self.captured_bytes += data.len();
            let events = match parser.feed(data) {
                Ok(events) if self.captured_bytes <= MAX_CAPTURE_BYTES => events,
                _ => {
                    self.events = None;
                    return;
                }
            };
            for event in events {
                if let Some(error) = response_error(&event.data) {
                    self.stream_error = error;
                    // The response ends what the request is about; what follows is not.
                    self.events = None;
                    return;
                }
            }
        }
    }
}

/// `Some` when `data` (one event) is a JSON-RPC response: its error, if it is one. Only
/// events that mention `"result"` or `"error"` are parsed; notifications and server
/// requests in between are skipped unread.
fn response_error(data: &str) -> Option<Option<(i64, String)>> {
    if data.contains("\"error\"")
        && let Some(error) = json_rpc_error(&[Bytes::copy_from_slice(data.as_bytes())])
    {
        return Some(Some(error));
    }
    if data.contains("\"result\"") {
        #[derive(serde::Deserialize)]
        struct Response {
            id: Option<serde::de::IgnoredAny>,
            result: Option<serde::de::IgnoredAny>,
        }
        let response = serde_json::from_str::<Response>(data).ok()?;
        return (response.id.is_some() && response.result.is_some()).then_some(None);
    }
    None
}

impl Body for AuditedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(watch)) = (frame.data_ref(), &mut self.watch) {
                    watch.observe(data);
                }
                // hyper may never poll again once the body says it is done.
                if self.inner.is_end_stream() {
                    self.complete(None, false);
                }
            }
            Poll::Ready(Some(Err(error))) => {
                let status = if error.is::<DeadlineExceeded>() {
                    Status::UpstreamTimeout
                } else {
                    Status::UpstreamError
                };
                let message = error.to_string();
                self.complete(Some((status, message)), false);
            }
            Poll::Ready(None) => self.complete(None, false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        // An empty body may be dropped unpolled; that is its end, not the client leaving.
        let ended = self.inner.is_end_stream();
        self.complete(None, !ended);
    }
}
