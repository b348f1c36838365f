//! A config snapshot's integrity: `hash` is the hex SHA-256 of the document as sent
//! (`config_json`), and `signature` the hex HMAC-SHA256, keyed with the data-plane token,
//! of `"<version>:<hash>"`. The signature binds the version number to the content, so a
//! replayed old document cannot pose as a newer version.
//!
//! This format predates domain prefixes and keeps none (older data planes verify it): it is
//! told apart from the other HMAC'd messages by starting with a decimal digit.

use sha2::{Digest, Sha256};

use crate::MacError;

/// The content does not hash to what the snapshot claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot hash {claimed} does not match its content (sha256 {actual})")]
pub struct HashMismatch {
    pub claimed: String,
    pub actual: String,
}

/// Hex SHA-256 of `config_json`: the snapshot's `hash`.
pub fn content_hash(config_json: &str) -> String {
    hex::encode(Sha256::digest(config_json.as_bytes()))
}

/// Check that `config_json` hashes to `claimed` (hex, either case).
pub fn check_hash(config_json: &str, claimed: &str) -> Result<(), HashMismatch> {
    let actual = content_hash(config_json);
    if actual.eq_ignore_ascii_case(claimed) {
        Ok(())
    } else {
        Err(HashMismatch {
            claimed: claimed.to_owned(),
            actual,
        })
    }
}

/// The bytes the signature covers: `"<version>:<hash>"`.
pub fn message(version: u64, hash: &str) -> Vec<u8> {
    format!("{version}:{hash}").into_bytes()
}

/// The hex signature of version `version` with content hash `hash` (control plane).
pub fn sign(token: &str, version: u64, hash: &str) -> String {
    crate::mac_hex(token, &message(version, hash))
}

/// Check `signature` over version `version` and hash `hash` (data plane).
pub fn verify(token: &str, version: u64, hash: &str, signature: &str) -> Result<(), MacError> {
    crate::verify_mac_hex(token, &message(version, hash), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_unchanged() {
        // Both computed by the code of each plane before this crate existed, and with
        // Python: hashlib.sha256(b'{"servers":[]}'), hmac.new(b"dp-token", b"7:0f3a", sha256).
        assert_eq!(
            content_hash(r#"{"servers":[]}"#),
            "c942d9ddbaf0a866c828a904b734915c84ec8b1137b04a698325500b40a2f238"
        );
        assert_eq!(
            sign("dp-token", 7, "0f3a"),
            "9b6b3180e528ea6c5c94fe9b355a0e4067254ac8518050e169b064a1657a8917"
        );
        // The control plane's own pinned vector: HMAC-SHA256(key = "key", msg = "3:abc").
        assert_eq!(
            sign("key", 3, "abc"),
            "b1276469aae36eb2925729bb524bcab9ddaa14554df0124c6aa43df8ae063e51"
        );
    }

    #[test]
    fn sign_then_verify_and_what_fails() {
        let hash = content_hash("{}");
        let signature = sign("t0k", 4, &hash);
        verify("t0k", 4, &hash, &signature).unwrap();
        assert_eq!(verify("t0k", 4, &hash, ""), Err(MacError::Unsigned));
        assert_eq!(
            verify("t0k", 5, &hash, &signature),
            Err(MacError::BadSignature),
            "another version"
        );
        assert_eq!(
            verify("t0k", 4, &content_hash("[]"), &signature),
            Err(MacError::BadSignature),
            "other content"
        );
        assert_eq!(
            verify("other", 4, &hash, &signature),
            Err(MacError::BadSignature),
            "another token"
        );
        // The same token's MAC of another kind of message is no snapshot signature.
        let approval = crate::approval_key::sign("t0k", 4, &[1; 32]);
        assert_eq!(
            verify("t0k", 4, &hash, &approval),
            Err(MacError::BadSignature)
        );
    }

    #[test]
    fn the_hash_must_match_the_content() {
        let hash = content_hash("{}");
        check_hash("{}", &hash).unwrap();
        check_hash("{}", &hash.to_ascii_uppercase()).unwrap();
        assert_eq!(
            check_hash("{ }", &hash),
            Err(HashMismatch {
                claimed: hash.clone(),
                actual: content_hash("{ }"),
            })
        );
    }
}
