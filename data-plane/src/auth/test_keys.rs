//! Keys and tokens for the authentication tests: RS256 (aws-lc) and ES256 (rcgen) key
//! pairs, key sets built from their public halves, and tokens signed with jsonwebtoken.

use std::sync::{Arc, LazyLock};

use aws_lc_rs::encoding::AsDer as _;
use base64::Engine as _;
use conduit_config::{Auth, AuthMethod};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{JwtVerifier, KeySet, Keys, Reason};

pub(crate) struct TestKey {
    pub(crate) encoding: EncodingKey,
    pub(crate) jwk: Value,
    pub(crate) alg: Algorithm,
    /// DER SubjectPublicKeyInfo (RSA only), what an attacker would use as an HMAC secret.
    pub(crate) public_der: Vec<u8>,
}

pub(crate) fn rsa_key(kid: &str) -> TestKey {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = pair.as_der().unwrap();
    let public_der = aws_lc_rs::signature::KeyPair::public_key(&pair)
        .as_der()
        .unwrap()
        .as_ref()
        .to_vec();
    // jsonwebtoken reads PKCS#8 RSA keys from PEM only.
    let body = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = (0..body.len())
        .step_by(64)
        .map(|i| &body[i..(i + 64).min(body.len())])
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    finish(
        EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        Algorithm::RS256,
        kid,
        public_der,
    )
}

pub(crate) fn ec_key(kid: &str) -> TestKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    finish(
        EncodingKey::from_ec_der(&pair.serialize_der()),
        Algorithm::ES256,
        kid,
        Vec::new(),
    )
}

pub(crate) fn finish(
    encoding: EncodingKey,
    alg: Algorithm,
    kid: &str,
    public_der: Vec<u8>,
) -> TestKey {
    let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    TestKey {
        encoding,
        jwk: serde_json::to_value(&jwk).unwrap(),
        alg,
        public_der,
    }
}

/// RSA key generation takes a moment: one key for every test.
pub(crate) static RSA: LazyLock<TestKey> = LazyLock::new(|| rsa_key("rsa-1"));
pub(crate) static EC: LazyLock<TestKey> = LazyLock::new(|| ec_key("ec-1"));
pub(crate) static EC_2: LazyLock<TestKey> = LazyLock::new(|| ec_key("ec-2"));

pub(crate) fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn claims() -> Value {
    json!({ "sub": "agent-1", "org_id": "acme", "exp": now() + 600 })
}

pub(crate) fn sign(key: &TestKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = kid.map(Into::into);
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

pub(crate) fn auth(jwks: String) -> Auth {
    Auth {
        method: AuthMethod::Jwt,
        jwks: Some(jwks),
        // The claim tests sign tokens without `aud`; `issuer_and_audience` checks it.
        insecure_allow_any_audience: true,
        ..Auth::default()
    }
}

pub(crate) fn inline(auth: &Auth) -> JwtVerifier {
    let set = KeySet::parse(auth.jwks.as_deref().unwrap().as_bytes()).unwrap();
    JwtVerifier::new(auth, Keys::Inline(Arc::new(set)))
}

pub(crate) async fn verify(
    verifier: &JwtVerifier,
    token: &str,
) -> Result<(String, String), Reason> {
    verifier
        .verify(token.as_bytes())
        .await
        .map(|caller| (caller.client_id.to_string(), caller.tenant_id.to_string()))
}

pub(crate) fn ok(client: &str, tenant: &str) -> Result<(String, String), Reason> {
    Ok((client.into(), tenant.into()))
}
