//! JWT verification. In order: the token's shape, its header's `alg` against the allow-list
//! (before any key is looked at, so `none` and algorithms the configuration does not list
//! never reach a key), the key (the configured `secret` for HMAC, otherwise the key set
//! entry with the token's `kid`, of the type the algorithm needs, and pinned when pinning is
//! configured), then the signature and the `exp`, `nbf`, `iss` and `aud` claims with the
//! configured clock skew, and finally the client and tenant claims.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use conduit_config::{Auth, JwtAlgorithm};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::Reason;
use super::keys::{KeySet, Pins, alg_from_name};
use super::remote::RemoteKeys;
use crate::caller::Caller;

/// Client claim when `client_claim` is not set.
pub(crate) const DEFAULT_CLIENT_CLAIM: &str = "sub";
/// Tenant claim when `tenant_claim` is not set.
pub(crate) const DEFAULT_TENANT_CLAIM: &str = "org_id";

/// Where the verification keys come from.
#[derive(Debug)]
pub enum Keys {
    /// `secret` (HMAC algorithms only).
    Secret(Box<DecodingKey>),
    /// `jwks`.
    Inline(Arc<KeySet>),
    /// `jwks_url`.
    Remote(RemoteKeys),
}

/// The compiled `auth` section of `method: jwt`.
#[derive(Debug)]
pub struct JwtVerifier {
    keys: Keys,
    pins: Pins,
    /// The claim checks of each accepted algorithm (jsonwebtoken wants every algorithm of
    /// a `Validation` to be of the key's family, so there is one per algorithm).
    validations: Vec<(JwtAlgorithm, Validation)>,
    client_claim: String,
    tenant_claim: String,
}

/// The part of a token's header the verifier reads before choosing a key.
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Critical extensions: none is understood, so a token naming any is refused.
    #[serde(default)]
    crit: Option<Value>,
}

impl JwtVerifier {
    pub fn new(auth: &Auth, keys: Keys) -> JwtVerifier {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = auth.clock_skew_seconds();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &auth.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &auth.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Only with `insecure_allow_any_audience` (validation and `Authenticator::compile`
            // refuse a missing audience otherwise): a token's `aud` is not checked.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let validations = (auth.algorithms().into_iter())
            .map(|alg| {
                let mut validation = validation.clone();
                validation.algorithms = vec![to_jsonwebtoken(alg)];
                (alg, validation)
            })
            .collect();
        JwtVerifier {
            validations,
            keys,
            pins: Pins::new(&auth.pinned_key_ids, &auth.pinned_thumbprints),
            client_claim: auth
                .client_claim
                .clone()
                .unwrap_or_else(|| DEFAULT_CLIENT_CLAIM.to_owned()),
            tenant_claim: auth
                .tenant_claim
                .clone()
                .unwrap_or_else(|| DEFAULT_TENANT_CLAIM.to_owned()),
        }
    }

    /// Keep the previous runtime's JWKS cache when the URL is unchanged.
    pub fn inherit(&mut self, previous: &JwtVerifier) {
        if let (Keys::Remote(new), Keys::Remote(old)) = (&mut self.keys, &previous.keys) {
            new.inherit(old);
        }
    }

    /// The caller a token stands for.
    pub async fn verify(&self, token: &[u8]) -> Result<Caller, Reason> {
        let token = std::str::from_utf8(token).map_err(|_| Reason::Malformed)?;
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Reason::Malformed);
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(Reason::Malformed)?;
        if header.crit.is_some() {
            return Err(Reason::Malformed);
        }
        // The allow-list decides before any key is chosen.
        let (alg, validation) = alg_from_name(&header.alg)
            .and_then(|alg| self.validations.iter().find(|(allowed, _)| *allowed == alg))
            .ok_or(Reason::Algorithm)?;
        let alg = *alg;
        let kid = header.kid.as_deref();
        let claims = match &self.keys {
            Keys::Secret(secret) if alg.is_hmac() => decode(token, secret, validation)?,
            // A key set never provides an HMAC secret, and a secret never verifies anything
            // but HMAC (the configuration cannot list both kinds; this holds regardless).
            Keys::Secret(_) => return Err(Reason::Algorithm),
            _ if alg.is_hmac() => return Err(Reason::Algorithm),
            Keys::Inline(set) => {
                let key = set.find(kid, alg, &self.pins)?;
                decode(token, &key.key, validation)?
            }
            Keys::Remote(remote) => {
                let key = remote.find(kid, alg, &self.pins).await?;
                decode(token, &key.key, validation)?
            }
        };
        let client = match claims.get(&self.client_claim) {
            Some(Value::String(client)) if !client.is_empty() => client.as_str(),
            _ => return Err(Reason::MissingClaim),
        };
        let tenant = match claims.get(&self.tenant_claim) {
            Some(Value::String(tenant)) if !tenant.is_empty() => Some(tenant.as_str()),
            _ => None,
        };
        Ok(Caller::authenticated(client, tenant))
    }
}

/// Signature and registered claims.
fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Map<String, Value>, Reason> {
    jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|error| reason(error.kind()))
}

fn reason(kind: &ErrorKind) -> Reason {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => Reason::BadSignature,
        ErrorKind::ExpiredSignature => Reason::Expired,
        ErrorKind::ImmatureSignature => Reason::NotYetValid,
        ErrorKind::InvalidIssuer => Reason::BadIssuer,
        ErrorKind::InvalidAudience => Reason::BadAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => Reason::BadIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => Reason::BadAudience,
        ErrorKind::MissingRequiredClaim(_) => Reason::MissingClaim,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => Reason::Algorithm,
        _ => Reason::Malformed,
    }
}

fn to_jsonwebtoken(alg: JwtAlgorithm) -> Algorithm {
    use JwtAlgorithm::*;
    match alg {
        RS256 => Algorithm::RS256,
        RS384 => Algorithm::RS384,
        RS512 => Algorithm::RS512,
        PS256 => Algorithm::PS256,
        PS384 => Algorithm::PS384,
        PS512 => Algorithm::PS512,
        ES256 => Algorithm::ES256,
        ES384 => Algorithm::ES384,
        EdDSA => Algorithm::EdDSA,
        HS256 => Algorithm::HS256,
        HS384 => Algorithm::HS384,
        HS512 => Algorithm::HS512,
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
