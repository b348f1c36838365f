//! Conduit data plane: a stateless MCP proxy whose configuration comes from the control
//! plane's config stream or, standalone, from a watched local file.
//!
//! Both sources feed one apply path (`apply`) that compiles a `Runtime` and swaps it in
//! atomically; the public listener (`server`, `proxy`) serves MCP from whatever runtime is
//! current, the admin listener (`admin`) reports health, readiness, metrics and the
//! applied configuration. `lifecycle` wires it all together.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod aggregate;
pub mod answer_check;
pub mod apply;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod backoff;
pub mod balancer;
pub mod batch;
pub mod caller;
pub mod catalog;
pub mod connection_limit;
pub mod deadline;
pub mod host_check;
pub mod http;
pub mod json_array;
pub mod jsonrpc;
pub mod lifecycle;
pub mod mcp;
pub mod metrics;
pub mod policies;
pub mod proxy;
pub mod public_tls;
pub mod rate_limit;
pub mod references;
pub mod routing_headers;
pub mod runtime;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod source;
pub mod sse;
pub mod state;
pub mod stdio;
pub mod telemetry;
pub mod trace_context;
pub mod upstream;
pub mod verdict;
pub mod webhook;

pub(crate) use conduit_process::error_chain;
