//! Talking to upstream HTTP servers.
//!
//! `client` is the pooled HTTP(S) client and its connector, shared by every layer that
//! sends (upstream MCP servers, JWKS fetches, the trace exporter): it is vocabulary and
//! imports nothing of the crate. `exchange` is the one request/answer exchange with an
//! MCP server's HTTP upstream that `/mcp/{id}` and the aggregate endpoints share: it
//! picks a replica (`balancer`), so it sits in the features layer right above the
//! balancer (see ARCHITECTURE.md); nothing below that layer names it.

mod client;
pub(crate) mod exchange;

pub(crate) use self::client::{UpstreamClient, https_connector, upstream_client};
