//! A standalone data plane whose only server, `local`, is `conduit-mcp-fixture --stdio`:
//! a process the data plane starts and owns. Used by the stdio tests, with the raw
//! requests they make.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::mcp::PROTOCOL_VERSION;
use crate::{DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, binaries, http, procfs, wait_until};

pub const SERVER: &str = "local";
/// Given to the data plane; its stdio servers must never see it.
pub const DP_TOKEN: &str = "dp-token-that-must-not-reach-a-stdio-server";
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A standalone data plane whose only server is the fixture over stdio.
pub struct StdioGateway {
    pub dp: DataPlane,
    config: PathBuf,
    _dir: TempDir,
}

impl StdioGateway {
    /// Starts it, ready, with requests bounded by `timeout_ms`.
    pub fn start(timeout_ms: u64) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("conduit.yaml");
        std::fs::write(&config, config_text(timeout_ms, "first")?)?;
        let dp = DataPlane::start(DataPlaneOptions {
            node_id: "stdio".into(),
            config_file: Some(config.clone()),
            dp_token: Some(DP_TOKEN.into()),
            wait_ready: true,
            // Some tests open hundreds of connections from 127.0.0.1 at once.
            args: vec!["--max-connections-per-address".into(), "1024".into()],
            ..DataPlaneOptions::default()
        })?;
        Ok(Self {
            dp,
            config,
            _dir: dir,
        })
    }

    /// `/mcp/local` on the public port.
    pub fn url(&self) -> String {
        self.dp.mcp_url(SERVER)
    }

    /// The pid of the stdio server process, once there is exactly one.
    pub fn child(&self) -> anyhow::Result<u32> {
        let dp = self.dp.pid().context("the data plane is not running")?;
        wait_until(DEFAULT_TIMEOUT, "one stdio server process", || {
            let children = procfs::children(dp)?;
            match children.as_slice() {
                [pid] if procfs::is_alive(*pid) => Ok(*pid),
                other => bail!("children of the data plane: {other:?}"),
            }
        })
    }

    /// Replace the config file atomically and wait until the data plane applied it.
    pub fn replace_config(&self, text: String) -> anyhow::Result<()> {
        let before = self.dp.config_dump()?["hash"].clone();
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.config)?;
        wait_until(DEFAULT_TIMEOUT, "the new config to be applied", || {
            let hash = self.dp.config_dump()?["hash"].clone();
            ensure!(hash != before, "still on the previous config");
            Ok(())
        })
    }

    /// The admin `/metrics` text.
    pub fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.dp.admin_get("/metrics")?.text())
    }
}

/// The config: the fixture over stdio as `local`, with `CONDUIT_E2E_MARKER=marker` in its env.
pub fn config_text(timeout_ms: u64, marker: &str) -> anyhow::Result<String> {
    let fixture = binaries::binary(binaries::FIXTURE)?;
    let command = serde_json::to_string(&fixture.display().to_string())?;
    Ok(format!(
        "servers:\n  - id: {SERVER}\n    transport: stdio\n    command: {command}\n    args: [\"--stdio\"]\n    timeout_ms: {timeout_ms}\n    env:\n      CONDUIT_E2E_MARKER: \"{marker}\"\n"
    ))
}

/// A `tools/call` request.
pub fn call(id: Value, tool: &str, arguments: Value) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}
    })
}

/// POST one body; `event_stream` says whether the client accepts `text/event-stream`.
pub fn post(url: &str, body: &Value, event_stream: bool) -> anyhow::Result<http::Response> {
    let accept = if event_stream {
        "application/json, text/event-stream"
    } else {
        "application/json"
    };
    http::request(
        "POST",
        url,
        &[
            ("Content-Type", "application/json"),
            ("Accept", accept),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
        ],
        Some(&serde_json::to_vec(body)?),
        REQUEST_TIMEOUT,
    )
    .with_context(|| format!("POST {url}"))
}

/// The text of the first content block of a tool result.
pub fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}
