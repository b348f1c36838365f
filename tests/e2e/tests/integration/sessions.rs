//! MCP sessions with stateless data planes: the `Mcp-Session-Id` a client holds is a
//! sealed token naming its upstream session, so any data plane of the fleet continues it,
//! every client gets its own upstream session, and key rotations do not end sessions.

use anyhow::{Context as _, bail};
use conduit_e2e::configs::fixture_config;
use conduit_e2e::http;
use conduit_e2e::mcp::{McpClient, PROTOCOL_VERSION};
use conduit_e2e::{
    ControlPlaneOptions, DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, Fixture, wait_until,
};
use serde_json::{Value, json};

use super::common::{Fleet, apply};

/// The `Mcp-Session-Id` the fixture received on a call through `client`.
fn upstream_session(client: &mut McpClient) -> anyhow::Result<String> {
    let seen: Value = serde_json::from_str(&client.call_tool_text("echo_headers", json!({}))?)?;
    seen["mcp-session-id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the upstream got no session id: {seen}"))
}

/// The key id a token was sealed with (`c1.<key id>.<sealed>`).
fn key_id(token: &str) -> anyhow::Result<&str> {
    match token.split('.').collect::<Vec<_>>()[..] {
        ["c1", id, _] => Ok(id),
        _ => bail!("not a session token: {token}"),
    }
}

fn token_of(client: &McpClient) -> anyhow::Result<String> {
    Ok(client.session_id().context("no Mcp-Session-Id")?.to_owned())
}

fn echo(client: &mut McpClient, message: &str) -> anyhow::Result<()> {
    let text = client.call_tool_text("echo", json!({ "message": message }))?;
    anyhow::ensure!(text == message, "echo returned {text:?}");
    Ok(())
}

#[test]
fn a_session_started_on_one_data_plane_continues_on_another() -> anyhow::Result<()> {
    let fleet = Fleet::start(2)?;
    let (a, b) = (&fleet.dps[0], &fleet.dps[1]);

    let mut through_a = McpClient::new(a.mcp_url("fixture"));
    through_a.initialize()?;
    let token = token_of(&through_a)?;
    key_id(&token)?;
    let upstream = upstream_session(&mut through_a)?;
    assert!(
        !token.contains(&upstream),
        "the upstream session id {upstream} shows in the client's token {token}"
    );

    let mut through_b = McpClient::new(b.mcp_url("fixture")).with_session(&token);
    let tools = through_b.list_tools()?;
    assert!(tools.iter().any(|t| t == "echo"), "{tools:?}");
    echo(&mut through_b, "continued on B")?;
    assert_eq!(
        upstream_session(&mut through_b)?,
        upstream,
        "B used another upstream session"
    );
    assert_eq!(
        through_b.session_id(),
        Some(token.as_str()),
        "the token changed"
    );

    // DELETE through B ends the upstream session: it is gone through A as well.
    let closed = through_b.clone().close()?;
    assert!((200..300).contains(&closed), "DELETE answered {closed}");
    let body = json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/list" }).to_string();
    let after = http::request(
        "POST",
        &a.mcp_url("fixture"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
            ("Mcp-Session-Id", &token),
        ],
        Some(body.as_bytes()),
        DEFAULT_TIMEOUT,
    )?;
    // The upstream's own 404 for a session it ended, passed through.
    assert_eq!(
        after.status,
        404,
        "the upstream still knows the session: {}",
        after.text()
    );
    Ok(())
}

#[test]
fn every_client_gets_its_own_upstream_session() -> anyhow::Result<()> {
    let fleet = Fleet::start(2)?;
    let mut sessions = Vec::new();
    for dp in [&fleet.dps[0], &fleet.dps[0], &fleet.dps[1]] {
        let mut client = McpClient::new(dp.mcp_url("fixture"));
        client.initialize()?;
        sessions.push((token_of(&client)?, upstream_session(&mut client)?));
    }
    for (i, (token, upstream)) in sessions.iter().enumerate() {
        for (other_token, other_upstream) in &sessions[i + 1..] {
            assert_ne!(token, other_token);
            assert_ne!(
                upstream, other_upstream,
                "two clients share an upstream session"
            );
        }
    }
    Ok(())
}

