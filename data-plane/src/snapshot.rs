//! A configuration snapshot as the control plane sends it, and its integrity checks.
//!
//! The same checks run on a snapshot fresh off the stream and on one loaded from the
//! state directory: `hash` must be the hex SHA-256 of `config_json`, and when a data-plane
//! token is configured, `signature` must be the hex HMAC-SHA256 of `"<version>:<hash>"`
//! keyed with that token, and the session keys must carry their own signature, as must the
//! public key of grant sets. The formats are the control plane's too: `conduit_signing`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use conduit_proto::v1;
use conduit_signing::session_keys::KeyLine;
use conduit_signing::{MacError, approval_key, session_keys};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A versioned configuration document, references unresolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u64,
    pub hash: String,
    pub signature: String,
    /// RFC 3339 time the version was created on the control plane.
    pub created_at: String,
    pub config_json: String,
    /// The fleet's session token keys; absent from control planes that predate them.
    /// Persisted with the snapshot (mode 0600) so a restarted data plane continues sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_keys: Option<SessionKeySet>,
    /// The Ed25519 public key that verifies grant sets (see `crate::approvals`); absent
    /// from control planes that predate approvals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_key: Option<ApprovalKey>,
}

/// The grant-set public key shipped with a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApprovalKey {
    #[serde(serialize_with = "to_base64", deserialize_with = "from_base64")]
    pub public_key: Vec<u8>,
    /// Hex HMAC-SHA256 (`conduit_signing::approval_key`), empty without a token.
    pub signature: String,
}

/// The session token keys shipped with a snapshot (see `crate::session`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionKeySet {
    /// Newest first.
    pub keys: Vec<WireSessionKey>,
    pub max_age_seconds: u64,
    /// Hex HMAC-SHA256 (`conduit_signing::session_keys`), empty without a token.
    pub signature: String,
}

/// One session key as shipped. `Debug` never shows the key material.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSessionKey {
    pub id: String,
    #[serde(serialize_with = "to_base64", deserialize_with = "from_base64")]
    pub key: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds from which the key seals.
    pub activates_at: i64,
}

impl fmt::Debug for WireSessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireSessionKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish()
    }
}

fn to_base64<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

fn from_base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    STANDARD.decode(text).map_err(serde::de::Error::custom)
}

impl From<v1::Snapshot> for Snapshot {
    fn from(snapshot: v1::Snapshot) -> Self {
        Snapshot {
            version: snapshot.version,
            hash: snapshot.hash,
            signature: snapshot.signature,
            created_at: snapshot.created_at,
            config_json: snapshot.config_json,
            session_keys: snapshot.session_keys.map(|set| SessionKeySet {
                keys: set
                    .keys
                    .into_iter()
                    .map(|key| WireSessionKey {
                        id: key.id,
                        key: key.key,
                        created_at: key.created_at,
                        activates_at: key.activates_at,
                    })
                    .collect(),
                max_age_seconds: set.max_age_seconds,
                signature: set.signature,
            }),
            approval_key: snapshot.approval_key.map(|key| ApprovalKey {
                public_key: key.public_key,
                signature: key.signature,
            }),
        }
    }
}

/// Why a snapshot is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    #[error("snapshot hash {claimed} does not match its content (sha256 {actual})")]
    HashMismatch { claimed: String, actual: String },
    #[error(
        "snapshot is not signed, but this data plane has a token (is CONDUIT_DP_TOKEN set on the control plane?)"
    )]
    Unsigned,
    #[error(
        "snapshot signature does not verify with this data plane's token (do the tokens differ?)"
    )]
    BadSignature,
    #[error("the snapshot's session keys are not signed, but this data plane has a token")]
    UnsignedSessionKeys,
    #[error(
        "the signature of the snapshot's session keys does not verify with this data plane's token"
    )]
    BadSessionKeysSignature,
    #[error("the snapshot's approval key is not signed, but this data plane has a token")]
    UnsignedApprovalKey,
    #[error(
        "the signature of the snapshot's approval key does not verify with this data plane's token"
    )]
    BadApprovalKeySignature,
}

