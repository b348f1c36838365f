//! JWT verification against generated keys and tokens signed with jsonwebtoken or forged
//! by hand: the allow-list, `alg: none`, the HS/RS confusion, key types, time claims,
//! issuer and audience, claims, `kid` lookup and pinning.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use conduit_config::{Auth, AuthMethod, JwtAlgorithm};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::auth::test_keys::*;

/// A token with this header and claims and a junk signature.
fn forged(header: Value, claims: &Value, signature: &str) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", part(&header), part(claims))
}

#[tokio::test]
async fn valid_tokens_name_their_client_and_tenant() {
    let verifier = inline(&auth(jwks(&[&RSA, &EC])));
    let rs = sign(&RSA, Some("rsa-1"), &claims());
    assert_eq!(verify(&verifier, &rs).await, ok("agent-1", "acme"));
    let es = sign(&EC, Some("ec-1"), &claims());
    assert_eq!(verify(&verifier, &es).await, ok("agent-1", "acme"));

    let no_tenant = json!({ "sub": "agent-2", "exp": now() + 60 });
    let token = sign(&RSA, Some("rsa-1"), &no_tenant);
    assert_eq!(verify(&verifier, &token).await, ok("agent-2", "default"));

    let no_sub = json!({ "org_id": "acme", "exp": now() + 60 });
    let token = sign(&RSA, Some("rsa-1"), &no_sub);
    assert_eq!(verify(&verifier, &token).await, Err(Reason::MissingClaim));

    let no_exp = json!({ "sub": "agent-1" });
    let token = sign(&RSA, Some("rsa-1"), &no_exp);
    assert_eq!(verify(&verifier, &token).await, Err(Reason::MissingClaim));
}

#[tokio::test]
async fn custom_client_and_tenant_claims() {
    let mut config = auth(jwks(&[&EC]));
    config.client_claim = Some("client_id".into());
    config.tenant_claim = Some("tid".into());
    let verifier = inline(&config);
    let claims = json!({ "sub": "user", "client_id": "svc-7", "tid": "t9", "exp": now() + 60 });
    let token = sign(&EC, Some("ec-1"), &claims);
    assert_eq!(verify(&verifier, &token).await, ok("svc-7", "t9"));
    // `sub` alone no longer names the client.
    let token = sign(
        &EC,
        Some("ec-1"),
        &json!({ "sub": "user", "exp": now() + 60 }),
    );
    assert_eq!(verify(&verifier, &token).await, Err(Reason::MissingClaim));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let verifier = inline(&auth(jwks(&[&RSA])));
    for alg in ["none", "None", "NONE", "nOnE"] {
        for signature in ["", "AAAA"] {
            let token = forged(json!({ "alg": alg, "typ": "JWT" }), &claims(), signature);
            assert_eq!(
                verify(&verifier, &token).await,
                Err(Reason::Algorithm),
                "{alg}"
            );
            let token = forged(json!({ "alg": alg, "kid": "rsa-1" }), &claims(), signature);
            assert_eq!(
                verify(&verifier, &token).await,
                Err(Reason::Algorithm),
                "{alg}"
            );
        }
    }
}

#[tokio::test]
async fn hmac_signed_with_the_rsa_public_key_is_refused() {
    // The HS/RS confusion attack: the public key (known to everyone) as an HMAC secret.
    let verifier = inline(&auth(jwks(&[&RSA])));
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&RSA.public_der)
    );
    for secret in [RSA.public_der.as_slice(), pem.as_bytes()] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("rsa-1".into());
            let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                .unwrap();
            assert_eq!(
                verify(&verifier, &token).await,
                Err(Reason::Algorithm),
                "{alg:?}"
            );
        }
    }
    // Even with HS256 allowed, a key set never provides an HMAC secret.
    let mut config = auth(jwks(&[&RSA]));
    config.algorithms = vec![JwtAlgorithm::HS256];
    let verifier = inline(&config);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(&RSA.public_der),
    )
    .unwrap();
    assert_eq!(verify(&verifier, &token).await, Err(Reason::Algorithm));
}

