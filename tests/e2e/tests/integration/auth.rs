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

/// A private CA replaces the system roots: a control plane whose certificate is signed by
/// a CA of the system store (here `SSL_CERT_FILE`, which the system store reads) but not by
/// the configured private CA is refused by data planes (`--control-plane-ca`) and by
/// conduitctl (`--ca-cert`). Without the private CA both trust the system store, which
/// shows the stand-in works.
#[test]
fn a_private_ca_replaces_the_system_roots() -> anyhow::Result<()> {
    let pki_dir = tempfile::tempdir()?;
    let public = tls::TestCa::new("public-like root CA")?;
    let public_path = pki_dir.path().join("public-ca.pem");
    public.write(&public_path)?;
    let private = tls::TestCa::new("operator private CA")?;
    let private_path = pki_dir.path().join("private-ca.pem");
    private.write(&private_path)?;
    // The control plane presents a certificate from the public-like CA.
    let (cert_path, key_path) = public.server(pki_dir.path(), "server")?;
    let fixture = conduit_e2e::Fixture::start()?;
    let cp = ControlPlane::start(ControlPlaneOptions {
        tls: Some(tls::TlsFiles {
            ca_path: public_path.clone(),
            cert_path,
            key_path,
        }),
        ..ControlPlaneOptions::with_tokens()
    })?;
    let v1 = apply(
        &cp,
        "v1.yaml",
        &fixture_config(&fixture.mcp_url(), "ca"),
        "ca",
        "alice",
    )?;
    let system =
        |ctl: conduit_e2e::Ctl| ctl.env("SSL_CERT_FILE", &public_path.display().to_string());
    let admin = cp.options().admin_token.as_deref();

    // conduitctl: system roots only → trusted; with the private CA → refused.
    let trusting = system(conduit_e2e::Ctl::new(cp.url()).token(admin)).run(["status"])?;
    trusting.expect_code(0)?;
    let pinned = system(
        conduit_e2e::Ctl::new(cp.url())
            .token(admin)
            .ca_cert(&private_path),
    )
    .run(["status"])?;
    assert_ne!(pinned.code, 0, "conduitctl trusted a system root: {pinned}");

    // Data planes: the same pair.
    let mut options = DataPlaneOptions::for_control_plane(&cp, "dp-system-roots")
        .env("SSL_CERT_FILE", &public_path.display().to_string());
    options.control_plane_ca = None;
    let trusting = DataPlane::start(options)?;
    trusting.wait_for_version(v1)?;
    let options = DataPlaneOptions::for_control_plane(&cp, "dp-private-ca")
        .env("SSL_CERT_FILE", &public_path.display().to_string())
        .wait_ready(false);
    let mut pinned = DataPlane::start(DataPlaneOptions {
        control_plane_ca: Some(private_path.clone()),
        ..options
    })?;
    holds_for(
        Duration::from_secs(4),
        "the data plane with the private CA stays unconnected",
        || {
            pinned.ensure_running()?;
            if pinned.readyz()? == 200 {
                bail!("it became ready");
            }
            if cp.status()?.node("dp-private-ca").is_some() {
                bail!("the control plane knows it");
            }
            Ok(())
        },
    )?;
    let log = std::fs::read_to_string(pinned.scratch_dir().join("data-plane.log"))?;
    assert!(
        log.to_lowercase().contains("certificate"),
        "the log does not say why: {log}"
    );
    Ok(())
}
