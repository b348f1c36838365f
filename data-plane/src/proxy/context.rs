//! The per-request context: what one request carries through its life, from the moment it
//! arrives to the final step that records it.
//!
//! The phases of the request path (`transport`, `answer`) read and write a
//! [`RequestContext`] instead of passing positional arguments: the one runtime the request
//! took at its start, the trace context, the audit [`Ledger`] and the exported span, the
//! endpoint the path names, the request's head and body and, once checked, its envelope and
//! request id. What lower layers read from the request (caller, session, trace, ledger and
//! span, the message's audit note) also travels in the head's extensions, where they have
//! always found it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use tokio::time::Instant;

use crate::aggregate::Scope;
use crate::audit::Ledger;
use crate::caller::Caller;
use crate::jsonrpc::{Envelope, RequestId};
use crate::runtime::{Runtime, Server};
use crate::telemetry::{RequestSpan, Telemetry};
use crate::trace_context::TraceContext;

/// What the request path names.
#[derive(Debug)]
pub(super) enum Endpoint {
    /// No MCP path, or no configuration to serve it: the `none` label.
    None,
    /// `/mcp/{id}`: the server, when the configuration has it.
    Server {
        id: String,
        server: Option<Arc<Server>>,
    },
    /// `/mcp` or `/mcp/profile/{id}`; `label` is the endpoint's (`aggregate`,
    /// `profile:<id>`) and `known` whether the configuration has it.
    Aggregate {
        scope: Scope,
        label: String,
        known: bool,
    },
}

impl Endpoint {
    /// The endpoint `path` names in `runtime`.
    fn resolve(path: &str, runtime: &Runtime) -> Endpoint {
        if let Some(scope) = Scope::from_path(path) {
            let known = runtime.aggregates().members(&scope).is_some();
            return Endpoint::Aggregate {
                label: scope.label(),
                scope,
                known,
            };
        }
        match mcp_server_id(path) {
            Some(id) => Endpoint::Server {
                server: runtime.server(id).cloned(),
                id: id.to_owned(),
            },
            None => Endpoint::None,
        }
    }

    /// Whether the configuration has the endpoint the path names.
    pub(super) fn known(&self) -> bool {
        match self {
            Endpoint::None => false,
            Endpoint::Server { server, .. } => server.is_some(),
            Endpoint::Aggregate { known, .. } => *known,
        }
    }

    /// The metrics label of the request: the server id (or the aggregate endpoint's label)
    /// when it is configured, `unknown` for ids the configuration lacks (one label, to
    /// bound metric cardinality), `none` when no MCP endpoint served it.
    pub(super) fn label(&self) -> &str {
        match self {
            Endpoint::None => "none",
            Endpoint::Server {
                server: Some(_),
                id,
            } => id,
            Endpoint::Aggregate {
                known: true, label, ..
            } => label,
            _ => "unknown",
        }
    }
}

/// `Some(id)` for `/mcp/{id}` (one non-empty segment), else `None`.
fn mcp_server_id(path: &str) -> Option<&str> {
    path.strip_prefix("/mcp/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// One request, as the phases see it.
#[derive(Debug)]
pub(super) struct RequestContext {
    /// The configuration that serves the request from start to end (a swap never changes
    /// a request midway).
    pub runtime: Arc<Runtime>,
    pub started: Instant,
    pub trace: TraceContext,
    /// The audit facts the phases write down; the answer's body turns them into records.
    pub ledger: Ledger,
    /// The exported request span, when tracing is on.
    pub exported: Option<RequestSpan>,
    /// The address the client connected to (the host guard compares with it).
    pub local: SocketAddr,
    pub endpoint: Endpoint,
    /// The request's head; its extensions carry what lower layers read.
    pub parts: Parts,
    /// The POST body once read (empty for GET and DELETE, and until read).
    pub body: Bytes,
    /// The checked JSON-RPC envelope of a POST, until the answer takes it.
    pub envelope: Option<Envelope>,
    /// The request id answers carry: null until the body is read, and for batches.
    pub id: RequestId,
}

impl RequestContext {
    /// The context of a request that arrived with `parts`, served by `runtime`: its trace
    /// context, its ledger and (when tracing is on) its exported span start here, and go in
    /// the head's extensions for the layers below.
    pub(super) fn start(
        runtime: Arc<Runtime>,
        mut parts: Parts,
        local: SocketAddr,
        telemetry: &Telemetry,
    ) -> RequestContext {
        let started = Instant::now();
        let trace = TraceContext::from_headers(&parts.headers);
        parts.extensions.insert(trace);
        let exported = telemetry.start(&trace, &parts.method);
        if let Some(exported) = &exported {
            parts.extensions.insert(exported.clone());
        }
        let ledger = Ledger::start(trace.trace_id(), started);
        parts.extensions.insert(ledger.clone());
        ledger.profile(runtime.audit_profile());
        RequestContext {
            endpoint: Endpoint::resolve(parts.uri.path(), &runtime),
            runtime,
            started,
            trace,
            ledger,
            exported,
            local,
            parts,
            body: Bytes::new(),
            envelope: None,
            id: RequestId::null(),
        }
    }

    /// The caller authenticated: on the ledger and in the head for the phases below.
    pub(super) fn authenticated(&mut self, caller: Caller) {
        self.ledger.caller(&caller);
        self.parts.extensions.insert(caller);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Applied, ConfigSource};

    fn runtime() -> Runtime {
        let text = "servers:\n  - id: crm\n    url: http://127.0.0.1:1/mcp\nprofiles:\n  - id: ops\n    server_ids: [crm]\n";
        let document = conduit_config::Document::from_text(text).expect("valid document");
        let applied = Applied {
            version: 1,
            hash: "h".into(),
            source: ConfigSource::File,
            applied_at: chrono::Utc::now(),
        };
        Runtime::compile(&document, applied).expect("compiles")
    }

    #[test]
    fn the_label_names_configured_endpoints_only() {
        let runtime = runtime();
        let cases = [
            ("/mcp/crm", "crm", true),
            ("/mcp/nope", "unknown", false),
            ("/mcp", "aggregate", true),
            ("/mcp/profile/ops", "profile:ops", true),
            ("/mcp/profile/nope", "unknown", false),
            ("/metrics", "none", false),
            ("/mcp/a/b", "none", false),
        ];
        for (path, label, known) in cases {
            let endpoint = Endpoint::resolve(path, &runtime);
            assert_eq!(endpoint.label(), label, "{path}");
            assert_eq!(endpoint.known(), known, "{path}");
        }
    }

    #[test]
    fn matches_only_single_segment_mcp_paths() {
        assert_eq!(mcp_server_id("/mcp/alpha"), Some("alpha"));
        assert_eq!(mcp_server_id("/mcp/"), None);
        assert_eq!(mcp_server_id("/mcp"), None);
        assert_eq!(mcp_server_id("/mcp/a/b"), None);
        assert_eq!(mcp_server_id("/metrics"), None);
    }
}
