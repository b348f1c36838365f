//! Finding 1 of the external review, repeated through the real binaries: POSTs with a
//! 9 MiB tool name (without credentials, as the reviewer sent them, and with a valid key)
//! once made a record batch larger than the control plane decodes, which the data plane
//! sent again first on every new stream: it reconnected several times a second, showed as
//! disconnected, `apply --wait` could not converge and no later record arrived. Now every
//! string of a record is cut to its cap with a visible marker, the data plane stays
//! connected, a later apply converges and later records arrive, redacted with the new
//! defaults (finding "Redaction defaults").

use anyhow::{Context as _, ensure};
use conduit_e2e::mcp::PROTOCOL_VERSION;
use conduit_e2e::{DEFAULT_TIMEOUT, http, wait_until};
use serde_json::{Value, json};

use super::audit::{
    AGENT_ONE_KEY, audit_config, audit_files, client, cp_metrics, dp_metrics, logs, metric,
};
use super::common::{Fleet, apply};

/// The tool name of the attack.
const HUGE: usize = 9 * 1024 * 1024;
/// Caps of `conduit_proto::limits` the stored records must respect.
const METHOD_CAP: usize = 256;
const TARGET_CAP: usize = 1024;
const ERROR_CAP: usize = 1024;
const JSON_CAP: usize = 16 * 1024;
/// Secrets the new redaction defaults must catch; none may reach the control plane.
const SESSION_SECRET: &str = "sess-4f1d-secret-value";
const COOKIE_SECRET: &str = "cookie-9a8b-secret-value";
const URL_PASSWORD: &str = "url-pass-77c1";
const QUERY_KEY: &str = "query-key-3e2d";
const PASSWD_SECRET: &str = "passwd-0b6e-secret";

/// A `tools/call` body naming a tool of `HUGE` bytes, or (with `method`) a method that long.
fn huge_body(id: u64, method: bool) -> Vec<u8> {
    let long = "A".repeat(HUGE);
    let message = if method {
        json!({"jsonrpc": "2.0", "id": id, "method": long, "params": {}})
    } else {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": long, "arguments": {}}})
    };
    serde_json::to_vec(&message).expect("serializes")
}

/// `text` is within `cap` bytes and, when it was cut, ends in the marker.
fn bounded(field: &str, record: &Value, cap: usize) -> anyhow::Result<()> {
    let text = record[field].as_str().unwrap_or_default();
    ensure!(
        text.len() <= cap,
        "{field} of {} is {} bytes",
        record["id"],
        text.len()
    );
    Ok(())
}

fn cut_with_marker(text: &str, cap: usize, starts: &str) -> anyhow::Result<()> {
    ensure!(
        text.len() <= cap && text.starts_with(starts) && text.ends_with(" bytes truncated]"),
        "not cut with a marker ({} bytes): {}…{}",
        text.len(),
        &text[..text.len().min(40)],
        &text[text.len().saturating_sub(40)..]
    );
    Ok(())
}

