//! A minimal MCP client over streamable HTTP, built on [`crate::http`]: enough to run
//! `initialize`, `tools/list` and `tools/call` through a data plane and to see exactly what
//! came back (status, headers, JSON or SSE body).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};

use crate::http::{self, Response};
use crate::https;

pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// One client session against one MCP endpoint URL.
#[derive(Debug, Clone)]
pub struct McpClient {
    url: String,
    session_id: Option<String>,
    next_id: u64,
    headers: Vec<(String, String)>,
    timeout: Duration,
    /// For `https://` URLs.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// What a JSON-RPC request produced on the wire.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub response: Response,
    /// The JSON-RPC response carrying the request's id, if any arrived.
    pub message: Option<Value>,
}

impl McpClient {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            session_id: None,
            next_id: 1,
            headers: Vec::new(),
            timeout: Duration::from_secs(20),
            tls: None,
        }
    }

    /// Talks TLS with this configuration (the URL must be `https://`).
    pub fn with_tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Adds a header to every request (e.g. `Authorization`).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Continues the session `session_id` (e.g. one started through another data plane).
    pub fn with_session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_owned());
        self
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// `initialize` followed by `notifications/initialized`; returns the initialize result.
    pub fn initialize(&mut self) -> anyhow::Result<Value> {
        let result = self.request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": { "name": "conduit-e2e", "version": "0" }
            }),
        )?;
        let notified = self.send(
            &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
            None,
        )?;
        if !(200..300).contains(&notified.response.status) {
            bail!(
                "notifications/initialized got HTTP {}: {}",
                notified.response.status,
                notified.response.text()
            );
        }
        Ok(result)
    }

    /// Names of the tools `tools/list` returns.
    pub fn list_tools(&mut self) -> anyhow::Result<Vec<String>> {
        let result = self.request("tools/list", json!({}))?;
        let tools = result["tools"]
            .as_array()
            .ok_or_else(|| anyhow!("tools/list result has no tools array: {result}"))?;
        Ok(tools
            .iter()
            .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// `tools/call`; returns the concatenated text content of the result.
    pub fn call_tool_text(&mut self, name: &str, arguments: Value) -> anyhow::Result<String> {
        let result = self.request(
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )?;
        if result["isError"] == json!(true) {
            bail!("tool {name} returned an error result: {result}");
        }
        let content = result["content"]
            .as_array()
            .ok_or_else(|| anyhow!("tools/call result has no content: {result}"))?;
        Ok(content
            .iter()
            .filter_map(|block| block["text"].as_str())
            .collect::<Vec<_>>()
            .join(""))
    }

    /// A request whose JSON-RPC `result` is returned; a JSON-RPC error or a non-2xx
    /// status is an `Err` describing what arrived.
    pub fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let exchange = self.exchange(method, params)?;
        let status = exchange.response.status;
        let message = exchange.message.ok_or_else(|| {
            anyhow!(
                "{method}: HTTP {status} without a JSON-RPC response; body: {}",
                exchange.response.text()
            )
        })?;
        if let Some(error) = message.get("error") {
            bail!("{method}: HTTP {status}, JSON-RPC error {error}");
        }
        if !(200..300).contains(&status) {
            bail!("{method}: HTTP {status}: {message}");
        }
        message
            .get("result")
            .cloned()
            .ok_or_else(|| anyhow!("{method}: response has neither result nor error: {message}"))
    }

    /// Sends one request with a fresh id and returns everything that came back.
    pub fn exchange(&mut self, method: &str, params: Value) -> anyhow::Result<Exchange> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.send(&body, Some(id))
    }

    /// `DELETE` of the session, when there is one; returns the HTTP status.
    pub fn close(&mut self) -> anyhow::Result<u16> {
        let Some(session) = self.session_id.take() else {
            return Ok(204);
        };
        let mut headers = self.header_refs();
        headers.push(("Mcp-Session-Id", &session));
        Ok(self.http("DELETE", &headers, None)?.status)
    }

    fn send(&mut self, body: &Value, id: Option<u64>) -> anyhow::Result<Exchange> {
        let bytes = serde_json::to_vec(body)?;
        let mut headers = self.header_refs();
        headers.push(("Content-Type", "application/json"));
        headers.push(("Accept", "application/json, text/event-stream"));
        headers.push(("MCP-Protocol-Version", PROTOCOL_VERSION));
        let session = self.session_id.clone();
        if let Some(session) = session.as_deref() {
            headers.push(("Mcp-Session-Id", session));
        }
        let response = self
            .http("POST", &headers, Some(&bytes))
            .with_context(|| format!("POST {}", self.url))?;
        if let Some(session) = response.header("mcp-session-id") {
            self.session_id = Some(session.to_owned());
        }
        let message = match id {
            Some(id) => messages(&response)?
                .into_iter()
                .find(|m| m.get("id") == Some(&json!(id)) || is_error_without_id(m)),
            None => None,
        };
        Ok(Exchange { response, message })
    }

    fn http(
        &self,
        method: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> anyhow::Result<Response> {
        match &self.tls {
            Some(tls) => https::request(tls, method, &self.url, headers, body, self.timeout),
            None => http::request(method, &self.url, headers, body, self.timeout),
        }
    }

    fn header_refs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

fn is_error_without_id(message: &Value) -> bool {
    message.get("error").is_some() && message.get("id").is_none_or(Value::is_null)
}

/// Every JSON-RPC message in a response body: one JSON document, or the `data:` payloads
/// of an SSE stream (empty priming events skipped).
pub fn messages(response: &Response) -> anyhow::Result<Vec<Value>> {
    let content_type = response.header("content-type").unwrap_or_default();
    let text = response.text();
    if content_type.starts_with("text/event-stream") {
        let mut out = Vec::new();
        for event in text.split("\n\n") {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            let data = data.join("\n");
            if data.trim().is_empty() {
                continue;
            }
            out.push(serde_json::from_str(&data).with_context(|| format!("SSE data {data:?}"))?);
        }
        Ok(out)
    } else if text.trim().is_empty() {
        Ok(Vec::new())
    } else {
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("JSON body {text:?}"))?;
        Ok(match value {
            Value::Array(batch) => batch,
            single => vec![single],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(content_type: &str, body: &str) -> Response {
        Response {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn parses_sse_with_priming_event() {
        let body =
            "data: \nid: 0\nretry: 3000\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        let parsed = messages(&response("text/event-stream", body)).unwrap();
        assert_eq!(parsed, vec![json!({"jsonrpc":"2.0","id":1,"result":{}})]);
    }

    #[test]
    fn parses_plain_json() {
        let parsed = messages(&response("application/json", r#"{"id":2}"#)).unwrap();
        assert_eq!(parsed, vec![json!({"id":2})]);
    }
}
