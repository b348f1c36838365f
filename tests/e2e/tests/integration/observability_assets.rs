//! The Grafana dashboard and Prometheus alert rules under `deploy/observability/` only query
//! metrics that exist: a real control plane and a data plane connected to it, serving a
//! config with auth, ACL, guardrail, governance and rate limit sections, are scraped after a
//! few requests, and every `conduit_*` name in every PromQL expression must be a family (or
//! a sample) of one of the two `/metrics` outputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use conduit_e2e::mcp::McpClient;
use conduit_e2e::{
    ControlPlane, ControlPlaneOptions, DataPlane, DataPlaneOptions, Fixture, binaries, http,
    wait_until,
};
use serde_json::{Value, json};

use super::common::apply;

const KEY: &str = "key-agent";

fn assets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/observability")
}

/// A config with an HTTP and a stdio server and every policy section.
fn config(fixture: &Fixture) -> anyhow::Result<String> {
    let url = fixture.mcp_url();
    let stdio = binaries::binary(binaries::FIXTURE)?;
    let command = serde_json::to_string(&stdio.display().to_string())?;
    Ok(format!(
        "servers:
  - id: fixture
    url: {url}
    timeout_ms: 10000
  - id: local
    transport: stdio
    command: {command}
    args: [\"--stdio\"]
    timeout_ms: 10000
auth:
  method: api-key
  api_keys:
    - key: {KEY}
      client_id: agent
      tenant_id: acme
acl:
  default_action: deny
  policies:
    - name: everyone
      clients: [\"*\"]
      allow:
        - server: \"*\"
          tools: [\"*\"]
      deny:
        - server: fixture
          tools: [\"add\"]
guardrails:
  default_action: allow
  rules:
    - name: no-secrets
      tools: [\"echo\"]
      conditions:
        - field: message
          operator: contains
          value: secret
      action: block
governance:
  tool_policies:
    - name: no-sleeping
      tools: [\"sleep\"]
      servers: [\"fixture\"]
      effect: deny
      reason: no sleeping
rate_limits:
  per_client: {{requests_per_minute: 10000}}
"
    ))
}

/// Every `conduit_[a-z0-9_]+` identifier in `expr`, histogram suffixes stripped.
fn metric_names(expr: &str, names: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(found) = expr[i..].find("conduit_") {
        let start = i + found;
        let preceded = start > 0 && is_ident(bytes[start - 1]);
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        if !preceded {
            let name = &expr[start..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(family.to_owned());
        }
        i = end;
    }
}

/// The `expr` of every target of every panel, rows' nested panels included.
fn dashboard_exprs(panels: &[Value], exprs: &mut Vec<String>) {
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push(expr.to_owned());
            }
        }
        if let Some(nested) = panel["panels"].as_array() {
            dashboard_exprs(nested, exprs);
        }
    }
}

/// Families (`# TYPE name kind`) and sample names of a text exposition.
fn exported(text: &str, names: &mut BTreeSet<String>) {
    for line in text.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        };
        if let Some(name) = name.filter(|name| !name.is_empty()) {
            names.insert(name.to_owned());
        }
    }
}

fn scrape(url: &str) -> anyhow::Result<String> {
    let response = http::get(url, Duration::from_secs(10))?;
    ensure!(response.status == 200, "GET {url}: {}", response.status);
    Ok(response.text())
}

/// Drive the requests that create the lazily labelled series (per server, rule, policy).
fn traffic(dp: &DataPlane) -> anyhow::Result<()> {
    let bearer = format!("Bearer {KEY}");
    let mut client = McpClient::new(dp.mcp_url("fixture")).with_header("Authorization", &bearer);
    client.initialize()?;
    let call = |client: &mut McpClient, tool: &str, arguments: Value| -> anyhow::Result<Value> {
        let exchange =
            client.exchange("tools/call", json!({"name": tool, "arguments": arguments}))?;
        exchange
            .message
            .with_context(|| format!("{tool}: no JSON-RPC message"))
    };
    let acl = call(&mut client, "add", json!({"a": 1, "b": 2}))?;
    ensure!(acl["error"]["code"] == json!(-32003), "ACL: {acl}");
    let guardrail = call(&mut client, "echo", json!({"message": "a secret"}))?;
    ensure!(
        guardrail["error"]["code"] == json!(-32004),
        "guardrail: {guardrail}"
    );
    let governance = call(&mut client, "sleep", json!({"ms": 1}))?;
    ensure!(
        governance["error"]["code"] == json!(-32010),
        "governance: {governance}"
    );
    let mut stdio = McpClient::new(dp.mcp_url("local")).with_header("Authorization", &bearer);
    stdio.initialize()?;
    stdio.list_tools()?;
    Ok(())
}

#[test]
fn dashboard_and_alert_rules_only_query_exported_metrics() -> anyhow::Result<()> {
    let dir = assets_dir();
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        dir.join("grafana-dashboard.json"),
    )?)
    .context("grafana-dashboard.json")?;
    let rules: Value = yaml_serde::from_str(&std::fs::read_to_string(
        dir.join("prometheus-alerts.yaml"),
    )?)
    .context("prometheus-alerts.yaml")?;

    let mut exprs = Vec::new();
    dashboard_exprs(
        dashboard["panels"].as_array().context("dashboard panels")?,
        &mut exprs,
    );
    let dashboard_count = exprs.len();
    ensure!(dashboard_count > 0, "no expr in the dashboard");
    for group in rules["groups"].as_array().context("rule groups")? {
        for rule in group["rules"].as_array().context("rules of a group")? {
            let name = rule["alert"].as_str().context("an alert rule")?;
            ensure!(rule["for"].is_string(), "{name}: no for");
            ensure!(
                rule["labels"]["severity"].is_string(),
                "{name}: no severity"
            );
            for field in ["summary", "description"] {
                ensure!(rule["annotations"][field].is_string(), "{name}: no {field}");
            }
            exprs.push(rule["expr"].as_str().context("expr of a rule")?.to_owned());
        }
    }
    ensure!(exprs.len() > dashboard_count, "no alert rule expr");
    let mut wanted = BTreeSet::new();
    for expr in &exprs {
        metric_names(expr, &mut wanted);
    }

    let fixture = Fixture::start()?;
    let cp = ControlPlane::start(ControlPlaneOptions::with_tokens())?;
    let version = apply(
        &cp,
        "observed.yaml",
        &config(&fixture)?,
        "observed",
        "alice",
    )?;
    let dp = DataPlane::start(DataPlaneOptions::for_control_plane(&cp, "dp-observed"))?;
    dp.wait_for_version(version)?;
    traffic(&dp)?;

    // Some series appear a moment after the request that creates them (stdio start-up).
    wait_until(
        Duration::from_secs(30),
        "every queried metric on /metrics",
        || {
            let mut exported_names = BTreeSet::new();
            exported(&dp.admin_get("/metrics")?.text(), &mut exported_names);
            exported(&scrape(&cp.http_url("/metrics"))?, &mut exported_names);
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|name| !exported_names.contains(*name))
                .collect();
            ensure!(missing.is_empty(), "missing from /metrics: {missing:?}");
            Ok(())
        },
    )
}

#[test]
fn metric_names_are_found_in_promql() {
    let mut names = BTreeSet::new();
    metric_names(
        "histogram_quantile(0.9, sum by (le) (rate(conduit_dp_request_duration_seconds_bucket{job=~\"$job\"}[5m]))) / conduit_cp_snapshot_acks_total + my_conduit_x",
        &mut names,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "conduit_cp_snapshot_acks_total",
            "conduit_dp_request_duration_seconds"
        ]
    );
}
