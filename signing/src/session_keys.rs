//! The fleet's session token keys as a snapshot carries them: the hex HMAC-SHA256, keyed
//! with the data-plane token, of the lines `session-keys`, the snapshot version, the maximum
//! token age in seconds, then `<id> <hex key> <created_at> <activates_at>` per key (newest
//! first), each ending in a newline. The version binds the keys to the snapshot they came
//! with.

use crate::MacError;

/// First line of the message: names its kind.
pub const DOMAIN: &[u8] = b"session-keys\n";

/// One key as the message lists it. `Debug` never shows the key material.
#[derive(Clone, Copy)]
pub struct KeyLine<'a> {
    pub id: &'a str,
    pub key: &'a [u8],
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds from which the key seals.
    pub activates_at: i64,
}

impl std::fmt::Debug for KeyLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLine")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish()
    }
}

/// The bytes the signature covers.
pub fn message<'a>(
    version: u64,
    max_age_seconds: u64,
    keys: impl IntoIterator<Item = KeyLine<'a>>,
) -> Vec<u8> {
    let mut message = String::from_utf8(DOMAIN.to_vec()).expect("the domain is ASCII");
    message.push_str(&format!("{version}\n{max_age_seconds}\n"));
    for key in keys {
        message.push_str(&format!(
            "{} {} {} {}\n",
            key.id,
            hex::encode(key.key),
            key.created_at,
            key.activates_at
        ));
    }
    message.into_bytes()
}

/// The hex signature of `keys` shipped with snapshot `version` (control plane).
pub fn sign<'a>(
    token: &str,
    version: u64,
    max_age_seconds: u64,
    keys: impl IntoIterator<Item = KeyLine<'a>>,
) -> String {
    crate::mac_hex(token, &message(version, max_age_seconds, keys))
}

/// Check `signature` over `keys` shipped with snapshot `version` (data plane).
pub fn verify<'a>(
    token: &str,
    version: u64,
    max_age_seconds: u64,
    keys: impl IntoIterator<Item = KeyLine<'a>>,
    signature: &str,
) -> Result<(), MacError> {
    crate::verify_mac_hex(token, &message(version, max_age_seconds, keys), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> [KeyLine<'static>; 2] {
        [
            KeyLine {
                id: "k2",
                key: &[2; 32],
                created_at: 1_700_000_100,
                activates_at: 1_700_000_160,
            },
            KeyLine {
                id: "k1",
                key: &[1; 32],
                created_at: 1_700_000_000,
                activates_at: 1_700_000_000,
            },
        ]
    }

    #[test]
    fn the_wire_format_is_unchanged() {
        // The vector both planes pinned before this crate existed (computed with Python):
        // hmac.new(b"dp-token", b"session-keys\n4\n604800\n" + lines, sha256), where lines
        // are "k2 " + "02"*32 + " 1700000100 1700000160\n" and "k1 " + "01"*32 +
        // " 1700000000 1700000000\n".
        assert_eq!(
            sign("dp-token", 4, 604_800, keys()),
            "f56db5560a275a12c86ec98dafa514b098ce0473fd94e3e06c3fcdbbb99288a4"
        );
        let text = String::from_utf8(message(4, 604_800, keys())).unwrap();
        assert!(
            text.starts_with("session-keys\n4\n604800\nk2 0202"),
            "{text}"
        );
        assert!(text.ends_with(" 1700000000 1700000000\n"), "{text}");
    }

    #[test]
    fn sign_then_verify_and_what_fails() {
        let signature = sign("t0k", 4, 60, keys());
        verify("t0k", 4, 60, keys(), &signature).unwrap();
        assert_eq!(verify("t0k", 4, 60, keys(), ""), Err(MacError::Unsigned));
        let mut swapped = keys();
        let mut material = [2u8; 32];
        material[0] ^= 1;
        swapped[0].key = &material;
        assert_eq!(
            verify("t0k", 4, 60, swapped, &signature),
            Err(MacError::BadSignature),
            "a swapped key"
        );
        let mut later = keys();
        later[1].activates_at += 1;
        assert_eq!(
            verify("t0k", 4, 60, later, &signature),
            Err(MacError::BadSignature),
            "a moved activation"
        );
        assert_eq!(
            verify("t0k", 4, 61, keys(), &signature),
            Err(MacError::BadSignature),
            "a longer max age"
        );
        assert_eq!(
            verify("t0k", 4, 60, keys().into_iter().take(1), &signature),
            Err(MacError::BadSignature),
            "a dropped key"
        );
        assert_eq!(
            verify("t0k", 5, 60, keys(), &signature),
            Err(MacError::BadSignature),
            "another snapshot version"
        );
        assert_eq!(
            verify("other", 4, 60, keys(), &signature),
            Err(MacError::BadSignature),
            "another token"
        );
        // The same token's MAC of the grant-set key is no session-keys signature.
        let approval = crate::approval_key::sign("t0k", 4, &[2; 32]);
        assert_eq!(
            verify("t0k", 4, 60, keys(), &approval),
            Err(MacError::BadSignature)
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", keys()[0]);
        assert!(
            shown.contains("<redacted>") && !shown.contains("2, 2"),
            "{shown}"
        );
    }
}
