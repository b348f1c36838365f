//! `Mcp-Session-Id` on `/mcp/{server_id}` with an HTTP upstream: the client holds a token,
//! the upstream its own session id, and this module translates between the two.
//!
//! On the way up, a token is opened (key, integrity, age, scope `server:<id>`: a token
//! is only good on the endpoint that issued it, and principal: only for the caller it was
//! issued to) and the upstream session id it carries
//! replaces it. A token that does not open is answered with 404, which MCP clients take as
//! "this session is gone, initialize again". On the way back, the upstream's session id is
//! replaced by a token sealing it; the raw id never reaches the client. While the upstream
//! keeps the same session, the client keeps the token it has.
//!
//! The proxy opens a request's [`ServerSession`] once and puts it in the request's
//! extensions; forwarding (one message, or each message of a batch) translates with it and
//! pins the replica it names.

use http::header::{HeaderMap, HeaderValue};

use super::{Principal, SessionError, SessionKeys, SessionState, UpstreamSession};
use crate::http::MCP_SESSION_ID;

/// JSON-RPC error code for a session token that does not open, the code MCP SDKs use for
/// an unknown session (sent with HTTP 404).
pub(crate) const SESSION_NOT_FOUND: i64 = -32001;

/// The session a request on a single-server endpoint belongs to, with the keys that
/// seal its tokens.
#[derive(Debug, Clone)]
pub(crate) struct ServerSession {
    server_id: String,
    keys: SessionKeys,
    /// The caller of the request: tokens open and are sealed only for it.
    principal: Principal,
    /// The client's token, as sent.
    token: Option<HeaderValue>,
    /// What the token says about the upstream; `None` without a token.
    upstream: Option<UpstreamSession>,
}

impl ServerSession {
    /// The request's session from its `Mcp-Session-Id` header; no header, no session yet.
    /// `principal` is the request's caller.
    pub(crate) fn open(
        headers: &HeaderMap,
        server_id: &str,
        keys: SessionKeys,
        principal: Principal,
    ) -> Result<ServerSession, SessionError> {
        let mut session = ServerSession {
            server_id: server_id.to_owned(),
            keys,
            principal,
            token: None,
            upstream: None,
        };
        let Some(value) = headers.get(&MCP_SESSION_ID) else {
            return Ok(session);
        };
        let token = value.to_str().map_err(|_| SessionError::BadToken)?;
        let mut state = session.keys.open_for(
            token,
            &SessionState::server_scope(server_id),
            &session.principal,
        )?;
        session.token = Some(value.clone());
        session.upstream = Some(state.upstreams.remove(server_id).unwrap_or_default());
        Ok(session)
    }

    /// The replica the upstream session lives on, when the token names one.
    pub(crate) fn replica(&self) -> Option<&str> {
        self.upstream.as_ref()?.replica.as_deref()
    }

