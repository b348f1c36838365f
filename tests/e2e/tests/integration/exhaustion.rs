//! Resource exhaustion on the public port, driven the way the external review did it (raw
//! HTTP against a real data plane): unauthenticated 10 MiB `[0,0,…]` bodies, a batch far
//! over the limit, a body trickled one byte at a time, and more connections than the
//! limits allow. The data plane's memory is read from `/proc` (`VmHWM`, the peak).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use conduit_e2e::configs::fixture_config;
use conduit_e2e::procfs;
use conduit_e2e::{DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, Fixture, wait_until};
use tempfile::TempDir;

use super::common::proxied_echo;

/// SHA-256 of `alice-key`.
const ALICE_KEY_SHA256: &str = "72ee9d4355ccb9d3a4c9dbf37382e38e75c1b1a225b5bd1f729ee91bbda30c20";
/// The body the review sent: 10 MiB of `[0,0,0,…]`, the largest body accepted.
const BODY_BYTES: usize = 10 * 1024 * 1024;
/// The review saw one such body take a data plane from 17 MiB to 407 MiB. A data plane
/// that never holds the bodies, or holds one without parsing it whole, stays far below.
const MEMORY_BOUND: u64 = 200 * 1024 * 1024;
/// Generous: only a server that closes or answers ends a read before it.
const PATIENCE: Duration = Duration::from_secs(30);

struct Gateway {
    dp: DataPlane,
    _fixture: Fixture,
    _dir: TempDir,
}

impl Gateway {
    /// A standalone data plane in front of the fixture; `auth` requires the key
    /// `alice-key`; `args` are extra flags.
    fn start(auth: bool, args: &[&str]) -> anyhow::Result<Gateway> {
        let fixture = Fixture::start()?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("conduit.yaml");
        let mut config = fixture_config(&fixture.mcp_url(), "exhaustion");
        if auth {
            config.push_str(&format!(
                "auth:\n  method: api-key\n  api_keys:\n    - key: sha256:{ALICE_KEY_SHA256}\n      client_id: alice\n"
            ));
        }
        std::fs::write(&path, config)?;
        let dp = DataPlane::start(DataPlaneOptions {
            node_id: "exhaustion".into(),
            config_file: Some(path),
            wait_ready: true,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            ..DataPlaneOptions::default()
        })?;
        Ok(Gateway {
            dp,
            _fixture: fixture,
            _dir: dir,
        })
    }

    fn memory(&self) -> anyhow::Result<procfs::Memory> {
        procfs::memory(self.dp.pid().context("the data plane is not running")?)
    }

    /// The admin `/metrics` sample `name` (with its labels), 0 when absent.
    fn metric(&self, sample: &str) -> anyhow::Result<f64> {
        let text = self.dp.admin_get("/metrics")?.text();
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(Ok(0.0), str::parse)?)
    }
}

/// `[0,0,0,…,0]`, as long as fits in `bytes` (the text has an odd length).
fn zeros(bytes: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes);
    body.push(b'[');
    for _ in 0..(bytes - 3) / 2 {
        body.extend_from_slice(b"0,");
    }
    body.extend_from_slice(b"0]");
    assert!(body.len() <= bytes && body.len() + 2 > bytes);
    body
}

/// POST `body` to `/mcp/fixture` on a connection of its own, writing it from another thread
/// while the answer is read (a server may answer before the body is in); the answer's
/// status, `None` when the connection closed without one.
fn post_raw(addr: SocketAddr, headers: &str, body: Arc<Vec<u8>>) -> anyhow::Result<Option<u16>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let head = format!(
        "POST /mcp/fixture HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nConnection: close\r\n{headers}\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    let mut writer = stream.try_clone()?;
    let sender = std::thread::spawn(move || {
        // The server may close as soon as it answered: a failed write is expected then.
        let _ = writer.write_all(&body);
    });
    let answer = read_until_closed(&mut stream)?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    Ok(status_of(&answer))
}

/// What the server sent until it closed the connection (a reset counts as closed).
fn read_until_closed(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(received);
            }
            Err(error) => return Err(error).context("the server kept the connection open"),
        }
    }
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn unauthenticated_bodies_are_refused_unread_and_memory_stays_bounded() -> anyhow::Result<()> {
    let gateway = Gateway::start(true, &[])?;
    let addr = gateway.dp.listen_addr();
    let before = gateway.memory()?;
    let body = Arc::new(zeros(BODY_BYTES));
    const PARALLEL: usize = 64;
    let start = Arc::new(Barrier::new(PARALLEL));
    let clients: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (body, start) = (Arc::clone(&body), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                post_raw(addr, "", body)
            })
        })
        .collect();
    for client in clients {
        let status = client.join().expect("client thread")?;
        ensure!(
            status == Some(401),
            "an unauthenticated body got {status:?}"
        );
    }
    let after = gateway.memory()?;
    eprintln!(
        "{PARALLEL} unauthenticated 10 MiB bodies: VmHWM {} KiB (VmRSS before {} KiB, after {} KiB)",
        after.peak / 1024,
        before.rss / 1024,
        after.rss / 1024
    );
    ensure!(
        after.peak < MEMORY_BOUND,
        "peak resident memory {} MiB",
        after.peak >> 20
    );
    // The refusals are counted, and the gateway still serves callers with a key.
    ensure!(
        gateway.metric("conduit_auth_failures_total{reason=\"missing\"}")? >= PARALLEL as f64,
        "auth failures not counted"
    );
    let mut client = conduit_e2e::mcp::McpClient::new(gateway.dp.mcp_url("fixture"))
        .with_header("X-API-Key", "alice-key");
    client.initialize()?;
    ensure!(client.call_tool_text("echo", serde_json::json!({"message": "up"}))? == "up");
    Ok(())
}

