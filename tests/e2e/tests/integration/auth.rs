//! Authentication: Admin calls need the admin token, data planes need the DP token, a
//! control plane reachable from other hosts refuses to run without tokens, and TLS works
//! end to end with a private CA.

use std::time::Duration;

use anyhow::bail;
use conduit_e2e::binaries::{self, CONTROL_PLANE};
use conduit_e2e::configs::fixture_config;
use conduit_e2e::process::{ManagedProcess, Spec, log_tail};
use conduit_e2e::wait::holds_for;
use conduit_e2e::{ControlPlane, ControlPlaneOptions, DataPlane, DataPlaneOptions, free_addr, tls};

use super::common::{Fleet, apply, proxied_echo};

#[test]
fn admin_calls_without_the_right_token_are_refused() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    let file = fleet
        .cp
        .write_config("v2.yaml", &fixture_config(&fleet.fixture.mcp_url(), "v2"))?;
    let file = file.display().to_string();
    let calls: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["history"],
        vec!["get", "config"],
        vec!["apply", "-f", &file],
        vec!["rollback", "--to", "1"],
        vec!["diff", "-f", &file],
    ];
    for token in [None, Some("wrong-token"), Some("")] {
        for args in &calls {
            let output = fleet.cp.ctl().token(token).run(args)?;
            if output.code != 6 {
                bail!(
                    "`{}` with token {token:?}: expected exit 6\n{output}",
                    args.join(" ")
                );
            }
        }
    }
    // Nothing was changed by the refused calls.
    let history = fleet.cp.history()?;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(fleet.dps[0].config_version()?, fleet.first_version);
    Ok(())
}

#[test]
fn data_plane_with_a_wrong_token_is_refused() -> anyhow::Result<()> {
    let fleet = Fleet::start(1)?;
    let mut intruders = Vec::new();
    for (node, token) in [
        ("intruder-wrong", Some("not-the-dp-token")),
        ("intruder-none", None),
    ] {
        let mut options = DataPlaneOptions::for_control_plane(&fleet.cp, node).wait_ready(false);
        options.dp_token = token.map(str::to_owned);
        intruders.push(DataPlane::start(options)?);
    }
    holds_for(
        Duration::from_secs(4),
        "intruders stay unready and unknown",
        || {
            for dp in &mut intruders {
                dp.ensure_running()?;
                let ready = dp.readyz()?;
                if ready == 200 {
                    bail!("{} became ready", dp.node_id());
                }
            }
            let status = fleet.cp.status()?;
            for dp in &intruders {
                if status
                    .node(dp.node_id())
                    .is_some_and(|entry| entry.connected)
                {
                    bail!("{} is shown as connected: {status:?}", dp.node_id());
                }
            }
            Ok(())
        },
    )?;
    // The legitimate data plane is unaffected.
    let status = fleet.cp.status()?;
    assert!(status.require("dp-1")?.connected);
    Ok(())
}

#[test]
fn non_loopback_listen_without_tokens_refuses_to_start() -> anyhow::Result<()> {
    conduit_e2e::init();
    let dir = tempfile::tempdir()?;
    let port = free_addr()?.port();
    let spec = Spec {
        name: "control-plane (public, no tokens)".into(),
        program: binaries::binary(CONTROL_PLANE)?,
        args: vec![
            "serve".into(),
            "--listen".into(),
            format!("0.0.0.0:{port}"),
            "--http-listen".into(),
            free_addr()?.to_string(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
        ],
        env: Vec::new(),
        log_path: dir.path().join("cp.log"),
    };
    let mut process = ManagedProcess::spawn(&spec)?;
    let Some(status) = process.wait_exit(Duration::from_secs(20)) else {
        bail!(
            "the control plane kept running on 0.0.0.0 without tokens; log:\n{}",
            log_tail(&spec.log_path, 40)
        );
    };
    assert!(!status.success(), "exit status {status}");
    let log = std::fs::read_to_string(&spec.log_path)?;
    assert!(
        log.contains("CONDUIT_ADMIN_TOKEN") && log.contains("CONDUIT_DP_TOKEN"),
        "the refusal does not say which tokens are needed: {log}"
    );
    Ok(())
}

#[test]
fn tls_control_plane_with_private_ca() -> anyhow::Result<()> {
    let pki_dir = tempfile::tempdir()?;
    let pki = tls::generate(pki_dir.path())?;
    let fixture = conduit_e2e::Fixture::start()?;
    let cp = ControlPlane::start(ControlPlaneOptions {
        tls: Some(pki.clone()),
        ..ControlPlaneOptions::with_tokens()
    })?;
    assert!(cp.url().starts_with("https://"));
    let v1 = apply(
        &cp,
        "v1.yaml",
        &fixture_config(&fixture.mcp_url(), "tls"),
        "tls",
        "alice",
    )?;
    let dp = DataPlane::start(DataPlaneOptions::for_control_plane(&cp, "dp-tls"))?;
    dp.wait_for_version(v1)?;
    proxied_echo(&dp, "over tls")?;
    let status = cp.status()?;
    assert!(status.require("dp-tls")?.connected);

    // Without the CA, conduitctl cannot verify the server: it must fail, not fall back.
    let untrusted = conduit_e2e::Ctl::new(cp.url())
        .token(cp.options().admin_token.as_deref())
        .run(["status"])?;
    assert_ne!(untrusted.code, 0, "{untrusted}");
    Ok(())
}
