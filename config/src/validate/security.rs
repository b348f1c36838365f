//! Checks of `auth`, `gateway` (TLS) and `identity`.

use std::collections::BTreeMap;

use sha2::Digest as _;

use super::{Checker, at, nth};
use crate::model::{
    API_KEY_HASH_PREFIX, Auth, AuthMethod, Document, Gateway, HostPattern, MAX_CLOCK_SKEW_SECONDS,
    OriginPattern, SessionKeyConfig,
};

pub(super) fn check(c: &mut Checker, doc: &Document) {
    if let Some(auth) = &doc.auth {
        self::auth(c, auth);
    }
    if let Some(tls) = doc.gateway.as_ref().and_then(|g| g.tls.as_ref())
        && tls.is_enabled()
    {
        c.require(
            "gateway.tls.cert_path".into(),
            tls.cert_path.is_some(),
            "when TLS is enabled",
        );
        c.require(
            "gateway.tls.key_path".into(),
            tls.key_path.is_some(),
            "when TLS is enabled",
        );
    }
    if let Some(gateway) = &doc.gateway {
        allowed_hosts(c, gateway);
        session_keys(c, gateway);
    }
    identity(c, doc);
}

fn allowed_hosts(c: &mut Checker, gateway: &Gateway) {
    for (index, host) in gateway.allowed_hosts.iter().enumerate() {
        if c.deferred(host) {
            continue;
        }
        if let Err(message) = HostPattern::parse(host) {
            c.error(nth("gateway.allowed_hosts", index), message);
        }
    }
    for (index, origin) in gateway.allowed_origins.iter().enumerate() {
        if c.deferred(origin) {
            continue;
        }
        if let Err(message) = OriginPattern::parse(origin) {
            c.error(nth("gateway.allowed_origins", index), message);
        }
    }
}

fn session_keys(c: &mut Checker, gateway: &Gateway) {
    let mut seen = std::collections::BTreeSet::new();
    for (index, entry) in gateway.session_keys.iter().enumerate() {
        let path = nth("gateway.session_keys", index);
        if !SessionKeyConfig::valid_id(&entry.id) {
            c.error(
                at(&path, "id"),
                "must be 1 to 32 characters of A-Z, a-z, 0-9, '_' or '-'",
            );
        } else if !seen.insert(entry.id.as_str()) {
            c.error(
                at(&path, "id"),
                format!("duplicate session key id {:?}", entry.id),
            );
        }
        if c.deferred(&entry.key) {
            continue;
        }
        if let Err(message) = SessionKeyConfig::decode_key(&entry.key) {
            // The message never quotes the value: it is a secret.
            c.error(at(&path, "key"), message);
        }
    }
}

fn auth(c: &mut Checker, auth: &Auth) {
    let jwt_fields = [
        ("jwks_url", auth.jwks_url.is_some()),
        ("jwks", auth.jwks.is_some()),
        ("secret", auth.secret.is_some()),
        ("issuer", auth.issuer.is_some()),
        ("audience", auth.audience.is_some()),
        (
            "insecure_allow_any_audience",
            auth.insecure_allow_any_audience,
        ),
        ("insecure_allow_any_issuer", auth.insecure_allow_any_issuer),
        ("tenant_claim", auth.tenant_claim.is_some()),
        ("client_claim", auth.client_claim.is_some()),
        ("algorithms", !auth.algorithms.is_empty()),
        ("clock_skew_seconds", auth.clock_skew_seconds.is_some()),
        ("pinned_key_ids", !auth.pinned_key_ids.is_empty()),
        ("pinned_thumbprints", !auth.pinned_thumbprints.is_empty()),
        ("jwks_cache_seconds", auth.jwks_cache_seconds.is_some()),
        (
            "jwks_refresh_min_interval_seconds",
            auth.jwks_refresh_min_interval_seconds.is_some(),
        ),
    ];
    if auth.method != AuthMethod::Jwt {
        for (field, present) in jwt_fields {
            c.forbid(at("auth", field), present, "only for method: jwt");
        }
    }
    if auth.method != AuthMethod::ApiKey {
        c.forbid(
            "auth.api_keys".into(),
            !auth.api_keys.is_empty(),
            "only for method: api-key",
        );
    }
    match auth.method {
        AuthMethod::None => {}
        AuthMethod::ApiKey => api_keys(c, auth),
        AuthMethod::Jwt => jwt(c, auth),
    }
}

