//! stdio servers and tenants (finding 3 of the external review): two API-key clients of
//! different tenants on one stdio server. The review saw client B, with a streaming call
//! open, receive the elicitation client A's tool call caused, answer it, and A's tool
//! return B's answer; and B's `notifications/cancelled` with `requestId: 7` cancel A's
//! call 7. Now what the process sends reaches only the caller it is attributed to (or is
//! refused), cancellations match only the sender's requests, and `isolation: tenant` or
//! `client` gives each tenant or client a process of its own, within `max_processes`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use conduit_e2e::mcp::{PROTOCOL_VERSION, messages};
use conduit_e2e::sse::EventStream;
use conduit_e2e::stdio::{REQUEST_TIMEOUT, call, text_of};
use conduit_e2e::{
    DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, binaries, http, procfs, wait_until,
};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Tenant `acme`'s client.
const A: &str = "key-of-agent-a";
/// Tenant `globex`'s client.
const B: &str = "key-of-agent-b";
/// Tenant `initech`'s client.
const C: &str = "key-of-agent-c";
/// A second client of tenant `acme`.
const A2: &str = "key-of-agent-a2";

/// A standalone data plane with the fixture over stdio as `local` and four API keys.
struct Gateway {
    dp: DataPlane,
    _dir: TempDir,
}

impl Gateway {
    /// `isolation` holds the server's extra lines (e.g. `isolation: tenant`), if any.
    fn start(isolation: &[&str]) -> anyhow::Result<Gateway> {
        let dir = tempfile::tempdir()?;
        let fixture = binaries::binary(binaries::FIXTURE)?;
        let mut text = format!(
            "servers:\n  - id: local\n    transport: stdio\n    command: {}\n    args: [\"--stdio\"]\n    timeout_ms: 30000\n",
            serde_json::to_string(&fixture.display().to_string())?
        );
        for line in isolation {
            text.push_str(&format!("    {line}\n"));
        }
        text.push_str("auth:\n  method: api-key\n  api_keys:\n");
        for (key, client, tenant) in [
            (A, "agent-a", "acme"),
            (A2, "agent-a2", "acme"),
            (B, "agent-b", "globex"),
            (C, "agent-c", "initech"),
        ] {
            text.push_str(&format!(
                "    - key: {key}\n      client_id: {client}\n      tenant_id: {tenant}\n"
            ));
        }
        let config: PathBuf = dir.path().join("conduit.yaml");
        std::fs::write(&config, text)?;
        let dp = DataPlane::start(DataPlaneOptions {
            node_id: "stdio-tenants".into(),
            config_file: Some(config),
            wait_ready: true,
            ..DataPlaneOptions::default()
        })?;
        Ok(Gateway { dp, _dir: dir })
    }

    fn url(&self) -> String {
        self.dp.mcp_url("local")
    }

    /// POST `body` with `key`, as plain JSON.
    fn post(&self, key: &str, body: &Value) -> anyhow::Result<http::Response> {
        http::request(
            "POST",
            &self.url(),
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
                ("MCP-Protocol-Version", PROTOCOL_VERSION),
                ("X-API-Key", key),
            ],
            Some(&serde_json::to_vec(body)?),
            REQUEST_TIMEOUT,
        )
    }

    /// POST `body` with `key`, reading the event stream as it comes.
    fn stream(&self, key: &str, body: &Value) -> anyhow::Result<EventStream> {
        let stream =
            EventStream::post_with(&self.url(), body, &[("X-API-Key", key)], REQUEST_TIMEOUT)?;
        ensure!(stream.status == 200, "HTTP {}", stream.status);
        Ok(stream)
    }

    /// The `GET` stream of `key`'s client.
    fn listen(&self, key: &str) -> anyhow::Result<EventStream> {
        let stream = EventStream::get_with(&self.url(), &[("X-API-Key", key)], REQUEST_TIMEOUT)?;
        ensure!(stream.status == 200, "HTTP {}", stream.status);
        Ok(stream)
    }

    /// The stdio processes the data plane runs now.
    fn children(&self) -> anyhow::Result<Vec<u32>> {
        let dp = self.dp.pid().context("the data plane is not running")?;
        let mut alive: Vec<u32> = procfs::children(dp)?
            .into_iter()
            .filter(|pid| procfs::is_alive(*pid))
            .collect();
        alive.sort_unstable();
        Ok(alive)
    }

    fn metric(&self, line_start: &str) -> anyhow::Result<Option<f64>> {
        let text = self.dp.admin_get("/metrics")?.text();
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix(line_start))
            .and_then(|value| value.trim().parse().ok()))
    }
}

