//! The ACL on the data plane (reference §8.1 "ACL"): tool calls, resource reads and prompt
//! gets are allowed or refused (−32003) per policy, on single-server and aggregate
//! endpoints, and every list shows only what the caller may use. A policy applied through
//! the control plane holds from the next request on, on every data plane. Governance tool
//! policies deny (−32010) and hide tools the same way.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, ensure};
use conduit_e2e::configs::fixture_config;
use conduit_e2e::mcp::{Exchange, McpClient};
use conduit_e2e::stdio::StdioGateway;
use conduit_e2e::{DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, Fixture, wait_until};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::common::{Fleet, apply};

/// JSON-RPC code of an ACL denial.
pub(super) const ACCESS_DENIED: i64 = -32003;

/// A standalone data plane fronting one fixture twice, as servers `fixture` and `twin`,
/// with policy sections from the test; its config file can be replaced.
pub(super) struct PolicyGateway {
    // Field order is drop order: the data plane goes before its upstream.
    pub dp: DataPlane,
    pub fixture: Fixture,
    config: PathBuf,
    _dir: TempDir,
}

impl PolicyGateway {
    pub fn start(policies: &str) -> anyhow::Result<PolicyGateway> {
        let fixture = Fixture::start()?;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("conduit.yaml");
        std::fs::write(&config, config_text(&fixture, policies))?;
        let dp = DataPlane::start(DataPlaneOptions {
            node_id: "policy".into(),
            config_file: Some(config.clone()),
            wait_ready: true,
            ..DataPlaneOptions::default()
        })?;
        Ok(PolicyGateway {
            dp,
            fixture,
            config,
            _dir: dir,
        })
    }

    /// Replace the policy sections and wait until the data plane serves them.
    pub fn replace(&self, policies: &str) -> anyhow::Result<()> {
        let before = self.dp.config_dump()?["hash"].clone();
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, config_text(&self.fixture, policies))?;
        std::fs::rename(&tmp, &self.config)?;
        wait_until(DEFAULT_TIMEOUT, "the new config to be applied", || {
            let hash = self.dp.config_dump()?["hash"].clone();
            ensure!(hash != before, "still on the previous config");
            Ok(())
        })
    }

    /// An initialized client of `path` (`/mcp/fixture`, `/mcp`, ...).
    pub fn client(&self, path: &str) -> anyhow::Result<McpClient> {
        let mut client = McpClient::new(self.dp.public_url(path));
        client.initialize()?;
        Ok(client)
    }

    /// An initialized client of `path` presenting the API key `key`.
    pub fn client_with_key(&self, path: &str, key: &str) -> anyhow::Result<McpClient> {
        let mut client = McpClient::new(self.dp.public_url(path))
            .with_header("Authorization", &format!("Bearer {key}"));
        client.initialize()?;
        Ok(client)
    }

    /// The admin `/metrics` text.
    pub fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.dp.admin_get("/metrics")?.text())
    }
}

fn config_text(fixture: &Fixture, policies: &str) -> String {
    let url = fixture.mcp_url();
    format!(
        "servers:\n  - id: fixture\n    url: {url}\n    timeout_ms: 10000\n  - id: twin\n    url: {url}\n    timeout_ms: 10000\n{policies}"
    )
}

/// The JSON-RPC error of an exchange, or why there is none.
pub(super) fn error_of(exchange: &Exchange) -> anyhow::Result<Value> {
    let message = exchange
        .message
        .as_ref()
        .ok_or_else(|| anyhow!("no JSON-RPC message: {}", exchange.response.text()))?;
    message
        .get("error")
        .cloned()
        .ok_or_else(|| anyhow!("expected an error, got {message}"))
}

/// `tools/call` of `tool` with `arguments`.
pub(super) fn call(
    client: &mut McpClient,
    tool: &str,
    arguments: Value,
) -> anyhow::Result<Exchange> {
    client.exchange("tools/call", json!({"name": tool, "arguments": arguments}))
}

