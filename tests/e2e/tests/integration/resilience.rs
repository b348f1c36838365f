//! The data planes do not depend on the control plane being up: they keep serving their
//! version while it is down, start from their persisted snapshot, and converge again when
//! it comes back.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use conduit_e2e::mcp::McpClient;
use conduit_e2e::wait::holds_for;
use conduit_e2e::{DEFAULT_TIMEOUT, wait_until};

use super::common::{DEFAULT_FLEET, Fleet, RECONNECT_TIMEOUT, proxied_echo};

#[test]
fn data_planes_ride_out_a_control_plane_outage() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(DEFAULT_FLEET)?;
    let v2 = fleet.apply_marker("v2", "before the outage", "alice")?;

    fleet.cp.kill();

    // Still ready, same version, still proxying, for a while.
    holds_for(
        Duration::from_secs(3),
        "data planes serving without a control plane",
        || {
            for dp in &fleet.dps {
                if dp.readyz()? != 200 {
                    bail!("{} is not ready", dp.node_id());
                }
                let version = dp.config_version()?;
                if version != v2 {
                    bail!("{} serves version {version}", dp.node_id());
                }
            }
            Ok(())
        },
    )?;
    for dp in &fleet.dps {
        proxied_echo(dp, "control plane is down")?;
    }

    // A data plane restarted now can only use its persisted snapshot.
    let dp3 = &mut fleet.dps[2];
    dp3.restart()
        .context("restarting dp-3 while the control plane is down")?;
    assert_eq!(dp3.readyz()?, 200);
    assert_eq!(dp3.config_version()?, v2);
    proxied_echo(dp3, "started from its state dir")?;
    assert_state_files_private(dp3.state_dir())?;

    // Control plane back on the same data dir: everyone reconnects and is current.
    fleet.cp.restart()?;
    let status = fleet.wait_converged(v2, RECONNECT_TIMEOUT)?;
    assert_eq!(status.data_planes.len(), DEFAULT_FLEET, "{status:?}");

    // The streams are live again: a new version reaches everyone with --wait.
    let v3 = fleet.apply_marker("v3", "after the outage", "alice")?;
    assert_eq!(v3, v2 + 1);
    for dp in &fleet.dps {
        assert_eq!(dp.config_version()?, v3, "{}", dp.node_id());
    }
    Ok(())
}

#[test]
fn fleet_status_survives_a_control_plane_restart() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(2)?;
    fleet.wait_converged(fleet.first_version, DEFAULT_TIMEOUT)?;
    fleet.dps[1].kill();
    wait_until(DEFAULT_TIMEOUT, "dp-2 seen as disconnected", || {
        if fleet.cp.status()?.require("dp-2")?.connected {
            bail!("dp-2 still connected");
        }
        Ok(())
    })?;
    // A clean restart: the control plane flushes what it knows on the way down.
    fleet.cp.graceful_restart()?;
    // dp-1 reconnects; dp-2 is gone but still known from the store, as disconnected.
    let status = wait_until(RECONNECT_TIMEOUT, "dp-1 reconnected", || {
        let status = fleet.cp.status()?;
        let dp1 = status.require("dp-1")?;
        if !dp1.connected {
            bail!("dp-1 not connected yet");
        }
        Ok(status)
    })?;
    let dp2 = status.require("dp-2")?;
    assert!(!dp2.connected, "{dp2:?}");
    assert_eq!(dp2.applied(), fleet.first_version, "{dp2:?}");
    Ok(())
}

#[test]
fn sigterm_lets_in_flight_requests_finish() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(1)?;
    let mut client = McpClient::new(fleet.dps[0].mcp_url("fixture"));
    client.initialize()?;
    let in_flight = std::thread::spawn(move || {
        client.call_tool_text("sleep", serde_json::json!({ "ms": 1500 }))
    });
    // Let the call reach the upstream before the data plane is told to stop.
    std::thread::sleep(Duration::from_millis(500));
    let exit = fleet.dps[0].terminate(Duration::from_secs(20));
    let answer = in_flight
        .join()
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))?
        .context("the in-flight call did not complete across SIGTERM")?;
    assert_eq!(answer, "slept 1500 ms");
    let exit = exit.context("the data plane did not exit after draining")?;
    assert!(
        exit.success(),
        "data plane exit status after SIGTERM: {exit}"
    );
    Ok(())
}

/// Every file under the state directory is readable by its owner only.
fn assert_state_files_private(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() {
            seen += 1;
            let mode = meta.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} has mode {mode:o}", entry.path().display());
        }
    }
    assert!(seen > 0, "no snapshot file in {}", dir.display());
    Ok(())
}
