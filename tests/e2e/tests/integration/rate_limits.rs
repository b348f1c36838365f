//! Rate limits through real data planes: with `backend: redis` (a real `redis-server`) a
//! limit of N holds for the whole fleet, with `backend: memory` each data plane counts on
//! its own; refusals are JSON-RPC −32029 at HTTP 200 with `Retry-After`; a limit changed by
//! a new config version applies to the next request.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use conduit_e2e::http;
use conduit_e2e::mcp::{Exchange, McpClient};
use conduit_e2e::redis::RedisServer;
use conduit_e2e::{ControlPlane, ControlPlaneOptions, DataPlane, DataPlaneOptions, Fixture};
use serde_json::{Value, json};

use super::common::{apply, wait_converged};

/// A stateless fixture (no `initialize` needed, so any data plane can take any call), a
/// control plane and `n` data planes serving `limits` (a `rate_limits:` section).
struct Gateway {
    // Field order is drop order: data planes first, Redis and the upstream last.
    dps: Vec<DataPlane>,
    cp: ControlPlane,
    fixture: Fixture,
}

impl Gateway {
    fn start(n: usize, limits: &str) -> anyhow::Result<Gateway> {
        let fixture = Fixture::start_stateless()?;
        let cp = ControlPlane::start(ControlPlaneOptions::with_tokens())?;
        let gateway_config = config(&fixture, limits);
        let version = apply(&cp, "v1.yaml", &gateway_config, "limits", "alice")?;
        let mut dps = Vec::with_capacity(n);
        for i in 0..n {
            let options = DataPlaneOptions::for_control_plane(&cp, &format!("dp-{}", i + 1));
            dps.push(DataPlane::start(options)?);
        }
        for dp in &dps {
            dp.wait_for_version(version)?;
        }
        Ok(Gateway { dps, cp, fixture })
    }

    /// Apply new limits and wait until every data plane serves them.
    fn apply_limits(&self, name: &str, limits: &str) -> anyhow::Result<()> {
        let version = apply(
            &self.cp,
            name,
            &config(&self.fixture, limits),
            name,
            "alice",
        )?;
        let nodes: Vec<String> = self.dps.iter().map(|dp| dp.node_id().to_owned()).collect();
        wait_converged(&self.cp, &nodes, version, Duration::from_secs(30))?;
        Ok(())
    }
}

fn config(fixture: &Fixture, limits: &str) -> String {
    format!(
        "servers:\n  - id: fixture\n    url: {}\n    timeout_ms: 10000\n{limits}",
        fixture.mcp_url()
    )
}

fn redis_limits(redis: &RedisServer, limits: &str) -> String {
    format!(
        "rate_limits:\n  backend: redis\n  redis_url: '{}'\n{limits}",
        redis.url()
    )
}

/// One `tools/call echo` through `dp`, with extra headers.
fn echo(dp: &DataPlane, headers: &[(&str, &str)]) -> anyhow::Result<Exchange> {
    let mut client = McpClient::new(dp.mcp_url("fixture"));
    for (name, value) in headers {
        client = client.with_header(name, value);
    }
    client.exchange(
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
    )
}

/// `Ok(true)` for an echoed call, `Ok(false)` for a well-formed rate limit refusal.
fn passed(exchange: &Exchange) -> anyhow::Result<bool> {
    let message = exchange
        .message
        .as_ref()
        .with_context(|| format!("no JSON-RPC answer: {}", exchange.response.text()))?;
    ensure!(
        exchange.response.status == 200,
        "HTTP {}",
        exchange.response.status
    );
    if message.get("result").is_some() {
        return Ok(true);
    }
    refusal(exchange)?;
    Ok(false)
}

/// The refusal's `data`, after checking the contract's answer.
fn refusal(exchange: &Exchange) -> anyhow::Result<Value> {
    let message = exchange.message.as_ref().context("no JSON-RPC answer")?;
    let error = &message["error"];
    ensure!(
        error["code"] == json!(-32029),
        "not a rate limit refusal: {message}"
    );
    let data = error["data"].clone();
    let retry_after = data["retry_after"].as_u64().context("data.retry_after")?;
    ensure!(retry_after >= 1, "{data}");
    let header = exchange
        .response
        .header("retry-after")
        .context("no Retry-After header")?;
    ensure!(
        header == retry_after.to_string(),
        "Retry-After {header} vs {data}"
    );
    let text = error["message"].as_str().unwrap_or_default();
    let expected = format!(
        "rate limit exceeded: {}/{}, retry after {retry_after} s",
        data["bucket"].as_str().unwrap_or_default(),
        data["window"].as_str().unwrap_or_default()
    );
    ensure!(text == expected, "message {text:?}, expected {expected:?}");
    ensure!(
        message["id"].is_u64(),
        "the refusal lost the request id: {message}"
    );
    Ok(data)
}

