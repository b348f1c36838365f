//! The aggregate endpoints `/mcp` and `/mcp/profile/{id}` over two real fixture servers
//! (`alpha` and `beta`) behind a standalone data plane: merged lists with prefixed names,
//! calls routed to the right member, profiles, the namespace collision error, sampling
//! round trips, the stateless protocol, and the end of every member session on DELETE.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use conduit_e2e::http;
use conduit_e2e::mcp::{McpClient, PROTOCOL_VERSION, messages};
use conduit_e2e::{DataPlane, DataPlaneOptions, Fixture};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(20);

/// 32 bytes, base64: the session key two data planes share in `sessions_continue_...`.
const SHARED_KEY: &str = "YWdncmVnYXRlLXNlc3Npb24ta2V5LTAxMjM0NTY3ODk=";

struct Gateway {
    // Field order is drop order: the data plane goes before its upstreams.
    dp: DataPlane,
    _alpha: Fixture,
    _beta: Fixture,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Fixtures `alpha` and `beta` (each marked by a static `X-Member` header), the profile
    /// `beta-only`, and `extra` appended to the config.
    fn start(extra: &str) -> anyhow::Result<Gateway> {
        Gateway::start_with(10_000, "", extra)
    }

    /// Like [`Gateway::start`] with alpha's `timeout_ms` and more `servers` entries.
    fn start_with(alpha_timeout_ms: u64, servers: &str, extra: &str) -> anyhow::Result<Gateway> {
        let alpha = Fixture::start()?;
        let beta = Fixture::start()?;
        let server = |id: &str, url: String, timeout_ms: u64| {
            format!(
                "  - id: {id}\n    url: {url}\n    timeout_ms: {timeout_ms}\n    headers:\n      X-Member: {id}\n"
            )
        };
        let config = format!(
            "servers:\n{}{}{servers}profiles:\n  - id: beta-only\n    server_ids: [beta]\n{extra}",
            server("alpha", alpha.mcp_url(), alpha_timeout_ms),
            server("beta", beta.mcp_url(), 10_000),
        );
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("conduit.yaml");
        std::fs::write(&path, config)?;
        let dp = data_plane(&path, "aggregate")?;
        Ok(Gateway {
            dp,
            _alpha: alpha,
            _beta: beta,
            config: path,
            _dir: dir,
        })
    }

    /// Another standalone data plane serving the same config file.
    fn another_data_plane(&self, node_id: &str) -> anyhow::Result<DataPlane> {
        data_plane(&self.config, node_id)
    }

    fn client(&self, path: &str) -> McpClient {
        McpClient::new(self.dp.public_url(path))
    }
}

/// A standalone data plane on `config`, with [`SHARED_KEY`] in its environment (used by
/// configs that name `gateway.session_keys`).
fn data_plane(config: &std::path::Path, node_id: &str) -> anyhow::Result<DataPlane> {
    DataPlane::start(
        DataPlaneOptions {
            node_id: node_id.into(),
            config_file: Some(config.to_owned()),
            wait_ready: true,
            ..DataPlaneOptions::default()
        }
        .env("CONDUIT_SECRET_E2E_SESSION_KEY", SHARED_KEY),
    )
}

/// The JSON-RPC error of an exchange, or why there is none.
fn error_of(exchange: &conduit_e2e::mcp::Exchange) -> anyhow::Result<&Value> {
    let message = exchange
        .message
        .as_ref()
        .ok_or_else(|| anyhow!("no JSON-RPC message: {}", exchange.response.text()))?;
    message
        .get("error")
        .ok_or_else(|| anyhow!("expected an error, got {message}"))
}

/// The headers a member saw, as reported by its `echo_headers` tool.
fn headers_seen_by(client: &mut McpClient, member: &str) -> anyhow::Result<Value> {
    let text = client.call_tool_text(&format!("{member}.echo_headers"), json!({}))?;
    serde_json::from_str(&text).with_context(|| format!("echo_headers returned {text}"))
}

