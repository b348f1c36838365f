//! Authentication of callers on the public MCP port (`auth`): API keys or JWTs, compiled
//! once per apply into an [`Authenticator`] that the `Runtime` holds, and evaluated on every
//! request (every method, the GET stream and DELETE included) before anything is routed.
//!
//! - `credential`: reading the credential from the request headers;
//! - `api_key`: hashed keys compared in constant time;
//! - `jwt`, `keys`, `remote`: token verification, key sets and pinning, and the cached,
//!   rate-limited fetch of `jwks_url`;
//! - `reason`: the closed set of failure reasons (metric labels and caller messages).

mod api_key;
mod credential;
mod jwt;
mod keys;
mod reason;
mod remote;
#[cfg(test)]
mod test_keys;

use std::sync::Arc;
use std::time::Duration;

use conduit_config::{Auth, AuthMethod};
use http::HeaderMap;
use http::header::HeaderValue;

pub(crate) use self::api_key::ApiKeys;
pub(crate) use self::jwt::{JwtVerifier, Keys};
pub(crate) use self::keys::KeySet;
pub(crate) use self::reason::Reason;
pub(crate) use self::remote::RemoteKeys;
use crate::caller::Caller;

/// The challenge of a 401 without a credential.
pub(crate) const CHALLENGE: HeaderValue = HeaderValue::from_static(r#"Bearer realm="conduit""#);
/// The challenge of a 401 whose credential was refused.
pub(crate) const CHALLENGE_INVALID: HeaderValue =
    HeaderValue::from_static(r#"Bearer realm="conduit", error="invalid_token""#);

/// The compiled `auth` section.
#[derive(Debug)]
pub enum Authenticator {
    ApiKeys(ApiKeys),
    Jwt(Box<JwtVerifier>),
}

/// A problem found while compiling `auth`: (path, message).
pub(crate) type Problem = (String, String);

impl Authenticator {
    /// `None` for `method: none`.
    pub fn compile(auth: &Auth) -> Result<Option<Authenticator>, Vec<Problem>> {
        match auth.method {
            AuthMethod::None => Ok(None),
            AuthMethod::ApiKey => ApiKeys::compile(&auth.api_keys)
                .map(|keys| Some(Authenticator::ApiKeys(keys)))
                .map_err(|index| {
                    vec![(
                        format!("auth.api_keys[{index}].key"),
                        "a hashed key is `sha256:` followed by 64 hex digits".to_owned(),
                    )]
                }),
            AuthMethod::Jwt => {
                claim_checks(auth)?;
                let keys = jwt_keys(auth)?;
                Ok(Some(Authenticator::Jwt(Box::new(JwtVerifier::new(
                    auth, keys,
                )))))
            }
        }
    }

    /// Keep what `previous` learned (the JWKS cache) when it still applies.
    pub fn inherit(&mut self, previous: &Authenticator) {
        if let (Authenticator::Jwt(new), Authenticator::Jwt(old)) = (self, previous) {
            new.inherit(old);
        }
    }

    /// The caller of a request with these headers.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Reason> {
        match self {
            Authenticator::ApiKeys(keys) => {
                let key = credential::extract(headers, credential::Accept::BearerOrApiKey)?;
                keys.verify(key)
            }
            Authenticator::Jwt(verifier) => {
                let token = credential::extract(headers, credential::Accept::Bearer)?;
                verifier.verify(token).await
            }
        }
    }
}

/// The `WWW-Authenticate` value of a refusal for `reason`.
pub(crate) fn challenge(reason: Reason) -> HeaderValue {
    if reason.credential_presented() {
        CHALLENGE_INVALID
    } else {
        CHALLENGE
    }
}

/// The audience (and, with `jwks_url`, the issuer) are checked unless waived by name;
/// validation says so too, this keeps a document built in code from skipping them. A
/// waiver is logged at every apply, so it stays visible.
fn claim_checks(auth: &Auth) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    if auth.audience.is_none() && !auth.insecure_allow_any_audience {
        problems.push((
            "auth.audience".to_owned(),
            "required for method jwt (or insecure_allow_any_audience: true)".to_owned(),
        ));
    }
    if auth.jwks_url.is_some() && auth.issuer.is_none() && !auth.insecure_allow_any_issuer {
        problems.push((
            "auth.issuer".to_owned(),
            "required with jwks_url (or insecure_allow_any_issuer: true)".to_owned(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if auth.insecure_allow_any_audience {
        tracing::warn!(
            "auth.insecure_allow_any_audience is set: JWTs issued for any service are accepted"
        );
    }
    if auth.insecure_allow_any_issuer {
        tracing::warn!(
            "auth.insecure_allow_any_issuer is set: JWTs of any issuer signed by the key set are accepted"
        );
    }
    Ok(())
}

fn jwt_keys(auth: &Auth) -> Result<Keys, Vec<Problem>> {
    if let Some(secret) = &auth.secret {
        return Ok(Keys::Secret(Box::new(
            jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        )));
    }
    if let Some(jwks) = &auth.jwks {
        return KeySet::parse(jwks.as_bytes())
            .map(|set| Keys::Inline(Arc::new(set)))
            .map_err(|error| vec![("auth.jwks".to_owned(), error.to_string())]);
    }
    let Some(url) = &auth.jwks_url else {
        return Err(vec![(
            "auth".to_owned(),
            "method jwt needs the signing keys: jwks_url, jwks or secret".to_owned(),
        )]);
    };
    let uri = url.parse::<http::Uri>().map_err(|error| {
        vec![(
            "auth.jwks_url".to_owned(),
            format!("invalid URL {url:?}: {error}"),
        )]
    })?;
    Ok(Keys::Remote(RemoteKeys::http(
        url,
        uri,
        Duration::from_secs(auth.jwks_cache_seconds()),
        Duration::from_secs(auth.jwks_refresh_min_interval_seconds()),
    )))
}

/// Create every `conduit_auth_failures_total{reason}` series up front, so dashboards can
/// rate() them before the first failure.
pub(crate) fn register_metrics(metrics: &crate::metrics::Metrics) {
    for reason in Reason::ALL {
        metrics.auth_failures.with_label_values(&[reason.as_str()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<Option<Authenticator>, Vec<Problem>> {
        let document = conduit_config::Document::from_text(yaml).expect("valid document");
        Authenticator::compile(document.auth.as_ref().expect("an auth section"))
    }

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[tokio::test]
    async fn compiles_each_method() {
        assert!(compile("auth: {method: none}\n").unwrap().is_none());

        let keys = compile("auth: {method: api-key, api_keys: [{key: k1, client_id: ci}]}\n")
            .unwrap()
            .unwrap();
        let caller = keys
            .authenticate(&headers("authorization", "Bearer k1"))
            .await
            .unwrap();
        assert_eq!((&*caller.client_id, &*caller.tenant_id), ("ci", "default"));
        assert_eq!(
            keys.authenticate(&HeaderMap::new()).await,
            Err(Reason::Missing)
        );
        assert_eq!(
            keys.authenticate(&headers("x-api-key", "k2")).await,
            Err(Reason::InvalidKey)
        );

        let remote = compile(
            "auth: {method: jwt, jwks_url: 'https://idp.example/jwks', issuer: i, audience: a}\n",
        )
        .unwrap()
        .unwrap();
        assert!(matches!(&remote, Authenticator::Jwt(v) if format!("{v:?}").contains("Remote")));
        // Tokens come from Authorization only.
        assert_eq!(
            remote.authenticate(&headers("x-api-key", "a.b.c")).await,
            Err(Reason::Missing)
        );
    }

    #[test]
    fn an_unusable_inline_key_set_rejects_the_apply() {
        let problems = compile(
            "auth: {method: jwt, audience: a, jwks: '{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}'}\n",
        )
        .unwrap_err();
        assert_eq!(problems[0].0, "auth.jwks");
        assert!(
            problems[0].1.contains("no key that can verify"),
            "{problems:?}"
        );
    }

    #[test]
    fn challenges() {
        assert_eq!(challenge(Reason::Missing), r#"Bearer realm="conduit""#);
        assert_eq!(
            challenge(Reason::Expired),
            r#"Bearer realm="conduit", error="invalid_token""#
        );
    }
}
