//! `auth`: how callers of the public MCP port authenticate (API keys or JWT) and how the
//! client id and tenant id of a caller are found.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Caller authentication. Absent: no authentication (every caller is `anonymous`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Authentication method.
    pub method: AuthMethod,
    /// Accepted API keys (`method: api-key`, at least one). Keys are read from
    /// `Authorization: Bearer <key>` or `X-API-Key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKey>,
    /// URL of the JSON Web Key Set that signs accepted tokens (`method: jwt`). One of
    /// `jwks_url`, `jwks` or `secret` is required for `jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// An inline JSON Web Key Set (JSON text with a `keys` array), for example
    /// `${file:/etc/conduit/jwks.json}` (`method: jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Shared secret for HMAC-signed tokens (`HS256`, `HS384`, `HS512`; `method: jwt`).
    /// Requires `algorithms` to list only HMAC algorithms. Masked in dumps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Required `iss` claim (`method: jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud` claim (`method: jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Claim holding the tenant id (`method: jwt`). Default: `org_id`; a token without it
    /// belongs to tenant `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_claim: Option<String>,
    /// Claim holding the client id (`method: jwt`). Default: `sub`; a token without it is
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_claim: Option<String>,
    /// Accepted signature algorithms (`method: jwt`). Default: every asymmetric algorithm
    /// (`RS*`, `PS*`, `ES*`, `EdDSA`). HMAC and asymmetric algorithms cannot be mixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<JwtAlgorithm>,
}

/// Authentication methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// No authentication.
    #[default]
    None,
    /// Static API keys (`api_keys`).
    ApiKey,
    /// JSON Web Tokens in `Authorization: Bearer`.
    Jwt,
}

/// One accepted API key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The key, or `sha256:<64 hex digits>` (the hex SHA-256 of the key) so that the key
    /// itself never appears in the config. Masked in dumps either way.
    #[schemars(length(min = 1))]
    pub key: String,
    /// Client id of callers presenting this key.
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// Tenant id of callers presenting this key. Default: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

/// JWT signature algorithms. `none` is never accepted.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// ECDSA P-521 with SHA-512.
    ES512,
    /// Ed25519.
    EdDSA,
    /// HMAC with SHA-256 (needs `secret`).
    HS256,
    /// HMAC with SHA-384 (needs `secret`).
    HS384,
    /// HMAC with SHA-512 (needs `secret`).
    HS512,
}

impl JwtAlgorithm {
    /// Whether this is an HMAC (shared-secret) algorithm.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    /// The default set: every asymmetric algorithm.
    pub fn defaults() -> Vec<JwtAlgorithm> {
        use JwtAlgorithm::*;
        vec![
            RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA,
        ]
    }
}

impl Auth {
    /// The algorithms in effect (`algorithms`, or [`JwtAlgorithm::defaults`]).
    pub fn algorithms(&self) -> Vec<JwtAlgorithm> {
        if self.algorithms.is_empty() {
            JwtAlgorithm::defaults()
        } else {
            self.algorithms.clone()
        }
    }
}

/// The prefix of hashed API keys.
pub const API_KEY_HASH_PREFIX: &str = "sha256:";
