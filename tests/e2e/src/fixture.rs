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
    process: ManagedProcess,
    _dir: TempDir,
}

impl Fixture {
    /// Starts the fixture on a free port and waits until it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        crate::init();
        let dir = tempfile::Builder::new()
            .prefix("conduit-fixture-")
            .tempdir()?;
        let addr = free_addr()?;
        let spec = Spec {
            name: "mcp-fixture".into(),
            program: binaries::binary(FIXTURE)?,
            args: vec!["--listen".into(), addr.to_string()],
            env: Vec::new(),
            log_path: dir.path().join("fixture.log"),
        };
        let mut process = ManagedProcess::spawn(&spec)?;
        wait_until(DEFAULT_TIMEOUT, "the MCP fixture to listen", || {
            process.ensure_running()?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
            Ok(())
        })
        .context("starting the MCP fixture")?;
        Ok(Self {
            addr,
            process,
            _dir: dir,
        })
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
