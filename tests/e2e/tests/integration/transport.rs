//! Transport hardening of the public listener, driven through a real data plane: body
//! limit, parse and envelope errors, batches, and the `Host`/`Origin` guard against DNS
//! rebinding. Every error the gateway makes must carry the request id it could read.

use std::time::Duration;

use conduit_e2e::configs::fixture_config;
use conduit_e2e::http::{self, Response};
use conduit_e2e::mcp::messages;
use conduit_e2e::{DataPlane, DataPlaneOptions, Fixture};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(20);

struct Gateway {
    _fixture: Fixture,
    dp: DataPlane,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// A standalone data plane fronting the fixture, with `extra` appended to its config.
    fn start(extra: &str) -> anyhow::Result<Gateway> {
        let fixture = Fixture::start()?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("conduit.yaml");
        let config = format!("{extra}{}", fixture_config(&fixture.mcp_url(), "transport"));
        std::fs::write(&path, config)?;
        let dp = DataPlane::start(DataPlaneOptions {
            node_id: "transport".into(),
            config_file: Some(path),
            wait_ready: true,
            ..DataPlaneOptions::default()
        })?;
        Ok(Gateway {
            _fixture: fixture,
            dp,
            _dir: dir,
        })
    }

    fn post(&self, body: &[u8], extra_headers: &[(&str, &str)]) -> anyhow::Result<Response> {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        headers.extend_from_slice(extra_headers);
        http::request(
            "POST",
            &self.dp.mcp_url("fixture"),
            &headers,
            Some(body),
            TIMEOUT,
        )
    }
}

fn ping(id: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "ping" })
}

fn error_code(message: &Value) -> Option<i64> {
    message["error"]["code"].as_i64()
}

#[test]
fn malformed_requests_get_json_rpc_errors_with_their_ids() -> anyhow::Result<()> {
    let gateway = Gateway::start("")?;

    let parse = gateway.post(b"{\"jsonrpc\": \"2.0\", \"id\": 1,", &[])?;
    assert_eq!(parse.status, 400, "{}", parse.text());
    let message = parse.json()?;
    assert_eq!(error_code(&message), Some(-32700), "{message}");
    assert_eq!(message["id"], Value::Null, "{message}");

    let envelope = gateway.post(br#"{"jsonrpc":"1.0","id":"req-9","method":"ping"}"#, &[])?;
    assert_eq!(envelope.status, 400, "{}", envelope.text());
    let message = envelope.json()?;
    assert_eq!(error_code(&message), Some(-32600), "{message}");
    assert_eq!(message["id"], json!("req-9"), "{message}");

    let oversized = vec![b' '; 10 * 1024 * 1024 + 1];
    let too_large = gateway.post(&oversized, &[])?;
    assert_eq!(too_large.status, 413, "{}", too_large.text());
    assert!(too_large.json()?.get("error").is_some());
    Ok(())
}

#[test]
fn batches_keep_ids_and_leave_out_notifications() -> anyhow::Result<()> {
    let gateway = Gateway::start("")?;
    // The fixture is stateful: a session first, so the batch reaches a live session.
    let mut client = conduit_e2e::mcp::McpClient::new(gateway.dp.mcp_url("fixture"));
    client.initialize()?;
    let session = client
        .session_id()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no session id"))?;

    let batch = json!([
        ping(json!(1)),
        { "jsonrpc": "2.0", "id": "bad", "method": 42 },
        { "jsonrpc": "2.0", "method": "notifications/cancelled",
          "params": { "requestId": 99, "reason": "test" } },
        ping(json!("two")),
    ]);
    let response = gateway.post(
        batch.to_string().as_bytes(),
        &[
            ("Mcp-Session-Id", session.as_str()),
            ("Mcp-Protocol-Version", "2025-11-25"),
        ],
    )?;
    assert_eq!(response.status, 200, "{}", response.text());
    let replies = messages(&response)?;
    let ids: Vec<&Value> = replies.iter().map(|reply| &reply["id"]).collect();
    assert_eq!(
        replies.len(),
        3,
        "one reply per request, none for the notification: {replies:?}"
    );
    for id in [json!(1), json!("two"), json!("bad")] {
        assert!(ids.contains(&&id), "no reply for id {id}: {replies:?}");
    }
    let invalid = replies
        .iter()
        .find(|reply| reply["id"] == json!("bad"))
        .expect("checked above");
    assert_eq!(error_code(invalid), Some(-32600), "{invalid}");

    let oversized: Vec<Value> = (0..101).map(|n| ping(json!(n))).collect();
    let response = gateway.post(Value::Array(oversized).to_string().as_bytes(), &[])?;
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(error_code(&response.json()?), Some(-32600));
    Ok(())
}

#[test]
fn foreign_host_and_origin_are_refused_unless_allowed() -> anyhow::Result<()> {
    let gateway = Gateway::start(
        "gateway:\n  allowed_hosts: [\"mcp.example.com\"]\n  allowed_origins: [\"https://app.example.com\"]\n",
    )?;
    let body = ping(json!("host-check")).to_string();

    // DNS rebinding: a page on a foreign name reaching the loopback listener.
    let rebound = gateway.post(body.as_bytes(), &[("Host", "attacker.example.net")])?;
    assert_eq!(rebound.status, 403, "{}", rebound.text());
    let message = rebound.json()?;
    // Refused on the request head: the body holding the id is never read.
    assert_eq!(message["id"], Value::Null, "{message}");
    assert_eq!(error_code(&message), Some(-32600), "{message}");

    let origin = gateway.post(body.as_bytes(), &[("Origin", "https://evil.example.net")])?;
    assert_eq!(origin.status, 403, "{}", origin.text());

    // Configured names pass the guard (the fixture then answers for itself).
    for headers in [
        [
            ("Host", "mcp.example.com"),
            ("Origin", "https://app.example.com"),
        ],
        [("Host", "127.0.0.1"), ("Origin", "http://localhost:3000")],
    ] {
        let allowed = gateway.post(body.as_bytes(), &headers)?;
        assert_ne!(allowed.status, 403, "{headers:?}: {}", allowed.text());
    }
    Ok(())
}
