//! Configs that must not take effect: an invalid document is refused by `apply` before any
//! version exists; a valid document that one data plane cannot apply is NACKed by it while
//! it keeps serving its previous version.

use conduit_e2e::configs::{config_with_env_header, fixture_config};

use super::common::{DEFAULT_FLEET, Fleet, proxied_echo};

/// A document with several independent errors, each at a known path.
const INVALID: &str = r#"servers:
  - id: "bad id!"
    url: "not a url"
  - id: fixture-two
    url: http://127.0.0.1:1/mcp
    timeout_ms: 0
  - id: fixture-three
    url: http://127.0.0.1:1/mcp
    urll: http://127.0.0.1:2/mcp
sevrers: []
"#;

/// Paths `INVALID`'s errors must be reported at.
const INVALID_PATHS: &[&str] = &[
    "servers[0].id",
    "servers[0].url",
    "servers[1].timeout_ms",
    "servers[2].urll",
    "sevrers",
];

fn assert_every_error_reported(stderr: &str) {
    for path in INVALID_PATHS {
        assert!(
            stderr.lines().any(|line| line.contains(path)),
            "no error printed for `{path}`; stderr:\n{stderr}"
        );
    }
}

#[test]
fn invalid_config_is_refused_with_every_error_and_creates_no_version() -> anyhow::Result<()> {
    let fleet = Fleet::start(DEFAULT_FLEET)?;
    let history_before = fleet.cp.history()?;
    let bad = fleet.cp.write_config("invalid.yaml", INVALID)?;
    let bad = bad.display().to_string();

    // Offline validation and the control plane run the same validation.
    let validate = fleet.cp.ctl().run(["validate", "-f", &bad])?;
    validate.expect_code(2)?;
    assert_every_error_reported(&validate.stderr);

    let apply = fleet
        .cp
        .ctl()
        .run(["apply", "-f", &bad, "--wait=30s", "-m", "broken"])?;
    apply.expect_code(2)?;
    assert_every_error_reported(&apply.stderr);

    let history_after = fleet.cp.history()?;
    let versions =
        |h: &[conduit_e2e::HistoryEntry]| h.iter().map(|v| v.version).collect::<Vec<_>>();
    assert_eq!(versions(&history_after), versions(&history_before));
    let status = fleet.cp.status()?;
    assert_eq!(status.current_version, fleet.first_version);
    for dp in &fleet.dps {
        assert_eq!(
            dp.config_version()?,
            fleet.first_version,
            "{}",
            dp.node_id()
        );
        assert_eq!(dp.readyz()?, 200);
        let entry = status.require(dp.node_id())?;
        assert_eq!(entry.applied(), fleet.first_version);
        assert_eq!(entry.rejected(), None, "{entry:?}");
    }
    Ok(())
}

#[test]
fn snapshot_a_data_plane_cannot_resolve_is_nacked_and_it_keeps_serving() -> anyhow::Result<()> {
    const VAR: &str = "CONDUIT_SECRET_E2E_UPSTREAM";
    // dp-1 and dp-2 have the variable, dp-3 does not.
    let fleet = Fleet::start_with(
        DEFAULT_FLEET,
        conduit_e2e::ControlPlaneOptions::with_tokens(),
        |i, options| {
            if i < 2 {
                options.env(VAR, "s3cret-value")
            } else {
                options
            }
        },
    )?;
    let v1 = fleet.first_version;
    let file = fleet.cp.write_config(
        "needs-env.yaml",
        &config_with_env_header(&fleet.fixture.mcp_url(), "v2", VAR),
    )?;
    let apply = fleet.cp.ctl().run([
        "apply",
        "-f",
        &file.display().to_string(),
        "--wait=60s",
        "-m",
        "needs a secret",
    ])?;
    apply.expect_code(3)?;
    let printed = format!("{}\n{}", apply.stdout, apply.stderr);
    assert!(
        printed.contains("dp-3"),
        "the NACKing node is not named:\n{apply}"
    );
    assert!(
        printed.contains(VAR),
        "the NACK error is not shown:\n{apply}"
    );

    // The version exists (it is valid); dp-1/dp-2 run it, dp-3 rejected it.
    let status = fleet.cp.status()?;
    let v2 = status.current_version;
    assert_eq!(v2, v1 + 1);
    for node in ["dp-1", "dp-2"] {
        let entry = status.require(node)?;
        assert_eq!(entry.applied(), v2, "{entry:?}");
        assert_eq!(entry.rejected(), None, "{entry:?}");
    }
    let nacked = status.require("dp-3")?;
    assert!(nacked.connected, "{nacked:?}");
    assert_eq!(nacked.applied(), v1, "{nacked:?}");
    assert_eq!(nacked.rejected(), Some(v2), "{nacked:?}");
    assert!(
        nacked
            .rejected_errors
            .iter()
            .any(|e| e.path.starts_with("servers[0].headers") && e.message.contains(VAR)),
        "the NACK errors lack the failing path: {nacked:?}"
    );

    // dp-3 keeps serving v1: config dump, readiness and the proxied path.
    let dp3 = &fleet.dps[2];
    assert_eq!(dp3.config_version()?, v1);
    assert_eq!(dp3.readyz()?, 200);
    proxied_echo(dp3, "still serving")?;
    // The others serve v2, with the secret resolved locally and masked in the dump.
    assert_eq!(fleet.dps[0].config_version()?, v2);
    let dump = fleet.dps[0].config_dump()?.to_string();
    assert!(
        !dump.contains("s3cret-value"),
        "secret visible in /config_dump: {dump}"
    );

    // A later version dp-3 can apply clears the rejection.
    let file = fleet.cp.write_config(
        "fixed.yaml",
        &fixture_config(&fleet.fixture.mcp_url(), "v3"),
    )?;
    fleet.cp.ctl().apply_wait(&file, "drop the secret header")?;
    let status = fleet.cp.status()?;
    let v3 = status.current_version;
    let entry = status.require("dp-3")?;
    assert_eq!(entry.applied(), v3, "{entry:?}");
    assert_eq!(entry.rejected(), None, "{entry:?}");
    assert!(entry.rejected_errors.is_empty(), "{entry:?}");
    assert_eq!(dp3.config_version()?, v3);
    Ok(())
}
