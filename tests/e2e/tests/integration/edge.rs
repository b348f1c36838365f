//! The edge of the public listener in plain HTTP: trace ids (W3C `traceparent` continued
//! upstream with the gateway's own span, `X-Conduit-Trace-Id` on every answer, gateway
//! errors included) and the header read timeout against slow-loris clients.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use conduit_e2e::configs::fixture_config;
use conduit_e2e::mcp::McpClient;
use conduit_e2e::{DataPlane, DataPlaneOptions, Fixture, http};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::common::proxied_echo;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// A fixture and a standalone data plane in front of it.
struct Gateway {
    dp: DataPlane,
    _fixture: Fixture,
    _dir: TempDir,
}

impl Gateway {
    fn start(header_read_timeout: Option<&str>) -> anyhow::Result<Self> {
        let fixture = Fixture::start()?;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("conduit.yaml");
        std::fs::write(&config, fixture_config(&fixture.mcp_url(), "edge"))?;
        let dp = DataPlane::start(DataPlaneOptions {
            node_id: "edge".into(),
            config_file: Some(config),
            wait_ready: true,
            header_read_timeout: header_read_timeout.map(str::to_owned),
            ..DataPlaneOptions::default()
        })?;
        Ok(Self {
            dp,
            _fixture: fixture,
            _dir: dir,
        })
    }
}

/// The fields of a `traceparent`: (trace id, parent id, flags).
fn traceparent_fields(value: &str) -> anyhow::Result<(String, String, String)> {
    match value.split('-').collect::<Vec<_>>()[..] {
        ["00", trace, parent, flags] if trace.len() == 32 && parent.len() == 16 => {
            Ok((trace.into(), parent.into(), flags.into()))
        }
        _ => Err(anyhow!("malformed traceparent {value:?}")),
    }
}

fn is_trace_id(value: &str) -> bool {
    value.len() == 32
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && value != "0".repeat(32)
}

/// `echo_headers` through the gateway: the response's trace id header and the headers the
/// upstream saw.
fn echo_headers(client: &mut McpClient) -> anyhow::Result<(String, Value)> {
    let exchange = client.exchange(
        "tools/call",
        json!({ "name": "echo_headers", "arguments": {} }),
    )?;
    let trace_id = exchange
        .response
        .header("x-conduit-trace-id")
        .ok_or_else(|| anyhow!("no X-Conduit-Trace-Id: {:?}", exchange.response.headers))?
        .to_owned();
    let message = exchange.message.context("no JSON-RPC reply")?;
    let text = message["result"]["content"][0]["text"]
        .as_str()
        .ok_or_else(|| anyhow!("echo_headers returned {message}"))?;
    Ok((trace_id, serde_json::from_str(text)?))
}

#[test]
fn traceparent_is_continued_upstream_with_the_gateways_span() -> anyhow::Result<()> {
    let gateway = Gateway::start(None)?;
    let incoming = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let mut client = McpClient::new(gateway.dp.mcp_url("fixture"))
        .with_header("traceparent", &incoming)
        .with_header("tracestate", "vendor=opaque");
    client.initialize()?;

    let (response_trace, seen) = echo_headers(&mut client)?;
    assert_eq!(response_trace, TRACE_ID);
    let upstream = seen["traceparent"]
        .as_str()
        .context("no traceparent upstream")?;
    let (trace, span, flags) = traceparent_fields(upstream)?;
    assert_eq!(trace, TRACE_ID, "{seen}");
    assert_ne!(
        span, PARENT_SPAN,
        "the gateway did not start its own span: {seen}"
    );
    assert_ne!(span, "0".repeat(16));
    assert_eq!(flags, "01");
    assert_eq!(seen["tracestate"], json!("vendor=opaque"), "{seen}");

    // Each request is its own span of the same trace.
    let (_, again) = echo_headers(&mut client)?;
    let (trace_again, span_again, _) =
        traceparent_fields(again["traceparent"].as_str().unwrap_or_default())?;
    assert_eq!(trace_again, TRACE_ID);
    assert_ne!(span_again, span);
    Ok(())
}

