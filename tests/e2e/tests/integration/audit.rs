//! Audit records across real processes: every request through two data planes becomes
//! exactly one record on the control plane (`conduitctl logs`), with its status, node and
//! config version; secrets in arguments are redacted on the data plane, so they never reach
//! the control plane's database file (read byte for byte); the file is private (0600); the
//! metrics of both planes count the same sequence; and records written while the control
//! plane is away arrive when it is back, with what did not fit in the queue counted.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use conduit_e2e::mcp::McpClient;
use conduit_e2e::{ControlPlane, ControlPlaneOptions, DEFAULT_TIMEOUT, DataPlane, wait_until};
use serde_json::{Value, json};

use super::common::{Fleet, RECONNECT_TIMEOUT, apply};

pub(super) const AGENT_ONE_KEY: &str = "agent-one-key-7f3a";
pub(super) const AGENT_TWO_KEY: &str = "agent-two-key-91bc";
/// Secrets the callers put in their arguments; none may reach the control plane.
const SECRETS: [&str; 4] = [
    "hunter2-password-value",
    "ak-live-api-key-value",
    "eyJ-access-token-value",
    "nested-secret-value",
];

pub(super) fn audit_config(fixture_url: &str) -> String {
    format!(
        "servers:\n  - id: fixture\n    url: {fixture_url}\n    timeout_ms: 10000\n\
         auth:\n  method: api-key\n  api_keys:\n    - key: {AGENT_ONE_KEY}\n      \
         client_id: agent-1\n      tenant_id: acme\n    - key: {AGENT_TWO_KEY}\n      \
         client_id: agent-2\n      tenant_id: globex\n\
         acl:\n  default_action: deny\n  policies:\n    - name: ones\n      \
         clients: [agent-1]\n      allow:\n        - server: fixture\n          tools: [\"*\"]\n    \
         - name: twos\n      clients: [agent-2]\n      allow:\n        - server: fixture\n          \
         tools: [echo]\n\
         guardrails:\n  default_action: allow\n  rules:\n    - name: no-drops\n      \
         tools: [echo]\n      conditions:\n        - field: message\n          operator: contains\n          \
         value: DROP TABLE\n      action: block\n"
    )
}

pub(super) fn client(url: String, key: &str) -> McpClient {
    McpClient::new(url).with_header("Authorization", &format!("Bearer {key}"))
}

/// Arguments with a secret at every depth the redactor has to reach.
fn secret_arguments(message: &str) -> Value {
    json!({
        "message": message,
        "password": SECRETS[0],
        "api_key": SECRETS[1],
        "accessToken": SECRETS[2],
        "options": {"nested": {"client_secret": SECRETS[3]}},
    })
}

/// One `tools/call`; the JSON-RPC answer.
fn call(client: &mut McpClient, tool: &str, arguments: Value) -> anyhow::Result<Value> {
    let exchange = client.exchange("tools/call", json!({"name": tool, "arguments": arguments}))?;
    exchange
        .message
        .with_context(|| format!("{tool}: no JSON-RPC answer: {}", exchange.response.text()))
}

/// `conduitctl logs -o json` with `args`, parsed.
pub(super) fn logs(cp: &ControlPlane, args: &[&str]) -> anyhow::Result<Vec<Value>> {
    let mut command = vec!["logs", "-o", "json", "--limit", "1000"];
    command.extend_from_slice(args);
    cp.ctl().run(command)?.expect_code(0)?.json()
}

/// Waits until `conduitctl logs` shows `count` records, then checks it stays there.
pub(super) fn wait_for_records(cp: &ControlPlane, count: usize) -> anyhow::Result<Vec<Value>> {
    wait_until(DEFAULT_TIMEOUT, &format!("{count} audit records"), || {
        let records = logs(cp, &[])?;
        ensure!(records.len() >= count, "{} records", records.len());
        Ok(())
    })?;
    let records = logs(cp, &[])?;
    ensure!(
        records.len() == count,
        "expected exactly {count} records, got {}: {records:#?}",
        records.len()
    );
    Ok(records)
}

