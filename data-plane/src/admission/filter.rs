//! List answers trimmed to what the caller may use: the items of a `tools/list`,
//! `prompts/list`, `resources/list` or `resources/templates/list` result that the caller
//! may not call, get or read are removed; everything else in the answer (pagination
//! cursors, `_meta`, other fields) stays as it was.
//!
//! A JSON answer is read whole, filtered and written again. An event stream is filtered
//! event by event as it streams ([`FilteredStream`]): only the JSON-RPC response to the
//! request is rewritten; every other event (progress, notifications, comments, `retry:`)
//! passes byte for byte. Once that response went by, the rest streams untouched.
//!
//! An item without the field that names it (`name`, `uri` or `uriTemplate`) cannot be
//! checked, so it is removed.
//!
//! The `GET` stream of a server carries no answers to lists, except when the server replays
//! a broken-off `POST` stream to a client resuming it with `Last-Event-ID`; such a replay
//! would show the whole list. So on `GET` streams every response holding a list field
//! (`tools`, `prompts`, `resources`, `resourceTemplates`) is filtered as the list it holds
//! ([`filter_any_lists`]). A `GET` stream also carries notifications meant for every
//! client of a server; one about a single resource (`notifications/resources/updated`)
//! reaches only callers who may read that resource.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Response, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame};
use serde_json::Value;

use crate::http::BodyError;
use crate::http::{MAX_BODY_BYTES, ProxyBody, is_event_stream};
use crate::jsonrpc::RequestId;
use crate::mcp::ListKind;
use crate::sse::MAX_EVENT_BYTES;

/// Decides, item by item, what a caller sees of a list (and may look at each item, to
/// learn tool annotations).
pub(crate) trait ItemFilter: Send + Sync {
    /// Whether the caller may see the item named `key` (its name, URI or URI template).
    fn keep(&self, kind: ListKind, key: &str, item: &Value) -> bool;
}

/// The field that names an item of `kind`.
pub(crate) fn key_field(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Tools | ListKind::Prompts => "name",
        ListKind::Resources => "uri",
        ListKind::ResourceTemplates => "uriTemplate",
    }
}

