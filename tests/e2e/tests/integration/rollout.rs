//! Applying a config: every data plane gets it, `--wait` returns after the last ACK, and
//! documents that change nothing create no version.

use anyhow::Context as _;
use conduit_e2e::configs::fixture_config;

use super::common::{DEFAULT_FLEET, Fleet};

#[test]
fn apply_wait_returns_after_every_data_plane_applied() -> anyhow::Result<()> {
    let fleet = Fleet::start(DEFAULT_FLEET)?;
    let before = fleet.cp.history()?;

    let file = fleet
        .cp
        .write_config("v2.yaml", &fixture_config(&fleet.fixture.mcp_url(), "v2"))?;
    let output = fleet.cp.ctl().run([
        "apply",
        "-f",
        &file.display().to_string(),
        "--wait=60s",
        "-m",
        "second version",
        "--author",
        "bob",
    ])?;
    output.expect_code(0)?;

    // `--wait` returned: every data plane has ACKed, and an ACK means applied, so each
    // one already serves the new version; no polling here.
    let history = fleet.cp.history()?;
    assert_eq!(history.len(), before.len() + 1, "exactly one new version");
    let newest = history
        .iter()
        .max_by_key(|v| v.version)
        .context("empty history")?;
    assert_eq!(newest.version, fleet.first_version + 1);
    for dp in &fleet.dps {
        let dump = dp.config_dump()?;
        assert_eq!(
            dump["version"].as_u64(),
            Some(newest.version),
            "{} right after apply --wait: {dump}",
            dp.node_id()
        );
        assert_eq!(dump["hash"].as_str(), Some(newest.hash.as_str()));
    }

    let status = fleet.cp.status()?;
    assert_eq!(status.current_version, newest.version);
    assert_eq!(status.data_planes.len(), DEFAULT_FLEET);
    for (i, dp) in fleet.dps.iter().enumerate() {
        let entry = status.require(dp.node_id())?;
        assert!(entry.connected, "{entry:?}");
        assert_eq!(entry.applied(), newest.version, "{entry:?}");
        assert_eq!(entry.applied_hash.as_deref(), Some(newest.hash.as_str()));
        assert_eq!(entry.rejected(), None, "{entry:?}");
        assert_eq!(
            entry.labels.get("zone").map(String::as_str),
            Some(format!("z{}", i + 1).as_str())
        );
        assert!(!entry.build_version.is_empty(), "{entry:?}");
        assert!(
            entry
                .peer_address
                .as_deref()
                .is_some_and(|a| a.contains("127.0.0.1")),
            "{entry:?}"
        );
        assert!(entry.last_seen.as_deref().is_some_and(|s| !s.is_empty()));
    }

    // The table view names every node too.
    let table = fleet.cp.ctl().run(["status"])?;
    table.expect_code(0)?;
    for dp in &fleet.dps {
        assert!(table.stdout.contains(dp.node_id()), "{table}");
    }
    Ok(())
}

#[test]
fn unchanged_document_dry_run_and_diff_create_no_version() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    let ctl = fleet.cp.ctl();
    let same = fleet
        .cp
        .write_config("same.yaml", &fixture_config(&fleet.fixture.mcp_url(), "v1"))?;
    let other = fleet.cp.write_config(
        "other.yaml",
        &fixture_config(&fleet.fixture.mcp_url(), "v9"),
    )?;
    let same = same.display().to_string();
    let other = other.display().to_string();

    // Re-applying the current document: success, no new version.
    ctl.run(["apply", "-f", &same, "--wait=30s"])?
        .expect_code(0)?;
    // A dry run of a different document: success, nothing stored.
    ctl.run(["apply", "-f", &other, "--dry-run"])?
        .expect_code(0)?;
    let history = fleet.cp.history()?;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(fleet.cp.status()?.current_version, fleet.first_version);
    assert_eq!(fleet.dps[0].config_version()?, fleet.first_version);

    // diff: 0 when equal, 1 (with the changed line shown) when different.
    ctl.run(["diff", "-f", &same])?.expect_code(0)?;
    let diff = ctl.run(["diff", "-f", &other])?;
    diff.expect_code(1)?;
    assert!(diff.stdout.contains("v9"), "{diff}");
    Ok(())
}
