//! `gateway.tls`: the public listener serves MCP over TLS (HTTP/1.1 and h2 by ALPN),
//! enforces the minimum version and client certificates, picks up replaced certificate
//! files for new connections, and refuses a configuration whose files cannot be loaded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use conduit_e2e::configs::fixture_config;
use conduit_e2e::https::{self, Handshake};
use conduit_e2e::mcp::{McpClient, messages};
use conduit_e2e::tls::{ClientTls, TestCa, leaf_der};
use conduit_e2e::{
    ControlPlane, ControlPlaneOptions, DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, Fixture, http,
    wait_until,
};
use rustls::ProtocolVersion;
use serde_json::json;
use tempfile::TempDir;

use super::common::apply;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A fixture and a standalone data plane serving it over TLS.
struct TlsGateway {
    // Field order is drop order: the data plane first.
    dp: DataPlane,
    _fixture: Fixture,
    ca: TestCa,
    cert: PathBuf,
    key: PathBuf,
    dir: TempDir,
}

#[derive(Default)]
struct TlsOptions {
    min_version: Option<&'static str>,
    require_client_certificates: bool,
}

/// The `gateway.tls` block for these files.
fn tls_yaml(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    min_version: Option<&str>,
) -> String {
    let mut yaml = format!(
        "gateway:\n  tls:\n    cert_path: \"{}\"\n    key_path: \"{}\"\n",
        cert.display(),
        key.display()
    );
    if let Some(ca) = client_ca {
        yaml.push_str(&format!("    ca_path: \"{}\"\n", ca.display()));
    }
    if let Some(version) = min_version {
        yaml.push_str(&format!("    min_version: {version}\n"));
    }
    yaml
}

impl TlsGateway {
    fn start(options: TlsOptions) -> anyhow::Result<Self> {
        let fixture = Fixture::start()?;
        let dir = tempfile::tempdir()?;
        let ca = TestCa::new("conduit e2e public CA")?;
        let ca_path = dir.path().join("ca.pem");
        ca.write(&ca_path)?;
        let (cert, key) = ca.server(dir.path(), "server")?;
        let client_ca = options
            .require_client_certificates
            .then_some(ca_path.as_path());
        let config = dir.path().join("conduit.yaml");
        std::fs::write(
            &config,
            format!(
                "{}{}",
                fixture_config(&fixture.mcp_url(), "tls"),
                tls_yaml(&cert, &key, client_ca, options.min_version)
            ),
        )?;
        let dp = DataPlane::start(DataPlaneOptions {
            node_id: "tls".into(),
            config_file: Some(config),
            wait_ready: true,
            ..DataPlaneOptions::default()
        })?;
        Ok(Self {
            dp,
            _fixture: fixture,
            ca,
            cert,
            key,
            dir,
        })
    }

    fn client(&self) -> ClientTls<'_> {
        ClientTls {
            ca_pem: self.ca.pem(),
            ..ClientTls::default()
        }
    }

    fn authority(&self) -> String {
        self.dp.listen_addr().to_string()
    }

    /// `initialize` and `tools/call echo` over HTTPS with `client`.
    fn echo(&self, client: &ClientTls<'_>, message: &str) -> anyhow::Result<()> {
        let mut mcp = McpClient::new(self.dp.mcp_https_url("fixture")).with_tls(client.config()?);
        mcp.initialize()?;
        let echoed = mcp.call_tool_text("echo", json!({ "message": message }))?;
        if echoed != message {
            bail!("echo over TLS returned {echoed:?}");
        }
        Ok(())
    }

    /// Ok when a request with `client` gets no HTTP answer.
    fn refused(&self, client: &ClientTls<'_>) -> anyhow::Result<()> {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" }).to_string();
        match https::request(
            &client.config()?,
            "POST",
            &self.dp.mcp_https_url("fixture"),
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
            TIMEOUT,
        ) {
            Ok(response) => bail!(
                "a client without a trusted certificate got HTTP {}: {}",
                response.status,
                response.text()
            ),
            Err(_) => Ok(()),
        }
    }
}