#[test]
fn a_session_stays_on_the_replica_that_holds_it() -> anyhow::Result<()> {
    // Two stateful fixture processes as replicas of one server: a session only exists on
    // the replica that initialized it, whichever data plane carries the next request.
    let fleet = Fleet::start(2)?;
    let second = Fixture::start()?;
    let yaml = format!(
        "servers:\n  - id: fixture\n    url: {}\n    replicas: [{}]\n    timeout_ms: 10000\n",
        fleet.fixture.mcp_url(),
        second.mcp_url()
    );
    apply(
        &fleet.cp,
        "replicas.yaml",
        &yaml,
        "two stateful replicas",
        "alice",
    )?;
    let (a, b) = (&fleet.dps[0], &fleet.dps[1]);

    let mut hosts = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let mut client = McpClient::new(a.mcp_url("fixture"));
        client.initialize()?;
        let seen: Value = serde_json::from_str(&client.call_tool_text("echo_headers", json!({}))?)?;
        let host = seen["host"].as_str().context("no Host")?.to_owned();
        let upstream = seen["mcp-session-id"]
            .as_str()
            .context("no session")?
            .to_owned();
        // Continued through B, three times: always the same replica and session.
        let mut through_b = McpClient::new(b.mcp_url("fixture")).with_session(&token_of(&client)?);
        for _ in 0..3 {
            let seen: Value =
                serde_json::from_str(&through_b.call_tool_text("echo_headers", json!({}))?)?;
            assert_eq!(seen["host"], json!(host), "the session moved: {seen}");
            assert_eq!(seen["mcp-session-id"], json!(upstream), "{seen}");
        }
        hosts.insert(host);
    }
    assert_eq!(
        hosts.len(),
        2,
        "new sessions are balanced over both replicas: {hosts:?}"
    );
    Ok(())
}

#[test]
fn a_tampered_token_gets_404_with_the_request_id() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    let url = fleet.dps[0].mcp_url("fixture");
    let mut client = McpClient::new(url.clone());
    client.initialize()?;
    let token = token_of(&client)?;
    let upstream = upstream_session(&mut client)?;

    let mut tampered = token.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    // Neither an altered token nor the raw upstream id is accepted.
    for session in [tampered.as_str(), upstream.as_str()] {
        let mut forged = McpClient::new(url.clone()).with_session(session);
        let exchange = forged.exchange("tools/list", json!({}))?;
        assert_eq!(
            exchange.response.status,
            404,
            "{}",
            exchange.response.text()
        );
        let message = exchange
            .message
            .with_context(|| format!("no JSON-RPC error: {}", exchange.response.text()))?;
        assert_eq!(message["id"], json!(1), "{message}");
        assert!(message["error"]["code"].is_i64(), "{message}");
    }
    // The real token still works.
    echo(&mut client, "untouched")?;
    Ok(())
}

#[test]
fn a_key_rotation_keeps_sessions_and_new_ones_use_the_new_key() -> anyhow::Result<()> {
    let fleet = Fleet::start_with(
        2,
        ControlPlaneOptions {
            session_key_rotation: Some("3s".into()),
            ..ControlPlaneOptions::with_tokens()
        },
        |_, options| options,
    )?;
    let (a, b) = (&fleet.dps[0], &fleet.dps[1]);
    let mut old = McpClient::new(a.mcp_url("fixture"));
    old.initialize()?;
    let old_token = token_of(&old)?;
    let old_key = key_id(&old_token)?.to_owned();
    let old_upstream = upstream_session(&mut old)?;

    let (new_token, mut new) = wait_until(DEFAULT_TIMEOUT, "a session under a new key", || {
        let mut client = McpClient::new(b.mcp_url("fixture"));
        client.initialize()?;
        let token = token_of(&client)?;
        if key_id(&token)? == old_key {
            client.close()?;
            bail!("still sealed with {old_key}");
        }
        Ok((token, client))
    })?;
    let new_upstream = upstream_session(&mut new)?;

    // The old session, sealed before the rotation, continues on both data planes.
    for dp in [a, b] {
        let mut client = McpClient::new(dp.mcp_url("fixture")).with_session(&old_token);
        echo(&mut client, "after the rotation")?;
        assert_eq!(upstream_session(&mut client)?, old_upstream);
    }
    // The new session, sealed by B under the new key, continues on A.
    let mut on_a = McpClient::new(a.mcp_url("fixture")).with_session(&new_token);
    assert_eq!(upstream_session(&mut on_a)?, new_upstream);
    assert_eq!(
        fleet.cp.status()?.current_version,
        fleet.first_version,
        "a rotation creates no config version"
    );
    Ok(())
}

#[test]
fn a_standalone_data_plane_keeps_sessions_local() -> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    std::fs::write(&path, fixture_config(&fixture.mcp_url(), "local"))?;
    let start = |node_id: &str| {
        DataPlane::start(DataPlaneOptions {
            node_id: node_id.into(),
            config_file: Some(path.clone()),
            wait_ready: true,
            ..DataPlaneOptions::default()
        })
    };
    let (one, other) = (start("standalone-1")?, start("standalone-2")?);

    let mut client = McpClient::new(one.mcp_url("fixture"));
    client.initialize()?;
    let token = token_of(&client)?;
    let upstream = upstream_session(&mut client)?;
    assert!(!token.contains(&upstream), "{token}");
    echo(&mut client, "local session")?;

    // Another data plane has its own key: the client must start over there.
    let mut elsewhere = McpClient::new(other.mcp_url("fixture")).with_session(&token);
    let refused = elsewhere.exchange("tools/list", json!({}))?;
    assert_eq!(refused.response.status, 404, "{}", refused.response.text());

    let log = std::fs::read_to_string(one.scratch_dir().join("data-plane.log"))?;
    assert!(
        log.contains("MCP sessions are local to this data plane"),
        "no warning in the log:\n{log}"
    );
    let closed = client.close()?;
    assert!((200..300).contains(&closed), "DELETE answered {closed}");
    Ok(())
}

