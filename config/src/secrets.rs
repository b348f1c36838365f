//! [`mask_secrets`]: the document as JSON with every secret replaced by `[REDACTED]`, for the
//! data plane's `/config_dump` and anything else that shows a (possibly resolved) document.
//!
//! What counts as a secret:
//! - API keys (`auth.api_keys[].key`, hashed or not) and the JWT shared secret (`auth.secret`);
//! - session token keys (`gateway.session_keys[].key`);
//! - static upstream headers whose name looks sensitive (authorization, token, key, secret,
//!   cookie, password, credential, session, signature, auth);
//! - every `env` value of stdio servers and managed releases;
//! - user info (`user:password@`) of any URL, and query parameters with sensitive names;
//! - guardrail webhook URLs beyond scheme and host (chat webhooks carry their secret in the
//!   path);
//! - plugin settings under sensitive keys, at any depth.
//!
//! A value that still holds a `${env:}` / `${file:}` reference is shown as written: the
//! secret is not in the document, only its name.

use serde_json::Value;

use crate::model::Document;
use crate::references;

/// The replacement of every masked value.
pub const REDACTED: &str = "[REDACTED]";

const SENSITIVE_WORDS: &[&str] = &[
    "authorization",
    "token",
    "key",
    "secret",
    "cookie",
    "password",
    "passwd",
    "credential",
    "session",
    "signature",
    "auth",
];

/// The document as JSON with secrets replaced by [`REDACTED`].
pub fn mask_secrets(document: &Document) -> Value {
    let mut value = serde_json::to_value(document).expect("config model serializes");
    mask_urls(&mut value);
    for server in array_mut(&mut value, "/servers") {
        if let Some(headers) = server.get_mut("headers").and_then(Value::as_object_mut) {
            for (name, header) in headers.iter_mut() {
                if is_sensitive(name) {
                    redact(header);
                }
            }
        }
        redact_all(server.get_mut("env"));
        for release in array_mut(server, "/managed_runtime/releases") {
            redact_all(release.get_mut("env"));
        }
    }
    for key in array_mut(&mut value, "/auth/api_keys") {
        if let Some(key) = key.get_mut("key") {
            redact(key);
        }
    }
    if let Some(secret) = value.pointer_mut("/auth/secret") {
        redact(secret);
    }
    for key in array_mut(&mut value, "/gateway/session_keys") {
        if let Some(key) = key.get_mut("key") {
            redact(key);
        }
    }
    for rule in array_mut(&mut value, "/guardrails/rules") {
        if let Some(Value::String(webhook)) = rule.get_mut("webhook")
            && !references::contains_reference(webhook)
        {
            *webhook = origin_only(webhook);
        }
    }
    for plugin in array_mut(&mut value, "/plugins") {
        if let Some(config) = plugin.get_mut("config") {
            redact_sensitive_keys(config);
        }
    }
    value
}

fn array_mut<'v>(value: &'v mut Value, pointer: &str) -> impl Iterator<Item = &'v mut Value> {
    value
        .pointer_mut(pointer)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Whether a header, parameter or setting name looks like it holds a secret.
pub(crate) fn is_sensitive(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE_WORDS.iter().any(|word| lower.contains(word))
}

fn redact(value: &mut Value) {
    match value {
        Value::String(text) if references::contains_reference(text) => {}
        Value::Null => {}
        other => *other = Value::from(REDACTED),
    }
}

fn redact_all(map: Option<&mut Value>) {
    if let Some(map) = map.and_then(Value::as_object_mut) {
        map.values_mut().for_each(redact);
    }
}

fn redact_sensitive_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if is_sensitive(key) {
                    redact(item);
                } else {
                    redact_sensitive_keys(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_sensitive_keys),
        _ => {}
    }
}

/// Mask the user info and sensitive query parameters of every URL-looking string.
fn mask_urls(value: &mut Value) {
    match value {
        Value::String(text) if text.contains("://") && !references::contains_reference(text) => {
            *text = mask_url(text);
        }
        Value::Array(items) => items.iter_mut().for_each(mask_urls),
        Value::Object(map) => map.values_mut().for_each(mask_urls),
        _ => {}
    }
}

/// `text` with the user info of its URL (`user:password@`) and query parameters with
/// sensitive names replaced by [`REDACTED`], for logging a URL that may carry a credential.
pub fn mask_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let (scheme, rest) = text.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("{REDACTED}{}", &authority[at..]),
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((query, fragment)) => (query, Some(fragment)),
                None => (query, None),
            };
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_sensitive(name) => format!("{name}={REDACTED}"),
                    _ => pair.to_string(),
                })
                .collect();
            let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
            format!("{path}?{}{fragment}", masked.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

/// `https://hooks.example.com/services/T0/B0/xyz` → `https://hooks.example.com/[REDACTED]`.
fn origin_only(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) => {
            let host = url.host_str().unwrap_or_default();
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let has_more = url.path() != "/" || url.query().is_some() || url.fragment().is_some();
            let rest = if has_more {
                format!("/{REDACTED}")
            } else {
                String::new()
            };
            format!("{}://{host}{port}{rest}", url.scheme())
        }
        Err(_) => REDACTED.to_string(),
    }
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
