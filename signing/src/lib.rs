//! Every message one plane signs (or MACs) and the other verifies, defined once: the
//! canonical bytes, the sign function the control plane calls and the verify function the
//! data plane calls.
//!
//! - [`snapshot`]: a config version's content hash and its HMAC (data-plane token).
//! - [`session_keys`]: the fleet's session token keys shipped with a snapshot (HMAC).
//! - [`approval_key`]: the grant-set public key shipped with a snapshot (HMAC).
//! - [`grant_set`]: the approval grants in force (Ed25519, the control plane's key).
//!
//! The three HMACs share one key, the data-plane token, so each message starts with its
//! own name (`session-keys`, `approval-key`) and the snapshot's with a decimal digit: no
//! message of one kind is ever the bytes of another. The formats are wire formats: a data
//! plane of an older release verifies what a newer control plane signs, so the bytes must
//! not change (each module pins a signature computed before this crate existed).
//!
//! This is a crate of its own rather than part of `conduit-proto` so that the generated
//! wire types (used by `conduitctl` and the test harness too) carry no crypto dependency.
#![forbid(unsafe_code)]

pub mod approval_key;
pub mod grant_set;
pub mod session_keys;
pub mod snapshot;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why an HMAC'd message was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    /// No signature at all: the sender has no data-plane token.
    #[error("the message is not signed")]
    Unsigned,
    /// A signature that is not hex, or not the MAC of this message under this token.
    #[error("the signature does not verify with this token")]
    BadSignature,
}

/// Hex HMAC-SHA256 of `message` keyed with `token`.
fn mac_hex(token: &str, message: &[u8]) -> String {
    hex::encode(mac(token, message).finalize().into_bytes())
}

/// Check a hex HMAC-SHA256 (either case) of `message` under `token`, in constant time.
fn verify_mac_hex(token: &str, message: &[u8], signature: &str) -> Result<(), MacError> {
    if signature.is_empty() {
        return Err(MacError::Unsigned);
    }
    let signature = hex::decode(signature).map_err(|_| MacError::BadSignature)?;
    mac(token, message)
        .verify_slice(&signature)
        .map_err(|_| MacError::BadSignature)
}

fn mac(token: &str, message: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(token.as_bytes()).expect("HMAC takes any key");
    mac.update(message);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_messages_cannot_be_taken_for_one_another() {
        let keys = session_keys::message(7, 60, []);
        let approval = approval_key::message(7, &[1; 32]);
        let snapshot = snapshot::message(7, "ab");
        assert!(keys.starts_with(session_keys::DOMAIN));
        assert!(approval.starts_with(approval_key::DOMAIN));
        assert!(
            snapshot[0].is_ascii_digit(),
            "a snapshot message starts with its version"
        );
        for domain in [session_keys::DOMAIN, approval_key::DOMAIN] {
            assert!(!domain[0].is_ascii_digit());
        }
        assert_ne!(session_keys::DOMAIN, approval_key::DOMAIN);
    }

    #[test]
    fn a_mac_verifies_only_for_its_message_and_token() {
        let signature = mac_hex("t0k", b"message");
        verify_mac_hex("t0k", b"message", &signature).unwrap();
        verify_mac_hex("t0k", b"message", &signature.to_ascii_uppercase()).unwrap();
        assert_eq!(
            verify_mac_hex("t0k", b"message", ""),
            Err(MacError::Unsigned)
        );
        assert_eq!(
            verify_mac_hex("t0k", b"messagE", &signature),
            Err(MacError::BadSignature)
        );
        assert_eq!(
            verify_mac_hex("other", b"message", &signature),
            Err(MacError::BadSignature)
        );
        assert_eq!(
            verify_mac_hex("t0k", b"message", "not hex"),
            Err(MacError::BadSignature)
        );
        assert_eq!(
            verify_mac_hex("t0k", b"message", &signature[..62]),
            Err(MacError::BadSignature)
        );
    }
}
