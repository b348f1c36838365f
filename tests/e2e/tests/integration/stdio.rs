//! stdio upstreams: a standalone data plane runs `conduit-mcp-fixture --stdio` itself,
//! initializes it, and serves it on `/mcp/local` to many concurrent clients; it restarts
//! the process when it dies and takes it down when the data plane stops.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use conduit_e2e::mcp::{McpClient, PROTOCOL_VERSION, messages};
use conduit_e2e::sse::EventStream;
use conduit_e2e::{DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, binaries, http, procfs};
use conduit_e2e::{wait::holds_for, wait_until};
use serde_json::{Value, json};
use tempfile::TempDir;

const SERVER: &str = "local";
/// Given to the data plane; its stdio servers must never see it.
const DP_TOKEN: &str = "dp-token-that-must-not-reach-a-stdio-server";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A standalone data plane whose only server is the fixture over stdio.
struct Gateway {
    dp: DataPlane,
    config: PathBuf,
    _dir: TempDir,
}

impl Gateway {
    fn start(timeout_ms: u64) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("conduit.yaml");
        std::fs::write(&config, config_text(timeout_ms, "first")?)?;
        let dp = DataPlane::start(DataPlaneOptions {
            node_id: "stdio".into(),
            config_file: Some(config.clone()),
            dp_token: Some(DP_TOKEN.into()),
            wait_ready: true,
            ..DataPlaneOptions::default()
        })?;
        Ok(Self {
            dp,
            config,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        self.dp.mcp_url(SERVER)
    }

    /// The pid of the stdio server process, once there is exactly one.
    fn child(&self) -> anyhow::Result<u32> {
        let dp = self.dp.pid().context("the data plane is not running")?;
        wait_until(DEFAULT_TIMEOUT, "one stdio server process", || {
            let children = procfs::children(dp)?;
            match children.as_slice() {
                [pid] if procfs::is_alive(*pid) => Ok(*pid),
                other => bail!("children of the data plane: {other:?}"),
            }
        })
    }

    /// Replace the config file atomically and wait until the data plane applied it.
    fn replace_config(&self, text: String) -> anyhow::Result<()> {
        let before = self.dp.config_dump()?["hash"].clone();
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.config)?;
        wait_until(DEFAULT_TIMEOUT, "the new config to be applied", || {
            let hash = self.dp.config_dump()?["hash"].clone();
            ensure!(hash != before, "still on the previous config");
            Ok(())
        })
    }

    fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.dp.admin_get("/metrics")?.text())
    }
}

fn config_text(timeout_ms: u64, marker: &str) -> anyhow::Result<String> {
    let fixture = binaries::binary(binaries::FIXTURE)?;
    let command = serde_json::to_string(&fixture.display().to_string())?;
    Ok(format!(
        "servers:\n  - id: {SERVER}\n    transport: stdio\n    command: {command}\n    args: [\"--stdio\"]\n    timeout_ms: {timeout_ms}\n    env:\n      CONDUIT_E2E_MARKER: \"{marker}\"\n"
    ))
}

fn call(id: Value, tool: &str, arguments: Value) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}
    })
}

/// POST one body; `event_stream` says whether the client accepts `text/event-stream`.
fn post(url: &str, body: &Value, event_stream: bool) -> anyhow::Result<http::Response> {
    let accept = if event_stream {
        "application/json, text/event-stream"
    } else {
        "application/json"
    };
    http::request(
        "POST",
        url,
        &[
            ("Content-Type", "application/json"),
            ("Accept", accept),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
        ],
        Some(&serde_json::to_vec(body)?),
        REQUEST_TIMEOUT,
    )
    .with_context(|| format!("POST {url}"))
}

fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[test]
fn the_gateway_initializes_the_process_and_serves_it() -> anyhow::Result<()> {
    let gw = Gateway::start(10_000)?;
    let mut client = McpClient::new(gw.url());
    let init = client.initialize()?;
    assert_eq!(init["serverInfo"]["name"], "conduit-mcp-fixture", "{init}");
    assert_eq!(init["protocolVersion"], PROTOCOL_VERSION, "{init}");
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    assert!(
        client.session_id().is_none(),
        "stdio servers need no session: any replica runs its own process"
    );

    let tools = client.list_tools()?;
    for name in [
        "echo",
        "add",
        "sleep",
        "test_sampling",
        "test_tool_with_progress",
    ] {
        assert!(tools.iter().any(|t| t == name), "{name} missing: {tools:?}");
    }
    assert_eq!(
        client.call_tool_text("echo", json!({"message": "over stdio"}))?,
        "over stdio"
    );
    assert_eq!(
        client.call_tool_text("add", json!({"a": 2, "b": 40}))?,
        "42"
    );

    // An older client is told its own protocol version.
    let older = post(
        &gw.url(),
        &json!({
            "jsonrpc": "2.0", "id": "old", "method": "initialize",
            "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                       "clientInfo": {"name": "old-client", "version": "0"}}
        }),
        true,
    )?;
    assert_eq!(older.header("x-conduit-server-id"), Some(SERVER));
    let older = &messages(&older)?[0];
    assert_eq!(older["id"], "old");
    assert_eq!(older["result"]["protocolVersion"], "2025-03-26", "{older}");

    // A batch: one answer per request, in order; none for the notification; the invalid
    // entry answered by the gateway with its id.
    let batch = post(
        &gw.url(),
        &json!([
            call(json!(1), "echo", json!({"message": "first"})),
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            call(json!("two"), "add", json!({"a": 1, "b": 1})),
            {"jsonrpc": "2.0", "id": "bad"},
        ]),
        false,
    )?;
    assert_eq!(batch.status, 200, "{}", batch.text());
    let answers = messages(&batch)?;
    let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
    assert_eq!(
        ids,
        [&json!(1), &json!("two"), &json!("bad")],
        "{answers:?}"
    );
    assert_eq!(text_of(&answers[0]["result"]), "first");
    assert_eq!(text_of(&answers[1]["result"]), "2");
    assert_eq!(answers[2]["error"]["code"], -32600);

    // Nothing upstream to end; the GET stream stays open.
    let deleted = http::request("DELETE", &gw.url(), &[], None, REQUEST_TIMEOUT)?;
    assert_eq!(deleted.status, 204);
    let mut listening = http::open(
        "GET",
        &gw.url(),
        &[("Accept", "text/event-stream")],
        REQUEST_TIMEOUT,
    )?;
    assert_eq!(listening.status, 200);
    assert_eq!(listening.header("content-type"), Some("text/event-stream"));
    assert!(listening.stays_open_for(Duration::from_millis(500))?);

    // The process got its configured env and the basics, not the data plane's secrets.
    let env = procfs::environ(gw.child()?)?;
    let get = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(get("CONDUIT_E2E_MARKER"), Some("first"));
    assert!(get("PATH").is_some(), "{env:?}");
    for leaked in ["CONDUIT_DP_TOKEN", "RUST_LOG", "NO_COLOR"] {
        assert_eq!(get(leaked), None, "{leaked} reached the stdio server");
    }
    Ok(())
}

