//! MCP sessions with stateless data planes.
//!
//! The `Mcp-Session-Id` a client holds is not a key into any store: it is a token that
//! carries the session itself ([`SessionState`]: the upstream session ids it stands for,
//! the negotiated protocol version, the endpoint it was issued for), encrypted and
//! authenticated with AES-256-GCM under a key the whole fleet shares ([`SessionKeys`]).
//! Any data plane holding the key set can therefore continue any session, and a client can
//! neither read nor forge the upstream ids behind its token.
//!
//! A token is bound to the caller that opened the session ([`Principal`]): presented by
//! another client or tenant (with its own valid credential), it is refused like a foreign
//! token, so a leaked or guessed-at session id does not let anyone else continue it.
//!
//! `codec` owns the token format and the key set, `keys` where a data plane's keys come
//! from (configuration, control plane, or a local key), `http` the header translation on
//! single-server endpoints.

mod codec;
mod http;
mod keys;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::caller::Caller;

pub(crate) use codec::{SessionError, SessionKey, SessionKeyError, SessionKeys};
pub(crate) use http::{SESSION_NOT_FOUND, ServerSession};
pub(crate) use keys::{KeyRing, configured_keys, fleet_keys};

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
    /// The caller the session belongs to. Required: a token without one (made before
    /// tokens were bound) does not open.
    #[serde(rename = "p")]
    pub principal: Principal,
}

impl SessionState {
    /// A state with no upstream sessions yet, issued now for `scope` to `principal`.
    pub fn new(scope: impl Into<String>, principal: Principal) -> SessionState {
        SessionState {
            scope: scope.into(),
            issued_at: unix_now(),
            principal,
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

/// The caller a session is bound to: a SHA-256 digest of whether the caller authenticated,
/// its tenant id and its client id (`anonymous` in tenant `default` without an `auth`
/// section). A digest rather than the ids themselves keeps tokens short whatever the length
/// of a JWT's client claim; the token is encrypted either way.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Principal(String);

impl Principal {
    /// The principal of `caller`.
    pub fn of(caller: &Caller) -> Principal {
        let mut digest = Sha256::new();
        digest.update(b"conduit session principal v1\0");
        digest.update([u8::from(caller.authenticated)]);
        // Length prefixes: ("ab", "c") and ("a", "bc") must not collide.
        for part in [&*caller.tenant_id, &*caller.client_id] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        Principal(URL_SAFE_NO_PAD.encode(digest.finalize()))
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
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