#[test]
fn the_aggregate_merges_lists_and_routes_each_call_to_its_member() -> anyhow::Result<()> {
    let gateway = Gateway::start("")?;
    let mut client = gateway.client("/mcp");
    let init = client.initialize()?;
    assert_eq!(init["serverInfo"]["name"], "conduit", "{init}");
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    let instructions = init["instructions"].as_str().unwrap_or_default();
    assert!(
        instructions.contains("alpha") && instructions.contains("beta"),
        "{instructions}"
    );

    let listed = client.exchange("tools/list", json!({}))?;
    assert_eq!(
        listed.response.header("x-conduit-server-id"),
        Some("aggregate")
    );
    let tools = client.list_tools()?;
    for name in ["alpha.echo", "beta.echo", "alpha.add", "beta.add"] {
        assert!(
            tools.iter().any(|t| t == name),
            "{name} missing from {tools:?}"
        );
    }
    assert!(
        tools
            .iter()
            .all(|t| t.starts_with("alpha.") || t.starts_with("beta.")),
        "{tools:?}"
    );

    assert_eq!(
        client.call_tool_text("beta.add", json!({"a": 2, "b": 40}))?,
        "42"
    );
    // Each call reached its own member, each over its own upstream session, and the
    // client's token never travelled upstream.
    let alpha = headers_seen_by(&mut client, "alpha")?;
    let beta = headers_seen_by(&mut client, "beta")?;
    assert_eq!(alpha["x-member"], "alpha", "{alpha}");
    assert_eq!(beta["x-member"], "beta", "{beta}");
    let token = client.session_id().map(str::to_owned);
    for seen in [&alpha, &beta] {
        let upstream = seen["mcp-session-id"].as_str();
        assert!(upstream.is_some(), "no upstream session: {seen}");
        assert_ne!(
            upstream,
            token.as_deref(),
            "the gateway token went upstream"
        );
    }
    assert_ne!(alpha["mcp-session-id"], beta["mcp-session-id"]);

    let prompt = client.request("prompts/get", json!({"name": "beta.test_simple_prompt"}))?;
    assert!(
        prompt["messages"][0]["content"]["text"].is_string(),
        "{prompt}"
    );

    let resources = client.request("resources/list", json!({}))?;
    let resources = resources["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        resources.iter().any(|r| r["uri"] == "test://static-text"
            && r["name"].as_str().is_some_and(|n| n.starts_with("alpha."))),
        "{resources:?}"
    );
    for uri in ["test://static-text", "test://template/7/data"] {
        let read = client.request("resources/read", json!({"uri": uri}))?;
        assert_eq!(read["contents"][0]["uri"], uri, "{read}");
    }

    let unknown = client.exchange("tools/call", json!({"name": "gamma.add", "arguments": {}}))?;
    let error = error_of(&unknown)?;
    assert_eq!(error["code"], -32602, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("gamma"),
        "{error}"
    );
    assert!(
        unknown
            .message
            .as_ref()
            .is_some_and(|m| m["id"].is_number())
    );
    Ok(())
}

#[test]
fn sessions_continue_on_another_data_plane_with_the_same_member_sessions() -> anyhow::Result<()> {
    let keys = "gateway:\n  session_keys:\n    - id: shared-1\n      key: ${env:CONDUIT_SECRET_E2E_SESSION_KEY}\n";
    let gateway = Gateway::start(keys)?;
    let other = gateway.another_data_plane("aggregate-2")?;
    let mut client = gateway.client("/mcp");
    client.initialize()?;
    let token = client
        .session_id()
        .ok_or_else(|| anyhow!("no session"))?
        .to_owned();
    let mut elsewhere = McpClient::new(other.public_url("/mcp")).with_session(&token);
    for member in ["alpha", "beta"] {
        let here = headers_seen_by(&mut client, member)?;
        let there = headers_seen_by(&mut elsewhere, member)?;
        assert!(here["mcp-session-id"].is_string(), "{here}");
        assert_eq!(here["mcp-session-id"], there["mcp-session-id"], "{member}");
    }
    // Without the shared key a data plane cannot open the token: 404, start again.
    let stranger = Gateway::start("")?;
    let mut refused = stranger.client("/mcp").with_session(&token);
    let exchange = refused.exchange("tools/list", json!({}))?;
    assert_eq!(
        exchange.response.status,
        404,
        "{}",
        exchange.response.text()
    );
    assert_eq!(error_of(&exchange)?["code"], -32001);
    Ok(())
}

