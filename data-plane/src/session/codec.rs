//! The session token codec: `c1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`.
//!
//! The plaintext is the JSON of a [`SessionState`], sealed with AES-256-GCM under a random
//! 96-bit nonce drawn by AWS-LC for every token. The version tag and the key id travel in
//! the clear, so a data plane finds the key without trying them all, and are authenticated
//! as the AEAD's associated data, so neither can be swapped. Every character of a token is
//! in `[A-Za-z0-9._-]`, well inside the visible ASCII range MCP requires of session ids.
//!
//! AWS-LC (through `aws-lc-rs`) does the cryptography because rustls already links it: one
//! audited, constant-time, hardware-accelerated AES-GCM in the binary rather than two, and
//! the key schedule lives in an AWS-LC context that is cleansed when the key is dropped.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

use super::{Principal, SessionState, unix_now};

/// The version tag every token starts with; a new format gets a new tag.
pub(crate) const TOKEN_VERSION: &str = "c1";

/// How long a token stays valid after it was issued unless [`SessionKeys::with_max_age`]
/// says otherwise (the control plane keeps retired keys exactly as long).
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// AES-GCM's tag length.
const TAG_LEN: usize = 16;

/// Longest key id: ids travel in every token.
const MAX_ID_LEN: usize = 32;

/// Longest token worth decoding; anything longer was not made by a data plane.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A session key set cannot be built from what was given (configuration or snapshot).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionKeyError {
    /// Key ids appear in tokens, so they are restricted to a URL-safe alphabet.
    #[error(
        "invalid session key id {0:?}: expected 1 to 32 characters of A-Z, a-z, 0-9, '_' or '-'"
    )]
    InvalidId(String),
    /// A key that is not 32 bytes long.
    #[error("session key {id:?} is {len} bytes long, AES-256 needs exactly 32")]
    KeyLength {
        /// The key's id.
        id: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A key given as text that is not base64.
    #[error("session key {0:?} is not valid base64")]
    KeyEncoding(String),
    /// AWS-LC refused the key (it does not for 32 bytes; kept so nothing panics).
    #[error("session key {0:?} was rejected by the cipher")]
    Rejected(String),
    /// A key set needs a current key.
    #[error("the session key set is empty")]
    Empty,
    /// Two keys with one id would make tokens ambiguous.
    #[error("duplicate session key id {0:?}")]
    DuplicateId(String),
}

/// A session token could not be opened. All of these are the client's doing (or the
/// token's age): the right answer is to make the client start a new session.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// Sealed under a key this data plane does not hold (retired, or another fleet's).
    #[error("session token was sealed with unknown key {0:?}")]
    UnknownKey(String),
    /// Not a token of ours: wrong format, or it failed authentication.
    #[error("session token is malformed or was altered")]
    BadToken,
    /// Authentic, but older than the maximum session age.
    #[error("session token has expired")]
    Expired,
    /// Authentic, but issued for another endpoint.
    #[error("session token was issued for {actual:?}, not {expected:?}")]
    WrongScope {
        /// The scope of the endpoint the token was presented to.
        expected: String,
        /// The scope it was issued for.
        actual: String,
    },
    /// Authentic, but issued to another caller (client or tenant). Says nothing about
    /// whom, since the presenter is not that caller.
    #[error("session token belongs to another caller")]
    WrongPrincipal,
}

/// One AES-256 key and its id. The key material never leaves AWS-LC and never appears
/// in `Debug` output.
#[derive(Clone)]
pub struct SessionKey {
    /// Names the key in tokens.
    pub id: String,
    aead: Arc<RandomizedNonceKey>,
    /// Unix seconds before which the key opens tokens but does not seal them.
    not_before: u64,
}

impl SessionKey {
    /// A key from its id and 32 bytes of key material.
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Result<SessionKey, SessionKeyError> {
        Self::from_slice(id, &key)
    }