#[test]
fn three_hundred_concurrent_callers_reusing_ids_each_get_their_own_answer() -> anyhow::Result<()> {
    let gw = Gateway::start(30_000)?;
    McpClient::new(gw.url()).initialize()?;
    let run = format!("{:x}", std::process::id());
    let callers = 300;
    let start = Arc::new(Barrier::new(callers));
    let handles: Vec<_> = (0..callers)
        .map(|i| {
            let url = gw.url();
            let start = Arc::clone(&start);
            let payload = format!("caller-{i}-run-{run}");
            // Thirty callers share each id: ten numbers and ten strings, all in flight at once.
            let id = match i % 2 {
                0 => json!(i % 10),
                _ => json!(format!("id-{}", i % 10)),
            };
            thread::spawn(move || -> anyhow::Result<()> {
                let body = call(id.clone(), "echo", json!({ "message": payload }));
                start.wait();
                let response = post(&url, &body, i % 3 == 0)?;
                ensure!(
                    response.status == 200,
                    "HTTP {}: {}",
                    response.status,
                    response.text()
                );
                let answers = messages(&response)?;
                ensure!(answers.len() == 1, "expected one answer, got {answers:?}");
                let answer = &answers[0];
                ensure!(answer["id"] == id, "sent id {id}, got {answer}");
                let text = text_of(&answer["result"]);
                ensure!(text == payload, "sent {payload:?}, got {text:?} ({answer})");
                Ok(())
            })
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .enumerate()
        .filter_map(|(i, handle)| match handle.join() {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(format!("caller {i}: {error:#}")),
            Err(_) => Some(format!("caller {i} panicked")),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {callers} callers failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn progress_reaches_the_caller_whose_token_it_is() -> anyhow::Result<()> {
    let gw = Gateway::start(30_000)?;
    McpClient::new(gw.url()).initialize()?;
    // Two callers with the same id and the same token, and one with a numeric token.
    let callers = [
        (json!(1), json!("tok")),
        (json!(1), json!("tok")),
        (json!("p"), json!(7)),
    ];
    let start = Arc::new(Barrier::new(callers.len()));
    let handles: Vec<_> = callers
        .into_iter()
        .map(|(id, token)| {
            let url = gw.url();
            let start = Arc::clone(&start);
            thread::spawn(move || -> anyhow::Result<()> {
                let mut body = call(id.clone(), "test_tool_with_progress", json!({}));
                body["params"]["_meta"] = json!({ "progressToken": token });
                start.wait();
                let mut stream = EventStream::post(&url, &body, REQUEST_TIMEOUT)?;
                let received = stream.rest()?;
                let (last, progress) = received.split_last().context("nothing received")?;
                let values: Vec<&Value> = progress
                    .iter()
                    .inspect(|m| assert_eq!(m["method"], "notifications/progress", "{m}"))
                    .map(|m| {
                        assert_eq!(m["params"]["progressToken"], token, "{m}");
                        &m["params"]["progress"]
                    })
                    .collect();
                ensure!(
                    values == [&json!(0.0), &json!(50.0), &json!(100.0)],
                    "progress {values:?} for token {token}"
                );
                ensure!(last["id"] == id, "{last}");
                ensure!(
                    text_of(&last["result"]) == "Tool with progress executed successfully",
                    "{last}"
                );
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("caller panicked")?;
    }
    Ok(())
}

#[test]
fn sampling_and_elicitation_round_trip_through_the_client_that_answers() -> anyhow::Result<()> {
    let gw = Gateway::start(30_000)?;
    let url = gw.url();
    McpClient::new(url.clone()).initialize()?;

    let mut stream = EventStream::post(
        &url,
        &call(
            json!("s-1"),
            "test_sampling",
            json!({"prompt": "What is 2+2?"}),
        ),
        REQUEST_TIMEOUT,
    )?;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let request = stream.next_message()?.context("the stream ended early")?;
    assert_eq!(request["method"], "sampling/createMessage", "{request}");
    assert_eq!(
        request["params"]["messages"][0]["content"]["text"],
        "What is 2+2?"
    );
    let gateway_id = request["id"].clone();
    assert!(gateway_id.is_string(), "{request}");
    let reply = json!({
        "jsonrpc": "2.0", "id": gateway_id,
        "result": {"role": "assistant", "content": {"type": "text", "text": "four, says e2e"},
                   "model": "e2e-model", "stopReason": "endTurn"}
    });
    let accepted = post(&url, &reply, false)?;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let rest = stream.rest()?;
    let last = rest.last().context("no answer")?;
    assert_eq!(last["id"], "s-1", "{rest:?}");
    assert_eq!(text_of(&last["result"]), "LLM response: four, says e2e");

    // Answered once: a second answer has nobody waiting for it.
    let again = post(&url, &reply, false)?;
    assert_eq!(again.status, 400, "{}", again.text());
    assert_eq!(again.json()?["id"], gateway_id);

    let mut stream = EventStream::post(
        &url,
        &call(
            json!(2),
            "test_elicitation",
            json!({"message": "Who are you?"}),
        ),
        REQUEST_TIMEOUT,
    )?;
    let request = stream.next_message()?.context("the stream ended early")?;
    assert_eq!(request["method"], "elicitation/create", "{request}");
    assert_eq!(request["params"]["message"], "Who are you?");
    let reply = json!({
        "jsonrpc": "2.0", "id": request["id"],
        "result": {"action": "accept", "content": {"username": "e2e", "email": "e2e@example.com"}}
    });
    assert_eq!(post(&url, &reply, false)?.status, 202);
    let last = stream.rest()?.pop().context("no answer")?;
    assert_eq!(last["id"], 2);
    let text = text_of(&last["result"]);
    assert!(
        text.starts_with("User response: action=accept") && text.contains("e2e@example.com"),
        "{text}"
    );
    Ok(())
}

#[test]
fn a_hanging_call_times_out_alone() -> anyhow::Result<()> {
    let gw = Gateway::start(1_500)?;
    let url = gw.url();
    McpClient::new(url.clone()).initialize()?;

    let slow = thread::spawn({
        let url = url.clone();
        move || {
            let started = Instant::now();
            let response = post(
                &url,
                &call(json!("slow-1"), "sleep", json!({"ms": 60_000})),
                false,
            );
            (started.elapsed(), response)
        }
    });
    // Other callers are served while it hangs.
    let mut served = 0;
    while !slow.is_finished() {
        let message = format!("meanwhile-{served}");
        let response = post(
            &url,
            &call(json!(served), "echo", json!({"message": message})),
            false,
        )?;
        let answer = &messages(&response)?[0];
        assert_eq!(text_of(&answer["result"]), message, "{answer}");
        served += 1;
    }
    assert!(served > 0);
    let (elapsed, response) = slow.join().expect("no panic");
    let response = response?;
    assert_eq!(response.status, 504, "{}", response.text());
    let error = response.json()?;
    assert_eq!(error["id"], "slow-1", "{error}");
    assert_eq!(error["error"]["code"], -32603, "{error}");
    assert!(
        elapsed < Duration::from_secs(30),
        "a 1.5 s timeout answered after {elapsed:?} (the tool sleeps 60 s)"
    );

    // Over an event stream the error is the stream's last event.
    let mut stream = EventStream::post(
        &url,
        &call(json!("slow-2"), "sleep", json!({"ms": 60_000})),
        REQUEST_TIMEOUT,
    )?;
    let last = stream.rest()?.pop().context("no answer")?;
    assert_eq!(last["id"], "slow-2", "{last}");
    assert_eq!(last["error"]["code"], -32603, "{last}");

    // The process was not restarted and keeps serving.
    let mut client = McpClient::new(url);
    assert_eq!(
        client.call_tool_text("echo", json!({"message": "after"}))?,
        "after"
    );
    let metrics = gw.metrics()?;
    assert!(
        metrics.contains("conduit_dp_stdio_up{server=\"local\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("conduit_dp_stdio_restarts_total{server=\"local\"}"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn a_killed_process_fails_its_pending_callers_and_is_started_again() -> anyhow::Result<()> {
    let gw = Gateway::start(30_000)?;
    let url = gw.url();
    McpClient::new(url.clone()).initialize()?;
    let child = gw.child()?;

    // Two callers whose requests are provably in flight: each tool waits for the client.
    let mut first = EventStream::post(
        &url,
        &call(json!("k-1"), "test_sampling", json!({})),
        REQUEST_TIMEOUT,
    )?;
    let request = first.next_message()?.context("no sampling request")?;
    assert_eq!(request["method"], "sampling/createMessage");
    let mut second = EventStream::post(
        &url,
        &call(json!("k-2"), "test_elicitation", json!({})),
        REQUEST_TIMEOUT,
    )?;
    // A server→client request goes to the oldest streaming caller.
    let request = first.next_message()?.context("no elicitation request")?;
    assert_eq!(request["method"], "elicitation/create");

    let pid = rustix::process::Pid::from_raw(i32::try_from(child)?).context("pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;

    for (stream, id) in [(&mut first, "k-1"), (&mut second, "k-2")] {
        let last = stream.rest()?.pop().context("no answer")?;
        assert_eq!(last["id"], id, "{last}");
        assert_eq!(last["error"]["code"], -32603, "{last}");
        let message = last["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("ended"), "{message}");
    }

    // Started again, initialized again, serving again.
    wait_until(DEFAULT_TIMEOUT, "the stdio server to serve again", || {
        let text =
            McpClient::new(url.clone()).call_tool_text("echo", json!({"message": "back"}))?;
        ensure!(text == "back", "{text}");
        Ok(())
    })?;
    let restarted = gw.child()?;
    assert_ne!(restarted, child);
    assert!(!procfs::is_alive(child));
    let metrics = gw.metrics()?;
    assert!(
        metrics.contains("conduit_dp_stdio_restarts_total{server=\"local\"} 1"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn the_process_is_kept_across_versions_until_its_command_or_env_changes() -> anyhow::Result<()> {
    let gw = Gateway::start(10_000)?;
    let first = gw.child()?;

    // Only the timeout changes: the same process serves on.
    gw.replace_config(config_text(20_000, "first")?)?;
    holds_for(Duration::from_millis(500), "the process to stay", || {
        ensure!(gw.child()? == first, "the process was replaced");
        Ok(())
    })?;
    let mut client = McpClient::new(gw.url());
    assert_eq!(
        client.call_tool_text("echo", json!({"message": "kept"}))?,
        "kept"
    );

    // Its env changes: a new process replaces it.
    gw.replace_config(config_text(20_000, "second")?)?;
    wait_until(DEFAULT_TIMEOUT, "the old process to be stopped", || {
        ensure!(!procfs::is_alive(first), "{first} still runs");
        Ok(())
    })?;
    let second = gw.child()?;
    let env = procfs::environ(second)?;
    assert!(
        env.contains(&("CONDUIT_E2E_MARKER".into(), "second".into())),
        "{env:?}"
    );
    assert_eq!(
        client.call_tool_text("echo", json!({"message": "new"}))?,
        "new"
    );
    Ok(())
}

#[test]
fn sigterm_leaves_no_child_process_behind() -> anyhow::Result<()> {
    let mut gw = Gateway::start(10_000)?;
    let child = gw.child()?;
    assert!(procfs::is_alive(child));
    let status = gw
        .dp
        .terminate(Duration::from_secs(20))
        .context("the data plane did not exit on SIGTERM")?;
    assert!(status.success(), "{status}");
    wait_until(
        DEFAULT_TIMEOUT,
        "the stdio server process to be gone",
        || {
            ensure!(!procfs::is_alive(child), "{child} still runs");
            Ok(())
        },
    )?;
    Ok(())
}