/// Assert that `exchange` is the ACL's refusal with exactly `message`, at HTTP 200.
pub(super) fn assert_denied(exchange: &Exchange, message: &str) -> anyhow::Result<()> {
    let error = error_of(exchange)?;
    assert_eq!(exchange.response.status, 200, "{error}");
    assert_eq!(error["code"], json!(ACCESS_DENIED), "{error}");
    assert_eq!(error["message"], json!(message), "{error}");
    Ok(())
}

/// The `key` of every item of the list `field` a `method` result holds.
pub(super) fn names(
    client: &mut McpClient,
    method: &str,
    field: &str,
    key: &str,
) -> anyhow::Result<Vec<String>> {
    let result = client.request(method, json!({}))?;
    let items = result[field]
        .as_array()
        .with_context(|| format!("{method}: no {field} in {result}"))?;
    Ok(items
        .iter()
        .filter_map(|item| item[key].as_str().map(str::to_owned))
        .collect())
}

/// An `auth` section with the API key `key-<client>` for each client (tenant `acme`).
pub(super) fn api_keys<S: AsRef<str>>(clients: &[S]) -> String {
    let mut yaml = String::from("auth:\n  method: api-key\n  api_keys:\n");
    for client in clients {
        let client = client.as_ref();
        yaml.push_str(&format!(
            "    - key: key-{client}\n      client_id: {client}\n      tenant_id: acme\n"
        ));
    }
    yaml
}

