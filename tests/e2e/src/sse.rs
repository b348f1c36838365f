//! Reading a response message by message while it is still arriving: an MCP client that
//! must act on a message in the middle of a stream (answer a `sampling/createMessage`, see
//! a progress notification before the result) reads it with [`EventStream`].
//!
//! Handles `text/event-stream` bodies, chunked or close-delimited; any other body is read
//! whole and its JSON-RPC messages handed out one by one.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::http::{self, OpenStream};

/// A response whose JSON-RPC messages are read as they arrive.
#[derive(Debug)]
pub struct EventStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// Body bytes received and not yet split into events.
    pending: Vec<u8>,
    /// Messages parsed and not yet handed out.
    ready: VecDeque<Value>,
    ended: bool,
}

impl EventStream {
    /// `POST` one JSON-RPC message (or batch) accepting JSON and event streams.
    pub fn post(url: &str, message: &Value, timeout: Duration) -> anyhow::Result<Self> {
        Self::post_with(url, message, &[], timeout)
    }

    /// [`EventStream::post`] with more headers (credentials).
    pub fn post_with(
        url: &str,
        message: &Value,
        extra: &[(&str, &str)],
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let body = serde_json::to_vec(message)?;
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", crate::mcp::PROTOCOL_VERSION),
        ];
        headers.extend_from_slice(extra);
        let open = http::open_with_body("POST", url, &headers, Some(&body), timeout)
            .with_context(|| format!("POST {url}"))?;
        Self::from_open(open)
    }

    /// `GET` the server's message stream.
    pub fn get(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        Self::get_with(url, &[], timeout)
    }

    /// [`EventStream::get`] with more headers (credentials).
    pub fn get_with(url: &str, extra: &[(&str, &str)], timeout: Duration) -> anyhow::Result<Self> {
        let mut headers = vec![
            ("Accept", "text/event-stream"),
            ("MCP-Protocol-Version", crate::mcp::PROTOCOL_VERSION),
        ];
        headers.extend_from_slice(extra);
        let open =
            http::open("GET", url, &headers, timeout).with_context(|| format!("GET {url}"))?;
        Self::from_open(open)
    }

    fn from_open(open: OpenStream) -> anyhow::Result<Self> {
        let chunked = open
            .header("transfer-encoding")
            .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
        let event_stream = open
            .header("content-type")
            .is_some_and(|value| value.starts_with("text/event-stream"));
        let length = open
            .header("content-length")
            .and_then(|value| value.parse::<usize>().ok());
        let status = open.status;
        let headers = open.headers.clone();
        let mut stream = Self {
            status,
            headers,
            reader: BufReader::new(open.into_stream()),
            chunked,
            pending: Vec::new(),
            ready: VecDeque::new(),
            ended: false,
        };
        if !event_stream {
            stream.read_whole(length)?;
        }
        Ok(stream)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next message; `None` once the response has ended.
    pub fn next_message(&mut self) -> anyhow::Result<Option<Value>> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Ok(Some(message));
            }
            if let Some(end) = find(&self.pending, b"\n\n") {
                let event: Vec<u8> = self.pending.drain(..end + 2).collect();
                self.parse_event(&event)?;
                continue;
            }
            if self.ended {
                return Ok(None);
            }
            self.read_more()?;
        }
    }

    /// Every remaining message, until the response ends.
    pub fn rest(&mut self) -> anyhow::Result<Vec<Value>> {
        let mut messages = Vec::new();
        while let Some(message) = self.next_message()? {
            messages.push(message);
        }
        Ok(messages)
    }

    fn parse_event(&mut self, event: &[u8]) -> anyhow::Result<()> {
        let text = std::str::from_utf8(event).context("SSE event is not UTF-8")?;
        let data: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|data| data.strip_prefix(' ').unwrap_or(data))
            .collect();
        let data = data.join("\n");
        if !data.trim().is_empty() {
            let message =
                serde_json::from_str(&data).with_context(|| format!("SSE data {data:?}"))?;
            self.ready.push_back(message);
        }
        Ok(())
    }

    /// Append the next piece of the body to `pending`, or mark the end.
    fn read_more(&mut self) -> anyhow::Result<()> {
        if !self.chunked {
            let mut buf = [0u8; 8192];
            let read = self.reader.read(&mut buf).context("reading the stream")?;
            if read == 0 {
                self.ended = true;
            }
            self.pending.extend_from_slice(&buf[..read]);
            return Ok(());
        }
        let mut size_line = String::new();
        if self.reader.read_line(&mut size_line)? == 0 {
            bail!("the connection closed inside a chunked body");
        }
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        let mut chunk = vec![0u8; size + 2];
        self.reader.read_exact(&mut chunk)?;
        if size == 0 {
            self.ended = true;
        }
        self.pending.extend_from_slice(&chunk[..size]);
        Ok(())
    }

    /// A body that is not an event stream: read it all and queue its messages.
    fn read_whole(&mut self, length: Option<usize>) -> anyhow::Result<()> {
        let mut body = Vec::new();
        match length {
            Some(length) if !self.chunked => {
                body.resize(length, 0);
                self.reader.read_exact(&mut body)?;
            }
            _ => {
                while !self.ended {
                    self.read_more()?;
                }
                body = std::mem::take(&mut self.pending);
            }
        }
        self.ended = true;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match serde_json::from_slice(&body)
            .with_context(|| format!("body {:?}", String::from_utf8_lossy(&body)))?
        {
            Value::Array(messages) => self.ready.extend(messages),
            message => self.ready.push_back(message),
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