fn cancel(id: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
           "params": {"requestId": id, "reason": "test"}})
}

fn initialize(id: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize",
           "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {"elicitation": {}},
                      "clientInfo": {"name": "e2e", "version": "0"}}})
}

#[test]
fn an_elicitation_reaches_only_the_tenant_whose_call_caused_it() -> anyhow::Result<()> {
    let gw = Gateway::start(&[])?;
    ensure!(gw.post(A, &initialize(json!(0)))?.status == 200);
    let mut b_listening = gw.listen(B)?;
    // B's streaming call is open first: the old rule handed A's elicitation to it.
    let mut b_sleeping = gw.stream(B, &call(json!("b-1"), "sleep", json!({"ms": 60_000})))?;

    // A's call causes an elicitation that names no request: with B's call outstanding too
    // it could be either's, and the gateway refuses it instead of guessing.
    let mut a_call = gw.stream(
        A,
        &call(
            json!(7),
            "test_elicitation",
            json!({"message": "confirm wire transfer of 1,000,000 to account 42"}),
        ),
    )?;
    let a_messages = a_call.rest()?;
    let last = a_messages.last().context("A got no answer")?;
    assert_eq!(a_messages.len(), 1, "{a_messages:?}");
    assert_eq!(last["id"], 7, "{last}");
    let refusal = last["error"]["message"].as_str().unwrap_or_default();
    assert!(refusal.contains("elicitation/create failed"), "{last}");
    assert!(refusal.contains("does not guess"), "{last}");

    // Given a progress token, the fixture names its call in the elicitation's
    // `_meta.relatedRequestId`: exact, even with B's call outstanding.
    let mut body = call(
        json!(8),
        "test_elicitation",
        json!({"message": "confirm wire transfer of 1,000,000 to account 42"}),
    );
    body["params"]["_meta"] = json!({"progressToken": "a-progress"});
    let mut a_call = gw.stream(A, &body)?;
    let elicitation = a_call.next_message()?.context("A's stream ended early")?;
    assert_eq!(elicitation["method"], "elicitation/create", "{elicitation}");
    assert!(
        elicitation["params"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("confirm wire transfer")),
        "{elicitation}"
    );
    assert_eq!(
        elicitation["params"]["_meta"]["relatedRequestId"], 8,
        "A sees its own id, not the gateway's"
    );
    let elicitation_id = elicitation["id"].clone();
    let answer = |who: &str| {
        json!({"jsonrpc": "2.0", "id": elicitation_id,
               "result": {"action": "accept",
                          "content": {"username": who, "email": format!("{who}@example.com")}}})
    };
    // B learns the id somehow: its answer is still not taken.
    let stolen = gw.post(B, &answer("mallory"))?;
    assert_eq!(stolen.status, 400, "{}", stolen.text());
    assert_eq!(stolen.json()?["id"], elicitation_id);
    let accepted = gw.post(A, &answer("alice"))?;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let last = a_call.rest()?.pop().context("A got no answer")?;
    assert_eq!(last["id"], 8, "{last}");
    let text = text_of(&last["result"]);
    assert!(
        text.contains("alice@example.com") && !text.contains("mallory"),
        "A's call returned {text}"
    );

    // B ends its own call; it saw nothing of A's.
    assert_eq!(gw.post(B, &cancel(json!("b-1")))?.status, 202);
    let b_messages = b_sleeping.rest()?;
    assert!(
        b_messages.is_empty(),
        "B's call stream carried {b_messages:?}"
    );
    // B's GET stream: the first thing on it is B's own log message (B's plain-JSON call
    // has no stream, so its logging goes there), not A's elicitation.
    let logged = gw.post(B, &call(json!("b-2"), "test_tool_with_logging", json!({})))?;
    assert_eq!(logged.status, 200, "{}", logged.text());
    let first = b_listening
        .next_message()?
        .context("B's GET stream ended")?;
    assert_eq!(first["method"], "notifications/message", "{first}");
    assert_eq!(first["params"]["data"], "Tool execution started", "{first}");

    let unrouted =
        gw.metric("conduit_dp_stdio_unrouted_total{message=\"request\",server=\"local\"}")?;
    assert_eq!(unrouted, Some(1.0));
    Ok(())
}