#[test]
fn a_profile_serves_only_its_servers_and_an_unknown_one_is_404() -> anyhow::Result<()> {
    let gateway = Gateway::start("")?;
    let mut client = gateway.client("/mcp/profile/beta-only");
    client.initialize()?;
    let tools = client.list_tools()?;
    assert!(tools.iter().any(|t| t == "beta.echo"), "{tools:?}");
    assert!(tools.iter().all(|t| t.starts_with("beta.")), "{tools:?}");
    let listed = client.exchange("tools/list", json!({}))?;
    assert_eq!(
        listed.response.header("x-conduit-server-id"),
        Some("profile:beta-only")
    );
    // A member outside the profile cannot be called through it.
    let outside = client.exchange(
        "tools/call",
        json!({"name": "alpha.echo", "arguments": {"message": "x"}}),
    )?;
    assert_eq!(error_of(&outside)?["code"], -32602);

    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}).to_string();
    let response = http::request(
        "POST",
        &gateway.dp.public_url("/mcp/profile/nope"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        Some(body.as_bytes()),
        TIMEOUT,
    )?;
    assert_eq!(response.status, 404, "{}", response.text());
    let error = response.json()?;
    assert_eq!(error["id"], 5, "{error}");
    assert_eq!(error["error"]["code"], -32601, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nope"),
        "{error}"
    );
    Ok(())
}

#[test]
fn without_namespaces_a_name_offered_twice_is_a_clear_error() -> anyhow::Result<()> {
    let gateway = Gateway::start("router:\n  namespace_strategy: none\n")?;
    let mut client = gateway.client("/mcp");
    client.initialize()?;
    for (method, params) in [
        ("tools/list", json!({})),
        (
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "x"}}),
        ),
    ] {
        let exchange = client.exchange(method, params)?;
        let error = error_of(&exchange)?;
        let message = error["message"].as_str().unwrap_or_default();
        for part in [
            "offered by both alpha and beta",
            "namespace_strategy: prefix",
        ] {
            assert!(message.contains(part), "{method}: {message}");
        }
    }
    Ok(())
}

#[test]
fn a_member_that_is_down_is_left_out_and_a_slow_one_times_out_alone() -> anyhow::Result<()> {
    let down = format!(
        "  - id: gamma\n    url: http://{}/mcp\n",
        conduit_e2e::free_addr()?
    );
    let gateway = Gateway::start_with(1_000, &down, "")?;
    let mut client = gateway.client("/mcp");
    client.initialize()?;
    let tools = client.list_tools()?;
    assert!(tools.iter().any(|t| t == "alpha.echo"), "{tools:?}");
    assert!(tools.iter().all(|t| !t.starts_with("gamma.")), "{tools:?}");

    // alpha allows 1 s: its slow call ends with an error for this request, naming alpha.
    let slow = client.exchange(
        "tools/call",
        json!({"name": "alpha.sleep", "arguments": {"ms": 5000}}),
    )?;
    let error = error_of(&slow)?;
    // The exchange only takes the message carrying its request id (or an id-less error).
    assert!(
        slow.message.as_ref().is_some_and(|m| m["id"].is_number()),
        "{slow:?}"
    );
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("alpha") && message.contains("1s"),
        "{message}"
    );
    // beta is unaffected.
    assert_eq!(
        client.call_tool_text("beta.sleep", json!({"ms": 10}))?,
        "slept 10 ms"
    );
    Ok(())
}

