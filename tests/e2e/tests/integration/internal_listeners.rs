//! The internal listeners (the data plane's `--admin-listen`, the control plane's
//! `--http-listen`) against DNS rebinding and slow clients, in raw HTTP against real
//! processes: a foreign `Host` or `Origin` is refused, configured names are served, a
//! half-sent request head is cut at the header read timeout, and a body is never waited
//! for.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use conduit_e2e::configs::fixture_config;
use conduit_e2e::http;
use conduit_e2e::{ControlPlane, ControlPlaneOptions, DataPlane, DataPlaneOptions, Fixture};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Far longer than the 1 s header read timeout the tests set: only the server closing the
/// connection ends a read before it.
const PATIENCE: Duration = Duration::from_secs(20);

/// `GET path` on `addr` with `headers` (which may name their own `Host`).
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<http::Response> {
    http::request(
        "GET",
        &format!("http://{addr}{path}"),
        headers,
        None,
        TIMEOUT,
    )
}

/// What the server sent until it closed the connection; `Err` when it is still open after
/// [`PATIENCE`].
fn read_until_closed(stream: &mut TcpStream) -> anyhow::Result<String> {
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => return Err(error).context("the server kept the connection open"),
        }
    }
    Ok(String::from_utf8_lossy(&received).into_owned())
}

/// Every check of one internal listener at `addr`, whose endpoint `path` answers 200 to a
/// local caller; `allowed` is a name the listener was configured to serve.
fn check_listener(addr: SocketAddr, path: &str, allowed: &str) -> anyhow::Result<()> {
    let ok = get(addr, path, &[])?;
    ensure!(ok.status == 200, "{path}: {}", ok.text());

    // DNS rebinding: a page on the attacker's name, resolved to this address.
    let rebound = get(addr, path, &[("Host", "rebind.attacker.example")])?;
    ensure!(
        rebound.status == 403,
        "{path} answered a foreign Host: {}",
        rebound.status
    );
    ensure!(!rebound.text().contains("version"), "{}", rebound.text());
    let rebound = get(addr, path, &[("Host", "rebind.attacker.example:80")])?;
    ensure!(rebound.status == 403, "{}", rebound.status);
    let origin = get(addr, path, &[("Origin", "http://rebind.attacker.example")])?;
    ensure!(
        origin.status == 403,
        "{path} answered a foreign Origin: {}",
        origin.status
    );

    // Addresses (no name to rebind), localhost and the configured name are served.
    let port = addr.port();
    for host in [
        format!("localhost:{port}"),
        format!("10.0.0.9:{port}"),
        format!("{allowed}:{port}"),
    ] {
        let response = get(addr, path, &[("Host", &host)])?;
        ensure!(response.status == 200, "Host {host}: {}", response.status);
    }

    // A half-sent request head is cut at the header read timeout.
    let mut slow = TcpStream::connect(addr)?;
    slow.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: te").as_bytes())?;
    let said = read_until_closed(&mut slow)?;
    ensure!(!said.starts_with("HTTP/1.1 2"), "{said}");
    // So is a connection that sends nothing.
    let mut silent = TcpStream::connect(addr)?;
    ensure!(read_until_closed(&mut silent)?.is_empty());

    // A body is never waited for: the answer comes at once and the connection ends.
    let mut trickle = TcpStream::connect(addr)?;
    trickle.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\r\nx").as_bytes(),
    )?;
    let answer = read_until_closed(&mut trickle)?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    Ok(())
}

#[test]
fn the_data_plane_admin_listener_refuses_foreign_hosts_and_slow_clients() -> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    std::fs::write(&path, fixture_config(&fixture.mcp_url(), "internal"))?;
    let dp = DataPlane::start(DataPlaneOptions {
        node_id: "internal".into(),
        config_file: Some(path),
        wait_ready: true,
        header_read_timeout: Some("1s".into()),
        args: vec!["--admin-allowed-hosts".into(), "dp-admin.internal".into()],
        ..DataPlaneOptions::default()
    })?;
    let addr: SocketAddr = dp
        .admin_url("")
        .trim_start_matches("http://")
        .parse()
        .context("admin address")?;
    check_listener(addr, "/config_dump", "dp-admin.internal")
}

#[test]
fn the_control_plane_http_listener_refuses_foreign_hosts_and_slow_clients() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlPlaneOptions {
        args: vec![
            "--header-read-timeout".into(),
            "1s".into(),
            "--http-allowed-hosts".into(),
            "*.cp.internal".into(),
        ],
        ..ControlPlaneOptions::default()
    })?;
    let addr: SocketAddr = cp
        .http_url("")
        .trim_start_matches("http://")
        .parse()
        .context("http address")?;
    check_listener(addr, "/metrics", "probe.cp.internal")
}