/// Calls from `threads` threads at once, `per_thread` each, thread `t` alternating between
/// the data planes starting with `t`; returns how many passed.
fn concurrent_calls(dps: &[DataPlane], threads: usize, per_thread: usize) -> anyhow::Result<usize> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> anyhow::Result<usize> {
                    let mut passed_here = 0;
                    for i in 0..per_thread {
                        let dp = &dps[(t + i) % dps.len()];
                        passed_here += usize::from(passed(&echo(dp, &[])?)?);
                    }
                    Ok(passed_here)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("caller thread"))
            .sum()
    })
}

#[test]
fn two_data_planes_share_one_redis_limit() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let limit = 7;
    let limits = format!("  global: {{requests_per_minute: {limit}}}\n");
    let gateway = Gateway::start(2, &redis_limits(&redis, &limits))?;

    let passed_total = concurrent_calls(&gateway.dps, 4, 5)?;
    assert_eq!(
        passed_total, limit,
        "exactly N calls pass across both data planes"
    );

    for dp in &gateway.dps {
        let refused = echo(dp, &[])?;
        let data = refusal(&refused)?;
        assert_eq!(
            data,
            json!({"limit": limit, "window": "minute", "bucket": "global",
                   "retry_after": data["retry_after"]})
        );
        let retry_after = data["retry_after"].as_u64().unwrap();
        assert!((1..=60).contains(&retry_after), "{data}");
    }
    // One counter per bucket and window, shared by both data planes.
    assert_eq!(redis.keys("conduit:rl:*")?, ["conduit:rl:v1:minute:global"]);
    assert_eq!(
        redis.command(&["ZCARD", "conduit:rl:v1:minute:global"])?,
        format!(":{limit}")
    );
    let metrics: String = (gateway.dps.iter())
        .map(|dp| dp.admin_get("/metrics").map(|r| r.text()))
        .collect::<anyhow::Result<_>>()?;
    // The series exists from the start (at 0); the rejections above counted in it.
    let prefix = "conduit_rate_limit_rejections_total{bucket=\"global\",window=\"minute\"} ";
    assert!(
        metrics
            .lines()
            .filter_map(|line| line.strip_prefix(prefix))
            .any(|value| value.trim().parse::<f64>().unwrap_or_default() > 0.0),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn memory_limits_count_on_each_data_plane() -> anyhow::Result<()> {
    let limit = 3;
    let limits = format!("rate_limits:\n  per_client: {{requests_per_minute: {limit}}}\n");
    let gateway = Gateway::start(2, &limits)?;
    for dp in &gateway.dps {
        let mut passed_here = 0;
        for _ in 0..limit + 2 {
            passed_here += usize::from(passed(&echo(dp, &[])?)?);
        }
        assert_eq!(passed_here, limit, "{} allows N on its own", dp.node_id());
    }
    Ok(())
}

#[test]
fn forwarded_for_does_not_make_distinct_clients() -> anyhow::Result<()> {
    let limits = "rate_limits:\n  per_client: {requests_per_minute: 2}\n";
    let gateway = Gateway::start(1, limits)?;
    let dp = &gateway.dps[0];
    let mut passed_total = 0;
    for i in 0..6 {
        let spoofed = format!("203.0.113.{i}");
        let headers = [
            ("X-Forwarded-For", spoofed.as_str()),
            ("X-Real-IP", spoofed.as_str()),
        ];
        passed_total += usize::from(passed(&echo(dp, &headers)?)?);
    }
    assert_eq!(passed_total, 2);
    Ok(())
}

#[test]
fn a_limit_changed_by_a_new_version_applies_to_the_next_request() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let limits = |n: u64| {
        redis_limits(
            &redis,
            &format!("  per_client: {{requests_per_minute: {n}}}\n"),
        )
    };
    let gateway = Gateway::start(2, &limits(5))?;
    let (one, two) = (&gateway.dps[0], &gateway.dps[1]);
    assert!(passed(&echo(one, &[])?)?);
    assert!(passed(&echo(two, &[])?)?);
    assert!(passed(&echo(one, &[])?)?);

    // Three are counted; with a limit of 3 the next request is refused, on either data plane.
    gateway.apply_limits("v2.yaml", &limits(3))?;
    for dp in [one, two] {
        let data = refusal(&echo(dp, &[])?)?;
        assert_eq!(
            (data["limit"].as_u64(), data["bucket"].as_str()),
            (Some(3), Some("client"))
        );
    }

    gateway.apply_limits("v3.yaml", &limits(4))?;
    assert!(passed(&echo(two, &[])?)?);
    assert!(!passed(&echo(one, &[])?)?);
    Ok(())
}

