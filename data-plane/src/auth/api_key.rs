//! API keys: every configured key is held as its SHA-256 digest only (plain keys are
//! hashed when the configuration is compiled), and a presented key is hashed and compared
//! with every digest in constant time, with no early exit, so neither timing nor the
//! position of a match tells anything about the keys.

use std::sync::Arc;

use conduit_config::{API_KEY_HASH_PREFIX, ApiKey};
use sha2::{Digest as _, Sha256};
use subtle::{ConditionallySelectable as _, ConstantTimeEq as _};

use super::Reason;
use crate::caller::Caller;

/// The compiled `api_keys`.
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
    /// The caller of each key, same order as `digests`.
    callers: Vec<Caller>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Digests of keys are not shown either: a weak key could be guessed from its hash.
        f.debug_struct("ApiKeys")
            .field("keys", &self.digests.len())
            .finish()
    }
}

impl ApiKeys {
    /// Hash or decode every key. `Err` names the entry index of a hashed key that is not
    /// 64 hex digits (validation refuses those first).
    pub fn compile(keys: &[ApiKey]) -> Result<ApiKeys, usize> {
        let mut digests = Vec::with_capacity(keys.len());
        let mut callers = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            let digest = match key.key.strip_prefix(API_KEY_HASH_PREFIX) {
                Some(hex_digest) => {
                    let mut digest = [0u8; 32];
                    hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| index)?;
                    digest
                }
                None => Sha256::digest(key.key.as_bytes()).into(),
            };
            digests.push(digest);
            callers.push(Caller {
                client_id: Arc::from(key.client_id.as_str()),
                tenant_id: Arc::from(
                    key.tenant_id
                        .as_deref()
                        .unwrap_or(crate::caller::DEFAULT_TENANT),
                ),
                authenticated: true,
            });
        }
        Ok(ApiKeys { digests, callers })
    }

    /// The caller whose key was presented.
    pub fn verify(&self, presented: &[u8]) -> Result<Caller, Reason> {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        // Index of the matching key; u32::MAX while none matched. Every digest is compared.
        let mut found = u32::MAX;
        for (index, digest) in self.digests.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            found = u32::conditional_select(&found, &index, presented.ct_eq(digest));
        }
        usize::try_from(found)
            .ok()
            .and_then(|index| self.callers.get(index))
            .cloned()
            .ok_or(Reason::InvalidKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: &str, client: &str, tenant: Option<&str>) -> ApiKey {
        ApiKey {
            key: key.into(),
            client_id: client.into(),
            tenant_id: tenant.map(Into::into),
        }
    }

    #[test]
    fn plain_and_hashed_keys_map_to_their_callers() {
        let hashed = format!("sha256:{}", hex::encode(Sha256::digest(b"hashed-key")));
        let keys = ApiKeys::compile(&[
            key("plain-key", "ci", Some("platform")),
            key(&hashed, "alice", None),
        ])
        .unwrap();
        let ci = keys.verify(b"plain-key").unwrap();
        assert_eq!((&*ci.client_id, &*ci.tenant_id), ("ci", "platform"));
        assert!(ci.authenticated);
        let alice = keys.verify(b"hashed-key").unwrap();
        assert_eq!((&*alice.client_id, &*alice.tenant_id), ("alice", "default"));
        // The digest itself is not a key.
        assert_eq!(keys.verify(hashed.as_bytes()), Err(Reason::InvalidKey));
    }

    #[test]
    fn near_misses_are_refused() {
        let keys = ApiKeys::compile(&[key("secret-key", "ci", None)]).unwrap();
        for wrong in ["secret-ke", "secret-key1", "Secret-key", "", "x"] {
            assert_eq!(
                keys.verify(wrong.as_bytes()),
                Err(Reason::InvalidKey),
                "{wrong}"
            );
        }
        assert!(!format!("{keys:?}").contains("secret"));
    }

    #[test]
    fn a_bad_hash_is_a_compile_error() {
        let bad = [key("plain", "a", None), key("sha256:zz", "b", None)];
        assert_eq!(ApiKeys::compile(&bad).unwrap_err(), 1);
    }
}
