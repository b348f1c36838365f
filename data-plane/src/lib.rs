//! Conduit data plane: a stateless MCP proxy whose configuration comes from the control
//! plane's config stream or, standalone, from a watched local file.
//!
//! Both sources (`source`) feed one apply path (`apply`) that compiles a `Runtime` and
//! swaps it in atomically; the public listener (`server`, `proxy`) serves MCP from whatever
//! runtime is current, the admin listener (`admin`) reports health, readiness, metrics and
//! the applied configuration. `lifecycle` wires it all together.
//!
//! The modules are layered, bottom to top (see ARCHITECTURE.md at the repository root):
//! the vocabulary (`jsonrpc`, `mcp`, `http`, `upstream`, ...), shared services (`metrics`,
//! `session`, ...), the features, the `runtime` that holds their compiled pieces, the
//! config paths (`apply`, `source`) and the request path (`admission`, `aggregate`,
//! `proxy`, `server`, `lifecycle`). Only what the binary and the tests use is public.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

// The vocabulary every layer shares.
pub mod backoff;
mod caller;
mod http;
mod json_array;
mod jsonrpc;
mod mcp;
pub mod snapshot;
mod sse;
mod trace_context;
// The client; its `exchange` submodule sits above `balancer` (see ARCHITECTURE.md).
mod upstream;
mod verdict;

// Shared services.
pub mod connection_limit;
mod deadline;
mod host_check;
pub mod metrics;
pub mod references;
mod refusal;
mod session;
mod state;

// Features: compiled pieces of a configuration and long-lived services.
mod answer_check;
mod approvals;
pub mod audit;
mod auth;
mod balancer;
mod batch;
mod catalog;
mod policies;
mod public_tls;
pub mod rate_limit;
mod routing_headers;
mod stdio;
mod telemetry;
mod webhook;

// What one configuration compiles into, and the services that outlive it.
mod runtime;
mod services;

// The config paths.
mod apply;
pub mod source;

// The request path and the listeners.
mod admin;
mod admission;
mod aggregate;
pub mod lifecycle;
pub mod proxy;
pub mod server;

pub(crate) use conduit_process::error_chain;