/// The support policy: `anonymous` may call `echo` (and `add`, but a deny rule wins), read
/// `fixture://` resources and get `greeting` on `fixture` only; a later catch-all policy
/// would allow everything, but the first matching policy decides alone.
const SUPPORT_ACL: &str = "acl:
  default_action: deny
  policies:
    - name: support
      clients: [\"anonymous\"]
      allow:
        - server: fixture
          tools: [\"echo\", \"add\", \"get_*\"]
          resources: [\"fixture://*\"]
          prompts: [\"greeting\"]
      deny:
        - server: fixture
          tools: [\"add\"]
    - name: everyone
      clients: [\"*\"]
      allow:
        - server: \"*\"
          tools: [\"*\"]
          resources: [\"*\"]
          prompts: [\"*\"]
";

#[test]
fn tool_calls_are_allowed_or_denied_per_policy() -> anyhow::Result<()> {
    let gateway = PolicyGateway::start(SUPPORT_ACL)?;
    let mut client = gateway.client("/mcp/fixture")?;

    assert_eq!(
        client.call_tool_text("echo", json!({"message": "hi"}))?,
        "hi"
    );
    // Deny beats allow.
    assert_denied(
        &call(&mut client, "add", json!({"a": 1, "b": 2}))?,
        "access denied: client 'anonymous' may not call tool 'add' on server 'fixture'",
    )?;
    // Not allowed by the first matching policy; the catch-all after it does not count.
    assert_denied(
        &call(&mut client, "sleep", json!({"ms": 1}))?,
        "access denied: client 'anonymous' may not call tool 'sleep' on server 'fixture'",
    )?;
    // Case-sensitive; `get_*` does not match `get`.
    for tool in ["Echo", "get"] {
        let exchange = call(&mut client, tool, json!({}))?;
        assert_eq!(error_of(&exchange)?["code"], json!(ACCESS_DENIED), "{tool}");
    }
    // Extra parameters change nothing.
    let exchange = client.exchange(
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "x"}, "as_user": "admin", "admin": true}),
    )?;
    assert!(
        exchange
            .message
            .as_ref()
            .is_some_and(|m| m.get("result").is_some())
    );

    // The same tool on another server: denied.
    let mut twin = gateway.client("/mcp/twin")?;
    assert_denied(
        &call(&mut twin, "echo", json!({"message": "hi"}))?,
        "access denied: client 'anonymous' may not call tool 'echo' on server 'twin'",
    )?;

    // Lists show only what may be called (the fixture answers with event streams).
    assert_eq!(client.list_tools()?, ["echo"]);
    assert_eq!(twin.list_tools()?, Vec::<String>::new());

    // Batch entries are admitted one by one.
    let batch = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "b"}}},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 1}}}
    ]);
    let response = conduit_e2e::http::request(
        "POST",
        &gateway.dp.mcp_url("fixture"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", client.session_id().unwrap_or_default()),
        ],
        Some(&serde_json::to_vec(&batch)?),
        Duration::from_secs(20),
    )?;
    let replies = response.json()?;
    assert_eq!(replies[0]["result"]["content"][0]["text"], "b", "{replies}");
    assert_eq!(
        replies[1]["error"]["code"],
        json!(ACCESS_DENIED),
        "{replies}"
    );

    let metrics = gateway.metrics()?;
    assert!(
        metrics.contains("conduit_acl_denials_total{kind=\"tool\",server=\"fixture\"}"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn resource_reads_and_prompt_gets_are_governed_and_their_lists_filtered() -> anyhow::Result<()> {
    let gateway = PolicyGateway::start(SUPPORT_ACL)?;
    let mut client = gateway.client("/mcp/fixture")?;

    let read = client.request("resources/read", json!({"uri": "fixture://greeting"}))?;
    assert!(read["contents"][0]["text"].is_string(), "{read}");
    assert_denied(
        &client.exchange("resources/read", json!({"uri": "test://static-text"}))?,
        "access denied: client 'anonymous' may not read resource 'test://static-text' on server 'fixture'",
    )?;
    assert_denied(
        &client.exchange(
            "resources/subscribe",
            json!({"uri": "test://watched-resource"}),
        )?,
        "access denied: client 'anonymous' may not read resource 'test://watched-resource' on server 'fixture'",
    )?;
    let prompt = client.request(
        "prompts/get",
        json!({"name": "greeting", "arguments": {"name": "Ada"}}),
    )?;
    assert!(prompt["messages"].is_array(), "{prompt}");
    assert_denied(
        &client.exchange("prompts/get", json!({"name": "test_simple_prompt"}))?,
        "access denied: client 'anonymous' may not get prompt 'test_simple_prompt' on server 'fixture'",
    )?;

    let uris = names(&mut client, "resources/list", "resources", "uri")?;
    assert!(!uris.is_empty());
    assert!(
        uris.iter().all(|uri| uri.starts_with("fixture://")),
        "{uris:?}"
    );
    let templates = names(
        &mut client,
        "resources/templates/list",
        "resourceTemplates",
        "uriTemplate",
    )?;
    assert!(templates.is_empty(), "{templates:?}");
    assert_eq!(
        names(&mut client, "prompts/list", "prompts", "name")?,
        ["greeting"]
    );

    let metrics = gateway.metrics()?;
    for kind in ["resource", "prompt"] {
        let series = format!("conduit_acl_denials_total{{kind=\"{kind}\",server=\"fixture\"}}");
        assert!(metrics.contains(&series), "{series} in {metrics}");
    }
    Ok(())
}

#[test]
fn an_unmatched_client_gets_the_default_action_and_a_reload_applies_at_once() -> anyhow::Result<()>
{
    let agents_only = |default: &str| {
        format!(
            "acl:\n  default_action: {default}\n  policies:\n    - name: agents\n      clients: [\"agent-*\"]\n      allow:\n        - server: \"*\"\n          tools: [\"*\"]\n"
        )
    };
    let gateway = PolicyGateway::start(&agents_only("deny"))?;
    let mut client = gateway.client("/mcp/fixture")?;
    assert_denied(
        &call(&mut client, "echo", json!({"message": "x"}))?,
        "access denied: client 'anonymous' may not call tool 'echo' on server 'fixture'",
    )?;
    assert!(client.list_tools()?.is_empty());

    gateway.replace(&agents_only("allow"))?;
    assert_eq!(
        client.call_tool_text("echo", json!({"message": "now"}))?,
        "now"
    );
    assert!(client.list_tools()?.contains(&"echo".to_owned()));
    Ok(())
}

#[test]
fn aggregates_decide_on_the_unprefixed_name_of_each_member() -> anyhow::Result<()> {
    let gateway = PolicyGateway::start(SUPPORT_ACL)?;
    let mut client = gateway.client("/mcp")?;

    assert_eq!(client.list_tools()?, ["fixture.echo"]);
    assert_eq!(
        client.call_tool_text("fixture.echo", json!({"message": "agg"}))?,
        "agg"
    );
    assert_denied(
        &call(&mut client, "fixture.add", json!({"a": 1, "b": 2}))?,
        "access denied: client 'anonymous' may not call tool 'add' on server 'fixture'",
    )?;
    assert_denied(
        &call(&mut client, "twin.echo", json!({"message": "x"}))?,
        "access denied: client 'anonymous' may not call tool 'echo' on server 'twin'",
    )?;
    assert_eq!(
        names(&mut client, "prompts/list", "prompts", "name")?,
        ["fixture.greeting"]
    );
    assert_denied(
        &client.exchange(
            "prompts/get",
            json!({"name": "twin.greeting", "arguments": {"name": "x"}}),
        )?,
        "access denied: client 'anonymous' may not get prompt 'greeting' on server 'twin'",
    )?;
    let uris = names(&mut client, "resources/list", "resources", "uri")?;
    assert!(
        uris.iter().all(|uri| uri.starts_with("fixture://")),
        "{uris:?}"
    );
    let read = client.request("resources/read", json!({"uri": "fixture://about"}))?;
    assert!(read["contents"][0]["text"].is_string(), "{read}");
    assert_denied(
        &client.exchange("resources/read", json!({"uri": "test://static-text"}))?,
        "access denied: client 'anonymous' may not read resource 'test://static-text' on server 'fixture'",
    )?;
    Ok(())
}

#[test]
fn json_answers_of_a_stdio_server_are_filtered_too() -> anyhow::Result<()> {
    let gateway = StdioGateway::start(10_000)?;
    let acl = "acl:\n  default_action: deny\n  policies:\n    - name: p\n      clients: [\"anonymous\"]\n      allow:\n        - server: local\n          tools: [\"echo\", \"add\"]\n";
    gateway.replace_config(format!(
        "{}{acl}",
        conduit_e2e::stdio::config_text(10_000, "acl")?
    ))?;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    for event_stream in [false, true] {
        let response = conduit_e2e::stdio::post(&gateway.url(), &list, event_stream)?;
        let messages = conduit_e2e::mcp::messages(&response)?;
        let reply = messages
            .iter()
            .find(|m| m["id"] == json!(1))
            .with_context(|| response.text())?;
        let mut tools: Vec<&str> = reply["result"]["tools"]
            .as_array()
            .context("no tools")?
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        tools.sort_unstable();
        assert_eq!(tools, ["add", "echo"], "event stream: {event_stream}");
        if !event_stream {
            assert_eq!(response.header("content-type"), Some("application/json"));
            assert_eq!(
                response.header("content-length"),
                Some(response.body.len().to_string().as_str())
            );
        }
    }
    let denied = conduit_e2e::stdio::post(
        &gateway.url(),
        &conduit_e2e::stdio::call(json!(2), "sleep", json!({"ms": 1})),
        false,
    )?;
    assert_eq!(denied.json()?["error"]["code"], json!(ACCESS_DENIED));
    Ok(())
}

#[test]
fn concurrent_requests_never_bypass_the_acl() -> anyhow::Result<()> {
    let gateway = PolicyGateway::start(SUPPORT_ACL)?;
    let url = gateway.dp.mcp_url("fixture");
    let outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..100)
            .map(|n| {
                let url = url.clone();
                scope.spawn(move || -> anyhow::Result<(usize, bool)> {
                    let mut client = McpClient::new(url);
                    client.initialize()?;
                    let (tool, args) = if n % 2 == 0 {
                        ("echo", json!({"message": format!("m{n}")}))
                    } else {
                        ("add", json!({"a": n, "b": 1}))
                    };
                    let exchange = call(&mut client, tool, args)?;
                    let message = exchange.message.context("no answer")?;
                    Ok((n, message.get("result").is_some()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("thread panicked"))
            .collect::<Vec<_>>()
    });
    for outcome in outcomes {
        let (n, passed) = outcome?;
        assert_eq!(passed, n % 2 == 0, "request {n}");
    }
    Ok(())
}

#[test]
fn a_policy_applied_with_conduitctl_holds_on_the_next_request_on_every_data_plane()
-> anyhow::Result<()> {
    let fleet = Fleet::start(2)?;
    for dp in &fleet.dps {
        super::common::proxied_echo(dp, "before")?;
    }
    // Clients with sessions opened before the change.
    let mut clients = Vec::new();
    for dp in &fleet.dps {
        let mut client = McpClient::new(dp.mcp_url("fixture"));
        client.initialize()?;
        clients.push(client);
    }
    let acl = "acl:\n  default_action: deny\n  policies:\n    - name: adders\n      clients: [\"anonymous\"]\n      allow:\n        - server: fixture\n          tools: [\"add\"]\n";
    let yaml = format!("{}{acl}", fixture_config(&fleet.fixture.mcp_url(), "acl"));
    // `apply --wait` returns once every data plane applied it: no polling after.
    let version = apply(&fleet.cp, "acl.yaml", &yaml, "deny echo", "alice")?;
    for (dp, client) in fleet.dps.iter().zip(&mut clients) {
        assert_eq!(dp.config_version()?, version);
        assert_denied(
            &call(client, "echo", json!({"message": "after"}))?,
            "access denied: client 'anonymous' may not call tool 'echo' on server 'fixture'",
        )?;
        assert_eq!(client.call_tool_text("add", json!({"a": 1, "b": 1}))?, "2");
    }
    Ok(())
}

#[test]
fn a_governance_tool_policy_denies_and_hides_a_tool() -> anyhow::Result<()> {
    let governance = "governance:\n  tool_policies:\n    - name: no-adding\n      tools: [\"add\"]\n      servers: [\"fixture\"]\n      effect: deny\n      reason: adding is reserved to accountants\n";
    let gateway = PolicyGateway::start(governance)?;
    let mut client = gateway.client("/mcp/fixture")?;
    let error = error_of(&call(&mut client, "add", json!({"a": 1, "b": 2}))?)?;
    assert_eq!(
        error,
        json!({"code": -32010, "message": "adding is reserved to accountants", "data": {"policy": "no-adding"}})
    );
    let tools = client.list_tools()?;
    assert!(
        tools.contains(&"echo".to_owned()) && !tools.contains(&"add".to_owned()),
        "{tools:?}"
    );
    let mut aggregate = gateway.client("/mcp")?;
    let tools = aggregate.list_tools()?;
    assert!(!tools.contains(&"fixture.add".to_owned()), "{tools:?}");
    assert!(tools.contains(&"twin.add".to_owned()), "{tools:?}");
    assert_eq!(
        aggregate.call_tool_text("twin.add", json!({"a": 1, "b": 2}))?,
        "3"
    );
    let error = error_of(&call(
        &mut aggregate,
        "fixture.add",
        json!({"a": 1, "b": 2}),
    )?)?;
    assert_eq!(error["code"], json!(-32010), "{error}");
    assert!(
        gateway
            .metrics()?
            .contains("conduit_governance_denials_total{policy=\"no-adding\"} 2")
    );
    Ok(())
}

/// Three clients: support agents may only echo on `fixture` (their policy comes first, so
/// the wider `agent-*` policy never applies to them), other agents may call anything but
/// `add` on `twin`, anyone else gets `default_action: deny`.
const AGENTS_ACL: &str = "acl:
  default_action: deny
  policies:
    - name: support
      clients: [\"agent-support-*\"]
      allow:
        - server: fixture
          tools: [\"echo\"]
    - name: agents
      clients: [\"agent-*\"]
      allow:
        - server: \"*\"
          tools: [\"*\"]
      deny:
        - server: twin
          tools: [\"add\"]
";

#[test]
fn each_client_calls_and_sees_what_its_own_policy_allows() -> anyhow::Result<()> {
    let policies = format!(
        "{}{AGENTS_ACL}",
        api_keys(&["agent-support-1", "agent-2", "stranger"])
    );
    let gateway = PolicyGateway::start(&policies)?;

    let mut support = gateway.client_with_key("/mcp/fixture", "key-agent-support-1")?;
    assert_eq!(
        support.call_tool_text("echo", json!({"message": "s"}))?,
        "s"
    );
    assert_denied(
        &call(&mut support, "add", json!({"a": 1, "b": 2}))?,
        "access denied: client 'agent-support-1' may not call tool 'add' on server 'fixture'",
    )?;
    assert_eq!(support.list_tools()?, ["echo"]);

    let mut agent = gateway.client_with_key("/mcp/fixture", "key-agent-2")?;
    assert_eq!(agent.call_tool_text("add", json!({"a": 1, "b": 2}))?, "3");
    let tools = agent.list_tools()?;
    assert!(
        tools.len() > 2 && tools.contains(&"add".to_owned()),
        "{tools:?}"
    );
    // The same tool on another server: denied (deny beats the wildcard allow).
    let mut agent_twin = gateway.client_with_key("/mcp/twin", "key-agent-2")?;
    assert_denied(
        &call(&mut agent_twin, "add", json!({"a": 1, "b": 2}))?,
        "access denied: client 'agent-2' may not call tool 'add' on server 'twin'",
    )?;
    assert!(!agent_twin.list_tools()?.contains(&"add".to_owned()));

    let mut stranger = gateway.client_with_key("/mcp/fixture", "key-stranger")?;
    assert_denied(
        &call(&mut stranger, "echo", json!({"message": "x"}))?,
        "access denied: client 'stranger' may not call tool 'echo' on server 'fixture'",
    )?;
    assert!(stranger.list_tools()?.is_empty());

    // On the aggregate, each sees its own prefixed list.
    let mut support = gateway.client_with_key("/mcp", "key-agent-support-1")?;
    assert_eq!(support.list_tools()?, ["fixture.echo"]);
    let mut agent = gateway.client_with_key("/mcp", "key-agent-2")?;
    let tools = agent.list_tools()?;
    assert!(tools.contains(&"twin.echo".to_owned()), "{tools:?}");
    assert!(tools.contains(&"fixture.add".to_owned()), "{tools:?}");
    assert!(!tools.contains(&"twin.add".to_owned()), "{tools:?}");
    Ok(())
}

#[test]
fn a_hundred_concurrent_clients_never_bypass_the_acl() -> anyhow::Result<()> {
    let clients: Vec<String> = (0..100)
        .map(|n| format!("{}-{n}", if n % 2 == 0 { "even" } else { "odd" }))
        .collect();
    let acl = "acl:\n  default_action: deny\n  policies:\n    - name: even\n      clients: [\"even-*\"]\n      allow:\n        - server: fixture\n          tools: [\"echo\"]\n    - name: odd\n      clients: [\"odd-*\"]\n      allow:\n        - server: fixture\n          tools: [\"add\"]\n";
    let gateway = PolicyGateway::start(&format!("{}{acl}", api_keys(&clients)))?;
    let url = gateway.dp.mcp_url("fixture");
    let outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .map(|client| {
                let url = url.clone();
                scope.spawn(move || -> anyhow::Result<(String, Value)> {
                    let mut mcp = McpClient::new(url)
                        .with_header("Authorization", &format!("Bearer key-{client}"));
                    mcp.initialize()?;
                    let exchange = call(&mut mcp, "echo", json!({"message": client}))?;
                    Ok((client.clone(), exchange.message.context("no answer")?))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("thread panicked"))
            .collect::<Vec<_>>()
    });
    for outcome in outcomes {
        let (client, message) = outcome?;
        if client.starts_with("even") {
            assert_eq!(
                message["result"]["content"][0]["text"],
                json!(client),
                "{message}"
            );
        } else {
            assert_eq!(
                message["error"]["message"],
                json!(format!(
                    "access denied: client '{client}' may not call tool 'echo' on server 'fixture'"
                )),
                "{message}"
            );
        }
    }
    Ok(())
}
