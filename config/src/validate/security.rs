//! Checks of `auth`, `gateway` (TLS) and `identity`.

use std::collections::BTreeMap;

use super::{Checker, at, nth};
use crate::model::{
    API_KEY_HASH_PREFIX, Auth, AuthMethod, Document, Gateway, HostPattern, OriginPattern,
    SessionKeyConfig,
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
        ("tenant_claim", auth.tenant_claim.is_some()),
        ("client_claim", auth.client_claim.is_some()),
        ("algorithms", !auth.algorithms.is_empty()),
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
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, key) in auth.api_keys.iter().enumerate() {
        let path = at(&nth("auth.api_keys", index), "key");
        if let Some(first) = seen.insert(key.key.as_str(), index) {
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
    for (field, claim) in [
        ("tenant_claim", &auth.tenant_claim),
        ("client_claim", &auth.client_claim),
    ] {
        if claim.as_deref().is_some_and(str::is_empty) {
            c.error(at("auth", field), "must not be empty");
        }
    }
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