fn api_keys(c: &mut Checker, auth: &Auth) {
    if auth.api_keys.is_empty() {
        c.error("auth.api_keys", "method api-key needs at least one key");
    }
    // Keys by their SHA-256 (hex), so a plain key and the hash of the same key collide too.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, key) in auth.api_keys.iter().enumerate() {
        let path = at(&nth("auth.api_keys", index), "key");
        let digest = match key.key.strip_prefix(API_KEY_HASH_PREFIX) {
            Some(digest) => digest.to_ascii_lowercase(),
            None if c.deferred(&key.key) => key.key.clone(),
            None => hex::encode(sha2::Sha256::digest(key.key.as_bytes())),
        };
        if let Some(first) = seen.insert(digest, index) {
            // The key itself is a secret: name the other entry, not the value.
            c.error(&path, format!("same key as auth.api_keys[{first}]"));
            continue;
        }
        if c.deferred(&key.key) {
            continue;
        }
        if let Some(digest) = key.key.strip_prefix(API_KEY_HASH_PREFIX) {
            let hex = digest.len() == 64 && digest.chars().all(|ch| ch.is_ascii_hexdigit());
            if !hex {
                c.error(
                    &path,
                    "a hashed key is `sha256:` followed by 64 hex digits (the SHA-256 of the key)",
                );
            }
        }
    }
}

fn jwt(c: &mut Checker, auth: &Auth) {
    let sources = [&auth.jwks_url, &auth.jwks, &auth.secret]
        .iter()
        .filter(|source| source.is_some())
        .count();
    if sources == 0 {
        c.error(
            "auth",
            "method jwt needs the signing keys: jwks_url, jwks or secret",
        );
    }
    if let Some(url) = &auth.jwks_url
        && let Some(parsed) = c.url("auth.jwks_url", url, &["https", "http"])
        && parsed.scheme() == "http"
        && !is_loopback(&parsed)
    {
        c.error(
            "auth.jwks_url",
            "must use https (plain http is only allowed for loopback addresses)",
        );
    }
    if let Some(jwks) = &auth.jwks
        && !c.deferred(jwks)
    {
        let keys = serde_json::from_str::<serde_json::Value>(jwks)
            .ok()
            .and_then(|value| value.get("keys").map(serde_json::Value::is_array));
        if keys != Some(true) {
            c.error(
                "auth.jwks",
                "must be a JSON Web Key Set: a JSON object with a `keys` list",
            );
        }
    }
    let algorithms = auth.algorithms();
    let hmac = algorithms.iter().filter(|a| a.is_hmac()).count();
    if hmac > 0 && hmac < algorithms.len() {
        c.error(
            "auth.algorithms",
            "HMAC (HS*) and public-key algorithms cannot be mixed",
        );
    }
    if auth.secret.is_some() {
        if hmac == 0 {
            c.error(
                "auth.algorithms",
                "a shared secret needs HMAC algorithms: list HS256, HS384 or HS512",
            );
        }
        if auth.jwks_url.is_some() || auth.jwks.is_some() {
            c.error(
                "auth.secret",
                "not allowed together with jwks_url or jwks: use either a shared secret or public keys",
            );
        }
    } else if hmac > 0 {
        c.error("auth.secret", "required for HMAC algorithms (HS*)");
    }
    let mut seen = std::collections::BTreeSet::new();
    for (index, algorithm) in auth.algorithms.iter().enumerate() {
        if !seen.insert(*algorithm) {
            c.error(nth("auth.algorithms", index), "listed twice");
        }
    }
    jwt_keys(c, auth);
    jwt_claims(c, auth);
    for (field, claim) in [
        ("tenant_claim", &auth.tenant_claim),
        ("client_claim", &auth.client_claim),
    ] {
        if claim.as_deref().is_some_and(str::is_empty) {
            c.error(at("auth", field), "must not be empty");
        }
    }
}

