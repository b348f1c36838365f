//! `${file:}` / `${env:}` references against a data plane's allow-list, the way the review
//! attacked them: a configuration naming a file outside `--secret-dir`, a FIFO, `/dev/zero`,
//! a variable outside `--secret-env-prefix`, and a recognisable secret that is not valid
//! for its field. Every snapshot is NACKed at once with errors that name the references,
//! the NACK a viewer reads through `conduitctl status` never holds the file's content, and
//! the data plane stays connected and keeps serving its previous version.

use std::os::unix::fs::PermissionsExt as _;

use anyhow::Context as _;
use conduit_e2e::configs::fixture_config;
use conduit_e2e::{ControlPlaneOptions, DataPlane, DataPlaneOptions};

use super::common::{Fleet, proxied_echo};

/// A recognisable secret: a valid value for a header, not for a URL.
const SECRET: &str = "sk-live-7f3a9c1e5b2d4f6a8c0e";
/// What the file outside the secret directory holds.
const OUTSIDE: &str = "root:x:0:0:outside-the-secret-dir";
const VIEWER_TOKEN: &str = "viewer-token-for-references";

fn sha256_hex(text: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(text.as_bytes())?;
    let output = child.wait_with_output()?;
    let text = String::from_utf8(output.stdout)?;
    Ok(text.split_whitespace().next().context("digest")?.to_owned())
}

#[test]
fn references_outside_the_allow_list_are_refused_without_their_content() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets)?;
    std::fs::write(secrets.join("token"), SECRET)?;
    std::fs::write(dir.path().join("outside"), OUTSIDE)?;
    std::os::unix::fs::symlink(dir.path().join("outside"), secrets.join("escape"))?;
    let fifo = secrets.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    anyhow::ensure!(made.success(), "mkfifo failed");

    let tokens_file = dir.path().join("principals.yaml");
    std::fs::write(
        &tokens_file,
        format!(
            "- name: vic\n  role: viewer\n  token_sha256: {}\n",
            sha256_hex(VIEWER_TOKEN)?
        ),
    )?;
    std::fs::set_permissions(&tokens_file, std::fs::Permissions::from_mode(0o600))?;
    let cp_options = ControlPlaneOptions {
        args: vec![
            "--admin-tokens-file".into(),
            tokens_file.display().to_string(),
        ],
        // Heartbeats often, so a stream stuck on a snapshot would show quickly.
        heartbeat_interval: Some("500ms".into()),
        ..ControlPlaneOptions::with_tokens()
    };
    let secret_dir = secrets.display().to_string();
    let fleet = Fleet::start_with(1, cp_options, |_, options: DataPlaneOptions| {
        options
            .args(["--secret-dir", secret_dir.as_str()])
            .env("CONDUIT_SECRET_UPSTREAM", "fine")
            .env("OTHER_SERVICE_PASSWORD", "not-for-configs")
    })?;
    let dp: &DataPlane = &fleet.dps[0];
    let v1 = fleet.first_version;
    let base = fixture_config(&fleet.fixture.mcp_url(), "refs");
    let header = |name: &str, value: &str| format!("      {name}: \"{value}\"\n");

    // One snapshot with every refused reference: all are reported, each at its path.
    let refused = format!(
        "{base}{}{}{}{}{}{}",
        header(
            "X-Outside",
            &format!("${{file:{}}}", dir.path().join("outside").display())
        ),
        header(
            "X-Escape",
            &format!("${{file:{}}}", secrets.join("escape").display())
        ),
        header("X-Fifo", &format!("${{file:{}}}", fifo.display())),
        header("X-Zero", "${file:/dev/zero}"),
        header("X-Env", "${env:OTHER_SERVICE_PASSWORD}"),
        header("X-Token", "${env:CONDUIT_DP_TOKEN}"),
    );
    let expectations = [
        ("X-Outside", "outside every --secret-dir"),
        ("X-Escape", "outside every --secret-dir"),
        ("X-Fifo", "not a regular file"),
        ("X-Zero", "outside every --secret-dir"),
        ("X-Env", "--secret-env-prefix"),
        ("X-Token", "own credential"),
    ];
    let v2 = nacked(&fleet, "refused.yaml", &refused, v1)?;
    let status = viewer_status(&fleet)?;
    let node = status.require("dp-1")?;
    for (header, needle) in expectations {
        let path = format!("servers[0].headers.{header}");
        anyhow::ensure!(
            node.rejected_errors
                .iter()
                .any(|e| e.path == path && e.message.contains(needle)),
            "no error at {path} containing {needle:?}: {node:?}"
        );
    }
    assert_eq!(node.rejected(), Some(v2));
    assert_eq!(node.applied(), v1);

    // A readable secret that is not valid where it is used: the NACK names the reference.
    let misused = base.replace(
        &format!("url: {}", fleet.fixture.mcp_url()),
        &format!("url: \"${{file:{}}}\"", secrets.join("token").display()),
    );
    anyhow::ensure!(misused != base, "the URL was not replaced");
    let v3 = nacked(&fleet, "misused.yaml", &misused, v2)?;
    let status = viewer_status(&fleet)?;
    let node = status.require("dp-1")?;
    assert_eq!(node.rejected(), Some(v3));
    anyhow::ensure!(
        node.rejected_errors
            .iter()
            .any(|e| e.path == "servers[0].url" && e.message.contains("${file:")),
        "the error does not name the reference: {node:?}"
    );

    // Nothing of any value anywhere a viewer or an operator looks.
    let printed = fleet
        .cp
        .ctl()
        .token(Some(VIEWER_TOKEN))
        .run(["status", "-o", "json"])?;
    let log = std::fs::read_to_string(dp.scratch_dir().join("data-plane.log"))?;
    for (what, text) in [("status", printed.stdout.as_str()), ("log", log.as_str())] {
        for value in [SECRET, OUTSIDE, "not-for-configs", "e2e-dp-token"] {
            assert!(!text.contains(value), "{what} shows {value:?}:\n{text}");
        }
    }

    // Connected throughout and still serving v1; a good snapshot applies right after.
    let status = fleet.cp.status()?;
    assert!(status.require("dp-1")?.connected, "{status:?}");
    assert_eq!(dp.config_version()?, v1);
    proxied_echo(dp, "still serving")?;
    let good = format!(
        "{base}{}{}",
        header("X-Env", "${env:CONDUIT_SECRET_UPSTREAM}"),
        header(
            "X-File",
            &format!("${{file:{}}}", secrets.join("token").display())
        ),
    );
    let file = fleet.cp.write_config("good.yaml", &good)?;
    fleet
        .cp
        .ctl()
        .apply_wait(&file, "allowed references")?
        .expect_code(0)?;
    proxied_echo(dp, "after the fix")?;
    Ok(())
}

/// Applies `yaml` expecting the fleet to NACK it (exit 3); returns the new version.
fn nacked(fleet: &Fleet, name: &str, yaml: &str, previous: u64) -> anyhow::Result<u64> {
    let file = fleet.cp.write_config(name, yaml)?;
    let apply = fleet.cp.ctl().run([
        "apply",
        "-f",
        &file.display().to_string(),
        "--wait=60s",
        "-m",
        name,
    ])?;
    apply.expect_code(3)?;
    let version = fleet.cp.status()?.current_version;
    anyhow::ensure!(
        version == previous + 1,
        "version {version} after {previous}"
    );
    Ok(version)
}

fn viewer_status(fleet: &Fleet) -> anyhow::Result<conduit_e2e::FleetStatus> {
    fleet.cp.ctl().token(Some(VIEWER_TOKEN)).status()
}