    /// A key from bytes of unchecked length (from a snapshot).
    pub fn from_slice(id: impl Into<String>, key: &[u8]) -> Result<SessionKey, SessionKeyError> {
        let id = id.into();
        if !valid_id(&id) {
            return Err(SessionKeyError::InvalidId(id));
        }
        if key.len() != 32 {
            return Err(SessionKeyError::KeyLength { id, len: key.len() });
        }
        let aead = RandomizedNonceKey::new(&AES_256_GCM, key)
            .map_err(|_| SessionKeyError::Rejected(id.clone()))?;
        Ok(SessionKey {
            id,
            aead: Arc::new(aead),
            not_before: 0,
        })
    }

    /// The same key, sealing only from `unix_secs` on. A key shipped ahead of its use
    /// reaches every data plane before any of them seals with it, so a token made by one
    /// replica right after a rotation always opens on the others.
    pub fn not_before(mut self, unix_secs: u64) -> SessionKey {
        self.not_before = unix_secs;
        self
    }

    /// A key from its standard-base64 text (from configuration).
    pub fn from_base64(id: impl Into<String>, key: &str) -> Result<SessionKey, SessionKeyError> {
        let id = id.into();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| SessionKeyError::KeyEncoding(id.clone()))?;
        Self::from_slice(id, &bytes)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("not_before", &self.not_before)
            .finish()
    }
}

/// The key set of a fleet, newest first: the first key whose activation time has come is
/// current and seals new tokens; every key opens tokens, so sessions survive a rotation for
/// as long as their key is kept.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    keys: Arc<[SessionKey]>,
    max_age_secs: u64,
}

