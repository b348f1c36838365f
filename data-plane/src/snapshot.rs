//! A configuration snapshot as the control plane sends it, and its integrity checks.
//!
//! The same checks run on a snapshot fresh off the stream and on one loaded from the
//! state directory: `hash` must be the hex SHA-256 of `config_json`, and when a data-plane
//! token is configured, `signature` must be the hex HMAC-SHA256 of `"<version>:<hash>"`
//! keyed with that token.

use conduit_proto::v1;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A versioned configuration document, references unresolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u64,
    pub hash: String,
    pub signature: String,
    /// RFC 3339 time the version was created on the control plane.
    pub created_at: String,
    pub config_json: String,
}

impl From<v1::Snapshot> for Snapshot {
    fn from(snapshot: v1::Snapshot) -> Self {
        Snapshot {
            version: snapshot.version,
            hash: snapshot.hash,
            signature: snapshot.signature,
            created_at: snapshot.created_at,
            config_json: snapshot.config_json,
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
}

impl Snapshot {
    /// Check the hash and, when `token` is set, the signature.
    pub fn verify(&self, token: Option<&str>) -> Result<(), IntegrityError> {
        let actual = hex::encode(Sha256::digest(self.config_json.as_bytes()));
        if !actual.eq_ignore_ascii_case(&self.hash) {
            return Err(IntegrityError::HashMismatch {
                claimed: self.hash.clone(),
                actual,
            });
        }
        let Some(token) = token else {
            return Ok(());
        };
        if self.signature.is_empty() {
            return Err(IntegrityError::Unsigned);
        }
        let signature = hex::decode(&self.signature).map_err(|_| IntegrityError::BadSignature)?;
        signing_mac(token, self.version, &self.hash)
            .verify_slice(&signature)
            .map_err(|_| IntegrityError::BadSignature)
    }
}

/// Hex HMAC-SHA256 over `"<version>:<hash>"` keyed with `token`, as the control plane signs.
pub fn sign(token: &str, version: u64, hash: &str) -> String {
    hex::encode(signing_mac(token, version, hash).finalize().into_bytes())
}

fn signing_mac(token: &str, version: u64, hash: &str) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(token.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{version}:{hash}").as_bytes());
    mac
}

#[cfg(test)]
mod tests {
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
        }
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