/// The value of the series `name` whose labels include every pair of `labels`, summed
/// over the series that match; 0 when none does.
pub(super) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let matches = labels
                .iter()
                .all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\"")));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

pub(super) fn dp_metrics(dp: &DataPlane) -> anyhow::Result<String> {
    Ok(dp.admin_get("/metrics")?.text())
}

pub(super) fn cp_metrics(cp: &ControlPlane) -> anyhow::Result<String> {
    Ok(conduit_e2e::http::get(&cp.http_url("/metrics"), DEFAULT_TIMEOUT)?.text())
}

/// Every byte of the audit database and its write-ahead log.
pub(super) fn audit_files(data_dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(data_dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("audit.db") {
            files.push((name, std::fs::read(&path)?));
        }
    }
    Ok(files)
}

fn count_by(records: &[Value], key: impl Fn(&Value) -> String) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in records {
        *counts.entry(key(record)).or_insert(0) += 1;
    }
    counts
}

#[test]
fn every_request_through_two_data_planes_is_one_redacted_record() -> anyhow::Result<()> {
    let fleet = Fleet::start(2)?;
    let version = apply(
        &fleet.cp,
        "audit.yaml",
        &audit_config(&fleet.fixture.mcp_url()),
        "audit policies",
        "alice",
    )?;
    fleet.wait_converged(version, DEFAULT_TIMEOUT)?;

    // The same sequence on both data planes, one HTTP request (one record) per line.
    let mut expected_statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut expect = |status: &str| *expected_statuses.entry(status.into()).or_insert(0) += 1;
    for dp in &fleet.dps {
        let mut one = client(dp.mcp_url("fixture"), AGENT_ONE_KEY);
        one.initialize()?; // initialize + notifications/initialized
        expect("ok");
        expect("ok");
        let answer = call(&mut one, "echo", secret_arguments("hello"))?;
        ensure!(answer.get("result").is_some(), "echo: {answer}");
        expect("ok");
        let answer = call(&mut one, "add", json!({"a": 2, "b": 3}))?;
        ensure!(answer.get("result").is_some(), "add: {answer}");
        expect("ok");
        let answer = call(&mut one, "echo", secret_arguments("x; DROP TABLE users"))?;
        ensure!(
            answer["error"]["code"] == json!(-32004),
            "guardrail: {answer}"
        );
        expect("guardrail_blocked");

        let mut two = client(dp.mcp_url("fixture"), AGENT_TWO_KEY);
        let answer = call(
            &mut two,
            "add",
            json!({"a": 1, "b": 1, "token": SECRETS[1]}),
        )?;
        ensure!(answer["error"]["code"] == json!(-32003), "ACL: {answer}");
        expect("acl_denied");

        let mut stranger = client(dp.mcp_url("fixture"), "not-a-key");
        let exchange = stranger.exchange("tools/call", json!({"name": "echo"}))?;
        ensure!(
            exchange.response.status == 401,
            "no key: {}",
            exchange.response.status
        );
        expect("auth_failed");
    }
    let total: usize = expected_statuses.values().sum();
    let records = wait_for_records(&fleet.cp, total)?;

    let statuses = count_by(&records, |r| r["status"].as_str().unwrap_or("").to_owned());
    ensure!(
        statuses == expected_statuses,
        "statuses {statuses:?}, expected {expected_statuses:?}"
    );
    let nodes = count_by(&records, |r| r["node_id"].as_str().unwrap_or("").to_owned());
    let per_node = total / 2;
    ensure!(
        nodes == BTreeMap::from([("dp-1".into(), per_node), ("dp-2".into(), per_node)]),
        "records per node: {nodes:?}"
    );
    for record in &records {
        ensure!(
            record["config_version"] == json!(version),
            "version: {record}"
        );
        ensure!(
            record["trace_id"].as_str().is_some_and(|t| t.len() == 32),
            "trace: {record}"
        );
        match record["status"].as_str() {
            Some("auth_failed") => {
                ensure!(record["client_id"] == json!(""), "{record}");
                ensure!(record["http_status"] == json!(401), "{record}");
            }
            Some("acl_denied") => {
                ensure!(record["client_id"] == json!("agent-2"), "{record}");
                ensure!(record["tenant_id"] == json!("globex"), "{record}");
                ensure!(record["error_code"] == json!(-32003), "{record}");
                ensure!(record["target"] == json!("add"), "{record}");
            }
            Some("guardrail_blocked") => {
                ensure!(record["guardrail_rule"] == json!("no-drops"), "{record}");
                ensure!(record["guardrail_action"] == json!("block"), "{record}");
                ensure!(record["error_code"] == json!(-32004), "{record}");
            }
            _ => ensure!(record["client_id"] == json!("agent-1"), "{record}"),
        }
    }
    // The arguments are recorded, with every secret replaced on the data plane.
    let echoes = logs(
        &fleet.cp,
        &["--tool", "echo", "--client", "agent-1", "--status", "ok"],
    )?;
    ensure!(echoes.len() == 2, "ok echo calls of agent-1: {echoes:#?}");
    for echo in &echoes {
        let arguments = &echo["arguments"];
        ensure!(arguments["message"] == json!("hello"), "{echo}");
        ensure!(arguments["password"] == json!("[REDACTED]"), "{echo}");
        ensure!(arguments["api_key"] == json!("[REDACTED]"), "{echo}");
        ensure!(arguments["accessToken"] == json!("[REDACTED]"), "{echo}");
        ensure!(
            arguments["options"]["nested"]["client_secret"] == json!("[REDACTED]"),
            "{echo}"
        );
        ensure!(echo["response_bytes"].as_u64().unwrap_or(0) > 0, "{echo}");
    }
    let trace = echoes[0]["trace_id"].as_str().context("trace id")?;
    let by_trace = logs(&fleet.cp, &["--trace", trace])?;
    ensure!(
        by_trace.len() == 1 && by_trace[0]["id"] == echoes[0]["id"],
        "{by_trace:#?}"
    );

    // No secret anywhere in the database files, and the files are private.
    let files = audit_files(fleet.cp.data_dir())?;
    ensure!(
        files.iter().any(|(name, _)| name == "audit.db"),
        "no audit.db"
    );
    for (name, bytes) in &files {
        for secret in SECRETS.iter().chain([&AGENT_ONE_KEY, &AGENT_TWO_KEY]) {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            ensure!(!found, "{secret} is in {name}");
        }
        let mode = std::fs::metadata(fleet.cp.data_dir().join(name))?
            .permissions()
            .mode();
        ensure!(mode & 0o777 == 0o600, "{name} has mode {:o}", mode & 0o777);
    }

    // Both planes counted the same sequence.
    for dp in &fleet.dps {
        let text = dp_metrics(dp)?;
        let ok_calls = metric(
            &text,
            "conduit_dp_requests_total",
            &[
                ("server", "fixture"),
                ("method", "tools/call"),
                ("status_class", "2xx"),
            ],
        );
        // echo, add, and the two refusals answered as JSON-RPC errors with HTTP 200.
        ensure!(
            ok_calls == 4.0,
            "{}: tools/call 2xx = {ok_calls}",
            dp.node_id()
        );
        let denials = metric(&text, "conduit_acl_denials_total", &[("server", "fixture")]);
        ensure!(denials == 1.0, "{}: ACL denials = {denials}", dp.node_id());
        let blocks = metric(
            &text,
            "conduit_guardrail_actions_total",
            &[("rule", "no-drops")],
        );
        ensure!(
            blocks == 1.0,
            "{}: guardrail blocks = {blocks}",
            dp.node_id()
        );
        let auth = metric(&text, "conduit_auth_failures_total", &[]);
        ensure!(auth == 1.0, "{}: auth failures = {auth}", dp.node_id());
        // Each of those answers the gateway gave itself is counted once, by its cause.
        for (cause, status) in [
            ("policy", "acl_denied"),
            ("policy", "guardrail_blocked"),
            ("client", "auth_failed"),
        ] {
            let labels = [("cause", cause), ("status", status)];
            let refused = metric(&text, "conduit_dp_refusals_total", &labels);
            ensure!(
                refused == 1.0,
                "{}: refusals {cause}/{status} = {refused}",
                dp.node_id()
            );
        }
        let written = metric(&text, "conduit_dp_audit_records_total", &[]);
        ensure!(
            written == per_node as f64,
            "{}: records written = {written}",
            dp.node_id()
        );
        let dropped = metric(&text, "conduit_audit_dropped_total", &[]);
        ensure!(dropped == 0.0, "{}: dropped = {dropped}", dp.node_id());
    }
    let text = cp_metrics(&fleet.cp)?;
    let stored = metric(&text, "conduit_cp_audit_records_total", &[]);
    ensure!(
        stored == total as f64,
        "control plane stored {stored}, expected {total}"
    );

    // Stats agree with the records.
    let stats: Value = fleet
        .cp
        .ctl()
        .run(["stats", "-o", "json", "--by", "client", "--since", "1h"])?
        .expect_code(0)?
        .json()?;
    ensure!(stats["total"]["requests"] == json!(total), "{stats}");
    let errors = total - expected_statuses["ok"];
    ensure!(stats["total"]["errors"] == json!(errors), "{stats}");
    Ok(())
}

