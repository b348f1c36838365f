//! A set of approval grants: a `GrantList` encoded with protobuf, and the Ed25519
//! signature, by the control plane's grant-set key, of that encoding prefixed with
//! [`DOMAIN`]. Data planes learn the public key from a snapshot ([`crate::approval_key`])
//! and use a set only once it verifies. The prefix keeps the key from ever signing bytes a
//! data plane could take for another kind of message.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use conduit_proto::v1 as pb;
use prost::Message;

/// Prefix of every signed grant set.
pub const DOMAIN: &[u8] = b"conduit.v1.GrantSet\n";

/// Why a grant set was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantSetError {
    #[error("the grant set is not signed")]
    Unsigned,
    #[error("the grant set's signature does not verify with the snapshot's key")]
    BadSignature,
    #[error("the grant set does not decode: {0}")]
    Malformed(String),
}

/// The bytes the signature covers: [`DOMAIN`], then the encoded list.
pub fn message(grants: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(DOMAIN.len() + grants.len());
    message.extend_from_slice(DOMAIN);
    message.extend_from_slice(grants);
    message
}

/// `list` encoded and signed with `key` (control plane).
pub fn sign(key: &Ed25519KeyPair, list: &pb::GrantList) -> pb::GrantSet {
    let grants = list.encode_to_vec();
    pb::GrantSet {
        signature: key.sign(&message(&grants)).as_ref().to_vec(),
        grants,
    }
}

/// The list in `set` once its signature verifies with `public_key` (data plane).
pub fn verify(set: &pb::GrantSet, public_key: &[u8]) -> Result<pb::GrantList, GrantSetError> {
    if set.signature.is_empty() {
        return Err(GrantSetError::Unsigned);
    }
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&message(&set.grants), &set.signature)
        .map_err(|_| GrantSetError::BadSignature)?;
    pb::GrantList::decode(set.grants.as_slice())
        .map_err(|error| GrantSetError::Malformed(error.to_string()))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::KeyPair;

    use super::*;

    /// A fixed key (Ed25519 signatures are deterministic, so they can be pinned).
    fn key() -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap()
    }

    fn list() -> pb::GrantList {
        pb::GrantList {
            issued_at_ms: 1_700_000_000_000,
            grants: vec![pb::Grant {
                id: "apr_1".into(),
                client_id: "agent".into(),
                tenant_id: "acme".into(),
                server_id: "files".into(),
                tool: "delete".into(),
                fingerprint: "ab".repeat(32),
                expires_at: 1_700_000_600,
                max_uses: 2,
                uses: vec![pb::GrantUse {
                    node_id: "dp-1".into(),
                    count: 1,
                }],
            }],
        }
    }

    #[test]
    fn the_wire_format_is_unchanged() {
        // Computed by the control plane's signer before this crate existed.
        let set = sign(&key(), &list());
        assert_eq!(
            hex::encode(key().public_key()),
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        assert_eq!(
            hex::encode(&set.grants),
            "0880d095ffbc3112770a056170725f3112056167656e741a0461636d65220566696c65732a066465\
             6c657465324061626162616261626162616261626162616261626162616261626162616261626162\
             61626162616261626162616261626162616261626162616261626162616238d8e6cfaa0640024a08\
             0a0464702d311001"
        );
        assert_eq!(
            hex::encode(&set.signature),
            "765c3c2d385bc81608c9a22138539dfccf6834de035c09c3c05442aed29eabce\
             e4a1574519117db86daabcb6d09d531bbb04026b083b3be3af24c61add81060a"
        );
        assert_eq!(verify(&set, key().public_key().as_ref()), Ok(list()));
    }

    #[test]
    fn sign_then_verify_and_what_fails() {
        let key = key();
        let public = key.public_key().as_ref();
        let set = sign(&key, &list());
        assert_eq!(verify(&set, public), Ok(list()));

        let other = Ed25519KeyPair::from_seed_unchecked(&[8; 32]).unwrap();
        assert_eq!(
            verify(&set, other.public_key().as_ref()),
            Err(GrantSetError::BadSignature),
            "another key"
        );
        assert_eq!(
            verify(&sign(&other, &list()), public),
            Err(GrantSetError::BadSignature),
            "signed by another key"
        );
        let mut unsigned = set.clone();
        unsigned.signature.clear();
        assert_eq!(verify(&unsigned, public), Err(GrantSetError::Unsigned));
        let mut tampered = set.clone();
        let last = tampered.grants.len() - 1;
        tampered.grants[last] ^= 1;
        assert_eq!(verify(&tampered, public), Err(GrantSetError::BadSignature));
        // Without the domain prefix the same bytes do not verify.
        let mut bare = set.clone();
        bare.signature = key.sign(&set.grants).as_ref().to_vec();
        assert_eq!(verify(&bare, public), Err(GrantSetError::BadSignature));
        // A signature under another domain does not either.
        let mut elsewhere = b"conduit.v1.Other\n".to_vec();
        elsewhere.extend_from_slice(&set.grants);
        let mut other_domain = set.clone();
        other_domain.signature = key.sign(&elsewhere).as_ref().to_vec();
        assert_eq!(
            verify(&other_domain, public),
            Err(GrantSetError::BadSignature)
        );
        assert_eq!(
            verify(&set, &public[..31]),
            Err(GrantSetError::BadSignature),
            "a truncated public key"
        );
        // Signed bytes that are no grant list are refused after the signature check.
        let junk = pb::GrantSet {
            signature: key.sign(&message(&[0xff])).as_ref().to_vec(),
            grants: vec![0xff],
        };
        assert!(matches!(
            verify(&junk, public),
            Err(GrantSetError::Malformed(_))
        ));
    }
}
