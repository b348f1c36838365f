//! Running `conduitctl` (bounded in time) and the JSON shapes of its `status` and
//! `history` output.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;

use crate::binaries::{self, CONDUITCTL};

/// What a `conduitctl` run produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Fails with the whole output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> anyhow::Result<&Self> {
        if self.code != code {
            bail!("expected exit code {code}, got {}\n{self}", self.code);
        }
        Ok(self)
    }

    pub fn json<T: for<'de> Deserialize<'de>>(&self) -> anyhow::Result<T> {
        serde_json::from_str(&self.stdout).with_context(|| {
            format!("conduitctl printed something else than the expected JSON:\n{self}")
        })
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A `conduitctl` invocation template: server, token, CA and environment.
#[derive(Debug, Clone)]
pub struct Ctl {
    server: String,
    token: Option<String>,
    ca_cert: Option<PathBuf>,
    env: Vec<(String, String)>,
    timeout: Duration,
}

impl Ctl {
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            token: None,
            ca_cert: None,
            env: Vec::new(),
            timeout: Duration::from_secs(120),
        }
    }

    /// `--token` (none when `None`).
    pub fn token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    pub fn ca_cert(mut self, path: &Path) -> Self {
        self.ca_cert = Some(path.to_path_buf());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Runs `conduitctl --server S [--token T] [--ca-cert F] ARGS...`. The process is
    /// killed if it outlives the timeout (120 s), which then is an error.
    pub fn run<I, S>(&self, args: I) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut full: Vec<String> = vec!["--server".into(), self.server.clone()];
        if let Some(token) = &self.token {
            full.extend(["--token".into(), token.clone()]);
        }
        if let Some(ca) = &self.ca_cert {
            full.extend(["--ca-cert".into(), ca.display().to_string()]);
        }
        full.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        run_conduitctl(&full, &self.env, self.timeout)
    }

    /// `status -o json`, parsed.
    pub fn status(&self) -> anyhow::Result<FleetStatus> {
        let output = self.run(["status", "-o", "json"])?;
        output.expect_code(0)?;
        output.json()
    }

    /// `history -o json`, parsed.
    pub fn history(&self) -> anyhow::Result<Vec<HistoryEntry>> {
        let output = self.run(["history", "-o", "json"])?;
        output.expect_code(0)?;
        output.json()
    }

    /// `apply -f FILE --wait -m MESSAGE`, expecting exit 0.
    pub fn apply_wait(&self, file: &Path, message: &str) -> anyhow::Result<Output> {
        let output = self.run([
            "apply",
            "-f",
            &file.display().to_string(),
            "--wait=60s",
            "-m",
            message,
        ])?;
        output.expect_code(0)?;
        Ok(output)
    }
}

/// Runs `conduitctl` with exactly `args` (no implied `--server`).
pub fn run_conduitctl(
    args: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> anyhow::Result<Output> {
    let program = binaries::binary(CONDUITCTL)?;
    let mut command = Command::new(&program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1");
    for var in [
        "CONDUIT_SERVER",
        "CONDUIT_TOKEN",
        "CONDUIT_CA_CERT",
        "CONDUIT_AUTHOR",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = command
        .spawn()
        .with_context(|| format!("spawning {}", program.display()))?;

    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().context("stdout pipe")?;
    let mut stderr = child.stderr.take().context("stderr pipe")?;
    let out_reader = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stdout.read_to_string(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });

    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "conduitctl {} did not finish within {timeout:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_reader
        .join()
        .map_err(|_| anyhow!("stdout reader panicked"))?;
    let stderr = err_reader
        .join()
        .map_err(|_| anyhow!("stderr reader panicked"))?;
    Ok(Output {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    })
}

/// `conduitctl status -o json`.
#[derive(Debug, Clone, Deserialize)]
pub struct FleetStatus {
    pub current_version: u64,
    #[serde(default)]
    pub data_planes: Vec<DataPlaneStatus>,
}

impl FleetStatus {
    pub fn node(&self, node_id: &str) -> Option<&DataPlaneStatus> {
        self.data_planes.iter().find(|dp| dp.node_id == node_id)
    }

    /// The entry of `node_id`, or an error listing what the status holds.
    pub fn require(&self, node_id: &str) -> anyhow::Result<&DataPlaneStatus> {
        self.node(node_id)
            .ok_or_else(|| anyhow!("{node_id} is not in the fleet status: {self:?}"))
    }
}

/// One entry of `status -o json`'s `data_planes`.
#[derive(Debug, Clone, Deserialize)]
pub struct DataPlaneStatus {
    pub node_id: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub build_version: String,
    pub connected: bool,
    #[serde(default)]
    pub applied_version: Option<u64>,
    #[serde(default)]
    pub applied_hash: Option<String>,
    #[serde(default)]
    pub rejected_version: Option<u64>,
    #[serde(default)]
    pub rejected_errors: Vec<ErrorEntry>,
    #[serde(default)]
    pub last_seen: Option<String>,
    #[serde(default)]
    pub connected_since: Option<String>,
    #[serde(default)]
    pub peer_address: Option<String>,
}

impl DataPlaneStatus {
    /// The applied version, 0 when none.
    pub fn applied(&self) -> u64 {
        self.applied_version.unwrap_or(0)
    }

    /// The rejected version, `None` when there is none (absent, null or 0).
    pub fn rejected(&self) -> Option<u64> {
        self.rejected_version.filter(|v| *v != 0)
    }
}

/// A config error as printed in JSON output.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorEntry {
    pub path: String,
    pub message: String,
}

/// One entry of `history -o json`.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryEntry {
    pub version: u64,
    pub hash: String,
    pub author: String,
    pub message: String,
    pub created_at: String,
    #[serde(default)]
    pub rolled_back_from: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_status_shape() {
        let text = r#"{"current_version": 3, "data_planes": [{"node_id": "dp-1",
            "labels": {"zone": "a"}, "build_version": "0.1.0", "connected": true,
            "applied_version": 3, "applied_hash": "ab", "rejected_version": 0,
            "rejected_errors": [], "last_seen": "2026-01-01T00:00:00Z",
            "connected_since": "2026-01-01T00:00:00Z", "peer_address": "127.0.0.1:5"}]}"#;
        let status: FleetStatus = serde_json::from_str(text).unwrap();
        let dp = status.require("dp-1").unwrap();
        assert_eq!(dp.applied(), 3);
        assert_eq!(dp.rejected(), None);
        assert!(status.require("dp-2").is_err());
    }
}
