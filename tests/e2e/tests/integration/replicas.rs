//! A server with replicas: three stateless fixture processes behind one `/mcp/fixture`.
//! Load balancing spreads calls over all of them; a killed replica is taken out (circuit
//! breaker, health checks) without failing callers for long, comes back by itself when
//! restarted, and a server whose replicas are all down answers a timely 503.
//!
//! Which replica answered is read from `echo_headers`: the `Host` the gateway sent is the
//! replica's address.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use conduit_e2e::http;
use conduit_e2e::mcp::{PROTOCOL_VERSION, messages};
use conduit_e2e::{DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, Fixture, wait_until};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Health checks every second (two failures take a replica out); breakers open after two
/// failures and try again after two seconds.
const ROUTER: &str = "router:
  load_balancing: POLICY
  health_check: {interval_seconds: 1, timeout_ms: 500, unhealthy_threshold: 2, healthy_threshold: 1}
  circuit_breaker: {failure_threshold: 2, reset_timeout_ms: 2000, half_open_max_requests: 1, success_threshold: 1}
";

struct Setup {
    // Field order is drop order: the data plane goes before its upstreams.
    dp: DataPlane,
    replicas: Vec<Fixture>,
    config: PathBuf,
    _dir: TempDir,
}

impl Setup {
    /// Three stateless fixtures and a standalone data plane serving them as `fixture`.
    fn start(policy: &str) -> anyhow::Result<Setup> {
        let replicas = (0..3)
            .map(|_| Fixture::start_stateless())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("conduit.yaml");
        std::fs::write(&config, config_text(&replicas, policy))?;
        let dp = DataPlane::start(DataPlaneOptions {
            node_id: "replicas".into(),
            config_file: Some(config.clone()),
            wait_ready: true,
            ..DataPlaneOptions::default()
        })?;
        Ok(Setup {
            dp,
            replicas,
            config,
            _dir: dir,
        })
    }

    /// The replica (its `host:port`) that answered one `echo_headers` call, or the
    /// gateway's JSON-RPC error.
    fn call(&self, id: u64) -> anyhow::Result<Result<String, Failure>> {
        call(&self.dp, id)
    }

    /// Who served each of `count` sequential calls, all of which must succeed.
    fn spread(&self, count: u64) -> anyhow::Result<BTreeMap<String, usize>> {
        let mut served = BTreeMap::new();
        for id in 0..count {
            let host = self
                .call(id)?
                .map_err(|failure| anyhow!("call {id}: {failure:?}"))?;
            *served.entry(host).or_default() += 1;
        }
        Ok(served)
    }

    fn host(&self, index: usize) -> String {
        self.replicas[index].addr().to_string()
    }

    /// A per-replica metric of the data plane, e.g. `conduit_dp_replica_healthy`.
    fn metric(&self, name: &str, index: usize) -> anyhow::Result<f64> {
        let prefix = format!(
            "{name}{{replica=\"{}\",server=\"fixture\"}} ",
            self.replicas[index].mcp_url()
        );
        let text = self.dp.admin_get("/metrics")?.text();
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .with_context(|| format!("no {prefix} in /metrics"))?;
        Ok(value.trim().parse()?)
    }

    fn wait_for_metric(&self, name: &str, index: usize, want: f64) -> anyhow::Result<()> {
        wait_until(
            DEFAULT_TIMEOUT,
            &format!("{name} of replica {index} to be {want}"),
            || {
                let value = self.metric(name, index)?;
                if value != want {
                    bail!("it is {value}");
                }
                Ok(())
            },
        )
    }
}

/// A JSON-RPC error answer of the gateway.
#[derive(Debug)]
struct Failure {
    status: u16,
    error: Value,
    id: Value,
}

fn config_text(replicas: &[Fixture], policy: &str) -> String {
    let urls: Vec<String> = replicas.iter().map(Fixture::mcp_url).collect();
    format!(
        "{}servers:\n  - id: fixture\n    url: {}\n    replicas: [{}]\n    timeout_ms: 5000\n",
        ROUTER.replace("POLICY", policy),
        urls[0],
        urls[1..].join(", ")
    )
}

fn call(dp: &DataPlane, id: u64) -> anyhow::Result<Result<String, Failure>> {
    let body = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": "echo_headers", "arguments": {} }
    });
    let response = http::request(
        "POST",
        &dp.mcp_url("fixture"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
        ],
        Some(body.to_string().as_bytes()),
        Duration::from_secs(20),
    )?;
    let message = messages(&response)?.into_iter().next().with_context(|| {
        format!(
            "HTTP {} without JSON-RPC: {}",
            response.status,
            response.text()
        )
    })?;
    if let Some(error) = message.get("error") {
        return Ok(Err(Failure {
            status: response.status,
            error: error.clone(),
            id: message["id"].clone(),
        }));
    }
    let text = message["result"]["content"][0]["text"]
        .as_str()
        .with_context(|| format!("no text content: {message}"))?;
    let headers: Value = serde_json::from_str(text)?;
    let host = headers["host"]
        .as_str()
        .with_context(|| format!("no host header: {headers}"))?;
    Ok(Ok(host.to_owned()))
}

