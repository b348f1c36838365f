//! The control plane's Ed25519 key for grant sets: generated on first start, kept in the
//! store (which only its owner can read), and used to sign every [`pb::GrantSet`]. Data
//! planes learn the public half from each snapshot and refuse sets it does not verify.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use conduit_proto::v1 as pb;

use crate::store::{Store, StoreError};

/// Name of the key in the `signing_keys` table.
const KEY_NAME: &str = "grant-sets";
/// Prefix of every signed message, so the key never signs anything a data plane could
/// mistake for another kind of message.
pub use conduit_signing::grant_set::DOMAIN as GRANT_SET_CONTEXT;

/// Signs grant sets.
pub struct GrantSigner {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for GrantSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantSigner")
            .field("public_key", &hex::encode(self.public_key()))
            .finish()
    }
}

impl GrantSigner {
    /// The stored key, or a new one stored first.
    pub fn load_or_create(store: &Store, now: i64) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            table: "signing_keys",
            detail,
        };
        let pkcs8 = match store.signing_key(KEY_NAME)? {
            Some(pkcs8) => pkcs8,
            None => {
                let fresh = Ed25519KeyPair::generate()
                    .and_then(|key| key.to_pkcs8())
                    .map_err(|_| corrupt("cannot generate an Ed25519 key".into()))?;
                tracing::info!("generated the key that signs approval grants");
                store.insert_signing_key(KEY_NAME, fresh.as_ref(), now)?
            }
        };
        let key = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|error| corrupt(format!("{KEY_NAME}: {error}")))?;
        Ok(Self { key })
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// `list` encoded and signed (format: `conduit_signing::grant_set`).
    pub fn sign(&self, list: &pb::GrantList) -> pb::GrantSet {
        conduit_signing::grant_set::sign(&self.key, list)
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
    use prost::Message;

    use super::*;

    #[test]
    fn the_key_persists_and_signatures_verify_with_its_public_half() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        let signer = GrantSigner::load_or_create(&store, 1).unwrap();
        let again = GrantSigner::load_or_create(&store, 2).unwrap();
        assert_eq!(signer.public_key(), again.public_key());
        assert_eq!(signer.public_key().len(), 32);

        let list = pb::GrantList {
            issued_at_ms: 5,
            grants: vec![pb::Grant {
                id: "apr_x".into(),
                ..Default::default()
            }],
        };
        let set = signer.sign(&list);
        let mut message = GRANT_SET_CONTEXT.to_vec();
        message.extend_from_slice(&set.grants);
        let public = UnparsedPublicKey::new(&ED25519, again.public_key());
        public.verify(&message, &set.signature).unwrap();
        assert!(
            public.verify(&set.grants, &set.signature).is_err(),
            "context is signed"
        );
        assert_eq!(pb::GrantList::decode(set.grants.as_slice()).unwrap(), list);
    }
}