/// `audience` always, and `issuer` with `jwks_url`, unless explicitly waived: a token is
/// only worth something for the service and from the issuer it was made for.
fn jwt_claims(c: &mut Checker, auth: &Auth) {
    match (&auth.audience, auth.insecure_allow_any_audience) {
        (None, false) => c.error(
            "auth.audience",
            "required for method jwt: without it a token the identity provider issued for any \
             other service would be accepted here; set it to this gateway's audience (the `aud` \
             tokens for it carry), or set insecure_allow_any_audience: true to accept any",
        ),
        (Some(_), true) => c.error(
            "auth.insecure_allow_any_audience",
            "contradicts auth.audience: remove one of them",
        ),
        (Some(audience), false) if audience.is_empty() => {
            c.error("auth.audience", "must not be empty");
        }
        _ => {}
    }
    match (&auth.issuer, auth.insecure_allow_any_issuer) {
        (None, false) if auth.jwks_url.is_some() => c.error(
            "auth.issuer",
            "required with jwks_url: the key set of an identity provider may sign tokens of \
             other issuers; set it to the `iss` of the tokens to accept, or set \
             insecure_allow_any_issuer: true to accept any",
        ),
        (Some(_), true) => c.error(
            "auth.insecure_allow_any_issuer",
            "contradicts auth.issuer: remove one of them",
        ),
        (None, true) if auth.jwks_url.is_none() => c.error(
            "auth.insecure_allow_any_issuer",
            "only with jwks_url (issuer is optional with jwks and secret)",
        ),
        (Some(issuer), false) if issuer.is_empty() => {
            c.error("auth.issuer", "must not be empty");
        }
        _ => {}
    }
}

/// Clock skew, pinning and the JWKS cache settings.
fn jwt_keys(c: &mut Checker, auth: &Auth) {
    if auth.clock_skew_seconds() > MAX_CLOCK_SKEW_SECONDS {
        c.error(
            "auth.clock_skew_seconds",
            format!("must be at most {MAX_CLOCK_SKEW_SECONDS}"),
        );
    }
    for (field, value) in [
        ("jwks_cache_seconds", auth.jwks_cache_seconds),
        (
            "jwks_refresh_min_interval_seconds",
            auth.jwks_refresh_min_interval_seconds,
        ),
    ] {
        if value == Some(0) {
            c.error(at("auth", field), "must be at least 1");
        }
    }
    let pinned = !auth.pinned_key_ids.is_empty() || !auth.pinned_thumbprints.is_empty();
    if pinned && auth.jwks_url.is_none() && auth.jwks.is_none() {
        c.error(
            "auth",
            "pinned_key_ids and pinned_thumbprints pin keys of jwks_url or jwks, and neither is set",
        );
    }
    for (index, kid) in auth.pinned_key_ids.iter().enumerate() {
        if kid.is_empty() {
            c.error(nth("auth.pinned_key_ids", index), "must not be empty");
        }
    }
    c.unique(
        "pinned key id",
        (auth.pinned_key_ids.iter().enumerate())
            .map(|(i, kid)| (nth("auth.pinned_key_ids", i), kid.as_str())),
    );
    for (index, thumbprint) in auth.pinned_thumbprints.iter().enumerate() {
        // SHA-256 in base64url without padding: 43 characters.
        let valid = thumbprint.len() == 43
            && thumbprint
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid && !c.deferred(thumbprint) {
            c.error(
                nth("auth.pinned_thumbprints", index),
                "must be an RFC 7638 JWK SHA-256 thumbprint: 43 base64url characters",
            );
        }
    }
    c.unique(
        "pinned thumbprint",
        (auth.pinned_thumbprints.iter().enumerate())
            .map(|(i, t)| (nth("auth.pinned_thumbprints", i), t.as_str())),
    );
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn identity(c: &mut Checker, doc: &Document) {
    let Some(identity) = &doc.identity else {
        return;
    };
    c.unique(
        "workspace id",
        identity
            .workspaces
            .iter()
            .enumerate()
            .map(|(i, w)| (at(&nth("identity.workspaces", i), "id"), w.id.as_str())),
    );
    let mut owner: BTreeMap<&str, String> = BTreeMap::new();
    for (index, workspace) in identity.workspaces.iter().enumerate() {
        let path = at(&nth("identity.workspaces", index), "tenant_ids");
        for (i, tenant) in workspace.tenant_ids.iter().enumerate() {
            let tenant_path = nth(&path, i);
            if tenant.is_empty() {
                c.error(&tenant_path, "empty tenant id");
            } else if let Some(first) = owner.get(tenant.as_str()) {
                c.error(
                    &tenant_path,
                    format!("tenant \"{tenant}\" already belongs to a workspace (at {first})"),
                );
            } else {
                owner.insert(tenant, tenant_path);
            }
        }
    }
}