fn every_replica_once_per_round(setup: &Setup, rounds: usize) -> anyhow::Result<()> {
    let served = setup.spread(3 * rounds as u64)?;
    let expected: BTreeMap<String, usize> = (0..3).map(|i| (setup.host(i), rounds)).collect();
    assert_eq!(served, expected);
    Ok(())
}

#[test]
fn balancing_spreads_stateless_calls_over_every_replica() -> anyhow::Result<()> {
    let setup = Setup::start("round-robin")?;
    every_replica_once_per_round(&setup, 3)?;

    // The same with least-connections: sequential calls find every replica idle, and
    // ties go round the replicas.
    rewrite(
        &setup.config,
        &config_text(&setup.replicas, "least-connections"),
    )?;
    wait_until(DEFAULT_TIMEOUT, "the new policy to apply", || {
        let dump = setup.dp.config_dump()?;
        if dump["config"]["router"]["load_balancing"] != json!("least-connections") {
            bail!("still {}", dump["config"]["router"]);
        }
        Ok(())
    })?;
    every_replica_once_per_round(&setup, 3)?;
    Ok(())
}

#[test]
fn a_dead_replica_is_taken_out_and_comes_back_by_itself() -> anyhow::Result<()> {
    let mut setup = Setup::start("round-robin")?;
    every_replica_once_per_round(&setup, 1)?;

    // Replica 1 dies. Until its breaker opens some calls fail, each with a timely
    // JSON-RPC error carrying its id.
    setup.replicas[1].kill();
    let mut id = 100;
    wait_until(DEFAULT_TIMEOUT, "the dead replica to be taken out", || {
        id += 1;
        if let Err(failure) = setup.call(id)? {
            assert_eq!(failure.status, 502, "{failure:?}");
            assert_eq!(failure.id, json!(id), "{failure:?}");
        }
        // Usually the breaker is first; on a very slow machine the health checks may be.
        let open = setup.metric("conduit_dp_replica_circuit_state", 1)? == 1.0;
        let unhealthy = setup.metric("conduit_dp_replica_healthy", 1)? == 0.0;
        if !open && !unhealthy {
            bail!("still in rotation");
        }
        Ok(())
    })?;
    // Health checks take it out too, so no trial request is sent to it any more.
    setup.wait_for_metric("conduit_dp_replica_healthy", 1, 0.0)?;
    let served = setup.spread(12)?;
    let expected: BTreeMap<String, usize> = [(setup.host(0), 6), (setup.host(2), 6)].into();
    assert_eq!(served, expected, "calls must keep succeeding on the others");

    // Restarted, it passes its health checks and its breaker lets a trial through, which
    // closes it: the replica is back in rotation without anyone resetting anything.
    setup.replicas[1].restart()?;
    setup.wait_for_metric("conduit_dp_replica_healthy", 1, 1.0)?;
    let back = setup.host(1);
    wait_until(
        DEFAULT_TIMEOUT,
        "the restarted replica to serve again",
        || {
            id += 1;
            match setup.call(id)? {
                Ok(host) if host == back => Ok(()),
                Ok(host) => bail!("served by {host}"),
                Err(failure) => Err(anyhow!("call failed: {failure:?}")),
            }
        },
    )?;
    assert_eq!(setup.metric("conduit_dp_replica_circuit_state", 1)?, 0.0);
    every_replica_once_per_round(&setup, 2)?;
    Ok(())
}

#[test]
fn a_server_without_any_live_replica_answers_503_with_the_request_id() -> anyhow::Result<()> {
    let mut setup = Setup::start("round-robin")?;
    every_replica_once_per_round(&setup, 1)?;
    for replica in &mut setup.replicas {
        replica.kill();
    }
    let mut id = 200;
    let failure = wait_until(DEFAULT_TIMEOUT, "a 503 from the gateway", || {
        id += 1;
        match setup.call(id)? {
            Ok(host) => panic!("a dead replica answered: {host}"),
            Err(failure) if failure.status == 503 => Ok(failure),
            Err(failure) => {
                // Before the breakers open: the replica's own failure.
                assert_eq!(failure.status, 502, "{failure:?}");
                bail!("got {failure:?}")
            }
        }
    })?;
    assert_eq!(failure.id, json!(id), "{failure:?}");
    assert_eq!(failure.error["code"], json!(-32603), "{failure:?}");
    let message = failure.error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("fixture") && message.contains("unavailable"),
        "{failure:?}"
    );
    Ok(())
}

/// Replace the config file atomically, as editors do.
fn rewrite(path: &Path, text: &str) -> anyhow::Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}
