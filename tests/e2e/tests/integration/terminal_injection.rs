//! Terminal and log injection: a caller without credentials names a tool with escape
//! sequences (set the window title, clear the screen), a newline that starts a forged row or
//! log line, and a right-to-left override. `conduitctl logs` shows it escaped in its table
//! (and unchanged in its JSON), and the data plane's text log writes the request's audit
//! line as one line with the same escapes.

use anyhow::{Context as _, ensure};
use conduit_e2e::configs::fixture_config;
use conduit_e2e::mcp::McpClient;
use conduit_e2e::{DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, Fixture, wait_until};
use serde_json::{Value, json};

use super::common::Fleet;

/// A tool name an attacker chooses.
const EVIL: &str = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\nFORGED-ROW 200 ok\u{202e}txt.exe";
/// How the table and the text log show it.
const SHOWN: &str = "evil\\x1b]0;pwned\\x07\\x1b[2J\\nFORGED-ROW 200 ok\\u{202e}txt.exe";

/// One `tools/call` of [`EVIL`] without credentials; the tool does not exist upstream.
fn call_evil(dp: &DataPlane) -> anyhow::Result<()> {
    let mut client = McpClient::new(dp.mcp_url("fixture"));
    client.initialize()?;
    let exchange = client.exchange("tools/call", json!({"name": EVIL, "arguments": {}}))?;
    ensure!(
        exchange.response.status < 500,
        "{}",
        exchange.response.text()
    );
    Ok(())
}

fn has_controls(text: &str) -> bool {
    text.chars()
        .any(|ch| (ch.is_control() && ch != '\n') || ch == '\u{202e}')
}

#[test]
fn conduitctl_logs_escapes_what_callers_sent() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    call_evil(&fleet.dps[0])?;
    let records: Vec<Value> = wait_until(DEFAULT_TIMEOUT, "the audit record", || {
        let output = fleet.cp.ctl().run(["logs", "-o", "json"])?;
        output.expect_code(0)?;
        let records: Vec<Value> = output.json()?;
        ensure!(
            records.iter().any(|record| record["target"] == EVIL),
            "not yet: {records:?}"
        );
        Ok(records)
    })?;
    let rows = records.len();

    let table = fleet.cp.ctl().run(["logs"])?;
    table.expect_code(0)?;
    ensure!(
        !has_controls(&table.stdout),
        "raw controls: {:?}",
        table.stdout
    );
    ensure!(table.stdout.contains(SHOWN), "{:?}", table.stdout);
    ensure!(
        table.stdout.lines().count() == rows + 1,
        "a header and one line per record: {:?}",
        table.stdout
    );
    ensure!(
        !table
            .stdout
            .lines()
            .any(|line| line.starts_with("FORGED-ROW")),
        "{:?}",
        table.stdout
    );
    Ok(())
}

#[test]
fn a_text_log_line_cannot_be_split_or_forged() -> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    std::fs::write(&path, fixture_config(&fixture.mcp_url(), "log"))?;
    // Standalone: audit records are written to the (text) log.
    let dp = DataPlane::start(DataPlaneOptions {
        node_id: "log-dp".into(),
        config_file: Some(path),
        wait_ready: true,
        ..DataPlaneOptions::default()
    })?;
    call_evil(&dp)?;
    let log_path = dp.scratch_dir().join("data-plane.log");
    let line = wait_until(DEFAULT_TIMEOUT, "the audit line", || {
        let log = std::fs::read_to_string(&log_path).context("reading the log")?;
        log.lines()
            .find(|line| line.contains("conduit::audit") && line.contains("FORGED"))
            .map(str::to_owned)
            .with_context(|| format!("no audit line yet in:\n{log}"))
    })?;
    ensure!(line.contains(&format!("target={SHOWN}")), "{line:?}");
    ensure!(!has_controls(&line), "{line:?}");
    // Wherever the name was logged, it stayed inside its line.
    let log = std::fs::read_to_string(&log_path)?;
    for line in log.lines().filter(|line| line.contains("FORGED")) {
        ensure!(
            line.contains("\\nFORGED"),
            "a line split by the name: {line:?}"
        );
        ensure!(!has_controls(line), "{line:?}");
    }
    Ok(())
}
