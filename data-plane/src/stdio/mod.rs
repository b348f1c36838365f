//! stdio upstreams: MCP servers that are child processes of the data plane
//! (`servers[].transport: stdio`), served on `POST|GET|DELETE /mcp/{server_id}` like any
//! other server.
//!
//! # One process, many clients
//! Each data plane runs one process per stdio server (`isolation: shared`, the default) and
//! performs the MCP handshake with it itself (`initialize` with the newest protocol version
//! it knows, declaring the `sampling`, `elicitation` and `roots` client capabilities so
//! those requests can be relayed, then `notifications/initialized`). The process is
//! started when a configuration naming it is applied, kept across configuration versions
//! while its `command`, `args`, `env` and isolation are unchanged, and stopped when the
//! server is removed or changed ([`Pool`]). With `isolation: tenant` or `client` each
//! tenant (or client) gets a process of its own, started by its first request, at most
//! `max_processes` at once, stopped after `idle_timeout_ms` unused ([`Group`]).
//!
//! Clients share the process, so everything that names a message is remapped
//! (`connection`): a client's request id becomes a gateway id (a counter) on the way in and
//! is restored on the way out; `_meta.progressToken` becomes the gateway id too and is
//! restored on `notifications/progress`; a server→client request gets a gateway id that
//! cannot be guessed, and only the principal (tenant and client) it was sent to can
//! answer it.
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
//! only by the client's own id. Ids are per client, so it only matches outstanding
//! requests of the same principal; it is forwarded (remapped) when exactly one of them
//! carries that id, and dropped otherwise, which MCP allows (cancellation is advisory).
//! And a client's answer to a server→client request must reach the replica whose process
//! asked: behind a load balancer without affinity, another replica refuses it (400) and
//! the tool call fails.
//!
//! # Who gets what the process sends
//! - A response goes to the caller whose request it answers.
//! - `notifications/progress` goes to the caller whose request carried the token.
//! - A server→client request (`sampling/createMessage`, `elicitation/create`,
//!   `roots/list`, ...) and a `notifications/message` (logging) carry nothing on the wire
//!   that links them to a request. They go to the request their
//!   `_meta.relatedRequestId` names when they carry one, else to the **one principal whose requests are
//!   outstanding** (with none outstanding: the one principal of every open `GET` stream),
//!   on its oldest streaming request or else its `GET` stream. When requests of several
//!   principals are outstanding it cannot be known whose it is: a request is answered by
//!   the gateway with an error and a log message dropped, both counted
//!   (`conduit_dp_stdio_unrouted_total`). With an isolated process there is only ever one
//!   principal. A `ping` from the process is answered by the gateway.
//! - Every other notification (e.g. `notifications/tools/list_changed`) goes to every open
//!   `GET /mcp/{server_id}` stream, which the proxy filters through its caller's view
//!   (`notifications/resources/updated` only for callers who may read the resource).
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
mod group;
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

pub(crate) use group::{Group, Isolation};
pub(crate) use pool::Pool;
pub(crate) use supervisor::Process;

use crate::caller::Caller;

/// Whom a message belongs to: the tenant and client of the caller that sent it (or is to
/// receive it). Two callers with equal principals are the same client to the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub tenant: Arc<str>,
    pub client: Arc<str>,
}

impl Principal {
    pub fn of(caller: &Caller) -> Principal {
        Principal {
            tenant: Arc::clone(&caller.tenant_id),
            client: Arc::clone(&caller.client_id),
        }
    }

    /// The gateway itself (its own `initialize` with a process): no client's.
    pub fn gateway() -> Principal {
        // Tenant and client ids of callers are never empty.
        Principal {
            tenant: Arc::from(""),
            client: Arc::from(""),
        }
    }
}

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
    group: Arc<Group>,
    /// How long a request may wait for its answer (`timeout_ms`).
    timeout: Duration,
}

impl StdioServer {
    /// The server `id` of a candidate configuration; its processes come from `pool`.
    pub fn new(
        pool: &Pool,
        id: &str,
        spec: Spec,
        isolation: Isolation,
        timeout: Duration,
    ) -> StdioServer {
        StdioServer {
            group: pool.prepare(id, spec, isolation, timeout),
            timeout,
        }
    }

    /// The processes serving this server.
    pub fn group(&self) -> &Arc<Group> {
        &self.group
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