#[test]
fn a_cancellation_only_cancels_the_senders_own_request() -> anyhow::Result<()> {
    let gw = Gateway::start(&[])?;
    ensure!(gw.post(A, &initialize(json!(0)))?.status == 200);
    let mut a_call = gw.stream(A, &call(json!(7), "sleep", json!({"ms": 3_000})))?;
    // B names A's id: B has no request 7, so nothing is cancelled.
    assert_eq!(gw.post(B, &cancel(json!(7)))?.status, 202);
    let answers = a_call.rest()?;
    let last = answers.last().context("A's call was cancelled by B")?;
    assert_eq!(last["id"], 7, "{answers:?}");
    assert_eq!(text_of(&last["result"]), "slept 3000 ms", "{last}");

    // A's own cancellation still works.
    let mut a_call = gw.stream(A, &call(json!(7), "sleep", json!({"ms": 60_000})))?;
    assert_eq!(gw.post(A, &cancel(json!(7)))?.status, 202);
    let answers = a_call.rest()?;
    assert!(answers.is_empty(), "{answers:?}");
    Ok(())
}

/// POST `initialize` with `key` until it is answered 200 (a process slot frees up).
fn initialize_eventually(gw: &Gateway, key: &str) -> anyhow::Result<()> {
    wait_until(Duration::from_secs(60), "a process for the caller", || {
        let response = gw.post(key, &initialize(json!(1)))?;
        if response.status != 200 {
            bail!("HTTP {}: {}", response.status, response.text());
        }
        Ok(())
    })
}

#[test]
fn tenant_isolation_runs_a_process_per_tenant_within_the_bound() -> anyhow::Result<()> {
    let gw = Gateway::start(&[
        "isolation: tenant",
        "max_processes: 2",
        "idle_timeout_ms: 2000",
    ])?;
    // Nothing runs before the first request of a tenant.
    assert_eq!(gw.children()?, Vec::<u32>::new());

    let echo = |key: &str, message: &str| -> anyhow::Result<String> {
        let response = gw.post(key, &call(json!(1), "echo", json!({"message": message})))?;
        ensure!(
            response.status == 200,
            "HTTP {}: {}",
            response.status,
            response.text()
        );
        Ok(text_of(&messages(&response)?[0]["result"]).to_owned())
    };
    assert_eq!(echo(A, "a")?, "a");
    let first = wait_until(
        DEFAULT_TIMEOUT,
        "one process",
        || match gw.children()?[..] {
            [pid] => Ok(pid),
            ref other => bail!("{other:?}"),
        },
    )?;
    // Another client of the same tenant uses the same process; another tenant gets its own.
    assert_eq!(echo(A2, "a2")?, "a2");
    assert_eq!(gw.children()?, [first]);
    assert_eq!(echo(B, "b")?, "b");
    let both = gw.children()?;
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both.contains(&first));

    // A third tenant would need a third process: refused, with its id, and counted.
    let refused = gw.post(C, &call(json!("c-1"), "echo", json!({"message": "c"})))?;
    assert_eq!(refused.status, 503, "{}", refused.text());
    let error = refused.json()?;
    assert_eq!(error["id"], "c-1", "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("max_processes") && message.contains("2"),
        "{error}"
    );
    assert_eq!(gw.children()?, both);
    assert_eq!(
        gw.metric("conduit_dp_stdio_refused_total{server=\"local\"}")?,
        Some(1.0)
    );

    // Idle processes are stopped after idle_timeout_ms, and C gets a slot.
    initialize_eventually(&gw, C)?;
    assert_eq!(echo(C, "c")?, "c");
    wait_until(DEFAULT_TIMEOUT, "only C's process", || {
        let now = gw.children()?;
        ensure!(now.len() == 1 && !both.contains(&now[0]), "{now:?}");
        Ok(())
    })?;
    Ok(())
}

#[test]
fn client_isolation_runs_a_process_per_client() -> anyhow::Result<()> {
    let gw = Gateway::start(&["isolation: client", "max_processes: 1"])?;
    ensure!(gw.post(A, &initialize(json!(0)))?.status == 200);
    // The same tenant's other client would need a second process.
    let refused = gw.post(A2, &initialize(json!(0)))?;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.text().contains("one process per client"),
        "{}",
        refused.text()
    );
    wait_until(DEFAULT_TIMEOUT, "one process", || {
        ensure!(gw.children()?.len() == 1);
        Ok(())
    })?;
    Ok(())
}