#[test]
fn every_request_counts_not_only_calls() -> anyhow::Result<()> {
    // The review: 10 initialize and list requests all passed a limit of 3 a minute.
    let limits = "rate_limits:\n  per_client: {requests_per_minute: 3}\n";
    let gateway = Gateway::start(1, limits)?;
    let dp = &gateway.dps[0];
    let mut client = McpClient::new(dp.mcp_url("fixture"));
    let mut passed_total = 0;
    for n in 0..10 {
        let exchange = if n % 2 == 0 {
            client.exchange(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "conduit-e2e", "version": "0"}}),
            )?
        } else {
            client.exchange("tools/list", json!({}))?
        };
        passed_total += usize::from(passed(&exchange)?);
    }
    assert_eq!(passed_total, 3);
    // Pings and the aggregate endpoint's requests count in the same client bucket.
    let data = refusal(&client.exchange("ping", json!({}))?)?;
    assert_eq!(data["bucket"], "client", "{data}");
    let mut aggregate = McpClient::new(dp.public_url("/mcp"));
    let refused = aggregate.exchange(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "conduit-e2e", "version": "0"}}),
    )?;
    assert_eq!(refusal(&refused)?["bucket"], "client");
    // Notifications are not counted (and not refused).
    let notification = http::request(
        "POST",
        &dp.mcp_url("fixture"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        Some(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
        Duration::from_secs(20),
    )?;
    assert_eq!(notification.status, 202, "{}", notification.text());
    Ok(())
}

#[test]
fn tool_buckets_count_only_calls() -> anyhow::Result<()> {
    let limits = "rate_limits:\n  per_client_server_tool: {requests_per_minute: 2}\n";
    let gateway = Gateway::start(1, limits)?;
    let dp = &gateway.dps[0];
    let mut client = McpClient::new(dp.mcp_url("fixture"));
    for _ in 0..5 {
        client.request("tools/list", json!({}))?;
    }
    let read = client.exchange("resources/read", json!({"uri": "fixture://greeting"}))?;
    assert!(passed(&read)?, "{read:?}");
    assert!(passed(&echo(dp, &[])?)?);
    assert!(passed(&echo(dp, &[])?)?);
    let refused = echo(dp, &[])?;
    assert_eq!(refusal(&refused)?["bucket"], "client_server_tool");
    Ok(())
}

#[test]
fn each_batch_entry_is_limited_on_its_own() -> anyhow::Result<()> {
    let limits = "rate_limits:\n  global: {requests_per_minute: 2}\n";
    let gateway = Gateway::start(1, limits)?;
    let dp = &gateway.dps[0];
    let batch: Vec<Value> = (1..=4)
        .map(|id| {
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"message": "hi"}}})
        })
        .collect();
    let body = serde_json::to_vec(&batch)?;
    let response = http::request(
        "POST",
        &dp.mcp_url("fixture"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        Some(&body),
        Duration::from_secs(20),
    )?;
    assert_eq!(response.status, 200);
    let answers = response.json()?;
    let answers = answers.as_array().context("a batch answer")?;
    let mut refused_ids = Vec::new();
    for answer in answers {
        if answer.get("result").is_some() {
            continue;
        }
        if answer["error"]["code"] != json!(-32029) {
            bail!("unexpected batch entry {answer}");
        }
        refused_ids.push(answer["id"].as_u64().context("entry id")?);
        assert!(answer["error"]["data"]["retry_after"].as_u64() >= Some(1));
    }
    assert_eq!((answers.len(), refused_ids.len()), (4, 2), "{answers:?}");
    Ok(())
}

#[test]
fn workspace_quotas_use_the_same_limiter() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    // Without `auth`, every caller is in the workspace `default`.
    let limits = format!(
        "{}governance:\n  quotas:\n    default: {{requests_per_minute: 3}}\n",
        redis_limits(&redis, "  enabled: true\n")
    );
    let gateway = Gateway::start(2, &limits)?;
    let passed_total = concurrent_calls(&gateway.dps, 2, 3)?;
    assert_eq!(passed_total, 3);
    let data = refusal(&echo(&gateway.dps[0], &[])?)?;
    assert_eq!(
        (data["bucket"].as_str(), data["limit"].as_u64()),
        (Some("workspace"), Some(3))
    );
    assert_eq!(
        redis.keys("conduit:rl:*")?,
        ["conduit:rl:v1:minute:workspace:default"]
    );
    Ok(())
}

#[test]
fn the_aggregate_endpoint_counts_in_the_same_buckets() -> anyhow::Result<()> {
    let limits = "rate_limits:\n  overrides:\n    - server: fixture\n      per_tool: {echo: {requests_per_minute: 2}}\n";
    let gateway = Gateway::start(1, limits)?;
    let dp = &gateway.dps[0];
    let mut aggregate = McpClient::new(dp.public_url("/mcp"));
    aggregate.initialize()?;
    let call = |client: &mut McpClient| {
        client.exchange(
            "tools/call",
            json!({"name": "fixture.echo", "arguments": {"message": "hi"}}),
        )
    };
    // The prefixed name counts as the server's own tool name.
    assert!(passed(&call(&mut aggregate)?)?);
    assert!(passed(&echo(dp, &[])?)?);
    let refused = call(&mut aggregate)?;
    let data = refusal(&refused)?;
    assert_eq!(
        (data["bucket"].as_str(), data["limit"].as_u64()),
        (Some("tool"), Some(2))
    );
    assert!(!passed(&echo(dp, &[])?)?);
    // Other tools of the server are not limited.
    let add = aggregate.exchange(
        "tools/call",
        json!({"name": "fixture.add", "arguments": {"a": 1, "b": 2}}),
    )?;
    assert!(passed(&add)?);
    Ok(())
}
