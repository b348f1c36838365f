//! `conduit-mcp-fixture`: a small but real MCP server built on rmcp.
//!
//! It is the upstream the end-to-end tests proxy to and the example server of the README's
//! quick start. The server is assembled from capability modules so that more tools, resources
//! and prompts (for example the names the official conformance suite expects) can be added
//! one module at a time:
//!
//! - [`tools`] (`echo`, `add`, `echo_headers`, `sleep`);
//! - [`resources`] (a static catalogue of text resources);
//! - [`prompts`] (`greeting`);
//! - [`server`] (the `ServerHandler` that glues the routers together);
//! - [`transport`] (streamable HTTP with axum at `/mcp`, and stdio).
#![forbid(unsafe_code)]

pub mod prompts;
pub mod resources;
pub mod server;
pub mod tools;
pub mod transport;

pub use server::FixtureServer;