#[test]
fn a_member_session_stays_on_the_replica_that_created_it() -> anyhow::Result<()> {
    // Round-robin over two replicas would send every other call to the replica that never
    // saw the session (it answers 404); pinned, every call finds its session.
    let (first, second) = (Fixture::start()?, Fixture::start()?);
    let delta = format!(
        "  - id: delta\n    url: {}\n    replicas: [{}]\n",
        first.mcp_url(),
        second.mcp_url()
    );
    let gateway = Gateway::start_with(10_000, &delta, "")?;
    for _ in 0..2 {
        let mut client = gateway.client("/mcp");
        client.initialize()?;
        for i in 0..4 {
            let message = format!("call {i}");
            let text = client.call_tool_text("delta.echo", json!({"message": message}))?;
            assert_eq!(text, message);
        }
    }
    Ok(())
}

#[test]
fn a_stdio_server_is_a_member_like_any_other() -> anyhow::Result<()> {
    let fixture = conduit_e2e::binaries::binary(conduit_e2e::binaries::FIXTURE)?;
    let command = serde_json::to_string(&fixture.display().to_string())?;
    let local = format!(
        "  - id: local\n    transport: stdio\n    command: {command}\n    args: [\"--stdio\"]\n"
    );
    let gateway = Gateway::start_with(10_000, &local, "")?;
    let mut client = gateway.client("/mcp");
    client.initialize()?;
    let tools = client.list_tools()?;
    for name in ["alpha.echo", "beta.echo", "local.echo"] {
        assert!(
            tools.iter().any(|t| t == name),
            "{name} missing from {tools:?}"
        );
    }
    assert_eq!(
        client.call_tool_text("local.add", json!({"a": 2, "b": 3}))?,
        "5"
    );
    // The process's server→client request is renamed twice (by the stdio upstream, then by
    // the aggregate) and the client's answer finds its way back through both.
    let token = client
        .session_id()
        .ok_or_else(|| anyhow!("no session"))?
        .to_owned();
    let url = gateway.dp.public_url("/mcp");
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                      "params": {"name": "local.test_sampling", "arguments": {"prompt": "hi"}}});
    let mut stream = EventStream::post(&url, &token, &call)?;
    let request = stream.next_message()?;
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    assert!(id.starts_with("local:"), "{request}");
    answer_sampling(&url, &token, &id, "from the stdio member's client")?;
    let result = stream.next_message()?;
    assert_eq!(result["id"], 9, "{result}");
    let text = result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("from the stdio member's client"), "{result}");
    Ok(())
}

/// POST the client's answer to the sampling request `id`; it must be accepted (202).
fn answer_sampling(url: &str, token: &str, id: &str, text: &str) -> anyhow::Result<()> {
    let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
        "role": "assistant", "content": {"type": "text", "text": text},
        "model": "e2e", "stopReason": "endTurn"}});
    let posted = http::request(
        "POST",
        url,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", token),
        ],
        Some(answer.to_string().as_bytes()),
        TIMEOUT,
    )?;
    if posted.status != 202 {
        bail!(
            "the answer to {id} got HTTP {}: {}",
            posted.status,
            posted.text()
        );
    }
    Ok(())
}

#[test]
fn a_sampling_request_of_a_member_round_trips_through_the_client() -> anyhow::Result<()> {
    let gateway = Gateway::start("")?;
    let mut client = gateway.client("/mcp");
    client.initialize()?;
    let token = client
        .session_id()
        .ok_or_else(|| anyhow!("no session"))?
        .to_owned();
    let url = gateway.dp.public_url("/mcp");
    let call = json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call",
                      "params": {"name": "alpha.test_sampling", "arguments": {"prompt": "hi"}}});
    let mut stream = EventStream::post(&url, &token, &call)?;

    let request = stream.next_message()?;
    assert_eq!(request["method"], "sampling/createMessage", "{request}");
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    assert!(
        id.starts_with("alpha:"),
        "server request id not rewritten: {request}"
    );

    answer_sampling(&url, &token, &id, "sampled through conduit")?;

    let result = stream.next_message()?;
    assert_eq!(result["id"], 41, "{result}");
    let text = result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("sampled through conduit"), "{result}");
    Ok(())
}

