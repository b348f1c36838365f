//! Secrets written literally into a document, rather than as `${env:}` / `${file:}`
//! references that only a data plane resolves.
//!
//! - [`literal_secret_warnings`]: one warning per literal secret (`conduitctl validate` and
//!   `apply` print them; they never make a document invalid: a small setup may want them).
//! - [`hash_plain_api_keys`]: the control plane stores plain API keys as `sha256:<hex>`, which
//!   data planes accept alike, so the literal key never reaches its database, its history or
//!   any principal reading the config.
//!
//! What counts as a secret is the one list in `secrets` that `/config_dump` masks.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ConfigError;
use crate::model::{API_KEY_HASH_PREFIX, Document};
use crate::references::{self, Segment};
use crate::secrets::{for_each_secret, mask_url};

/// Replace every plain API key (`auth.api_keys[].key` without a reference and not already
/// hashed) by `sha256:` and the hex SHA-256 of the key; how many were replaced.
pub fn hash_plain_api_keys(document: &mut Document) -> usize {
    let Some(auth) = document.auth.as_mut() else {
        return 0;
    };
    let mut hashed = 0;
    for key in &mut auth.api_keys {
        if key.key.starts_with(API_KEY_HASH_PREFIX) {
            continue;
        }
        if let Some(literal) = literal_text(&key.key) {
            key.key = format!(
                "{API_KEY_HASH_PREFIX}{}",
                hex::encode(Sha256::digest(literal.as_bytes()))
            );
            hashed += 1;
        }
    }
    hashed
}

/// The text a value stands for when it holds no reference (`$${` is a literal `${`, as the
/// data plane reads it); `None` when it holds one or is malformed.
fn literal_text(text: &str) -> Option<String> {
    let segments = references::parse(text).ok()?;
    let mut literal = String::new();
    for segment in segments {
        match segment {
            Segment::Literal(part) => literal.push_str(&part),
            Segment::Env(_) | Segment::File(_) => return None,
        }
    }
    Some(literal)
}

/// One warning, with its path, for every secret written literally in `document`: API keys
/// not yet hashed, the JWT secret, session token keys, sensitive upstream headers and `env`
/// entries, sensitive plugin settings, and URLs carrying user info or a sensitive query
/// parameter. The value itself is never part of a warning.
pub fn literal_secret_warnings(document: &Document) -> Vec<ConfigError> {
    let mut value = serde_json::to_value(document).expect("config model serializes");
    let mut warnings = Vec::new();
    url_warnings(&value, "", &mut warnings);
    for_each_secret(&mut value, &mut |slot| {
        let Value::String(text) = &*slot.value else {
            return;
        };
        if !slot.surely_secret || text.is_empty() || literal_text(text).is_none() {
            return;
        }
        let message = if slot.path.starts_with("auth.api_keys[") {
            if text.starts_with(API_KEY_HASH_PREFIX) {
                return;
            }
            "plain API key: a control plane stores only its SHA-256, but this file holds the \
             key; write `sha256:<hex of the key's SHA-256>` or a `${env:NAME}` / `${file:PATH}` \
             reference"
        } else {
            "literal secret: whoever reads this file sees it (the control plane masks it for \
             principals below admin); prefer a `${env:NAME}` or `${file:PATH}` reference, \
             resolved on the data plane"
        };
        warnings.push(ConfigError::new(slot.path, message));
    });
    warnings
}

fn url_warnings(value: &Value, path: &str, warnings: &mut Vec<ConfigError>) {
    match value {
        Value::String(text)
            if text.contains("://") && literal_text(text).is_some() && mask_url(text) != *text =>
        {
            warnings.push(ConfigError::new(
                path,
                "literal credential in a URL (user info or a sensitive query parameter): \
                 prefer a `${env:NAME}` or `${file:PATH}` reference for that part",
            ));
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                url_warnings(item, &crate::path::index(path, index), warnings);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                url_warnings(item, &crate::path::key(path, key), warnings);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
servers:
- id: a
  url: http://127.0.0.1:9/mcp
  headers: {Authorization: Bearer up-token, X-Trace: on, X-Api-Key: '${env:UP_KEY}'}
- id: s
  transport: stdio
  command: srv
  env: {DB_PASSWORD: hunter2, LOG_LEVEL: debug}
auth:
  method: api-key
  api_keys:
  - {key: plain-key, client_id: c1}
  - {key: '${env:KEY2}', client_id: c2}
  - {key: 'sha256:8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a', client_id: c3}
  - {key: 'lit$${x}', client_id: c4}
rate_limits:
  backend: redis
  redis_url: redis://:pw@127.0.0.1:6379/0
";

    #[test]
    fn warnings_name_every_literal_secret_and_never_its_value() {
        let document = Document::from_text(DOC).unwrap();
        let warnings = literal_secret_warnings(&document);
        let paths: Vec<&str> = warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "rate_limits.redis_url",
                "servers[0].headers.Authorization",
                "servers[1].env.DB_PASSWORD",
                "auth.api_keys[0].key",
                "auth.api_keys[3].key",
            ],
            "{warnings:?}"
        );
        let text = format!("{warnings:?}");
        for secret in ["up-token", "hunter2", "plain-key", ":pw@"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn plain_keys_are_hashed_as_the_data_plane_hashes_them() {
        let mut document = Document::from_text(DOC).unwrap();
        assert_eq!(hash_plain_api_keys(&mut document), 2);
        let keys: Vec<&str> = document.auth.as_ref().unwrap().api_keys[..]
            .iter()
            .map(|key| key.key.as_str())
            .collect();
        let sha = |text: &str| format!("sha256:{}", hex::encode(Sha256::digest(text)));
        assert_eq!(keys[0], sha("plain-key"));
        assert_eq!(keys[1], "${env:KEY2}");
        assert_eq!(keys[2], sha("k"), "an already hashed key stays");
        assert_eq!(keys[3], sha("lit${x}"), "`$${{` is a literal `${{`");
        document.validate().unwrap();
        assert_eq!(hash_plain_api_keys(&mut document), 0, "idempotent");
        assert!(
            !literal_secret_warnings(&document)
                .iter()
                .any(|w| w.path.starts_with("auth"))
        );
    }
}