impl Snapshot {
    /// Check the hash and, when `token` is set, the signature.
    pub fn verify(&self, token: Option<&str>) -> Result<(), IntegrityError> {
        conduit_signing::snapshot::check_hash(&self.config_json, &self.hash).map_err(
            |mismatch| IntegrityError::HashMismatch {
                claimed: mismatch.claimed,
                actual: mismatch.actual,
            },
        )?;
        let Some(token) = token else {
            return Ok(());
        };
        conduit_signing::snapshot::verify(token, self.version, &self.hash, &self.signature)
            .map_err(|error| match error {
                MacError::Unsigned => IntegrityError::Unsigned,
                MacError::BadSignature => IntegrityError::BadSignature,
            })?;
        if let Some(key) = &self.approval_key {
            approval_key::verify(token, self.version, &key.public_key, &key.signature).map_err(
                |error| match error {
                    MacError::Unsigned => IntegrityError::UnsignedApprovalKey,
                    MacError::BadSignature => IntegrityError::BadApprovalKeySignature,
                },
            )?;
        }
        let Some(keys) = &self.session_keys else {
            return Ok(());
        };
        let lines = keys.keys.iter().map(WireSessionKey::line);
        session_keys::verify(
            token,
            self.version,
            keys.max_age_seconds,
            lines,
            &keys.signature,
        )
        .map_err(|error| match error {
            MacError::Unsigned => IntegrityError::UnsignedSessionKeys,
            MacError::BadSignature => IntegrityError::BadSessionKeysSignature,
        })
    }
}

impl WireSessionKey {
    fn line(&self) -> KeyLine<'_> {
        KeyLine {
            id: &self.id,
            key: &self.key,
            created_at: self.created_at,
            activates_at: self.activates_at,
        }
    }
}

/// The approval key's signature as the control plane computes it (for tests and tools).
pub fn sign_approval_key(token: &str, version: u64, key: &ApprovalKey) -> String {
    approval_key::sign(token, version, &key.public_key)
}

/// The session keys' signature as the control plane computes it (for tests and tools).
pub fn sign_session_keys(token: &str, version: u64, keys: &SessionKeySet) -> String {
    let lines = keys.keys.iter().map(WireSessionKey::line);
    session_keys::sign(token, version, keys.max_age_seconds, lines)
}

