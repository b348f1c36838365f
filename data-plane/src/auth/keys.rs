//! JSON Web Key Sets: parsing a set into the signing keys the verifier may use, choosing
//! the key of a token (by `kid`, of the type its algorithm needs), and pinning.
//!
//! A key is only ever used with an algorithm of its own type: RSA keys for `RS*`/`PS*`,
//! P-256/P-384 keys for `ES256`/`ES384`, Ed25519 keys for `EdDSA`. Symmetric (`oct`) keys of
//! a key set are never used: HMAC verification takes the configured `secret` only, so a
//! public key can never be turned into an HMAC secret.

use std::collections::HashSet;
use std::sync::Arc;

use conduit_config::JwtAlgorithm;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse, ThumbprintHash};

use super::Reason;

/// The type of a signing key, which decides the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyType {
    /// Whether a key of this type verifies `alg`.
    pub fn fits(self, alg: JwtAlgorithm) -> bool {
        use JwtAlgorithm::*;
        match self {
            KeyType::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyType::P256 => alg == ES256,
            KeyType::P384 => alg == ES384,
            KeyType::Ed25519 => alg == EdDSA,
        }
    }
}

/// One usable public key of a key set.
pub struct SigningKey {
    pub kid: Option<String>,
    /// RFC 7638 SHA-256 thumbprint, base64url.
    pub thumbprint: String,
    pub key_type: KeyType,
    /// The key's own `alg`, when it names one: the key is then used with that one only.
    pub alg: Option<String>,
    pub key: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("thumbprint", &self.thumbprint)
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key from one JWK, or why it cannot sign tokens.
    fn from_jwk(jwk: &Jwk) -> Result<SigningKey, &'static str> {
        let use_ok = matches!(
            jwk.common.public_key_use,
            None | Some(PublicKeyUse::Signature)
        );
        if !use_ok {
            return Err("not a signature key (use)");
        }
        let key_type = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyType::Rsa,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => KeyType::P256,
                EllipticCurve::P384 => KeyType::P384,
                _ => return Err("unsupported curve"),
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                KeyType::Ed25519
            }
            AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are never used"),
            _ => return Err("unsupported key type"),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|_| "invalid key parameters")?;
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| "invalid key parameters")?;
        Ok(SigningKey {
            kid: jwk.common.key_id.clone(),
            thumbprint,
            key_type,
            alg: jwk.common.key_algorithm.map(|alg| alg.to_string()),
            key,
        })
    }

    /// Whether this key may verify a token signed with `alg`.
    fn fits(&self, alg: JwtAlgorithm) -> bool {
        self.key_type.fits(alg) && self.alg.as_deref().is_none_or(|own| own == alg_name(alg))
    }
}

/// The signing keys of one key set.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
}

/// Why a key set document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("not a JSON Web Key Set (a JSON object with a `keys` list)")]
    NotAKeySet,
    #[error("the key set has no key that can verify signatures")]
    NoUsableKey,
}

impl KeySet {
    /// Parse a key set; keys that cannot sign tokens are skipped (and logged).
    pub fn parse(json: &[u8]) -> Result<KeySet, KeySetError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(json).map_err(|_| KeySetError::NotAKeySet)?;
        let mut keys = Vec::with_capacity(document.keys.len());
        for (index, value) in document.keys.into_iter().enumerate() {
            let parsed = serde_json::from_value::<Jwk>(value)
                .map_err(|_| "not a JSON Web Key")
                .and_then(|jwk| SigningKey::from_jwk(&jwk));
            match parsed {
                Ok(key) => keys.push(Arc::new(key)),
                Err(reason) => tracing::debug!(index, reason, "JWKS key skipped"),
            }
        }
        if keys.is_empty() {
            return Err(KeySetError::NoUsableKey);
        }
        Ok(KeySet { keys })
    }

    /// The key for a token with this `kid` and `alg`. Without a `kid`, the set must hold
    /// exactly one key that fits the algorithm.
    pub fn find(
        &self,
        kid: Option<&str>,
        alg: JwtAlgorithm,
        pins: &Pins,
    ) -> Result<Arc<SigningKey>, Reason> {
        let key = match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|key| key.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Err(Reason::UnknownKey);
                }
                named.find(|key| key.fits(alg)).ok_or(Reason::Algorithm)?
            }
            None => {
                let mut fitting = self.keys.iter().filter(|key| key.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => key,
                    _ => return Err(Reason::UnknownKey),
                }
            }
        };
        if !pins.allow(key) {
            return Err(Reason::UntrustedKey);
        }
        Ok(Arc::clone(key))
    }

    /// Whether a token naming `kid` would find a key here (so a refetch cannot help).
    pub fn knows(&self, kid: Option<&str>) -> bool {
        match kid {
            Some(kid) => self.keys.iter().any(|key| key.kid.as_deref() == Some(kid)),
            None => !self.keys.is_empty(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// `pinned_key_ids` and `pinned_thumbprints`: when either is set, only the keys they name
/// are used.
#[derive(Debug, Default, Clone)]
pub struct Pins {
    kids: HashSet<String>,
    thumbprints: HashSet<String>,
}

impl Pins {
    pub fn new(kids: &[String], thumbprints: &[String]) -> Pins {
        Pins {
            kids: kids.iter().cloned().collect(),
            thumbprints: thumbprints.iter().cloned().collect(),
        }
    }

    pub fn allow(&self, key: &SigningKey) -> bool {
        if self.kids.is_empty() && self.thumbprints.is_empty() {
            return true;
        }
        key.kid.as_ref().is_some_and(|kid| self.kids.contains(kid))
            || self.thumbprints.contains(&key.thumbprint)
    }
}

/// The JOSE name of an algorithm.
pub(super) fn alg_name(alg: JwtAlgorithm) -> &'static str {
    use JwtAlgorithm::*;
    match alg {
        RS256 => "RS256",
        RS384 => "RS384",
        RS512 => "RS512",
        PS256 => "PS256",
        PS384 => "PS384",
        PS512 => "PS512",
        ES256 => "ES256",
        ES384 => "ES384",
        EdDSA => "EdDSA",
        HS256 => "HS256",
        HS384 => "HS384",
        HS512 => "HS512",
    }
}

/// The algorithm a JOSE name stands for; `None` for `none` and everything unknown.
pub(super) fn alg_from_name(name: &str) -> Option<JwtAlgorithm> {
    use JwtAlgorithm::*;
    [
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512,
    ]
    .into_iter()
    .find(|alg| alg_name(*alg) == name)
}
