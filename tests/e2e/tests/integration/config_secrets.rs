//! Secrets in config documents, through the real control plane and conduitctl with role
//! tokens: a viewer and an operator read configs masked (`get config`, `diff`), an admin
//! reads what was stored; plain API keys are stored as their SHA-256, so the database files
//! never hold one, and a data plane still accepts the key; `validate` and `apply` warn about
//! literal secrets. Also the start-up checks: a data-plane token that is an Admin API token
//! is refused, and the data directory is made private at every start.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use conduit_e2e::binaries::{self, CONTROL_PLANE};
use conduit_e2e::mcp::McpClient;
use conduit_e2e::{ControlPlane, ControlPlaneOptions, Ctl, DataPlane, DataPlaneOptions, Fixture};
use serde_json::json;

const API_KEY: &str = "plain-api-key-5c1d9e";
const UPSTREAM_TOKEN: &str = "upstream-token-77aa31";
const REDIS_PASSWORD: &str = "redis-pw-0b4e";
/// Principals besides `admin` (`e2e-admin-token`), as the tokens file lists them.
const PRINCIPALS: [(&str, &str, &str); 2] = [
    ("olga", "operator", "olga-token"),
    ("vic", "viewer", "vic-token"),
];

fn sha256_hex(text: &str) -> anyhow::Result<String> {
    // sha256sum, as an operator would compute a digest.
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running sha256sum")?;
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(text.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let text = String::from_utf8(output.stdout)?;
    Ok(text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// A tokens file with [`PRINCIPALS`] (mode 0600) in `dir`.
fn tokens_file(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("principals.yaml");
    let mut entries = String::new();
    for (name, role, token) in PRINCIPALS {
        entries.push_str(&format!(
            "- name: {name}\n  role: {role}\n  token_sha256: {}\n",
            sha256_hex(token)?
        ));
    }
    std::fs::write(&path, entries)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

fn config(fixture_url: &str) -> String {
    format!(
        "servers:\n  - id: fixture\n    url: {fixture_url}\n    headers:\n      \
         Authorization: \"Bearer {UPSTREAM_TOKEN}\"\n\
         auth:\n  method: api-key\n  api_keys:\n    - key: {API_KEY}\n      client_id: agent\n\
         rate_limits:\n  enabled: false\n  backend: redis\n  \
         redis_url: \"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0\"\n"
    )
}

fn ctl_as(cp: &ControlPlane, token: &str) -> Ctl {
    Ctl::new(cp.url()).token(Some(token))
}

#[test]
fn viewers_and_operators_read_masked_configs_and_no_plain_key_is_stored() -> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let tokens_dir = tempfile::tempdir()?;
    let tokens = tokens_file(tokens_dir.path())?;
    let cp = ControlPlane::start(ControlPlaneOptions {
        args: vec!["--admin-tokens-file".into(), tokens.display().to_string()],
        ..ControlPlaneOptions::with_tokens()
    })?;
    let file = cp.write_config("secrets.yaml", &config(&fixture.mcp_url()))?;
    let file = file.display().to_string();
    let secrets = [API_KEY, UPSTREAM_TOKEN, REDIS_PASSWORD];
    let key_hash = sha256_hex(API_KEY)?;

    // Literal secrets are warnings, by path, without their values.
    let validated = cp.ctl().run(["validate", "-f", &file])?;
    validated.expect_code(0)?;
    for path in [
        "auth.api_keys[0].key",
        "servers[0].headers.Authorization",
        "rate_limits.redis_url",
    ] {
        ensure!(
            validated.stderr.contains("warning: ") && validated.stderr.contains(path),
            "no warning for {path}: {validated}"
        );
    }
    let applied = ctl_as(&cp, "olga-token").run(["apply", "-f", &file])?;
    applied.expect_code(0)?;
    ensure!(
        applied.stderr.contains("auth.api_keys[0].key"),
        "apply shows the warnings too: {applied}"
    );
    for output in [&validated, &applied] {
        for secret in secrets {
            ensure!(
                !output.stdout.contains(secret) && !output.stderr.contains(secret),
                "{secret} printed: {output}"
            );
        }
    }

    // Below admin: masked, in YAML and JSON, and in `diff`.
    for token in ["vic-token", "olga-token"] {
        for format in ["yaml", "json"] {
            let shown = ctl_as(&cp, token).run(["get", "config", "-o", format])?;
            shown.expect_code(0)?;
            ensure!(shown.stdout.contains("[REDACTED]"), "{shown}");
            for hidden in [API_KEY, UPSTREAM_TOKEN, REDIS_PASSWORD, &key_hash] {
                ensure!(
                    !shown.stdout.contains(hidden),
                    "{token} read {hidden}: {shown}"
                );
            }
        }
        let diff = ctl_as(&cp, token).run(["diff", "-f", &file])?;
        ensure!(
            diff.code == 0,
            "only secrets could differ, and they are masked: {diff}"
        );
        for secret in secrets {
            ensure!(
                !diff.stdout.contains(secret),
                "{token} diff shows {secret}: {diff}"
            );
        }
    }
    // Admin: what was stored, which is the key's hash, never the key.
    let stored = cp.ctl().run(["get", "config", "-o", "json"])?;
    stored.expect_code(0)?;
    ensure!(stored.stdout.contains(UPSTREAM_TOKEN), "{stored}");
    ensure!(stored.stdout.contains(REDIS_PASSWORD), "{stored}");
    ensure!(
        stored.stdout.contains(&format!("sha256:{key_hash}")),
        "{stored}"
    );
    ensure!(!stored.stdout.contains(API_KEY), "{stored}");
    // And the admin's diff of the same file: no changes (the file's key hashes the same).
    cp.ctl().run(["diff", "-f", &file])?.expect_code(0)?;

    // Every file of the data directory (databases and their WAL), byte for byte.
    for entry in std::fs::read_dir(cp.data_dir())? {
        let path = entry?.path();
        let bytes = std::fs::read(&path)?;
        ensure!(
            !bytes
                .windows(API_KEY.len())
                .any(|window| window == API_KEY.as_bytes()),
            "{} holds the plain API key",
            path.display()
        );
    }

    // A data plane serving the stored (hashed) version still accepts the key.
    let dp = DataPlane::start(DataPlaneOptions::for_control_plane(&cp, "dp-secrets"))?;
    let mut client = McpClient::new(dp.mcp_url("fixture"))
        .with_header("Authorization", &format!("Bearer {API_KEY}"));
    client.initialize()?;
    let text = client.call_tool_text("echo", json!({"message": "hashed key works"}))?;
    ensure!(text == "hashed key works", "{text}");
    let mut wrong =
        McpClient::new(dp.mcp_url("fixture")).with_header("Authorization", "Bearer wrong-key");
    let refused = wrong.exchange("initialize", json!({}))?;
    ensure!(
        refused.response.status == 401,
        "{}",
        refused.response.text()
    );
    Ok(())
}

/// Runs `conduit-control-plane serve` expecting it to exit at start; its stderr.
fn refused_start(env: &[(&str, &str)], args: &[&str]) -> anyhow::Result<String> {
    let data = tempfile::tempdir()?;
    let mut command = Command::new(binaries::binary(CONTROL_PLANE)?);
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path().join("data"))
        .args(args)
        .env_remove("CONDUIT_ADMIN_TOKEN")
        .env_remove("CONDUIT_DP_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the control plane kept running with a reused token");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read as _;
    child
        .stderr
        .take()
        .context("stderr")?
        .read_to_string(&mut stderr)?;
    ensure!(!status.success(), "exited successfully: {stderr}");
    Ok(stderr)
}

#[test]
fn a_data_plane_token_that_is_an_admin_token_is_refused_at_start() -> anyhow::Result<()> {
    let stderr = refused_start(
        &[
            ("CONDUIT_ADMIN_TOKEN", "shared-token"),
            ("CONDUIT_DP_TOKEN", "shared-token"),
        ],
        &[],
    )?;
    ensure!(
        stderr.contains("CONDUIT_DP_TOKEN is also the Admin API token of principal \"admin\""),
        "{stderr}"
    );
    ensure!(
        !stderr.contains("shared-token"),
        "the token is not printed: {stderr}"
    );

    // Any role counts: here a viewer of the tokens file.
    let tokens_dir = tempfile::tempdir()?;
    let tokens = tokens_file(tokens_dir.path())?;
    let tokens = tokens.display().to_string();
    let stderr = refused_start(
        &[
            ("CONDUIT_ADMIN_TOKEN", "admin-only-token"),
            ("CONDUIT_DP_TOKEN", "vic-token"),
        ],
        &["--admin-tokens-file", &tokens],
    )?;
    ensure!(
        stderr.contains("principal \"vic\" (role viewer)"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn the_data_directory_is_made_private_at_every_start() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start(ControlPlaneOptions::with_tokens())?;
    let mode = |cp: &ControlPlane| -> anyhow::Result<u32> {
        Ok(std::fs::metadata(cp.data_dir())?.permissions().mode() & 0o7777)
    };
    ensure!(mode(&cp)? == 0o700, "created 0700");
    cp.stop();
    // Loosened while the control plane was down (a restore, a careless chmod).
    std::fs::set_permissions(cp.data_dir(), std::fs::Permissions::from_mode(0o755))?;
    cp.graceful_restart()?;
    ensure!(mode(&cp)? == 0o700, "mode after restart: {:o}", mode(&cp)?);
    Ok(())
}