/// Keep the items of a list the filter allows; returns how many were removed.
pub(crate) fn filter_items(
    kind: ListKind,
    items: &mut Vec<Value>,
    filter: &(dyn ItemFilter + '_),
) -> usize {
    let before = items.len();
    let field = key_field(kind);
    items.retain(|item| {
        item.get(field)
            .and_then(Value::as_str)
            .is_some_and(|key| filter.keep(kind, key, item))
    });
    before - items.len()
}

/// Filter `message` when it is the response to `id` carrying a list of `kind`; `true` when
/// it was that response (filtered or not).
pub(crate) fn filter_message(
    message: &mut Value,
    id: &RequestId,
    kind: ListKind,
    filter: &(dyn ItemFilter + '_),
) -> bool {
    let is_reply = message.get("id") == Some(&id.0) && message.get("method").is_none();
    if !is_reply {
        return false;
    }
    if let Some(Value::Array(items)) = message
        .get_mut("result")
        .and_then(|result| result.get_mut(kind.field()))
    {
        filter_items(kind, items, filter);
    }
    true
}

/// The answer to a list request `id`, filtered: a JSON body rewritten, an event stream
/// transformed as it flows, anything else (an error status without JSON) unchanged.
pub(crate) async fn filter_response(
    response: Response<ProxyBody>,
    id: RequestId,
    kind: ListKind,
    filter: Box<dyn ItemFilter>,
) -> Response<ProxyBody> {
    if is_event_stream(response.headers()) {
        return response.map(|body| FilteredStream::new(body, id, kind, filter).boxed());
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match read_bounded(body).await {
        Ok(bytes) => bytes,
        Err(error) => {
            // The answer broke off: say so the way a broken body would.
            let failed = futures_util::stream::once(async move { Err::<Frame<Bytes>, _>(error) });
            return Response::from_parts(parts, http_body_util::StreamBody::new(failed).boxed());
        }
    };
    let bytes = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut message) => {
            let found = match &mut message {
                Value::Array(messages) => messages
                    .iter_mut()
                    .any(|m| filter_message(m, &id, kind, &*filter)),
                single => filter_message(single, &id, kind, &*filter),
            };
            if found {
                Bytes::from(message.to_string())
            } else {
                bytes
            }
        }
        // Not JSON: nothing a client could read a list from.
        Err(_) => bytes,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        Full::new(bytes).map_err(|never| match never {}).boxed(),
    )
}

async fn read_bounded(mut body: ProxyBody) -> Result<Bytes, BodyError> {
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if bytes.len() + data.len() > MAX_BODY_BYTES {
                return Err(format!("the answer exceeds {MAX_BODY_BYTES} bytes").into());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes.freeze())
}

/// The `GET` stream of a server, with every list any response on it holds filtered.
pub(crate) fn filter_any_lists(
    response: Response<ProxyBody>,
    filter: Box<dyn ItemFilter>,
) -> Response<ProxyBody> {
    if !is_event_stream(response.headers()) {
        return response;
    }
    response.map(|body| {
        FilteredStream {
            watch: Watch::AnyList,
            ..FilteredStream::new(body, RequestId::null(), ListKind::Tools, filter)
        }
        .boxed()
    })
}

/// Which responses of a stream are filtered.
enum Watch {
    /// The response to one request, holding a list of `kind`; the stream passes unparsed
    /// after it.
    Reply { id: RequestId, kind: ListKind },
    /// Every response holding a list field.
    AnyList,
}

/// Filter every list field of `message` when it is a response; `true` when it held one.
fn filter_any_list(message: &mut Value, filter: &(dyn ItemFilter + '_)) -> bool {
    if message.get("method").is_some() || message.get("id").is_none() {
        return false;
    }
    let Some(result) = message.get_mut("result") else {
        return false;
    };
    let mut found = false;
    for kind in [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::ResourceTemplates,
    ] {
        if let Some(Value::Array(items)) = result.get_mut(kind.field()) {
            filter_items(kind, items, filter);
            found = true;
        }
    }
    found
}

/// Whether `message` is a notification about one resource the caller may not read
/// (`notifications/resources/updated`); one that names no resource cannot be checked and
/// is hidden too.
fn hidden_notification(message: &Value, filter: &(dyn ItemFilter + '_)) -> bool {
    if message.get("method").and_then(Value::as_str) != Some("notifications/resources/updated") {
        return false;
    }
    let params = message.get("params").unwrap_or(&Value::Null);
    match params.get("uri").and_then(Value::as_str) {
        Some(uri) => !filter.keep(ListKind::Resources, uri, params),
        None => true,
    }
}

/// An event stream with the list in the response to one request filtered.
pub(crate) struct FilteredStream {
    inner: ProxyBody,
    watch: Watch,
    filter: Box<dyn ItemFilter>,
    /// Bytes of the event being received.
    pending: BytesMut,
    /// Where the scan for the end of the pending event resumes.
    scanned: usize,
    /// Start of the current line within `pending`.
    line_start: usize,
    /// Events ready to go out.
    ready: VecDeque<Bytes>,
    /// The response went by: the rest passes unparsed.
    passthrough: bool,
    ended: bool,
}

impl FilteredStream {
    pub(crate) fn new(
        inner: ProxyBody,
        id: RequestId,
        kind: ListKind,
        filter: Box<dyn ItemFilter>,
    ) -> FilteredStream {
        FilteredStream {
            inner,
            watch: Watch::Reply { id, kind },
            filter,
            pending: BytesMut::new(),
            scanned: 0,
            line_start: 0,
            ready: VecDeque::new(),
            passthrough: false,
            ended: false,
        }
    }

    /// Take in `chunk`, moving every event it completes to `ready`.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        if self.passthrough {
            self.ready.push_back(Bytes::copy_from_slice(chunk));
            return Ok(());
        }
        self.pending.extend_from_slice(chunk);
        while let Some(offset) = self.pending[self.scanned..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
        {
            let end = self.scanned + offset;
            let terminator = if self.pending[end] == b'\r' {
                match self.pending.get(end + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    // A `\r` at the end of what arrived: its `\n` may follow.
                    None => break,
                }
            } else {
                1
            };
            let blank = end == self.line_start;
            self.scanned = end + terminator;
            self.line_start = self.scanned;
            if blank {
                let event = self.pending.split_to(self.scanned).freeze();
                self.scanned = 0;
                self.line_start = 0;
                self.event(event);
                if self.passthrough {
                    let rest = self.pending.split().freeze();
                    if !rest.is_empty() {
                        self.ready.push_back(rest);
                    }
                    return Ok(());
                }
            }
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            return Err(format!(
                "an event of the upstream's answer exceeds {MAX_EVENT_BYTES} bytes"
            )
            .into());
        }
        Ok(())
    }

    /// The stream ended. What is left is an event without its blank line (a client should
    /// drop it, a lenient one may not): it is checked like a complete one.
    fn finish(&mut self) {
        let rest = self.pending.split().freeze();
        if rest.is_empty() {
            return;
        }
        if self.passthrough {
            self.ready.push_back(rest);
        } else {
            self.event(rest);
        }
    }

    /// One complete event (its raw bytes, blank line included).
    fn event(&mut self, raw: Bytes) {
        let lines = lines(&raw);
        let mut data: Option<String> = None;
        for line in &lines {
            if let Some(value) = field(line, b"data") {
                let value = String::from_utf8_lossy(value);
                match &mut data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(&value);
                    }
                    None => data = Some(value.into_owned()),
                }
            }
        }
        let message = data.and_then(|data| serde_json::from_str::<Value>(&data).ok());
        let Some(mut message) = message else {
            self.ready.push_back(raw);
            return;
        };
        let filtered = match &self.watch {
            Watch::Reply { id, kind } => {
                let found = filter_message(&mut message, id, *kind, &*self.filter);
                self.passthrough = found;
                found
            }
            Watch::AnyList => {
                if hidden_notification(&message, &*self.filter) {
                    return;
                }
                filter_any_list(&mut message, &*self.filter)
            }
        };
        if !filtered {
            self.ready.push_back(raw);
            return;
        }
        // The event again, its data lines replaced by the filtered message.
        let json = message.to_string();
        let mut out = BytesMut::with_capacity(json.len() + raw.len());
        let mut written = false;
        for line in &lines {
            if field(line, b"data").is_some() {
                if !written {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(json.as_bytes());
                    out.extend_from_slice(b"\n");
                    written = true;
                }
            } else {
                out.extend_from_slice(line);
                out.extend_from_slice(b"\n");
            }
        }
        out.extend_from_slice(b"\n");
        self.ready.push_back(out.freeze());
    }
}