#[test]
fn huge_tool_names_neither_wedge_the_config_stream_nor_hide_later_records() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    let dp = &fleet.dps[0];
    let config = audit_config(&fleet.fixture.mcp_url());
    let version = apply(&fleet.cp, "audit.yaml", &config, "audit policies", "alice")?;
    fleet.wait_converged(version, DEFAULT_TIMEOUT)?;
    let reconnects_before = metric(&dp_metrics(dp)?, "conduit_dp_stream_reconnects_total", &[]);

    // The attack: unauthenticated POSTs with a 9 MiB tool name (and one 9 MiB method),
    // raw HTTP, each answered 401.
    let url = dp.mcp_url("fixture");
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", PROTOCOL_VERSION),
    ];
    for id in 0..5 {
        let body = huge_body(id, id == 4);
        let response = http::request("POST", &url, &headers, Some(&body), DEFAULT_TIMEOUT)?;
        ensure!(
            response.status == 401,
            "unauthenticated POST {id}: {}",
            response.status
        );
    }
    // The same with a valid key: the name reaches admission and the upstream (which
    // answers an error naming it), and a resource URI as long.
    let mut caller = client(url.clone(), AGENT_ONE_KEY);
    caller.initialize()?;
    let long = "A".repeat(HUGE);
    // Whatever the answers: only the records and the stream matter here.
    for _ in 0..2 {
        caller.exchange("tools/call", json!({"name": long, "arguments": {}}))?;
    }
    let uri = format!("test://{long}");
    caller.exchange("resources/read", json!({"uri": uri}))?;
    drop(long);
    let attack_records = 5 + 2 + 2 + 1;

    // Later: a normal call whose arguments carry secrets of the new redaction defaults.
    let arguments = json!({
        "message": "after the attack",
        "session": SESSION_SECRET,
        "cookies": [COOKIE_SECRET],
        "db_url": format!("https://admin:{URL_PASSWORD}@db.internal/x?api_key={QUERY_KEY}&page=2"),
        "options": {"passwd": PASSWD_SECRET},
    });
    let text = caller.call_tool_text("echo", arguments)?;
    ensure!(text.contains("after the attack"), "echo: {text}");
    let total = attack_records + 1;

    // Every record arrives, the later one included.
    let records = wait_until(DEFAULT_TIMEOUT, &format!("{total} audit records"), || {
        let records = logs(&fleet.cp, &[])?;
        ensure!(records.len() >= total, "{} records", records.len());
        Ok(records)
    })?;
    ensure!(
        records.len() == total,
        "{} records: {records:#?}",
        records.len()
    );

    // The data plane stayed connected: the stream never had to reconnect.
    let status = fleet.cp.status()?;
    ensure!(status.require(dp.node_id())?.connected, "{status:?}");
    let text = dp_metrics(dp)?;
    let reconnects = metric(&text, "conduit_dp_stream_reconnects_total", &[]);
    ensure!(
        reconnects == reconnects_before,
        "the config stream reconnected {} times",
        reconnects - reconnects_before
    );
    // Nothing was dropped: the records were cut, not lost.
    for name in [
        "conduit_dp_audit_undeliverable_total",
        "conduit_audit_dropped_total",
    ] {
        ensure!(metric(&text, name, &[]) == 0.0, "{name} in\n{text}");
    }
    ensure!(
        metric(
            &cp_metrics(&fleet.cp)?,
            "conduit_cp_audit_dropped_total",
            &[]
        ) == 0.0,
        "the control plane counted drops"
    );

    // Every string within its cap; the client's own text cut with the marker.
    for record in &records {
        bounded("method", record, METHOD_CAP)?;
        bounded("target", record, TARGET_CAP)?;
        bounded("error_message", record, ERROR_CAP)?;
        let arguments = record["arguments"].to_string();
        ensure!(
            arguments.len() <= JSON_CAP + 64,
            "arguments: {} bytes",
            arguments.len()
        );
    }
    let refused = logs(&fleet.cp, &["--status", "auth_failed"])?;
    ensure!(refused.len() == 5, "auth_failed records: {refused:#?}");
    for record in &refused {
        // Read from the body (the gateway may also refuse before reading it: then empty).
        let method = record["method"].as_str().unwrap_or_default();
        let target = record["target"].as_str().unwrap_or_default();
        if method == "tools/call" {
            cut_with_marker(target, TARGET_CAP, "AAAA")?;
        } else if !method.is_empty() {
            cut_with_marker(method, METHOD_CAP, "AAAA")?;
        }
    }
    let calls = logs(&fleet.cp, &["--client", "agent-1"])?;
    let huge_calls: Vec<&Value> = calls
        .iter()
        .filter(|r| r["target"].as_str().is_some_and(|t| t.contains("AAAA")))
        .collect();
    ensure!(
        huge_calls.len() == 3,
        "authenticated huge calls: {calls:#?}"
    );
    for record in &huge_calls {
        let target = record["target"].as_str().unwrap_or_default();
        let start = if record["method"] == json!("resources/read") {
            "test://AAAA"
        } else {
            "AAAA"
        };
        cut_with_marker(target, TARGET_CAP, start)?;
    }

    // The later record, redacted with the new defaults (by name, and inside the URL).
    let echo = calls
        .iter()
        .find(|r| r["arguments"]["message"] == json!("after the attack"))
        .with_context(|| format!("no record of the later call: {calls:#?}"))?;
    let arguments = &echo["arguments"];
    ensure!(arguments["session"] == json!("[REDACTED]"), "{echo}");
    ensure!(arguments["cookies"] == json!("[REDACTED]"), "{echo}");
    ensure!(
        arguments["options"]["passwd"] == json!("[REDACTED]"),
        "{echo}"
    );
    ensure!(
        arguments["db_url"] == json!("https://[REDACTED]@db.internal/x?api_key=[REDACTED]&page=2"),
        "{echo}"
    );
    let mut stored = 0;
    for (name, bytes) in audit_files(fleet.cp.data_dir())? {
        stored += bytes.len();
        for secret in [
            SESSION_SECRET,
            COOKIE_SECRET,
            URL_PASSWORD,
            QUERY_KEY,
            PASSWD_SECRET,
        ] {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            ensure!(!found, "{secret} is in {name}");
        }
    }
    ensure!(
        stored < 8 * 1024 * 1024,
        "the audit files hold {stored} bytes"
    );

    // A later apply converges, and the records after it arrive too.
    let version = apply(
        &fleet.cp,
        "audit-v2.yaml",
        &format!("{config}observability:\n  retention_days: 7\n"),
        "after the attack",
        "alice",
    )?;
    fleet.wait_converged(version, DEFAULT_TIMEOUT)?;
    let mut later = client(url, AGENT_ONE_KEY);
    later.initialize()?;
    let text = later.call_tool_text("echo", json!({"message": "later still"}))?;
    ensure!(text.contains("later still"), "echo: {text}");
    // initialize, notifications/initialized and the call.
    wait_until(DEFAULT_TIMEOUT, "the records after the apply", || {
        let records = logs(&fleet.cp, &[])?;
        ensure!(records.len() == total + 3, "{} records", records.len());
        Ok(())
    })?;
    Ok(())
}
