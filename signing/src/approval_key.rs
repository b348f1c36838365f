//! The grant-set public key as a snapshot carries it: the hex HMAC-SHA256, keyed with the
//! data-plane token, of the lines `approval-key`, the snapshot version and the hex public
//! key, each ending in a newline. The token vouches for the key, and the version binds it
//! to the snapshot it travels in.

use crate::MacError;

/// First line of the message: names its kind.
pub const DOMAIN: &[u8] = b"approval-key\n";

/// The bytes the signature covers.
pub fn message(version: u64, public_key: &[u8]) -> Vec<u8> {
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(format!("{version}\n{}\n", hex::encode(public_key)).as_bytes());
    message
}

/// The hex signature of `public_key` shipped with snapshot `version` (control plane).
pub fn sign(token: &str, version: u64, public_key: &[u8]) -> String {
    crate::mac_hex(token, &message(version, public_key))
}

/// Check `signature` over `public_key` shipped with snapshot `version` (data plane).
pub fn verify(
    token: &str,
    version: u64,
    public_key: &[u8],
    signature: &str,
) -> Result<(), MacError> {
    crate::verify_mac_hex(token, &message(version, public_key), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public half of the Ed25519 key with seed `[7; 32]` (see `grant_set`).
    const PUBLIC_KEY: &str = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";

    #[test]
    fn the_wire_format_is_unchanged() {
        let public_key = hex::decode(PUBLIC_KEY).unwrap();
        // Computed by the control plane's code before this crate existed, and with Python:
        // hmac.new(b"dp-token", b"approval-key\n7\n" + PUBLIC_KEY + b"\n", sha256).
        assert_eq!(
            sign("dp-token", 7, &public_key),
            "de669b1cdcd8d8d9304a4766f3975e409bc9e21e142dde081fbdf4e6cfdc2772"
        );
        // The vector both planes pinned: hmac.new(b"dp-token", b"approval-key\n3\n" +
        // b"01" * 32 + b"\n", sha256).
        assert_eq!(
            sign("dp-token", 3, &[1; 32]),
            "40838faa6b7db7e0409199eb07cf01f7c46bd6b0d7374e9cde8bdec99d4625da"
        );
    }

    #[test]
    fn sign_then_verify_and_what_fails() {
        let key = [9u8; 32];
        let signature = sign("t0k", 2, &key);
        verify("t0k", 2, &key, &signature).unwrap();
        assert_eq!(verify("t0k", 2, &key, ""), Err(MacError::Unsigned));
        let mut other_key = key;
        other_key[31] ^= 1;
        assert_eq!(
            verify("t0k", 2, &other_key, &signature),
            Err(MacError::BadSignature),
            "a swapped key"
        );
        assert_eq!(
            verify("t0k", 3, &key, &signature),
            Err(MacError::BadSignature),
            "another snapshot version"
        );
        assert_eq!(
            verify("other", 2, &key, &signature),
            Err(MacError::BadSignature),
            "another token"
        );
        // The same text under another kind's name does not verify.
        let mut renamed = b"session-keys\n".to_vec();
        renamed.extend_from_slice(&message(2, &key)[DOMAIN.len()..]);
        assert_ne!(crate::mac_hex("t0k", &renamed), signature);
        assert_eq!(
            verify("t0k", 2, &key, &crate::mac_hex("t0k", &renamed)),
            Err(MacError::BadSignature)
        );
    }
}
