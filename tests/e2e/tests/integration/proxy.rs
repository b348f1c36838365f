//! The public MCP path of a data plane: `/mcp/{server_id}` passes MCP through to the
//! configured upstream (the fixture) and answers JSON-RPC errors for what it cannot route.

use std::time::Duration;

use anyhow::Context as _;
use conduit_e2e::configs::fixture_config;
use conduit_e2e::http;
use conduit_e2e::mcp::{McpClient, messages};
use serde_json::{Value, json};

use super::common::{Fleet, apply};

#[test]
fn mcp_session_round_trip_through_a_data_plane() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    let dp = &fleet.dps[0];
    let mut client =
        McpClient::new(dp.mcp_url("fixture")).with_header("Authorization", "Bearer caller-secret");

    let init = client.initialize()?;
    assert_eq!(
        init["serverInfo"]["name"],
        json!("conduit-mcp-fixture"),
        "{init}"
    );
    assert!(
        client.session_id().is_some(),
        "no Mcp-Session-Id passed back"
    );

    let tools = client.list_tools()?;
    for name in ["echo", "add", "echo_headers"] {
        assert!(
            tools.iter().any(|t| t == name),
            "{name} missing from {tools:?}"
        );
    }
    assert_eq!(
        client.call_tool_text("echo", json!({ "message": "through the gateway" }))?,
        "through the gateway"
    );
    assert_eq!(
        client.call_tool_text("add", json!({ "a": 2, "b": 40 }))?,
        "42"
    );

    // Static headers are added; the caller's Authorization is not forwarded by default.
    let seen: Value = serde_json::from_str(&client.call_tool_text("echo_headers", json!({}))?)?;
    assert_eq!(seen["x-conduit-e2e"], json!("v1"), "{seen}");
    assert!(
        seen.get("authorization").is_none(),
        "Authorization leaked upstream: {seen}"
    );

    let closed = client.close()?;
    assert!((200..300).contains(&closed), "DELETE answered {closed}");
    Ok(())
}

#[test]
fn forward_authorization_passes_the_callers_header() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    let yaml = format!(
        "{}    forward_authorization: true\n",
        fixture_config(&fleet.fixture.mcp_url(), "fwd")
    );
    let version = apply(&fleet.cp, "fwd.yaml", &yaml, "forward auth", "alice")?;
    let dp = &fleet.dps[0];
    assert_eq!(dp.config_version()?, version);
    let mut client =
        McpClient::new(dp.mcp_url("fixture")).with_header("Authorization", "Bearer caller-secret");
    client.initialize()?;
    let seen: Value = serde_json::from_str(&client.call_tool_text("echo_headers", json!({}))?)?;
    assert_eq!(
        seen["authorization"],
        json!("Bearer caller-secret"),
        "{seen}"
    );
    Ok(())
}

#[test]
fn unknown_server_and_dead_upstream_get_json_rpc_errors() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    let dead = conduit_e2e::free_addr()?;
    let yaml = format!(
        "{}  - id: dead\n    url: http://{dead}/mcp\n    timeout_ms: 2000\n",
        fixture_config(&fleet.fixture.mcp_url(), "dead")
    );
    apply(&fleet.cp, "dead.yaml", &yaml, "dead upstream", "alice")?;
    let dp = &fleet.dps[0];

    let body = json!({
        "jsonrpc": "2.0", "id": 7, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": "conduit-e2e", "version": "0" }
        }
    });
    let post = |server: &str| {
        http::request(
            "POST",
            &dp.mcp_url(server),
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ],
            Some(body.to_string().as_bytes()),
            Duration::from_secs(20),
        )
        .with_context(|| format!("POST /mcp/{server}"))
    };

    let unknown = post("no-such-server")?;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let message = first_message(&unknown)?;
    assert!(message.get("error").is_some(), "{message}");

    let started = std::time::Instant::now();
    let failed = post("dead")?;
    assert_eq!(failed.status, 502, "{}", failed.text());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "dead upstream took {:?}",
        started.elapsed()
    );
    let message = first_message(&failed)?;
    assert!(message.get("error").is_some(), "{message}");
    assert_eq!(
        message["id"],
        json!(7),
        "the error must carry the request id: {message}"
    );
    Ok(())
}

#[test]
fn upstream_timeout_is_honoured() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    let yaml = fixture_config(&fleet.fixture.mcp_url(), "slow")
        .replace("timeout_ms: 10000", "timeout_ms: 1500");
    apply(&fleet.cp, "slow.yaml", &yaml, "short timeout", "alice")?;
    let mut client = McpClient::new(fleet.dps[0].mcp_url("fixture"));
    client.initialize()?;

    let started = std::time::Instant::now();
    let exchange = client.exchange(
        "tools/call",
        json!({ "name": "sleep", "arguments": { "ms": 10000 } }),
    )?;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(7000),
        "a 1.5 s upstream timeout took {elapsed:?}; answer: {}",
        exchange.response.text()
    );
    let message = exchange
        .message
        .with_context(|| format!("no JSON-RPC answer: {}", exchange.response.text()))?;
    assert!(message.get("error").is_some(), "{message}");
    assert!(
        message["id"].is_number(),
        "the error must carry the request id: {message}"
    );
    Ok(())
}

#[test]
fn timeout_does_not_cut_the_server_event_stream() -> anyhow::Result<()> {
    // `timeout_ms` bounds a request; the GET stream that carries server-initiated messages
    // is long-lived by design and must not be closed after `timeout_ms`.
    let fleet = Fleet::start(1)?;
    let yaml = fixture_config(&fleet.fixture.mcp_url(), "stream")
        .replace("timeout_ms: 10000", "timeout_ms: 1000");
    apply(&fleet.cp, "stream.yaml", &yaml, "short timeout", "alice")?;
    let url = fleet.dps[0].mcp_url("fixture");
    let mut client = McpClient::new(url.clone());
    client.initialize()?;
    let session = client.session_id().context("no session")?.to_owned();

    let mut stream = http::open(
        "GET",
        &url,
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &session),
            ("MCP-Protocol-Version", conduit_e2e::mcp::PROTOCOL_VERSION),
        ],
        Duration::from_secs(10),
    )?;
    assert_eq!(stream.status, 200);
    assert!(
        stream
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("text/event-stream")),
        "{:?}",
        stream.headers
    );
    assert!(
        stream.stays_open_for(Duration::from_millis(3000))?,
        "the gateway closed the event stream within 3 s (timeout_ms is 1 s)"
    );
    Ok(())
}

fn first_message(response: &http::Response) -> anyhow::Result<Value> {
    messages(response)?
        .into_iter()
        .next()
        .with_context(|| format!("no JSON-RPC message in {}", response.text()))
}