#[tokio::test]
async fn algorithms_outside_the_list_are_refused() {
    let mut config = auth(jwks(&[&RSA, &EC]));
    config.algorithms = vec![JwtAlgorithm::EdDSA];
    let verifier = inline(&config);
    let token = sign(&RSA, Some("rsa-1"), &claims());
    assert_eq!(verify(&verifier, &token).await, Err(Reason::Algorithm));

    config.algorithms = vec![JwtAlgorithm::ES256];
    let verifier = inline(&config);
    assert_eq!(verify(&verifier, &token).await, Err(Reason::Algorithm));
    let es = sign(&EC, Some("ec-1"), &claims());
    assert_eq!(verify(&verifier, &es).await, ok("agent-1", "acme"));
}

#[tokio::test]
async fn a_key_is_used_only_with_its_own_algorithm_family() {
    let verifier = inline(&auth(jwks(&[&RSA, &EC])));
    // An ES256 signature claiming the RSA key, and an RS256 one claiming the EC key.
    let token = sign(&EC, Some("rsa-1"), &claims());
    assert_eq!(verify(&verifier, &token).await, Err(Reason::Algorithm));
    let token = sign(&RSA, Some("ec-1"), &claims());
    assert_eq!(verify(&verifier, &token).await, Err(Reason::Algorithm));
}

#[tokio::test]
async fn signatures_and_time_claims() {
    let verifier = inline(&auth(jwks(&[&EC, &EC_2])));
    // Signed by ec-2, claiming ec-1.
    let token = sign(&EC_2, Some("ec-1"), &claims());
    assert_eq!(verify(&verifier, &token).await, Err(Reason::BadSignature));
    // One character in the middle of the signature changed (never a no-op, never padding).
    let token = sign(&EC, Some("ec-1"), &claims());
    let at = token.rfind('.').unwrap() + 20;
    let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
    assert_eq!(
        verify(&verifier, &tampered).await,
        Err(Reason::BadSignature)
    );

    let at = |exp: i64, nbf: Option<i64>| {
        let mut claims = json!({ "sub": "a", "exp": now() + exp });
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(now() + nbf);
        }
        sign(&EC, Some("ec-1"), &claims)
    };
    // Default skew: 60 s.
    assert_eq!(
        verify(&verifier, &at(-120, None)).await,
        Err(Reason::Expired)
    );
    assert_eq!(verify(&verifier, &at(-30, None)).await, ok("a", "default"));
    assert_eq!(
        verify(&verifier, &at(600, Some(120))).await,
        Err(Reason::NotYetValid)
    );
    assert_eq!(
        verify(&verifier, &at(600, Some(30))).await,
        ok("a", "default")
    );

    let mut strict = auth(jwks(&[&EC]));
    strict.clock_skew_seconds = Some(0);
    let verifier = inline(&strict);
    assert_eq!(
        verify(&verifier, &at(-30, None)).await,
        Err(Reason::Expired)
    );
    assert_eq!(
        verify(&verifier, &at(600, Some(30))).await,
        Err(Reason::NotYetValid)
    );
}