#[test]
fn mcp_is_served_over_tls_with_http1_and_h2() -> anyhow::Result<()> {
    let gateway = TlsGateway::start(TlsOptions::default())?;
    gateway.echo(&gateway.client(), "over TLS")?;

    // ALPN: h2 when offered, HTTP/1.1 otherwise.
    let offer = |alpn: &'static [&'static str]| -> anyhow::Result<Handshake> {
        let config = ClientTls {
            alpn,
            ..gateway.client()
        }
        .config()?;
        https::handshake(&config, &gateway.authority(), TIMEOUT)
    };
    let both = offer(&["h2", "http/1.1"])?;
    assert_eq!(both.alpn.as_deref(), Some("h2"));
    assert_eq!(both.server_cert, leaf_der(&gateway.cert)?);
    assert_eq!(offer(&["http/1.1"])?.alpn.as_deref(), Some("http/1.1"));
    // The default minimum (TLS 1.2) still negotiates TLS 1.3 with a modern client.
    assert_eq!(both.version, ProtocolVersion::TLSv1_3);

    // A whole MCP request over HTTP/2.
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": conduit_e2e::mcp::PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "conduit-e2e-h2", "version": "0" }
        }
    });
    let response = https::post_h2(
        &gateway.client().config()?,
        &gateway.dp.mcp_https_url("fixture"),
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        &serde_json::to_vec(&initialize)?,
        TIMEOUT,
    )?;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("x-conduit-server-id"), Some("fixture"));
    let replies = messages(&response)?;
    assert!(
        replies
            .iter()
            .any(|m| m["id"] == json!(1) && m["result"]["serverInfo"].is_object()),
        "{replies:?}"
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = http::request("GET", &gateway.dp.mcp_url("fixture"), &[], None, TIMEOUT);
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    Ok(())
}

#[test]
fn min_version_tls13_refuses_a_tls12_client() -> anyhow::Result<()> {
    let gateway = TlsGateway::start(TlsOptions {
        min_version: Some("TLSv1.3"),
        ..TlsOptions::default()
    })?;
    let tls12 = ClientTls {
        tls12_only: true,
        ..gateway.client()
    }
    .config()?;
    let refused = https::handshake(&tls12, &gateway.authority(), TIMEOUT)
        .expect_err("a TLS 1.2-only client completed a handshake");
    assert!(
        format!("{refused:#}").contains("ProtocolVersion"),
        "unexpected failure: {refused:#}"
    );

    let modern = https::handshake(&gateway.client().config()?, &gateway.authority(), TIMEOUT)?;
    assert_eq!(modern.version, ProtocolVersion::TLSv1_3);
    gateway.echo(&gateway.client(), "TLS 1.3")
}

#[test]
fn client_certificates_are_required_when_ca_path_is_set() -> anyhow::Result<()> {
    let gateway = TlsGateway::start(TlsOptions {
        require_client_certificates: true,
        ..TlsOptions::default()
    })?;
    let dir = gateway.dir.path();

    // Refused at the handshake: no HTTP answer at all. (What the client sees varies with
    // timing: the server's alert, or the connection already closed under its request.)
    gateway.refused(&gateway.client())?;
    let stranger_ca = TestCa::new("some other CA")?;
    let (cert, key) = stranger_ca.client(dir, "stranger")?;
    gateway.refused(&ClientTls {
        identity: Some((&cert, &key)),
        ..gateway.client()
    })?;

    let (cert, key) = gateway.ca.client(dir, "trusted-client")?;
    let trusted = ClientTls {
        identity: Some((&cert, &key)),
        ..gateway.client()
    };
    gateway.echo(&trusted, "with a certificate")
}

