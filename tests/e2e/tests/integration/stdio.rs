//! stdio upstreams, the data path: a standalone data plane runs `conduit-mcp-fixture
//! --stdio` itself, initializes it, and serves it on `/mcp/local` to many concurrent
//! clients: ids and progress tokens remapped, server→client requests relayed.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use conduit_e2e::mcp::{McpClient, PROTOCOL_VERSION, messages};
use conduit_e2e::sse::EventStream;
use conduit_e2e::stdio::{REQUEST_TIMEOUT, SERVER, StdioGateway, call, post, text_of};
use conduit_e2e::{http, procfs};
use serde_json::{Value, json};

#[test]
fn the_gateway_initializes_the_process_and_serves_it() -> anyhow::Result<()> {
    let gw = StdioGateway::start(10_000)?;
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
    let gw = StdioGateway::start(30_000)?;
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
    let gw = StdioGateway::start(30_000)?;
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
    let gw = StdioGateway::start(30_000)?;
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
