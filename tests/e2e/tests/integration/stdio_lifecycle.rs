//! stdio upstreams, the process's life: a request that hangs times out alone, a killed
//! process fails its pending callers and is started again, a process is kept across config
//! versions until its command or env changes, and SIGTERM leaves no child behind.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use conduit_e2e::mcp::{McpClient, messages};
use conduit_e2e::sse::EventStream;
use conduit_e2e::stdio::{REQUEST_TIMEOUT, StdioGateway, call, config_text, post, text_of};
use conduit_e2e::wait::holds_for;
use conduit_e2e::{DEFAULT_TIMEOUT, procfs, wait_until};
use serde_json::json;

#[test]
fn a_hanging_call_times_out_alone() -> anyhow::Result<()> {
    let gw = StdioGateway::start(1_500)?;
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
        metrics.contains("conduit_dp_stdio_restarts_total{server=\"local\"} 0"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn a_killed_process_fails_its_pending_callers_and_is_started_again() -> anyhow::Result<()> {
    let gw = StdioGateway::start(30_000)?;
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
    let gw = StdioGateway::start(10_000)?;
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
    let mut gw = StdioGateway::start(10_000)?;
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