/// The snapshot's signature as the control plane computes it (for tests and tools).
pub fn sign(token: &str, version: u64, hash: &str) -> String {
    conduit_signing::snapshot::sign(token, version, hash)
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn snapshot(token: Option<&str>) -> Snapshot {
        let config_json = r#"{"servers":[]}"#.to_owned();
        let hash = hex::encode(Sha256::digest(config_json.as_bytes()));
        Snapshot {
            version: 4,
            signature: token.map(|t| sign(t, 4, &hash)).unwrap_or_default(),
            hash,
            created_at: "2026-01-01T00:00:00Z".into(),
            config_json,
            session_keys: None,
            approval_key: None,
        }
    }

    fn keys() -> SessionKeySet {
        SessionKeySet {
            keys: vec![
                WireSessionKey {
                    id: "k2".into(),
                    key: vec![2; 32],
                    created_at: 1_700_000_100,
                    activates_at: 1_700_000_160,
                },
                WireSessionKey {
                    id: "k1".into(),
                    key: vec![1; 32],
                    created_at: 1_700_000_000,
                    activates_at: 1_700_000_000,
                },
            ],
            max_age_seconds: 604_800,
            signature: String::new(),
        }
    }

    fn with_keys(token: &str) -> Snapshot {
        let mut snapshot = snapshot(Some(token));
        let mut keys = keys();
        keys.signature = sign_session_keys(token, snapshot.version, &keys);
        snapshot.session_keys = Some(keys);
        snapshot
    }

    #[test]
    fn session_keys_are_signed_too() {
        with_keys("t0k").verify(Some("t0k")).expect("signed keys");
        with_keys("t0k").verify(None).expect("no token, no check");

        let mut unsigned = with_keys("t0k");
        unsigned.session_keys.as_mut().unwrap().signature.clear();
        assert_eq!(
            unsigned.verify(Some("t0k")),
            Err(IntegrityError::UnsignedSessionKeys)
        );
        let mut swapped = with_keys("t0k");
        swapped.session_keys.as_mut().unwrap().keys[0].key[0] ^= 1;
        assert_eq!(
            swapped.verify(Some("t0k")),
            Err(IntegrityError::BadSessionKeysSignature)
        );
        let mut longer = with_keys("t0k");
        longer.session_keys.as_mut().unwrap().max_age_seconds += 1;
        assert_eq!(
            longer.verify(Some("t0k")),
            Err(IntegrityError::BadSessionKeysSignature)
        );
        // Keys signed for another version do not ride along with this one.
        let mut moved = with_keys("t0k");
        let keys = moved.session_keys.take().unwrap();
        let mut other = snapshot(Some("t0k"));
        other.version = 5;
        other.signature = sign("t0k", 5, &other.hash);
        other.session_keys = Some(keys.clone());
        assert_eq!(
            other.verify(Some("t0k")),
            Err(IntegrityError::BadSessionKeysSignature)
        );
        moved.session_keys = Some(keys);
        moved.verify(Some("t0k")).expect("back on its own version");
    }

    #[test]
    fn the_approval_key_is_signed_for_its_version() {
        let mut snapshot = snapshot(Some("t0k"));
        let mut key = ApprovalKey {
            public_key: vec![1; 32],
            signature: String::new(),
        };
        snapshot.approval_key = Some(key.clone());
        snapshot.verify(None).expect("no token, no check");
        assert_eq!(
            snapshot.verify(Some("t0k")),
            Err(IntegrityError::UnsignedApprovalKey)
        );
        key.signature = sign_approval_key("t0k", 4, &key);
        // The same HMAC the control plane computes (auth::approval_key_signature test).
        assert_eq!(
            sign_approval_key("dp-token", 3, &key),
            "40838faa6b7db7e0409199eb07cf01f7c46bd6b0d7374e9cde8bdec99d4625da"
        );
        snapshot.approval_key = Some(key.clone());
        snapshot.verify(Some("t0k")).expect("signed key");
        key.public_key[0] ^= 1;
        snapshot.approval_key = Some(key);
        assert_eq!(
            snapshot.verify(Some("t0k")),
            Err(IntegrityError::BadApprovalKeySignature)
        );
    }

    #[test]
    fn session_keys_signature_matches_an_independent_hmac() {
        // hmac.new(b"dp-token", b"session-keys\n4\n604800\n" + lines, sha256), where lines
        // are "k2 " + "02"*32 + " 1700000100 1700000160\n" and "k1 " + "01"*32 +
        // " 1700000000 1700000000\n".
        assert_eq!(
            sign_session_keys("dp-token", 4, &keys()),
            "f56db5560a275a12c86ec98dafa514b098ce0473fd94e3e06c3fcdbbb99288a4"
        );
    }

    #[test]
    fn persisted_keys_are_base64_and_debug_hides_them() {
        let signed = with_keys("t0k");
        let json = serde_json::to_value(&signed).unwrap();
        let encoded = STANDARD.encode([2u8; 32]);
        assert_eq!(json["session_keys"]["keys"][0]["key"], encoded.as_str());
        let back: Snapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back, signed);
        let shown = format!("{signed:?}");
        assert!(
            !shown.contains(&encoded) && shown.contains("<redacted>"),
            "{shown}"
        );
        // A file written before session keys existed still loads.
        let mut old = serde_json::to_value(snapshot(None)).unwrap();
        old.as_object_mut().unwrap().remove("session_keys");
        let old: Snapshot = serde_json::from_value(old).unwrap();
        assert_eq!(old.session_keys, None);
    }

    #[test]
    fn accepts_a_good_snapshot() {
        snapshot(None).verify(None).expect("unsigned without token");
        snapshot(Some("t0k")).verify(Some("t0k")).expect("signed");
        // Without a token the signature is not checked.
        snapshot(Some("t0k"))
            .verify(None)
            .expect("signature ignored");
    }

    #[test]
    fn rejects_tampering() {
        let mut tampered = snapshot(Some("t0k"));
        tampered.config_json.push(' ');
        assert!(matches!(
            tampered.verify(Some("t0k")),
            Err(IntegrityError::HashMismatch { .. })
        ));

        let mut wrong_version = snapshot(Some("t0k"));
        wrong_version.version = 5;
        assert_eq!(
            wrong_version.verify(Some("t0k")),
            Err(IntegrityError::BadSignature)
        );

        assert_eq!(
            snapshot(Some("t0k")).verify(Some("other")),
            Err(IntegrityError::BadSignature)
        );
        assert_eq!(
            snapshot(None).verify(Some("t0k")),
            Err(IntegrityError::Unsigned)
        );
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Computed with Python's hmac module: hmac.new(b"dp-token", b"12:abcdef", sha256).
        assert_eq!(
            sign("dp-token", 12, "abcdef"),
            "6e4de508ef5a55f8fe498b2fdc9163e27f7d6b3ca3fb90c3b0f6fc67bb21ef06"
        );
    }
}
