//! Many callers at once over an HTTP upstream, beside upstreams that fail in every way an
//! upstream can: each caller gets its own answer (no cross-talk), and each failure gives
//! its caller a timely JSON-RPC error carrying the caller's id, without disturbing others.

use std::time::{Duration, Instant};

use conduit_e2e::http;
use conduit_e2e::mcp::messages;
use conduit_e2e::misbehaving::Misbehaving;
use conduit_e2e::{DataPlane, DataPlaneOptions, Fixture};
use serde_json::{Value, json};

const CALLERS: usize = 200;
const UPSTREAM_TIMEOUT_MS: u64 = 1500;

fn call(url: &str, id: &Value, message: &str) -> anyhow::Result<(u16, Value)> {
    let body = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "message": message } }
    });
    let response = http::request(
        "POST",
        url,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Protocol-Version", "2025-11-25"),
        ],
        Some(body.to_string().as_bytes()),
        Duration::from_secs(30),
    )?;
    let reply = messages(&response)?
        .into_iter()
        .find(|message| message.get("id").is_some() && message.get("method").is_none())
        .ok_or_else(|| anyhow::anyhow!("no reply in {}", response.text()))?;
    Ok((response.status, reply))
}

#[test]
fn concurrent_callers_get_their_own_answers_while_upstreams_fail() -> anyhow::Result<()> {
    let fixture = Fixture::start_stateless()?;
    let bad = Misbehaving::start()?;
    let faults = ["hang", "drop", "malformed", "error500", "sse-cut"];
    let mut config = format!(
        "router:\n  health_check:\n    enabled: false\n  circuit_breaker:\n    enabled: false\n\
         servers:\n  - id: fixture\n    url: {}\n",
        fixture.mcp_url()
    );
    for fault in faults {
        config.push_str(&format!(
            "  - id: {fault}\n    url: {}\n    timeout_ms: {UPSTREAM_TIMEOUT_MS}\n",
            bad.url(fault)
        ));
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    std::fs::write(&path, config)?;
    let dp = DataPlane::start(DataPlaneOptions {
        node_id: "faults".into(),
        config_file: Some(path),
        wait_ready: true,
        // More concurrent callers from 127.0.0.1 than the default per-address limit.
        args: vec!["--max-connections-per-address".into(), "1024".into()],
        ..DataPlaneOptions::default()
    })?;

    std::thread::scope(|scope| -> anyhow::Result<()> {
        let good: Vec<_> = (0..CALLERS)
            .map(|n| {
                let url = dp.mcp_url("fixture");
                scope.spawn(move || {
                    // Half the callers share ids: ids are only unique per caller.
                    let id = if n % 2 == 0 { json!(n) } else { json!(1) };
                    let message = format!("payload of caller {n}");
                    let (status, reply) = call(&url, &id, &message)?;
                    anyhow::ensure!(status == 200, "caller {n}: HTTP {status}: {reply}");
                    anyhow::ensure!(reply["id"] == id, "caller {n} got id {}", reply["id"]);
                    let text = reply["result"]["content"][0]["text"].as_str();
                    anyhow::ensure!(
                        text == Some(message.as_str()),
                        "caller {n} got someone else's answer: {reply}"
                    );
                    Ok(())
                })
            })
            .collect();
        let failing: Vec<_> = faults
            .iter()
            .map(|fault| {
                let url = dp.mcp_url(fault);
                scope.spawn(move || {
                    let id = json!(format!("{fault}-call"));
                    let started = Instant::now();
                    let (status, reply) = call(&url, &id, "never answered")?;
                    Ok::<_, anyhow::Error>((*fault, status, reply, started.elapsed()))
                })
            })
            .collect();

        for (n, caller) in good.into_iter().enumerate() {
            caller
                .join()
                .map_err(|_| anyhow::anyhow!("caller {n} panicked"))??;
        }
        for caller in failing {
            let (fault, status, reply, elapsed) = caller
                .join()
                .map_err(|_| anyhow::anyhow!("a failing caller panicked"))??;
            assert_eq!(
                reply["id"],
                json!(format!("{fault}-call")),
                "{fault}: {reply}"
            );
            assert!(
                reply["error"]["code"].is_i64(),
                "{fault}: expected a JSON-RPC error, got {reply} (HTTP {status})"
            );
            // Generous bound: the point is that the caller is not left hanging.
            assert!(
                elapsed < Duration::from_millis(UPSTREAM_TIMEOUT_MS) + Duration::from_secs(8),
                "{fault}: answered after {elapsed:?}"
            );
        }
        Ok(())
    })?;
    Ok(())
}