#[test]
fn a_trace_id_is_generated_or_taken_from_x_conduit_trace_id() -> anyhow::Result<()> {
    let gateway = Gateway::start(None)?;
    let mut client = McpClient::new(gateway.dp.mcp_url("fixture"));
    client.initialize()?;
    let (generated, seen) = echo_headers(&mut client)?;
    assert!(is_trace_id(&generated), "{generated:?}");
    let (trace, _, flags) = traceparent_fields(seen["traceparent"].as_str().unwrap_or_default())?;
    assert_eq!(trace, generated, "{seen}");
    assert_eq!(flags, "01");
    let (next, _) = echo_headers(&mut client)?;
    assert_ne!(next, generated, "two requests share a generated trace id");

    let mut client =
        McpClient::new(gateway.dp.mcp_url("fixture")).with_header("X-Conduit-Trace-Id", TRACE_ID);
    client.initialize()?;
    let (response_trace, seen) = echo_headers(&mut client)?;
    assert_eq!(response_trace, TRACE_ID);
    let (trace, _, _) = traceparent_fields(seen["traceparent"].as_str().unwrap_or_default())?;
    assert_eq!(trace, TRACE_ID);

    // An invalid traceparent starts a new trace, without the caller's tracestate.
    let mut client = McpClient::new(gateway.dp.mcp_url("fixture"))
        .with_header(
            "traceparent",
            &format!("00-{}-{PARENT_SPAN}-01", "0".repeat(32)),
        )
        .with_header("tracestate", "vendor=orphan");
    client.initialize()?;
    let (response_trace, seen) = echo_headers(&mut client)?;
    assert!(is_trace_id(&response_trace));
    assert!(seen.get("tracestate").is_none(), "{seen}");
    Ok(())
}

#[test]
fn gateway_errors_carry_the_trace_and_server_ids() -> anyhow::Result<()> {
    let gateway = Gateway::start(None)?;
    let timeout = Duration::from_secs(10);
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let json_headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("traceparent", traceparent.as_str()),
    ];

    let parse_error = http::request(
        "POST",
        &gateway.dp.mcp_url("fixture"),
        &json_headers,
        Some(b"{not json"),
        timeout,
    )?;
    assert_eq!(parse_error.status, 400, "{}", parse_error.text());
    assert_eq!(parse_error.header("x-conduit-trace-id"), Some(TRACE_ID));
    assert_eq!(parse_error.header("x-conduit-server-id"), Some("fixture"));

    let not_allowed = http::request(
        "PUT",
        &gateway.dp.mcp_url("fixture"),
        &json_headers,
        Some(b"{}"),
        timeout,
    )?;
    assert_eq!(not_allowed.status, 405);
    assert_eq!(not_allowed.header("x-conduit-trace-id"), Some(TRACE_ID));
    assert_eq!(not_allowed.header("x-conduit-server-id"), Some("fixture"));

    let body = json!({ "jsonrpc": "2.0", "id": 9, "method": "ping" }).to_string();
    let unknown = http::request(
        "POST",
        &gateway.dp.mcp_url("nope"),
        &json_headers,
        Some(body.as_bytes()),
        timeout,
    )?;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()?["id"], json!(9));
    assert_eq!(unknown.header("x-conduit-trace-id"), Some(TRACE_ID));
    assert_eq!(unknown.header("x-conduit-server-id"), None);

    let elsewhere = http::request("GET", &gateway.dp.public_url("/other"), &[], None, timeout)?;
    assert_eq!(elsewhere.status, 404);
    assert!(
        elsewhere
            .header("x-conduit-trace-id")
            .is_some_and(is_trace_id),
        "{elsewhere:?}"
    );
    Ok(())
}

/// Reads until the server closes the connection; `Err` when it is still open after
/// `patience` (the read timeout).
fn read_until_closed(stream: &mut TcpStream, patience: Duration) -> anyhow::Result<Vec<u8>> {
    stream.set_read_timeout(Some(patience))?;
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(received);
            }
            Err(error) => {
                return Err(error).context("the server kept the connection open");
            }
        }
    }
}

#[test]
fn slow_and_silent_clients_are_disconnected_by_the_header_read_timeout() -> anyhow::Result<()> {
    let gateway = Gateway::start(Some("1s"))?;
    let addr = gateway.dp.listen_addr();
    // Far longer than the timeout, so only the server closing the connection ends a read.
    let patience = Duration::from_secs(20);

    let mut slow = TcpStream::connect(addr)?;
    slow.write_all(
        format!("POST /mcp/fixture HTTP/1.1\r\nHost: {addr}\r\nContent-Type: applic").as_bytes(),
    )?;
    let answer = read_until_closed(&mut slow, patience)?;
    // Whatever hyper says on its way out, it is never a served request.
    assert!(
        !String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 2"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let mut silent = TcpStream::connect(addr)?;
    assert!(read_until_closed(&mut silent, patience)?.is_empty());

    // A client that says a little of the HTTP/2 preface and stops is closed as well.
    let mut preface = TcpStream::connect(addr)?;
    preface.write_all(b"PRI * HTTP/2.0\r\n")?;
    read_until_closed(&mut preface, patience)?;

    // Prompt clients are served as usual.
    proxied_echo(&gateway.dp, "not slow")
}