impl SessionKeys {
    /// A key set, current key first. Fails on an empty set or a repeated id.
    pub fn new(keys: Vec<SessionKey>) -> Result<SessionKeys, SessionKeyError> {
        if keys.is_empty() {
            return Err(SessionKeyError::Empty);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.id == key.id) {
                return Err(SessionKeyError::DuplicateId(key.id.clone()));
            }
        }
        Ok(SessionKeys {
            keys: keys.into(),
            max_age_secs: DEFAULT_MAX_AGE.as_secs(),
        })
    }

    /// One random key under a random id, for a data plane nobody gave keys to: its
    /// tokens open only on itself, and another process's fail as an unknown key.
    pub fn ephemeral() -> SessionKeys {
        let mut rng = rand::rng();
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut tag = [0u8; 6];
        rng.fill_bytes(&mut tag);
        let id = format!("local-{}", hex::encode(tag));
        let key = SessionKey::new(id, key).expect("a generated id and 32-byte key are valid");
        SessionKeys {
            keys: Arc::from([key]),
            max_age_secs: DEFAULT_MAX_AGE.as_secs(),
        }
    }

    /// The same keys with another maximum token age.
    pub fn with_max_age(mut self, max_age: Duration) -> SessionKeys {
        self.max_age_secs = max_age.as_secs();
        self
    }

    /// The id of the key that seals new tokens now.
    pub fn current_id(&self) -> &str {
        &self.sealing_key(unix_now()).id
    }

    /// The id of the newest key, current or about to be; it names the whole set.
    pub fn newest_id(&self) -> &str {
        &self.keys[0].id
    }

    /// The age after which tokens are refused.
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_secs)
    }

    /// The newest key already active at `now`; the oldest when none is (a clock far
    /// behind the control plane's).
    fn sealing_key(&self, now: u64) -> &SessionKey {
        self.keys
            .iter()
            .find(|key| key.not_before <= now)
            .unwrap_or_else(|| &self.keys[self.keys.len() - 1])
    }

    /// Every key id, current first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Seals `state` under the current key.
    pub fn seal(&self, state: &SessionState) -> String {
        self.seal_at(state, unix_now())
    }

    /// [`seal`](Self::seal) with the key current at `now` (Unix seconds).
    pub fn seal_at(&self, state: &SessionState, now: u64) -> String {
        let key = self.sealing_key(now);
        let prefix = format!("{TOKEN_VERSION}.{}", key.id);
        let mut sealed = serde_json::to_vec(state).expect("a session state serializes");
        let nonce = key
            .aead
            .seal_in_place_append_tag(Aad::from(prefix.as_bytes()), &mut sealed)
            .expect("AES-256-GCM sealing with a valid key does not fail");
        let mut body = Vec::with_capacity(NONCE_LEN + sealed.len());
        body.extend_from_slice(nonce.as_ref());
        body.extend_from_slice(&sealed);
        let mut token = prefix;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&body, &mut token);
        token
    }

    /// Opens a token: checks its key, its integrity and its age.
    pub fn open(&self, token: &str) -> Result<SessionState, SessionError> {
        self.open_at(token, unix_now())
    }

    /// Opens a token and checks it was issued for `scope` to `principal`.
    pub fn open_for(
        &self,
        token: &str,
        scope: &str,
        principal: &Principal,
    ) -> Result<SessionState, SessionError> {
        let state = self.open(token)?;
        if state.scope != scope {
            return Err(SessionError::WrongScope {
                expected: scope.to_owned(),
                actual: state.scope,
            });
        }
        if state.principal != *principal {
            return Err(SessionError::WrongPrincipal);
        }
        Ok(state)
    }

    /// [`open`](Self::open) as of `now` (Unix seconds).
    pub fn open_at(&self, token: &str, now: u64) -> Result<SessionState, SessionError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SessionError::BadToken);
        }
        let mut parts = token.splitn(3, '.');
        let (Some(version), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::BadToken);
        };
        if version != TOKEN_VERSION || !valid_id(id) {
            return Err(SessionError::BadToken);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SessionError::UnknownKey(id.to_owned()))?;
        let mut bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SessionError::BadToken)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(SessionError::BadToken);
        }
        let (nonce, sealed) = bytes.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SessionError::BadToken)?;
        let prefix = &token[..version.len() + 1 + id.len()];
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(prefix.as_bytes()), sealed)
            .map_err(|_| SessionError::BadToken)?;
        let state: SessionState =
            serde_json::from_slice(plain).map_err(|_| SessionError::BadToken)?;
        if now.saturating_sub(state.issued_at) > self.max_age_secs {
            return Err(SessionError::Expired);
        }
        Ok(state)
    }
}

fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Caller;
    use crate::session::UpstreamSession;

    fn alice() -> Principal {
        Principal::of(&Caller::authenticated("alice", Some("acme")))
    }

    fn key(id: &str, byte: u8) -> SessionKey {
        SessionKey::new(id, [byte; 32]).unwrap()
    }

    /// The same state on every call: issued once per test process, so a second that
    /// ticks between two calls changes nothing.
    fn state() -> SessionState {
        static ISSUED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let mut state = SessionState::new("server:files", alice());
        state.issued_at = *ISSUED.get_or_init(unix_now);
        state.protocol_version = Some("2025-11-25".into());
        state.upstreams.insert(
            "files".into(),
            UpstreamSession {
                session_id: Some("upstream-session-7f3a".into()),
                replica: Some("http://127.0.0.1:9000/mcp".into()),
                protocol_version: Some("2025-06-18".into()),
            },
        );
        state
    }

    #[test]
    fn round_trip() {
        let keys = SessionKeys::new(vec![key("k1", 1)]).unwrap();
        let token = keys.seal(&state());
        assert_eq!(keys.open(&token).unwrap(), state());
        // An empty state round-trips too (a stateless upstream behind a stateful client).
        let empty = SessionState::new("aggregate", Principal::of(&Caller::anonymous()));
        assert_eq!(keys.open(&keys.seal(&empty)).unwrap(), empty);
    }

    #[test]
    fn tokens_are_visible_ascii_and_hide_the_upstream_id() {
        let keys = SessionKeys::new(vec![key("k1", 1)]).unwrap();
        let token = keys.seal(&state());
        assert!(token.starts_with("c1.k1."), "{token}");
        assert!(token.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{token}");
        assert!(!token.contains("upstream-session"), "{token}");
        // A fresh nonce per token: the same state never gives the same token.
        assert_ne!(token, keys.seal(&state()));
    }

    #[test]
    fn any_altered_byte_is_rejected() {
        let keys = SessionKeys::new(vec![key("k1", 1)]).unwrap();
        let token = keys.seal(&state());
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] ^= 0x01;
            let altered = String::from_utf8(bytes).unwrap();
            let err = keys.open(&altered).unwrap_err();
            assert!(
                matches!(err, SessionError::BadToken | SessionError::UnknownKey(_)),
                "byte {i}: {err:?}"
            );
        }
        for cut in [0, 3, 6, 7, 20, token.len() - 1] {
            assert!(keys.open(&token[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(keys.open("c1.k1"), Err(SessionError::BadToken));
        assert_eq!(keys.open("c2.k1.AAAA"), Err(SessionError::BadToken));
        assert_eq!(keys.open(&"x".repeat(20_000)), Err(SessionError::BadToken));
    }

    #[test]
    fn the_key_id_is_authenticated() {
        // Same key material under two ids: moving a token to the other id must fail.
        let keys = SessionKeys::new(vec![key("a", 9), key("b", 9)]).unwrap();
        let token = keys.seal(&state());
        let moved = token.replacen("c1.a.", "c1.b.", 1);
        assert_eq!(keys.open(&moved), Err(SessionError::BadToken));
    }

    #[test]
    fn wrong_key() {
        let ours = SessionKeys::new(vec![key("k1", 1)]).unwrap();
        let same_id = SessionKeys::new(vec![key("k1", 2)]).unwrap();
        let other_id = SessionKeys::new(vec![key("k2", 1)]).unwrap();
        let token = ours.seal(&state());
        assert_eq!(same_id.open(&token), Err(SessionError::BadToken));
        assert_eq!(
            other_id.open(&token),
            Err(SessionError::UnknownKey("k1".into()))
        );
        let local = SessionKeys::ephemeral();
        assert!(local.current_id().starts_with("local-"));
        assert!(matches!(
            SessionKeys::ephemeral().open(&local.seal(&state())),
            Err(SessionError::UnknownKey(_))
        ));
    }

    #[test]
    fn rotation_keeps_old_tokens_open() {
        let before = SessionKeys::new(vec![key("old", 1)]).unwrap();
        let old_token = before.seal(&state());
        let after = SessionKeys::new(vec![key("new", 2), key("old", 1)]).unwrap();
        assert_eq!(after.open(&old_token).unwrap(), state());
        let new_token = after.seal(&state());
        assert!(new_token.starts_with("c1.new."), "{new_token}");
        assert_eq!(after.ids().collect::<Vec<_>>(), ["new", "old"]);
        // Once the old key is dropped its sessions end.
        let retired = SessionKeys::new(vec![key("new", 2)]).unwrap();
        assert_eq!(
            retired.open(&old_token),
            Err(SessionError::UnknownKey("old".into()))
        );
        assert_eq!(retired.open(&new_token).unwrap(), state());
    }

    #[test]
    fn a_key_shipped_ahead_seals_only_once_active() {
        let keys = SessionKeys::new(vec![key("next", 2).not_before(2_000), key("now", 1)]).unwrap();
        assert_eq!(keys.newest_id(), "next");
        let early = keys.seal_at(&state(), 1_999);
        assert!(early.starts_with("c1.now."), "{early}");
        let late = keys.seal_at(&state(), 2_000);
        assert!(late.starts_with("c1.next."), "{late}");
        // Both open before and after: a data plane whose clock runs ahead is no problem.
        assert_eq!(keys.open(&early).unwrap(), state());
        assert_eq!(keys.open(&late).unwrap(), state());
        // Nothing active yet (a clock far behind): the oldest key seals.
        let future = SessionKeys::new(vec![
            key("b", 2).not_before(9_000),
            key("a", 1).not_before(8_000),
        ])
        .unwrap();
        assert!(future.seal_at(&state(), 10).starts_with("c1.a."));
    }

    #[test]
    fn expiry() {
        let keys = SessionKeys::new(vec![key("k1", 1)])
            .unwrap()
            .with_max_age(Duration::from_secs(60));
        let mut old = state();
        old.issued_at = 1_000;
        let token = keys.seal(&old);
        assert_eq!(keys.open_at(&token, 1_060).unwrap(), old);
        assert_eq!(keys.open_at(&token, 1_061), Err(SessionError::Expired));
        // A token from a clock slightly ahead of ours is still fine.
        assert_eq!(keys.open_at(&token, 990).unwrap(), old);
    }

    #[test]
    fn scope_is_checked_by_the_caller() {
        let keys = SessionKeys::new(vec![key("k1", 1)]).unwrap();
        let token = keys.seal(&state());
        assert!(keys.open_for(&token, "server:files", &alice()).is_ok());
        assert_eq!(
            keys.open_for(&token, &SessionState::server_scope("other"), &alice()),
            Err(SessionError::WrongScope {
                expected: "server:other".into(),
                actual: "server:files".into(),
            })
        );
    }

    #[test]
    fn a_token_opens_only_for_the_caller_it_was_issued_to() {
        let keys = SessionKeys::new(vec![key("k1", 1)]).unwrap();
        let token = keys.seal(&state());
        for other in [
            Caller::authenticated("bob", Some("acme")),
            Caller::authenticated("alice", Some("other-tenant")),
            Caller::authenticated("alice", None),
            Caller::anonymous(),
            // The same ids without authentication are someone else.
            Caller {
                authenticated: false,
                ..Caller::authenticated("alice", Some("acme"))
            },
        ] {
            assert_eq!(
                keys.open_for(&token, "server:files", &Principal::of(&other)),
                Err(SessionError::WrongPrincipal),
                "{other:?}"
            );
        }
        // Ids are length-prefixed: moving a character between tenant and client changes it.
        assert_ne!(
            Principal::of(&Caller::authenticated("bc", Some("a"))),
            Principal::of(&Caller::authenticated("c", Some("ab")))
        );
        // Nothing about the principal is visible in the token.
        assert!(!token.contains("alice") && !token.contains("acme"));
    }

    #[test]
    fn key_set_validation() {
        assert_eq!(
            SessionKeys::new(vec![]).unwrap_err(),
            SessionKeyError::Empty
        );
        assert_eq!(
            SessionKeys::new(vec![key("a", 1), key("b", 2), key("a", 3)]).unwrap_err(),
            SessionKeyError::DuplicateId("a".into())
        );
        for bad in ["", "has.dot", "has space", "ü", &"x".repeat(33)] {
            assert!(
                matches!(
                    SessionKey::new(bad, [0; 32]),
                    Err(SessionKeyError::InvalidId(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            SessionKey::from_slice("k", &[0; 16]).unwrap_err(),
            SessionKeyError::KeyLength {
                id: "k".into(),
                len: 16
            }
        );
        assert_eq!(
            SessionKey::from_base64("k", "not base64!").unwrap_err(),
            SessionKeyError::KeyEncoding("k".into())
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(SessionKey::from_base64("k", &b64).unwrap().id, "k");
    }

    #[test]
    fn debug_never_shows_key_material() {
        let keys = SessionKeys::new(vec![key("k1", 0xab)]).unwrap();
        let shown = format!("{keys:?}");
        assert!(
            shown.contains("k1") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("abab"));
    }
}
