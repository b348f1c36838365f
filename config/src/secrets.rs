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
use crate::{path, references};

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
    for_each_secret(&mut value, &mut |slot| redact(slot.value));
    for rule in array_mut(&mut value, "/guardrails/rules") {
        if let Some(Value::String(webhook)) = rule.get_mut("webhook")
            && !references::contains_reference(webhook)
        {
            *webhook = origin_only(webhook);
        }
    }
    value
}

/// One value that holds (or may hold) a secret, as [`for_each_secret`] finds it.
pub(crate) struct Slot<'v> {
    /// Its path, as in config errors.
    pub path: String,
    pub value: &'v mut Value,
    /// False for values masked only to be safe (an `env` entry whose name does not look
    /// sensitive): they are not warned about as literal secrets.
    pub surely_secret: bool,
}

/// Call `visit` with every secret-bearing value of the document `value` (the serialized
/// [`Document`]): the one list of what [`mask_secrets`] hides and
/// [`crate::literal_secret_warnings`] warns about. URLs (user info, query parameters) and
/// webhook paths are handled by the callers, since only part of such a string is secret.
pub(crate) fn for_each_secret(value: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    for (index, server) in array_mut(value, "/servers").enumerate() {
        let server_path = path::index("servers", index);
        if let Some(headers) = server.get_mut("headers").and_then(Value::as_object_mut) {
            for (name, header) in headers.iter_mut() {
                if is_sensitive(name) {
                    visit(Slot {
                        path: path::key(&path::key(&server_path, "headers"), name),
                        value: header,
                        surely_secret: true,
                    });
                }
            }
        }
        each_env(
            server.get_mut("env"),
            &path::key(&server_path, "env"),
            visit,
        );
        for (index, release) in array_mut(server, "/managed_runtime/releases").enumerate() {
            let release_path = path::index(
                &path::key(&path::key(&server_path, "managed_runtime"), "releases"),
                index,
            );
            each_env(
                release.get_mut("env"),
                &path::key(&release_path, "env"),
                visit,
            );
        }
    }
    for (index, key) in array_mut(value, "/auth/api_keys").enumerate() {
        if let Some(key) = key.get_mut("key") {
            visit(Slot {
                path: path::key(&path::index("auth.api_keys", index), "key"),
                value: key,
                surely_secret: true,
            });
        }
    }
    if let Some(secret) = value.pointer_mut("/auth/secret") {
        visit(Slot {
            path: "auth.secret".to_owned(),
            value: secret,
            surely_secret: true,
        });
    }
    for (index, key) in array_mut(value, "/gateway/session_keys").enumerate() {
        if let Some(key) = key.get_mut("key") {
            visit(Slot {
                path: path::key(&path::index("gateway.session_keys", index), "key"),
                value: key,
                surely_secret: true,
            });
        }
    }
    for (index, plugin) in array_mut(value, "/plugins").enumerate() {
        if let Some(config) = plugin.get_mut("config") {
            sensitive_keys(
                config,
                &path::key(&path::index("plugins", index), "config"),
                visit,
            );
        }
    }
}

fn each_env(map: Option<&mut Value>, parent: &str, visit: &mut dyn FnMut(Slot<'_>)) {
    if let Some(map) = map.and_then(Value::as_object_mut) {
        for (name, value) in map.iter_mut() {
            visit(Slot {
                path: path::key(parent, name),
                surely_secret: is_sensitive(name),
                value,
            });
        }
    }
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

/// Every value under a sensitive key, at any depth (plugin settings).
fn sensitive_keys(value: &mut Value, parent: &str, visit: &mut dyn FnMut(Slot<'_>)) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let item_path = path::key(parent, key);
                if is_sensitive(key) {
                    visit(Slot {
                        path: item_path,
                        value: item,
                        surely_secret: true,
                    });
                } else {
                    sensitive_keys(item, &item_path, visit);
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                sensitive_keys(item, &path::index(parent, index), visit);
            }
        }
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