    /// Request headers for the upstream: the client's token replaced by the upstream's
    /// session id (or removed, for a session with a stateless upstream).
    pub(crate) fn to_upstream(&self, headers: &mut HeaderMap) {
        headers.remove(&MCP_SESSION_ID);
        let upstream_id = self.upstream.as_ref().and_then(|u| u.session_id.as_deref());
        // The id came out of a token we sealed from a valid header value.
        if let Some(value) = upstream_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            headers.insert(MCP_SESSION_ID, value);
        }
    }

    /// Response headers for the client: an upstream session id replaced by a token
    /// naming it (and `replica`, the upstream URL that issued it, when the server has
    /// several).
    pub(crate) fn to_client(&self, headers: &mut HeaderMap, replica: Option<&str>) {
        let server_id = self.server_id.as_str();
        let Some(value) = headers.remove(&MCP_SESSION_ID) else {
            return;
        };
        // MCP session ids are visible ASCII; anything else is the upstream's fault and is
        // not passed on.
        let Some(upstream_id) = value
            .to_str()
            .ok()
            .filter(|id| !id.is_empty() && id.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        else {
            tracing::warn!(
                server = server_id,
                "upstream sent an Mcp-Session-Id that is not visible ASCII; dropped"
            );
            return;
        };
        let same_session =
            self.upstream.as_ref().and_then(|u| u.session_id.as_deref()) == Some(upstream_id);
        if let (true, Some(token)) = (same_session, &self.token) {
            headers.insert(MCP_SESSION_ID, token.clone());
            return;
        }
        let mut state = SessionState::new(
            SessionState::server_scope(server_id),
            self.principal.clone(),
        );
        state.upstreams.insert(
            server_id.to_owned(),
            UpstreamSession {
                session_id: Some(upstream_id.to_owned()),
                replica: replica.map(str::to_owned),
                // The handshake passes through untouched on this endpoint; the client sends
                // the negotiated version in `MCP-Protocol-Version` on every request anyway.
                protocol_version: None,
            },
        );
        let token = self.keys.seal(&state);
        let value = HeaderValue::from_str(&token).expect("tokens are visible ASCII");
        headers.insert(MCP_SESSION_ID, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Caller;
    use crate::session::SessionKey;

    fn keys() -> SessionKeys {
        SessionKeys::new(vec![SessionKey::new("k1", [5; 32]).unwrap()]).unwrap()
    }

    fn with_session(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(MCP_SESSION_ID, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn open(headers: &HeaderMap, server_id: &str) -> Result<ServerSession, SessionError> {
        open_as(
            headers,
            server_id,
            &Caller::authenticated("alice", Some("acme")),
        )
    }

    fn open_as(
        headers: &HeaderMap,
        server_id: &str,
        caller: &Caller,
    ) -> Result<ServerSession, SessionError> {
        ServerSession::open(headers, server_id, keys(), Principal::of(caller))
    }

    /// What a client gets back when the upstream answers with `upstream_id`.
    fn issue(upstream_id: &str) -> String {
        let mut response = with_session(upstream_id);
        let session = open(&HeaderMap::new(), "files").unwrap();
        session.to_client(&mut response, None);
        response[&MCP_SESSION_ID].to_str().unwrap().to_owned()
    }

    #[test]
    fn the_upstream_id_becomes_a_token_and_comes_back() {
        let token = issue("up-1");
        assert!(token.starts_with("c1.k1."), "{token}");
        assert!(!token.contains("up-1"));

        let session = open(&with_session(&token), "files").unwrap();
        let mut upstream = with_session(&token);
        upstream.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-11-25"),
        );
        session.to_upstream(&mut upstream);
        assert_eq!(upstream[&MCP_SESSION_ID], "up-1");
        assert_eq!(upstream["mcp-protocol-version"], "2025-11-25");

        // The upstream repeating its id: the client keeps its token.
        let mut response = with_session("up-1");
        session.to_client(&mut response, None);
        assert_eq!(response[&MCP_SESSION_ID], token.as_str());
        // A new upstream session (re-initialize): a new token for it.
        let mut response = with_session("up-2");
        session.to_client(&mut response, None);
        let renewed = response[&MCP_SESSION_ID].to_str().unwrap();
        assert_ne!(renewed, token);
        let reopened = open(&response, "files").unwrap();
        let mut upstream = HeaderMap::new();
        reopened.to_upstream(&mut upstream);
        assert_eq!(upstream[&MCP_SESSION_ID], "up-2");
    }

    #[test]
    fn no_token_no_session() {
        let session = open(&HeaderMap::new(), "files").unwrap();
        assert_eq!(session.replica(), None);
        let mut headers = HeaderMap::new();
        session.to_upstream(&mut headers);
        assert!(headers.is_empty());
        // A stateless upstream answers without a session id: nothing to seal either.
        let mut response = HeaderMap::new();
        session.to_client(&mut response, None);
        assert!(response.is_empty());
    }

    #[test]
    fn bad_and_foreign_tokens_are_refused() {
        let token = issue("up-1");
        assert!(matches!(
            open(&with_session(&token), "other"),
            Err(SessionError::WrongScope { .. })
        ));
        // Another client with its own credential, or the same client id in another tenant.
        for other in [
            Caller::authenticated("bob", Some("acme")),
            Caller::authenticated("alice", Some("globex")),
        ] {
            assert_eq!(
                open_as(&with_session(&token), "files", &other).unwrap_err(),
                SessionError::WrongPrincipal
            );
        }
        // A raw upstream id (or anything we did not make) is not a token.
        assert_eq!(
            open(&with_session("up-1"), "files").unwrap_err(),
            SessionError::BadToken
        );
        let mut tampered = token.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            open(&with_session(&tampered), "files").unwrap_err(),
            SessionError::BadToken
        );
    }

    #[test]
    fn the_replica_rides_in_the_token() {
        let mut response = with_session("up-1");
        let session = open(&HeaderMap::new(), "files").unwrap();
        session.to_client(&mut response, Some("http://127.0.0.1:9001/mcp"));
        let session = open(&response, "files").unwrap();
        assert_eq!(session.replica(), Some("http://127.0.0.1:9001/mcp"));
    }

    #[test]
    fn an_unprintable_upstream_id_is_dropped() {
        let mut response = HeaderMap::new();
        response.insert(MCP_SESSION_ID, HeaderValue::from_bytes(b"a\tb").unwrap());
        open(&HeaderMap::new(), "files")
            .unwrap()
            .to_client(&mut response, None);
        assert!(response.get(&MCP_SESSION_ID).is_none());
    }
}
