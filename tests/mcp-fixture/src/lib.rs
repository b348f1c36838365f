//! `conduit-mcp-fixture`: a small but real MCP server built on rmcp.
//!
//! It is the upstream the end-to-end tests proxy to and the example server of the README's
//! quick start. The server is assembled from capability modules so that more tools, resources
//! and prompts (for example the names the official conformance suite expects) can be added
//! one module at a time:
//!
//! - [`tools`] (`echo`, `add`, `echo_headers`, `sleep`);
//! - [`content_tools`], [`notify_tools`] and [`client_request_tools`]: the `test_*` tools of
//!   the official conformance suite's "everything server" (content types, logging and
//!   progress notifications, sampling and elicitation);
//! - [`resources`] (static `fixture://` and `test://` resources, the template
//!   `test://template/{id}/data`);
//! - [`prompts`] (`greeting`) and [`conformance_prompts`] (the suite's `test_*` prompts);
//! - [`completion`] (`completion/complete` for prompt arguments and the template);
//! - [`server`] (the `ServerHandler` that glues the routers together);
//! - [`transport`] (streamable HTTP with axum at `/mcp`, and stdio).
#![forbid(unsafe_code)]

pub mod client_request_tools;
pub mod completion;
pub mod conformance_prompts;
pub mod content_tools;
pub mod notify_tools;
pub mod prompts;
pub mod resources;
pub mod server;
pub mod tools;
pub mod transport;

pub use server::FixtureServer;