/// The non-blank lines of one raw event, without their terminators.
fn lines(raw: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = raw;
    while let Some(end) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
        let terminator = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        if end > 0 {
            lines.push(&rest[..end]);
        }
        rest = &rest[end + terminator..];
    }
    lines
}

/// The value of `line` when it is the field `name` (one space after the colon dropped).
fn field<'l>(line: &'l [u8], name: &[u8]) -> Option<&'l [u8]> {
    let rest = line.strip_prefix(name)?;
    match rest.split_first() {
        None => Some(rest),
        Some((b':', value)) => Some(value.strip_prefix(b" ").unwrap_or(value)),
        Some(_) => None,
    }
}

impl Body for FilteredStream {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.ended = true;
                    this.finish();
                }
                Poll::Ready(Some(Err(error))) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if let Err(error) = this.feed(&data) {
                            this.ended = true;
                            return Poll::Ready(Some(Err(error)));
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Keeps names without `secret`.
    struct NoSecrets;

    impl ItemFilter for NoSecrets {
        fn keep(&self, _: ListKind, key: &str, _: &Value) -> bool {
            !key.contains("secret")
        }
    }

    fn body(chunks: Vec<&'static [u8]>) -> ProxyBody {
        let frames = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|chunk| Ok::<_, BodyError>(Frame::data(Bytes::from_static(chunk)))),
        );
        http_body_util::StreamBody::new(frames).boxed()
    }

    fn response(content_type: &str, body: ProxyBody) -> Response<ProxyBody> {
        let mut response = Response::new(body);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, "999".parse().unwrap());
        response
    }

    async fn text(response: Response<ProxyBody>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn id(n: u64) -> RequestId {
        RequestId(json!(n))
    }

    #[test]
    fn items_are_kept_by_their_naming_field() {
        let mut tools = vec![
            json!({"name": "read"}),
            json!({"name": "secret_delete"}),
            json!({"title": "no name"}),
            json!({"name": 5}),
        ];
        assert_eq!(filter_items(ListKind::Tools, &mut tools, &NoSecrets), 3);
        assert_eq!(tools, [json!({"name": "read"})]);
        let mut templates = vec![
            json!({"uriTemplate": "db://secret/{id}", "name": "a"}),
            json!({"uriTemplate": "db://open/{id}", "name": "secret"}),
        ];
        filter_items(ListKind::ResourceTemplates, &mut templates, &NoSecrets);
        assert_eq!(templates.len(), 1);
        assert_eq!(templates[0]["uriTemplate"], "db://open/{id}");
        let mut resources = vec![
            json!({"uri": "file:///secret"}),
            json!({"uri": "file:///a"}),
        ];
        filter_items(ListKind::Resources, &mut resources, &NoSecrets);
        assert_eq!(resources, [json!({"uri": "file:///a"})]);
    }

    #[tokio::test]
    async fn json_answers_are_filtered_and_keep_pagination() {
        let answer = json!({"jsonrpc": "2.0", "id": 3, "result": {
            "tools": [{"name": "a"}, {"name": "secret"}, {"name": "b"}],
            "nextCursor": "page-2", "_meta": {"x": 1}}});
        let leaked: &'static str = Box::leak(answer.to_string().into_boxed_str());
        let filtered = filter_response(
            response("application/json", body(vec![leaked.as_bytes()])),
            id(3),
            ListKind::Tools,
            Box::new(NoSecrets),
        )
        .await;
        assert!(filtered.headers().get(header::CONTENT_LENGTH).is_none());
        assert_eq!(filtered.headers()[header::CONTENT_TYPE], "application/json");
        let value: Value = serde_json::from_str(&text(filtered).await).unwrap();
        assert_eq!(
            value,
            json!({"jsonrpc": "2.0", "id": 3, "result": {
                "tools": [{"name": "a"}, {"name": "b"}],
                "nextCursor": "page-2", "_meta": {"x": 1}}})
        );
    }

    #[tokio::test]
    async fn other_answers_pass_unchanged() {
        // Another id, an error, a non-JSON body.
        for (content_type, text_body) in [
            (
                "application/json",
                r#"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"secret"}]}}"#,
            ),
            (
                "application/json",
                r#"{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"secret"}}"#,
            ),
            ("text/plain", "secret"),
        ] {
            let out = filter_response(
                response(content_type, body(vec![text_body.as_bytes()])),
                id(3),
                ListKind::Tools,
                Box::new(NoSecrets),
            )
            .await;
            let out = text(out).await;
            assert!(out.contains("secret"), "{out}");
        }
    }

    const STREAM: &[u8] = b": comment\r\ndata: \r\nid: 0\r\nretry: 3000\r\n\r\n\
event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"secret\":1}}\n\n\
event: message\nid: 9\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":\ndata: {\"prompts\":[{\"name\":\"secret\"},{\"name\":\"ok\"}],\"nextCursor\":\"c\"}}\n\n\
data: {\"jsonrpc\":\"2.0\",\"method\":\"after\",\"params\":{\"secret\":2}}\n\n";

    #[tokio::test]
    async fn event_streams_are_filtered_in_any_chunking() {
        for size in [1, 2, 3, 7, 64, STREAM.len()] {
            let chunks: Vec<&'static [u8]> = STREAM.chunks(size).collect();
            let out = filter_response(
                response("text/event-stream", body(chunks)),
                id(3),
                ListKind::Prompts,
                Box::new(NoSecrets),
            )
            .await;
            assert_eq!(out.headers()[header::CONTENT_TYPE], "text/event-stream");
            let out = text(out).await;
            // Everything but the response is byte for byte what the upstream sent.
            let (before, rest) = out.split_once("event: message\nid: 9\n").expect(&out);
            assert_eq!(
                before.as_bytes(),
                &STREAM[..before.len()],
                "chunk size {size}"
            );
            let (reply, after) = rest.split_once("\n\n").unwrap();
            let reply: Value = serde_json::from_str(reply.strip_prefix("data: ").unwrap())
                .unwrap_or_else(|e| panic!("{e}: {reply}"));
            assert_eq!(
                reply,
                json!({"jsonrpc":"2.0","id":3,"result":{"prompts":[{"name":"ok"}],"nextCursor":"c"}})
            );
            assert_eq!(
                after,
                "data: {\"jsonrpc\":\"2.0\",\"method\":\"after\",\"params\":{\"secret\":2}}\n\n"
            );
        }
    }

    #[tokio::test]
    async fn replayed_lists_on_get_streams_are_filtered() {
        let stream: &'static [u8] = b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n\
id: 4\ndata: {\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"tools\":[{\"name\":\"secret\"},{\"name\":\"a\"}]}}\n\n\
data: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"resources\":[{\"uri\":\"x://secret\"}]}}\n\n\
data: {\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{\"content\":[{\"text\":\"secret\"}]}}\n\n";
        let out = filter_any_lists(
            response("text/event-stream", body(stream.chunks(9).collect())),
            Box::new(NoSecrets),
        );
        let out = text(out).await;
        let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 4, "{out}");
        assert!(events[0].contains("list_changed"));
        assert_eq!(
            events[1],
            "id: 4\ndata: {\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"tools\":[{\"name\":\"a\"}]}}"
        );
        assert!(events[2].contains("\"resources\":[]"), "{out}");
        // Not a list: untouched.
        assert!(events[3].contains("secret"));
        // Not an event stream: untouched.
        let plain = filter_any_lists(
            response("application/json", body(vec![b"{\"secret\":1}"])),
            Box::new(NoSecrets),
        );
        assert!(text(plain).await.contains("secret"));
    }

    #[tokio::test]
    async fn resource_updates_on_get_streams_reach_only_readers() {
        let stream: &'static [u8] = b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\",\"params\":{\"uri\":\"x://secret/ledger\"}}\n\n\
data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\",\"params\":{}}\n\n\
data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\",\"params\":{\"uri\":\"x://open\"}}\n\n\
data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/list_changed\"}\n\n";
        let out = filter_any_lists(
            response("text/event-stream", body(stream.chunks(7).collect())),
            Box::new(NoSecrets),
        );
        let out = text(out).await;
        let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 2, "{out}");
        assert!(events[0].contains("x://open"), "{out}");
        assert!(events[1].contains("list_changed"), "{out}");
    }

    #[tokio::test]
    async fn a_stream_without_the_response_passes_untouched() {
        let stream: &'static [u8] = b"data: {\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\r\r";
        let out = filter_response(
            response("text/event-stream", body(stream.chunks(5).collect())),
            id(3),
            ListKind::Tools,
            Box::new(NoSecrets),
        )
        .await;
        assert_eq!(text(out).await.as_bytes(), stream);
    }
}