#[test]
fn standalone_data_planes_sharing_configured_keys_share_sessions() -> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    let yaml = format!(
        "{}gateway:\n  session_keys:\n    - id: shared-1\n      key: ${{env:CONDUIT_SECRET_E2E_SESSION_KEY}}\n",
        fixture_config(&fixture.mcp_url(), "shared")
    );
    std::fs::write(&path, yaml)?;
    // 32 bytes, base64.
    let secret = "ZTJlLXNlc3Npb24ta2V5LTAxMjM0NTY3ODlhYmNkZWY=";
    let start = |node_id: &str| {
        DataPlane::start(
            DataPlaneOptions {
                node_id: node_id.into(),
                config_file: Some(path.clone()),
                wait_ready: true,
                ..DataPlaneOptions::default()
            }
            .env("CONDUIT_SECRET_E2E_SESSION_KEY", secret),
        )
    };
    let (one, other) = (start("shared-1")?, start("shared-2")?);

    let mut client = McpClient::new(one.mcp_url("fixture"));
    client.initialize()?;
    let token = token_of(&client)?;
    assert_eq!(key_id(&token)?, "shared-1");
    let upstream = upstream_session(&mut client)?;
    let mut elsewhere = McpClient::new(other.mcp_url("fixture")).with_session(&token);
    assert_eq!(upstream_session(&mut elsewhere)?, upstream);

    // The key never shows in /config_dump or the logs.
    for dp in [&one, &other] {
        let dump = dp.config_dump()?.to_string();
        assert!(!dump.contains(secret), "{dump}");
        let log = std::fs::read_to_string(dp.scratch_dir().join("data-plane.log"))?;
        assert!(!log.contains(secret));
        assert!(!log.contains("local to this data plane"), "{log}");
    }
    Ok(())
}

/// The attack of the review: client B, with its own valid API key, sends client A's
/// `Mcp-Session-Id`. The token is bound to A (client and tenant): B gets 404 as for a
/// foreign token, on the single-server endpoint and on the aggregate one, and A's session
/// goes on untouched.
#[test]
fn a_session_token_is_refused_to_every_caller_but_its_own() -> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    let yaml = format!(
        "{}auth:\n  method: api-key\n  api_keys:\n    - {{key: a-key, client_id: a, tenant_id: acme}}\n    - {{key: b-key, client_id: b, tenant_id: acme}}\n    - {{key: a-elsewhere-key, client_id: a, tenant_id: globex}}\n",
        fixture_config(&fixture.mcp_url(), "bound")
    );
    std::fs::write(&path, yaml)?;
    let dp = DataPlane::start(DataPlaneOptions {
        node_id: "bound".into(),
        config_file: Some(path),
        wait_ready: true,
        ..DataPlaneOptions::default()
    })?;
    let bearer = |key: &str| format!("Bearer {key}");

    for endpoint in ["/mcp/fixture", "/mcp"] {
        let url = dp.public_url(endpoint);
        let mut alice = McpClient::new(&url).with_header("Authorization", &bearer("a-key"));
        alice.initialize()?;
        let token = token_of(&alice)?;
        let tool = if endpoint == "/mcp" {
            "fixture.echo"
        } else {
            "echo"
        };
        let before = alice.call_tool_text(tool, json!({ "message": "mine" }))?;
        assert_eq!(before, "mine");

        for intruder in ["b-key", "a-elsewhere-key"] {
            let body =
                json!({ "jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": { "name": tool, "arguments": { "message": "stolen" } } })
                    .to_string();
            let response = http::request(
                "POST",
                &url,
                &[
                    ("Content-Type", "application/json"),
                    ("Accept", "application/json, text/event-stream"),
                    ("Authorization", &bearer(intruder)),
                    ("Mcp-Session-Id", &token),
                    ("MCP-Protocol-Version", PROTOCOL_VERSION),
                ],
                Some(body.as_bytes()),
                DEFAULT_TIMEOUT,
            )?;
            assert_eq!(
                response.status,
                404,
                "{endpoint} with {intruder}: {}",
                response.text()
            );
            let message = response.json()?;
            assert_eq!(message["id"], json!(5), "{message}");
            assert_eq!(message["error"]["code"], json!(-32001), "{message}");
            assert!(
                !response.text().contains("stolen"),
                "{endpoint}: the call reached the upstream: {}",
                response.text()
            );
            // A DELETE with the stolen token does not end A's session either.
            let deleted = http::request(
                "DELETE",
                &url,
                &[
                    ("Authorization", &bearer(intruder)),
                    ("Mcp-Session-Id", &token),
                    ("MCP-Protocol-Version", PROTOCOL_VERSION),
                ],
                None,
                DEFAULT_TIMEOUT,
            )?;
            assert_eq!(deleted.status, 404, "{endpoint} DELETE with {intruder}");
        }

        // A carries on with the same token.
        let after = alice.call_tool_text(tool, json!({ "message": "still mine" }))?;
        assert_eq!(after, "still mine");
        assert_eq!(alice.session_id(), Some(token.as_str()));
    }
    Ok(())
}
