//! stdio upstreams: MCP servers that are child processes of the data plane
//! (`servers[].transport: stdio`), served on `POST|GET|DELETE /mcp/{server_id}` like any
//! other server.
//!
//! # One process, many clients
//! Each data plane runs one process per stdio server and performs the MCP handshake with it
//! itself (`initialize` with the newest protocol version it knows, declaring the `sampling`,
//! `elicitation` and `roots` client capabilities so those requests can be relayed, then
//! `notifications/initialized`). The process is started when a configuration naming it is
//! applied, kept across configuration versions while its `command`, `args` and `env` are
//! unchanged, and stopped when the server is removed or changed ([`Pool`]).
//!
//! Clients share the process, so everything that names a message is remapped
//! (`connection`): a client's request id becomes a gateway id (a counter) on the way in and
//! is restored on the way out; `_meta.progressToken` becomes the gateway id too and is
//! restored on `notifications/progress`; a server→client request gets a gateway id that
//! cannot be guessed, so only the client it was sent to can answer it.
//!
//! # No session
//! No `Mcp-Session-Id` is issued: every replica of the data plane runs its own initialized
//! process, so any replica can serve any request of a client and there is nothing to
//! continue. A client's `initialize` is answered by the gateway from the process's kept
//! `InitializeResult`, with a protocol version chosen as `handshake` explains; its
//! `notifications/initialized` is answered with 202 and not forwarded; `DELETE` answers 204
//! (nothing upstream to end).
//!
//! The price of having no session: a client's `notifications/cancelled` names its request
//! only by the client's own id. It is forwarded (remapped) when exactly one outstanding
//! request carries that id; when several clients use the same id at that moment it is
//! dropped, which MCP allows (cancellation is advisory). And a client's answer to a
//! server→client request must reach the replica whose process asked: behind a load
//! balancer without affinity, another replica refuses it (400) and the tool call fails.
//!
//! # Who gets what the process sends
//! - A response goes to the caller whose request it answers.
//! - `notifications/progress` goes to the caller whose request carried the token.
//! - A server→client request (`sampling/createMessage`, `elicitation/create`,
//!   `roots/list`, ...) and a `notifications/message` (logging) carry nothing that links
//!   them to a request: stdio has no such field, and MCP defines none on the wire. They go
//!   to the **oldest outstanding request whose caller accepts an event stream**: exact when
//!   one such request is outstanding (an interactive tool call), and otherwise the request
//!   that has waited longest, which is the likeliest to be blocked on the answer. Without
//!   such a request they go to the oldest open `GET` stream (a log message to every `GET`
//!   stream); with neither, a server→client request is answered by the gateway with an
//!   error, so the server's tool fails instead of waiting forever. A `ping` from the
//!   process is answered by the gateway.
//! - Every other notification (e.g. `notifications/tools/list_changed`) goes to every open
//!   `GET /mcp/{server_id}` stream.
//!
//! # Failures
//! A request without an answer within the server's `timeout_ms` gets a JSON-RPC error with
//! its own id (504, or a final event on a stream) and the process is told
//! `notifications/cancelled`; a late answer is dropped. When the process dies every pending
//! caller gets an error at once (502) and the process is started again after a jittered
//! exponential backoff (`supervisor`). Malformed lines on stdout are logged and skipped;
//! stderr is logged line by line, truncated and rate-limited (`process`).
//!
//! # Environment
//! The process gets `PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`, `TMPDIR`, `TZ`, `LANG` and
//! `LC_*` from the data plane's environment, then the server's `env` on top, and nothing
//! else (`process::child_env`): the data plane's own secrets (`CONDUIT_DP_TOKEN`, cloud
//! credentials, ...) never reach a server unless its `env` passes them on explicitly
//! (`${env:NAME}`).

mod connection;
mod exchange;
mod handshake;
mod pool;
mod process;
mod remap;
mod sse;
mod supervisor;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use pool::Pool;
pub use supervisor::Process;

/// How a stdio server's process is started. Two servers with equal specs share nothing, but
/// a server whose spec did not change across configuration versions keeps its process.
#[derive(Clone, PartialEq, Eq)]
pub struct Spec {
    /// The program, resolved through `PATH` when it has no `/`.
    pub command: String,
    pub args: Vec<String>,
    /// Set on top of the basic variables inherited from the data plane (see the module doc).
    pub env: BTreeMap<String, String>,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `env` values are secrets (tokens, passwords): only their names are shown.
        f.debug_struct("Spec")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A stdio server as a compiled runtime routes to it.
#[derive(Debug)]
pub struct StdioServer {
    process: Arc<Process>,
    /// How long a request may wait for its answer (`timeout_ms`).
    timeout: Duration,
}

impl StdioServer {
    /// The server `id` of a candidate configuration; its process comes from `pool`.
    pub fn new(pool: &Pool, id: &str, spec: Spec, timeout: Duration) -> StdioServer {
        StdioServer {
            process: pool.prepare(id, spec, timeout),
            timeout,
        }
    }

    /// The process serving this server.
    pub fn process(&self) -> &Arc<Process> {
        &self.process
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_env_values() {
        let spec = Spec {
            command: "server".into(),
            args: vec!["--stdio".into()],
            env: BTreeMap::from([("API_TOKEN".to_owned(), "s3cret".to_owned())]),
        };
        let debug = format!("{spec:?}");
        assert!(debug.contains("API_TOKEN"), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
