//! Shared set-up: a fixture, a control plane holding a first version, and N data planes
//! that applied it.

use std::time::Duration;

use anyhow::{Context as _, bail};
use conduit_e2e::configs::fixture_config;
use conduit_e2e::{
    ControlPlane, ControlPlaneOptions, DataPlane, DataPlaneOptions, Fixture, FleetStatus,
    wait_until,
};

/// Size of the fleet in tests that need "several" data planes.
pub const DEFAULT_FLEET: usize = 3;

/// Deadline for a fleet to converge after a control-plane restart: data planes may be deep
/// in their reconnect backoff (up to ~30 s) by then.
pub const RECONNECT_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Fleet {
    // Field order is drop order: data planes go first, the upstream last.
    pub dps: Vec<DataPlane>,
    pub cp: ControlPlane,
    pub fixture: Fixture,
    /// The version every data plane serves after `start`.
    pub first_version: u64,
}

impl Fleet {
    /// Fixture + control plane (with tokens) + first config applied by `alice` + `n` data
    /// planes `dp-1..dp-n` (labelled `zone=z<i>`) that are ready with it.
    pub fn start(n: usize) -> anyhow::Result<Self> {
        Self::start_with(n, ControlPlaneOptions::with_tokens(), |_, options| options)
    }

    /// Like [`Fleet::start`] with control-plane options and a hook that adjusts each data
    /// plane's options (`index` from 0).
    pub fn start_with(
        n: usize,
        cp_options: ControlPlaneOptions,
        mut adjust: impl FnMut(usize, DataPlaneOptions) -> DataPlaneOptions,
    ) -> anyhow::Result<Self> {
        let fixture = Fixture::start()?;
        let cp = ControlPlane::start(cp_options)?;
        let first_version = apply(
            &cp,
            "v1.yaml",
            &fixture_config(&fixture.mcp_url(), "v1"),
            "first version",
            "alice",
        )?;
        let mut dps = Vec::with_capacity(n);
        for i in 0..n {
            let node_id = format!("dp-{}", i + 1);
            let options = DataPlaneOptions::for_control_plane(&cp, &node_id)
                .label("zone", &format!("z{}", i + 1));
            dps.push(DataPlane::start(adjust(i, options))?);
        }
        for dp in &dps {
            dp.wait_for_version(first_version)?;
        }
        Ok(Self {
            dps,
            cp,
            fixture,
            first_version,
        })
    }

    /// Applies a fixture config carrying `marker` with `--wait`; returns the new version.
    pub fn apply_marker(&self, marker: &str, message: &str, author: &str) -> anyhow::Result<u64> {
        apply(
            &self.cp,
            &format!("{marker}.yaml"),
            &fixture_config(&self.fixture.mcp_url(), marker),
            message,
            author,
        )
    }

    /// Waits until the status shows every data plane connected with `version` applied.
    pub fn wait_converged(&self, version: u64, timeout: Duration) -> anyhow::Result<FleetStatus> {
        let nodes: Vec<String> = self.dps.iter().map(|dp| dp.node_id().to_owned()).collect();
        wait_converged(&self.cp, &nodes, version, timeout)
    }
}

/// `apply -f <file> --wait -m MESSAGE --author AUTHOR`, exit 0 expected; returns the
/// control plane's current version afterwards.
pub fn apply(
    cp: &ControlPlane,
    name: &str,
    yaml: &str,
    message: &str,
    author: &str,
) -> anyhow::Result<u64> {
    let file = cp.write_config(name, yaml)?;
    cp.ctl()
        .run([
            "apply",
            "-f",
            &file.display().to_string(),
            "--wait=60s",
            "-m",
            message,
            "--author",
            author,
        ])?
        .expect_code(0)
        .with_context(|| format!("applying {name}"))?;
    Ok(cp.status()?.current_version)
}

/// Waits until `status -o json` shows every node in `nodes` connected, with `version`
/// applied, and `version` current.
pub fn wait_converged(
    cp: &ControlPlane,
    nodes: &[String],
    version: u64,
    timeout: Duration,
) -> anyhow::Result<FleetStatus> {
    wait_until(
        timeout,
        &format!("fleet converged on version {version}"),
        || {
            let status = cp.status()?;
            if status.current_version != version {
                bail!("current_version is {}", status.current_version);
            }
            for node in nodes {
                let dp = status.require(node)?;
                if !dp.connected || dp.applied() != version {
                    bail!(
                        "{node}: connected={} applied={}",
                        dp.connected,
                        dp.applied()
                    );
                }
            }
            Ok(status)
        },
    )
}

/// One MCP `tools/call echo` through `dp`'s `/mcp/fixture`, asserting the echo.
pub fn proxied_echo(dp: &DataPlane, message: &str) -> anyhow::Result<()> {
    let mut client = conduit_e2e::mcp::McpClient::new(dp.mcp_url("fixture"));
    client.initialize()?;
    let text = client.call_tool_text("echo", serde_json::json!({ "message": message }))?;
    if text != message {
        bail!("echo through {} returned {text:?}", dp.node_id());
    }
    Ok(())
}