#[tokio::test]
async fn issuer_and_audience() {
    let mut config = auth(jwks(&[&EC]));
    config.issuer = Some("https://idp.example".into());
    config.audience = Some("conduit".into());
    config.insecure_allow_any_audience = false;
    let verifier = inline(&config);
    let with = |iss: Option<&str>, aud: Option<Value>| {
        let mut claims = claims();
        if let Some(iss) = iss {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = aud {
            claims["aud"] = aud;
        }
        sign(&EC, Some("ec-1"), &claims)
    };
    let good = Some("https://idp.example");
    assert_eq!(
        verify(&verifier, &with(good, Some(json!("conduit")))).await,
        ok("agent-1", "acme")
    );
    assert_eq!(
        verify(&verifier, &with(good, Some(json!(["other", "conduit"])))).await,
        ok("agent-1", "acme")
    );
    for (token, reason) in [
        (with(good, Some(json!("other"))), Reason::BadAudience),
        (with(good, Some(json!("conduit2"))), Reason::BadAudience),
        (with(good, None), Reason::BadAudience),
        (
            with(Some("https://evil.example"), Some(json!("conduit"))),
            Reason::BadIssuer,
        ),
        (with(None, Some(json!("conduit"))), Reason::BadIssuer),
    ] {
        assert_eq!(verify(&verifier, &token).await, Err(reason));
    }
    // Only with the explicit waiver (and no audience) is a token's `aud` not checked.
    let verifier = inline(&auth(jwks(&[&EC])));
    assert!(auth(jwks(&[&EC])).insecure_allow_any_audience);
    assert_eq!(
        verify(&verifier, &with(None, Some(json!("anything")))).await,
        ok("agent-1", "acme")
    );
}

#[tokio::test]
async fn kid_lookup_and_pinning() {
    let verifier = inline(&auth(jwks(&[&EC, &EC_2])));
    let token = sign(&EC, Some("nope"), &claims());
    assert_eq!(verify(&verifier, &token).await, Err(Reason::UnknownKey));
    // No kid and two keys that fit: ambiguous.
    let token = sign(&EC, None, &claims());
    assert_eq!(verify(&verifier, &token).await, Err(Reason::UnknownKey));
    // No kid and one key that fits: that one.
    let single = inline(&auth(jwks(&[&EC])));
    assert_eq!(verify(&single, &token).await, ok("agent-1", "acme"));

    let mut pinned = auth(jwks(&[&EC, &EC_2]));
    pinned.pinned_key_ids = vec!["ec-1".into()];
    let verifier = inline(&pinned);
    let one = sign(&EC, Some("ec-1"), &claims());
    let two = sign(&EC_2, Some("ec-2"), &claims());
    assert_eq!(verify(&verifier, &one).await, ok("agent-1", "acme"));
    assert_eq!(verify(&verifier, &two).await, Err(Reason::UntrustedKey));

    let jwk: Jwk = serde_json::from_value(EC_2.jwk.clone()).unwrap();
    pinned.pinned_key_ids = Vec::new();
    pinned.pinned_thumbprints = vec![jwk.thumbprint(ThumbprintHash::SHA256).unwrap()];
    let verifier = inline(&pinned);
    assert_eq!(verify(&verifier, &one).await, Err(Reason::UntrustedKey));
    assert_eq!(verify(&verifier, &two).await, ok("agent-1", "acme"));
}

#[tokio::test]
async fn malformed_tokens() {
    let verifier = inline(&auth(jwks(&[&EC])));
    let token = sign(&EC, Some("ec-1"), &claims());
    let crit = forged(
        json!({ "alg": "ES256", "kid": "ec-1", "crit": ["exp"] }),
        &claims(),
        token.rsplit('.').next().unwrap(),
    );
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.b.c",
        "e30.e30.e30",
        &format!("{token}.x"),
        &crit,
    ] {
        assert_eq!(
            verify(&verifier, bad).await,
            Err(Reason::Malformed),
            "{bad:.40}"
        );
    }
}

#[tokio::test]
async fn a_shared_secret_verifies_hmac_only() {
    let config = Auth {
        method: AuthMethod::Jwt,
        secret: Some("a-long-shared-secret-for-tests".into()),
        algorithms: vec![JwtAlgorithm::HS256],
        insecure_allow_any_audience: true,
        ..Auth::default()
    };
    let verifier = JwtVerifier::new(
        &config,
        Keys::Secret(Box::new(jsonwebtoken::DecodingKey::from_secret(
            b"a-long-shared-secret-for-tests",
        ))),
    );
    let key = EncodingKey::from_secret(b"a-long-shared-secret-for-tests");
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &key).unwrap();
    assert_eq!(verify(&verifier, &token).await, ok("agent-1", "acme"));
    let wrong = EncodingKey::from_secret(b"another-secret");
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &wrong).unwrap();
    assert_eq!(verify(&verifier, &token).await, Err(Reason::BadSignature));
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims(), &key).unwrap();
    assert_eq!(verify(&verifier, &token).await, Err(Reason::Algorithm));
    let token = sign(&RSA, Some("rsa-1"), &claims());
    assert_eq!(verify(&verifier, &token).await, Err(Reason::Algorithm));
}