#[test]
fn a_batch_over_the_limit_is_refused_before_it_is_parsed() -> anyhow::Result<()> {
    let gateway = Gateway::start(true, &[])?;
    let addr = gateway.dp.listen_addr();
    // With a key the body is read: 10 MiB of five million batch entries.
    let status = post_raw(
        addr,
        "X-API-Key: alice-key\r\n",
        Arc::new(zeros(BODY_BYTES)),
    )?;
    ensure!(status == Some(400), "an oversized batch got {status:?}");
    let memory = gateway.memory()?;
    eprintln!(
        "authenticated 10 MiB batch: VmHWM {} KiB",
        memory.peak / 1024
    );
    ensure!(
        memory.peak < MEMORY_BOUND,
        "peak resident memory {} MiB",
        memory.peak >> 20
    );
    Ok(())
}

#[test]
fn a_trickled_body_is_cut_at_the_body_read_timeout() -> anyhow::Result<()> {
    let gateway = Gateway::start(false, &["--body-read-timeout", "2s"])?;
    let addr = gateway.dp.listen_addr();
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(
        format!(
            "POST /mcp/fixture HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n"
        )
        .as_bytes(),
    )?;
    // One byte every half second would take over eight minutes; the deadline ends it.
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = loop {
        if started.elapsed() > PATIENCE {
            break false;
        }
        if stream.write_all(b" ").is_err() {
            // Closed by the server; what it said is still there to read.
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            received.extend(read_until_closed(&mut stream).unwrap_or_default());
            break true;
        }
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break true,
        }
    };
    ensure!(
        closed,
        "a trickled body kept its connection open for {PATIENCE:?}"
    );
    let answer = String::from_utf8_lossy(&received);
    ensure!(status_of(&received) == Some(408), "{answer}");
    // Prompt clients are served as usual.
    proxied_echo(&gateway.dp, "not slow")
}

/// A connection to `addr` from the loopback address `from` (127.0.0.0/8 is all local).
fn connect_from(from: &str, addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(format!("{from}:0").parse()?)?;
        anyhow::Ok(socket.connect(addr).await?.into_std()?)
    })?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Whether the server closes `stream` (instead of waiting for a request on it).
fn closed_by_server(stream: &mut TcpStream) -> anyhow::Result<bool> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => Ok(true),
        Ok(_) => bail!("the server said something to a silent client"),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => Ok(true),
        Err(_) => Ok(false),
    }
}

#[test]
fn connections_over_the_limits_are_closed_and_counted() -> anyhow::Result<()> {
    let gateway = Gateway::start(
        false,
        &[
            "--max-connections",
            "3",
            "--max-connections-per-address",
            "2",
        ],
    )?;
    let addr = gateway.dp.listen_addr();
    let open = |count: f64| {
        wait_until(
            DEFAULT_TIMEOUT,
            &format!("{count} open connections"),
            || {
                let now = gateway.metric("conduit_dp_connections_open")?;
                ensure!(now == count, "{now} open");
                Ok(())
            },
        )
    };
    let per_address =
        "conduit_dp_connections_refused_total{reason=\"max_connections_per_address\"}";
    let total = "conduit_dp_connections_refused_total{reason=\"max_connections\"}";

    let first = TcpStream::connect(addr)?;
    let second = TcpStream::connect(addr)?;
    open(2.0)?;
    let mut third = TcpStream::connect(addr)?;
    ensure!(
        closed_by_server(&mut third)?,
        "a third connection from one address was served"
    );
    ensure!(gateway.metric(per_address)? == 1.0);

    let other = connect_from("127.0.0.2", addr)?;
    open(3.0)?;
    let mut fourth = connect_from("127.0.0.2", addr)?;
    ensure!(
        closed_by_server(&mut fourth)?,
        "a fourth connection was served"
    );
    ensure!(gateway.metric(total)? == 1.0);
    ensure!(gateway.metric(per_address)? == 1.0);

    // A connection that ends frees its place.
    drop(first);
    open(2.0)?;
    drop((second, other));
    open(0.0)?;
    proxied_echo(&gateway.dp, "room again")
}
