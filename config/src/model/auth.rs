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
    /// Required `iss` claim (`method: jwt`). Required with `jwks_url` (a key set fetched
    /// from an identity provider signs tokens for all of its issuers' clients) unless
    /// `insecure_allow_any_issuer` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud` claim (`method: jwt`): the name this gateway has at the identity
    /// provider. Required unless `insecure_allow_any_audience` is set: without it, a token
    /// the provider issued for any other service would be accepted here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Accept tokens whatever their `aud` claim (`method: jwt`, without `audience`).
    /// Insecure: any token of the identity provider, issued for any service, is then
    /// accepted. Only for providers that issue tokens for this gateway alone. Default: false.
    #[serde(default, skip_serializing_if = "super::servers::is_false")]
    pub insecure_allow_any_audience: bool,
    /// Accept tokens whatever their `iss` claim (`method: jwt` with `jwks_url`, without
    /// `issuer`). Insecure: a key set shared by several issuers then lets each of them
    /// sign tokens for this gateway. Default: false.
    #[serde(default, skip_serializing_if = "super::servers::is_false")]
    pub insecure_allow_any_issuer: bool,
    /// Claim holding the tenant id (`method: jwt`). Default: `org_id`; a token without it
    /// belongs to tenant `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_claim: Option<String>,
    /// Claim holding the client id (`method: jwt`). Default: `sub`; a token without it is
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_claim: Option<String>,
    /// Accepted signature algorithms (`method: jwt`). Default: every asymmetric algorithm
    /// (`RS*`, `PS*`, `ES256`, `ES384`, `EdDSA`). HMAC and asymmetric algorithms cannot be
    /// mixed. The token's `alg` is checked against this list before any key is chosen, and a
    /// key is only used with an algorithm of its own type (an RSA key never as an HMAC
    /// secret).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// Tolerated clock difference, in seconds, when checking `exp` and `nbf`
    /// (`method: jwt`). Default: 60; at most 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_seconds: Option<u64>,
    /// Key ids (`kid`) of the JWKS keys that may sign tokens (`method: jwt`). When this or
    /// `pinned_thumbprints` is set, a key of the JWKS is used only if it is pinned by one of
    /// them, so a compromised JWKS endpoint cannot introduce a new signing key. A key id
    /// only names a key; thumbprints pin the key material itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned_key_ids: Vec<String>,
    /// RFC 7638 SHA-256 thumbprints (base64url, no padding) of the JWKS keys that may sign
    /// tokens (`method: jwt`); see `pinned_key_ids`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned_thumbprints: Vec<String>,
    /// Seconds the keys fetched from `jwks_url` are used before they are fetched again
    /// (`method: jwt`). Default: 300. If a refetch fails, the keys already known stay in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_cache_seconds: Option<u64>,
    /// Minimum seconds between two fetches of `jwks_url` (`method: jwt`). A token signed
    /// with an unknown `kid` makes the data plane fetch the key set again (to pick up a
    /// rotated key), at most this often. Default: 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_refresh_min_interval_seconds: Option<u64>,
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

/// JWT signature algorithms. `none` is never accepted (it is not a value of this list), and
/// neither is `ES512` (P-521), which the verifier does not implement.
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
            RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
        ]
    }
}

/// Default of `clock_skew_seconds`.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
/// Largest accepted `clock_skew_seconds`.
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 300;
/// Default of `jwks_cache_seconds`.
pub const DEFAULT_JWKS_CACHE_SECONDS: u64 = 300;
/// Default of `jwks_refresh_min_interval_seconds`.
pub const DEFAULT_JWKS_REFRESH_MIN_INTERVAL_SECONDS: u64 = 30;

impl Auth {
    /// `clock_skew_seconds` or its default.
    pub fn clock_skew_seconds(&self) -> u64 {
        self.clock_skew_seconds
            .unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS)
    }

    /// `jwks_cache_seconds` or its default.
    pub fn jwks_cache_seconds(&self) -> u64 {
        self.jwks_cache_seconds
            .unwrap_or(DEFAULT_JWKS_CACHE_SECONDS)
    }

    /// `jwks_refresh_min_interval_seconds` or its default.
    pub fn jwks_refresh_min_interval_seconds(&self) -> u64 {
        self.jwks_refresh_min_interval_seconds
            .unwrap_or(DEFAULT_JWKS_REFRESH_MIN_INTERVAL_SECONDS)
    }

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
