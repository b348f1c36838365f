//! A member's event stream read as JSON-RPC messages: the data of each event, in order,
//! priming events (no data) skipped. A broken or oversized stream ends with one error
//! naming the member.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::Body;

use super::fanout::{MemberError, Messages};
use crate::http::BodyError;
use crate::http::ProxyBody;
use crate::sse;

/// The data of every event of an event stream (priming events without data skipped).
pub(super) fn messages(server: &str, body: ProxyBody) -> Messages {
    events(server, body)
}

fn events<B>(server: &str, body: B) -> Messages
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BodyError>,
{
    Box::pin(EventData {
        body,
        parser: sse::Parser::new(),
        ready: VecDeque::new(),
        server: server.to_owned(),
        done: false,
    })
}

/// A member's event stream as the data of its events.
struct EventData<B> {
    body: B,
    parser: sse::Parser,
    ready: VecDeque<Bytes>,
    server: String,
    done: bool,
}

impl<B> EventData<B> {
    fn broken(&mut self, reason: String) -> MemberError {
        self.done = true;
        MemberError::Malformed {
            server: self.server.clone(),
            reason: format!("event stream broken: {reason}"),
        }
    }
}

impl<B> Stream for EventData<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
    type Item = Result<Bytes, MemberError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(data) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(data)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            let frame = match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => {
                    self.done = true;
                    continue;
                }
                Some(Err(error)) => {
                    let error: BodyError = error.into();
                    let error = self.broken(crate::error_chain(&*error));
                    return Poll::Ready(Some(Err(error)));
                }
                Some(Ok(frame)) => frame,
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            match self.parser.feed(&chunk) {
                Ok(events) => {
                    let data = events
                        .into_iter()
                        .filter(|event| !event.data.trim().is_empty())
                        .map(|event| Bytes::from(event.data));
                    self.ready.extend(data);
                }
                Err(error) => {
                    let error = self.broken(error.to_string());
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    use super::*;

    type Chunk = Result<Frame<Bytes>, std::io::Error>;

    fn body(
        chunks: Vec<Chunk>,
    ) -> StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Chunk>>> {
        StreamBody::new(futures_util::stream::iter(chunks))
    }

    fn data(text: &'static str) -> Chunk {
        Ok(Frame::data(Bytes::from_static(text.as_bytes())))
    }

    #[tokio::test]
    async fn event_data_arrives_whole_whatever_the_chunks() {
        let stream = events(
            "alpha",
            body(vec![
                data("data: \nid: 0\nretry: 3000\n\n"),
                data("event: message\ndata: {\"jsonrpc\":\"2.0\","),
                data("\"id\":1,\"result\":{}}\n"),
                data("\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\n\n"),
            ]),
        );
        let items: Vec<Bytes> = stream.map(|item| item.unwrap()).collect().await;
        assert_eq!(
            items,
            [
                Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
                Bytes::from_static(br#"{"jsonrpc":"2.0","method":"n"}"#)
            ]
        );
    }

    #[tokio::test]
    async fn a_broken_stream_ends_with_one_error_naming_the_member() {
        let broken = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let stream = events(
            "beta",
            body(vec![data("data: {}\n\n"), Err(broken), data("data: x\n\n")]),
        );
        let items: Vec<Result<Bytes, MemberError>> = stream.collect().await;
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(items[0].is_ok());
        let error = items[1].as_ref().unwrap_err().to_string();
        assert!(error.contains("beta") && error.contains("reset"), "{error}");
    }
}