#[test]
fn records_written_while_the_control_plane_is_away_arrive_when_it_returns() -> anyhow::Result<()> {
    const CAPACITY: usize = 20;
    const OUTAGE_CALLS: usize = 30;
    let mut fleet = Fleet::start_with(1, ControlPlaneOptions::with_tokens(), |_, options| {
        options.env("CONDUIT_AUDIT_QUEUE_CAPACITY", &CAPACITY.to_string())
    })?;
    let dp_url = fleet.dps[0].mcp_url("fixture");
    let mut caller = McpClient::new(dp_url);
    caller.initialize()?;
    wait_for_records(&fleet.cp, 2)?;

    fleet.cp.kill();
    for i in 0..OUTAGE_CALLS {
        let text = caller.call_tool_text("echo", json!({"message": format!("offline {i}")}))?;
        ensure!(text.contains(&format!("offline {i}")), "call {i}: {text}");
    }
    let text = dp_metrics(&fleet.dps[0])?;
    let dropped = metric(&text, "conduit_audit_dropped_total", &[]);
    ensure!(
        dropped == (OUTAGE_CALLS - CAPACITY) as f64,
        "dropped {dropped} of {OUTAGE_CALLS} with room for {CAPACITY}"
    );
    let depth = metric(&text, "conduit_dp_audit_queue_depth", &[]);
    ensure!(depth == CAPACITY as f64, "queue depth {depth}");
    let stale = metric(&text, "conduit_dp_config_stale_seconds", &[]);
    ensure!(stale >= 0.0, "stale seconds {stale}");

    fleet.cp.restart()?;
    let records = wait_until(RECONNECT_TIMEOUT, "the buffered records", || {
        let records = logs(&fleet.cp, &[])?;
        ensure!(records.len() >= 2 + CAPACITY, "{} records", records.len());
        Ok(records)
    })?;
    ensure!(records.len() == 2 + CAPACITY, "records: {}", records.len());
    // The queue keeps the oldest records and drops what does not fit.
    let messages: Vec<String> = records
        .iter()
        .filter_map(|r| r["arguments"]["message"].as_str().map(str::to_owned))
        .collect();
    for i in 0..CAPACITY {
        let wanted = format!("offline {i}");
        if !messages.contains(&wanted) {
            bail!("{wanted} is missing: {messages:?}");
        }
    }
    let reported = wait_until(DEFAULT_TIMEOUT, "the drops reported", || {
        let value = metric(
            &cp_metrics(&fleet.cp)?,
            "conduit_cp_audit_dropped_total",
            &[],
        );
        ensure!(value > 0.0, "no drops reported yet");
        Ok(value)
    })?;
    ensure!(
        reported == (OUTAGE_CALLS - CAPACITY) as f64,
        "reported drops {reported}"
    );
    let depth = metric(
        &dp_metrics(&fleet.dps[0])?,
        "conduit_dp_audit_queue_depth",
        &[],
    );
    ensure!(depth == 0.0, "queue depth after delivery {depth}");
    Ok(())
}
