//! Harness for the cross-process tests: starts the real binaries (`conduit-control-plane`,
//! `conduit-data-plane`, `conduitctl`, `conduit-mcp-fixture`) as child processes on
//! 127.0.0.1 with temporary directories and free ports, and tears them down on drop.
//!
//! The binaries are looked up next to the running test executable (`target/<profile>/`),
//! so `cargo build --workspace --bins` must have run first; the harness says so when one is
//! missing. Every process logs to a file in its temporary directory; when a test panics the
//! logs of every process it started are printed, so a failure explains itself.
//!
//! Module map:
//! - [`process`]: spawning, logs, kill on drop;
//! - [`control_plane`], [`data_plane`], [`fixture`]: one handle per kind of process;
//! - [`ctl`]: running `conduitctl` and parsing its JSON output;
//! - [`http`], [`mcp`]: a small blocking HTTP/1.1 client and an MCP client on top of it;
//!   [`sse`]: reading a response message by message as it arrives;
//! - [`https`]: the same over TLS, a handshake probe, and one HTTP/2 request;
//! - [`procfs`]: child processes, liveness and environments through `/proc`; [`stdio`]: a
//!   data plane running the fixture as a stdio server;
//! - [`redis`]: a real `redis-server` per test (unix socket, no persistence);
//! - [`otlp`]: an OTLP/HTTP trace receiver keeping the spans a data plane exports;
//! - [`wait`]: bounded polling; [`tls`]: throw-away certificates and client TLS settings;
//!   [`configs`]: test configs.
#![forbid(unsafe_code)]

pub mod binaries;
pub mod configs;
pub mod control_plane;
pub mod ctl;
pub mod data_plane;
pub mod fixture;
pub mod http;
pub mod https;
pub mod mcp;
pub mod misbehaving;
pub mod otlp;
pub mod process;
pub mod procfs;
pub mod redis;
pub mod sse;
pub mod stdio;
pub mod tls;
pub mod wait;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, Once, PoisonError};

pub use control_plane::{ControlPlane, ControlPlaneOptions};
pub use ctl::{Ctl, DataPlaneStatus, FleetStatus, HistoryEntry, Output};
pub use data_plane::{DataPlane, DataPlaneOptions};
pub use fixture::Fixture;
pub use wait::{DEFAULT_TIMEOUT, wait_until};

/// One-time process setup: installs the rustls crypto provider (tonic clients in the
/// benchmark and any TLS probe need it).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        conduit_process::install_crypto_provider();
    });
}

/// A port on 127.0.0.1 that was free a moment ago: bind port 0, read it, release it.
///
/// There is a small window in which another process could take it; the harness accepts
/// that in exchange for letting the real binaries bind their own listeners. What it does
/// prevent is handing the same port out twice in one run: a released port can come back
/// from the next `bind(0)`, which with a hundred data planes is likely, not rare.
pub fn free_port() -> anyhow::Result<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no unused port found on 127.0.0.1")
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..300 {
            assert!(seen.insert(super::free_port().unwrap()));
        }
    }
}