#[test]
fn stateless_clients_discover_and_call_without_a_session() -> anyhow::Result<()> {
    let gateway = Gateway::start("")?;
    let url = gateway.dp.public_url("/mcp");
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "conduit-e2e", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let post = |method: &str, name: Option<&str>, params: Value| {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", method),
        ];
        if let Some(name) = name {
            headers.push(("Mcp-Name", name));
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response = http::request(
            "POST",
            &url,
            &headers,
            Some(body.to_string().as_bytes()),
            TIMEOUT,
        )?;
        let message = messages(&response)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("{method}: empty answer, HTTP {}", response.status))?;
        anyhow::Ok(message)
    };

    let discovered = post("server/discover", None, json!({"_meta": meta}))?;
    let versions = &discovered["result"]["supportedVersions"];
    assert!(
        versions
            .as_array()
            .is_some_and(|v| v.contains(&json!("2026-07-28"))),
        "{discovered}"
    );
    let called = post(
        "tools/call",
        Some("beta.add"),
        json!({"name": "beta.add", "arguments": {"a": 1, "b": 2}, "_meta": meta}),
    )?;
    assert_eq!(called["result"]["content"][0]["text"], "3", "{called}");
    Ok(())
}

#[test]
fn the_event_stream_merges_members_and_delete_ends_every_member_session() -> anyhow::Result<()> {
    let gateway = Gateway::start("")?;
    let url = gateway.dp.public_url("/mcp");
    let mut client = gateway.client("/mcp");
    client.initialize()?;
    let token = client
        .session_id()
        .ok_or_else(|| anyhow!("no session"))?
        .to_owned();
    for member in ["alpha", "beta"] {
        let text = client.call_tool_text(&format!("{member}.echo"), json!({"message": member}))?;
        assert_eq!(text, member);
    }

    let stream = http::open(
        "GET",
        &url,
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &token),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
        ],
        TIMEOUT,
    )?;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    drop(stream);

    assert_eq!(client.close()?, 204);
    // The old token still opens, but both upstream sessions are gone: each member says so.
    let mut stale = McpClient::new(url).with_header("Mcp-Session-Id", &token);
    for member in ["alpha", "beta"] {
        let exchange = stale.exchange(
            "tools/call",
            json!({"name": format!("{member}.echo"), "arguments": {"message": "late"}}),
        )?;
        assert_eq!(
            exchange.response.status,
            404,
            "{}",
            exchange.response.text()
        );
        let message = error_of(&exchange)?["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains(member) && message.contains("session"),
            "{message}"
        );
    }
    Ok(())
}

/// A POST whose event-stream answer is read message by message while it arrives. Sent as
/// HTTP/1.0, so the body comes unchunked and ends when the connection closes.
struct EventStream {
    reader: BufReader<TcpStream>,
}

impl EventStream {
    fn post(url: &str, token: &str, body: &Value) -> anyhow::Result<EventStream> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("not an http URL: {url}"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut stream = TcpStream::connect(authority)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let body = body.to_string();
        write!(
            stream,
            "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMcp-Session-Id: {token}\r\n\
             MCP-Protocol-Version: {PROTOCOL_VERSION}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-type")
            {
                content_type = value.trim().to_owned();
            }
        }
        if !status_line.contains(" 200 ") || !content_type.starts_with("text/event-stream") {
            bail!("expected a 200 event stream, got {status_line:?} ({content_type})");
        }
        Ok(EventStream { reader })
    }

    /// The next JSON-RPC message on the stream.
    fn next_message(&mut self) -> anyhow::Result<Value> {
        let mut data = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the stream ended before the next message");
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            } else if line.is_empty() && !data.trim().is_empty() {
                return serde_json::from_str(&data).with_context(|| format!("event data {data}"));
            }
        }
    }
}