#[test]
fn replaced_certificate_files_are_served_to_new_connections() -> anyhow::Result<()> {
    let gateway = TlsGateway::start(TlsOptions::default())?;
    let config = gateway.client().config()?;
    let authority = gateway.authority();
    let first = leaf_der(&gateway.cert)?;

    // A connection made before the rotation keeps working with the old certificate.
    let mut early = https::connect(&config, &authority, TIMEOUT)?;
    assert_eq!(https::describe(&early)?.server_cert, first);

    // Write the new pair elsewhere, then rename it over the served files.
    let staging = gateway.dir.path().join("staging");
    std::fs::create_dir(&staging)?;
    let (new_cert, new_key) = gateway.ca.server(&staging, "rotated")?;
    let second = leaf_der(&new_cert)?;
    assert_ne!(first, second);
    std::fs::rename(&new_key, &gateway.key)?;
    std::fs::rename(&new_cert, &gateway.cert)?;

    wait_until(
        DEFAULT_TIMEOUT,
        "new connections to see the new certificate",
        || {
            let served = https::handshake(&config, &authority, TIMEOUT)?.server_cert;
            if served != second {
                bail!("still the old certificate");
            }
            Ok(())
        },
    )?;
    gateway.echo(&gateway.client(), "after rotation")?;

    let response = http::exchange(
        &mut early,
        "DELETE",
        &authority,
        "/mcp/fixture",
        &[("mcp-session-id", "none")],
        None,
    )
    .context("a request on the connection opened before the rotation")?;
    assert!(
        response.header("x-conduit-trace-id").is_some(),
        "{response:?}"
    );
    assert_eq!(https::describe(&early)?.server_cert, first);
    Ok(())
}

#[test]
fn a_certificate_that_cannot_be_loaded_is_nacked_and_the_old_one_keeps_serving()
-> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let cp = ControlPlane::start(ControlPlaneOptions::with_tokens())?;
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("conduit e2e public CA")?;
    let (cert, key) = ca.server(dir.path(), "server")?;
    let config = |marker: &str, cert: &Path| {
        format!(
            "{}{}",
            fixture_config(&fixture.mcp_url(), marker),
            tls_yaml(cert, &key, None, None)
        )
    };
    let v1 = apply(&cp, "v1.yaml", &config("v1", &cert), "TLS", "alice")?;
    let dp = DataPlane::start(DataPlaneOptions::for_control_plane(&cp, "dp-tls"))?;
    dp.wait_for_version(v1)?;
    let client = ClientTls {
        ca_pem: ca.pem(),
        ..ClientTls::default()
    };
    let echo = |message: &str| -> anyhow::Result<()> {
        let mut mcp = McpClient::new(dp.mcp_https_url("fixture")).with_tls(client.config()?);
        mcp.initialize()?;
        assert_eq!(
            mcp.call_tool_text("echo", json!({ "message": message }))?,
            message
        );
        Ok(())
    };
    echo("v1 over TLS")?;

    let missing = dir.path().join("missing.pem");
    let file = cp.write_config("v2.yaml", &config("v2", &missing))?;
    let applied = cp.ctl().run([
        "apply",
        "-f",
        &file.display().to_string(),
        "--wait=60s",
        "-m",
        "a certificate that is not there",
    ])?;
    applied.expect_code(3)?;
    let printed = format!("{}\n{}", applied.stdout, applied.stderr);
    let missing_text = missing.display().to_string();
    assert!(
        printed.contains(&missing_text),
        "the path is not named:\n{printed}"
    );

    let status = cp.status()?;
    let entry = status.require("dp-tls")?;
    assert_eq!(entry.applied(), v1, "{entry:?}");
    assert_eq!(entry.rejected(), Some(status.current_version), "{entry:?}");
    assert!(
        entry
            .rejected_errors
            .iter()
            .any(|e| e.path == "gateway.tls.cert_path" && e.message.contains(&missing_text)),
        "{entry:?}"
    );
    assert_eq!(dp.config_version()?, v1);
    assert_eq!(dp.readyz()?, 200);
    let served = https::handshake(&client.config()?, &dp.listen_addr().to_string(), TIMEOUT)?;
    assert_eq!(served.server_cert, leaf_der(&cert)?);
    echo("still v1 over TLS")
}
