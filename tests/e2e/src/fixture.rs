//! `conduit-mcp-fixture --listen` as a test process: the upstream MCP server.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context as _;
use tempfile::TempDir;

use crate::binaries::{self, FIXTURE};
use crate::free_addr;
use crate::process::{ManagedProcess, Spec};
use crate::wait::{DEFAULT_TIMEOUT, wait_until};

#[derive(Debug)]
pub struct Fixture {
    addr: SocketAddr,
    spec: Spec,
    process: ManagedProcess,
    _dir: TempDir,
}

impl Fixture {
    /// Starts the fixture on a free port and waits until it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts the fixture without MCP sessions (`--stateless`): requests need no
    /// `initialize`, so several fixtures can serve as replicas of one server.
    pub fn start_stateless() -> anyhow::Result<Self> {
        Self::start_with(&["--stateless"])
    }

    fn start_with(flags: &[&str]) -> anyhow::Result<Self> {
        crate::init();
        let dir = tempfile::Builder::new()
            .prefix("conduit-fixture-")
            .tempdir()?;
        let addr = free_addr()?;
        let mut args = vec!["--listen".to_owned(), addr.to_string()];
        args.extend(flags.iter().map(|flag| (*flag).to_owned()));
        let spec = Spec {
            name: format!("mcp-fixture {addr}"),
            program: binaries::binary(FIXTURE)?,
            args,
            env: Vec::new(),
            log_path: dir.path().join("fixture.log"),
        };
        let process = spawn_listening(&spec, addr)?;
        Ok(Self {
            addr,
            spec,
            process,
            _dir: dir,
        })
    }

    /// Starts the fixture again, on the same address, after [`Fixture::kill`] (or kills
    /// it first).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.process.kill();
        self.process = spawn_listening(&self.spec, self.addr)?;
        Ok(())
    }

    /// `http://127.0.0.1:<port>/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }
}

fn spawn_listening(spec: &Spec, addr: SocketAddr) -> anyhow::Result<ManagedProcess> {
    let mut process = ManagedProcess::spawn(spec)?;
    wait_until(DEFAULT_TIMEOUT, "the MCP fixture to listen", || {
        process.ensure_running()?;
        TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        Ok(())
    })
    .context("starting the MCP fixture")?;
    Ok(process)
}
