//! Server-sent events as MCP's streamable HTTP uses them: an incremental parser for event
//! streams read from upstreams, and the encoding of the events the gateway writes itself.
//!
//! The parser follows the HTML event-stream rules that matter here: lines end with `\n`,
//! `\r\n` or `\r`; `data:` lines of one event are joined with `\n`; a blank line ends the
//! event; lines starting with `:` are comments; one space after the colon is dropped.

use bytes::{Bytes, BytesMut};

/// Longest event the parser keeps; a longer one is an upstream fault, not a message.
pub(crate) const MAX_EVENT_BYTES: usize = 10 * 1024 * 1024;

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Event {
    /// The `event:` field; `None` means the default type, `message`.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, used by clients to resume with `Last-Event-ID`.
    pub id: Option<String>,
}

/// Why an event stream cannot be parsed further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SseError {
    #[error("an event exceeds {MAX_EVENT_BYTES} bytes")]
    EventTooLarge,
}

/// Feeds on chunks as they arrive and yields the events they complete.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    buffer: BytesMut,
    /// A `\r` ended the previous chunk: a `\n` starting the next one belongs to it.
    after_carriage_return: bool,
    pending: Event,
    pending_bytes: usize,
    has_data: bool,
}

impl Parser {
    pub(crate) fn new() -> Parser {
        Parser::default()
    }

    /// Add `chunk` and return the events it completes, in order.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        let mut chunk = chunk;
        if self.after_carriage_return {
            self.after_carriage_return = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let line = self.buffer.split_to(end);
            let terminator = self.buffer.split_to(1);
            if terminator[0] == b'\r' {
                match self.buffer.first() {
                    Some(b'\n') => {
                        let _ = self.buffer.split_to(1);
                    }
                    None => self.after_carriage_return = true,
                    Some(_) => {}
                }
            }
            if let Some(event) = self.line(&line)? {
                events.push(event);
            }
        }
        if self.buffer.len() + self.pending_bytes > MAX_EVENT_BYTES {
            return Err(SseError::EventTooLarge);
        }
        Ok(events)
    }

    fn line(&mut self, line: &[u8]) -> Result<Option<Event>, SseError> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.pending);
            self.pending_bytes = 0;
            return Ok(std::mem::take(&mut self.has_data).then_some(event));
        }
        if line[0] == b':' {
            return Ok(None);
        }
        self.pending_bytes += line.len();
        if self.pending_bytes > MAX_EVENT_BYTES {
            return Err(SseError::EventTooLarge);
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.pending.event = Some(value.into_owned()),
            b"id" => self.pending.id = Some(value.into_owned()),
            _ => {}
        }
        Ok(None)
    }
}

/// One `message` event carrying `json` (which has no line breaks when it is serialized
/// JSON).
pub(crate) fn message_event(json: &str) -> Bytes {
    let mut event = String::with_capacity(json.len() + 24);
    event.push_str("event: message\ndata: ");
    event.push_str(json);
    event.push_str("\n\n");
    Bytes::from(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(stream: &[u8], size: usize) -> Vec<Event> {
        let mut parser = Parser::new();
        stream
            .chunks(size)
            .flat_map(|chunk| parser.feed(chunk).unwrap())
            .collect()
    }

    #[test]
    fn events_survive_any_chunking_and_line_ending() {
        let stream =
            b": keep-alive\r\nevent: message\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n\
                       data:{\"b\":2}\n\nevent: ping\rdata: x\r\r";
        for size in 1..stream.len() {
            let events = parse_in_chunks(stream, size);
            assert_eq!(events.len(), 3, "chunk size {size}: {events:?}");
            assert_eq!(events[0].data, "{\"a\":\n1}");
            assert_eq!(events[0].id.as_deref(), Some("7"));
            assert_eq!(events[0].event.as_deref(), Some("message"));
            assert_eq!(events[1].data, "{\"b\":2}");
            assert_eq!(events[1].event, None);
            assert_eq!(events[2].event.as_deref(), Some("ping"));
        }
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let events = parse_in_chunks(b"id: 1\n\nretry: 10\n\n", 4);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut parser = Parser::new();
        let line = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(parser.feed(&line), Err(SseError::EventTooLarge));
    }

    #[test]
    fn written_events_parse_back() {
        let event = message_event(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        let events = Parser::new().feed(&event).unwrap();
        assert_eq!(events[0].data, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    }
}
