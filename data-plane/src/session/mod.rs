//! MCP sessions with stateless data planes.
//!
//! The `Mcp-Session-Id` a client holds is not a key into any store: it is a token that
//! carries the session itself ([`SessionState`]: the upstream session ids it stands for,
//! the negotiated protocol version, the endpoint it was issued for), encrypted and
//! authenticated with AES-256-GCM under a key the whole fleet shares ([`SessionKeys`]).
//! Any data plane holding the key set can therefore continue any session, and a client can
//! neither read nor forge the upstream ids behind its token.
//!
//! `codec` owns the token format and the key set, `keys` where a data plane's keys come
//! from (configuration, control plane, or a local key), `http` the header translation on
//! single-server endpoints.

mod codec;
mod http;
mod keys;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

pub use codec::{
    DEFAULT_MAX_AGE, SessionError, SessionKey, SessionKeyError, SessionKeys, TOKEN_VERSION,
};
pub use http::{MCP_SESSION_ID, SESSION_NOT_FOUND, ServerSession};
pub use keys::{KeyRing, configured_keys, fleet_keys};

/// Everything a session token carries.
///
/// Field names are shortened on the wire because the token travels in a header on every
/// request; the struct is only ever serialized inside a token.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct SessionState {
    /// Upstream sessions by server id (one entry on /mcp/{id}; one per member server on aggregates).
    #[serde(rename = "u", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstreams: BTreeMap<String, UpstreamSession>,
    /// Protocol version negotiated with the client.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// What the token was issued for: "server:<id>", "aggregate" or "profile:<id>" (a token is only valid on that endpoint).
    #[serde(rename = "s")]
    pub scope: String,
    /// Unix seconds when issued (for expiry).
    #[serde(rename = "t")]
    pub issued_at: u64,
}

impl SessionState {
    /// A state with no upstream sessions yet, issued now for `scope`.
    pub fn new(scope: impl Into<String>) -> SessionState {
        SessionState {
            scope: scope.into(),
            issued_at: unix_now(),
            ..SessionState::default()
        }
    }

    /// The scope of the single-server endpoint `/mcp/{server_id}`.
    pub fn server_scope(server_id: &str) -> String {
        format!("server:{server_id}")
    }

    /// The scope of the profile endpoint `/mcp/profile/{profile_id}`.
    pub fn profile_scope(profile_id: &str) -> String {
        format!("profile:{profile_id}")
    }
}

/// One upstream server's side of a downstream session.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct UpstreamSession {
    /// The upstream's `Mcp-Session-Id`, `None` for stateless upstreams.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// URL of the replica the session lives on, when the server has replicas.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Protocol version negotiated with the upstream.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}

/// Seconds since the Unix epoch by the wall clock: tokens are opened by other processes,
/// possibly on other hosts, so a monotonic clock would mean nothing to them.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
