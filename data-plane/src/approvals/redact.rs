//! Redaction of tool arguments before they leave the data plane in an approval request
//! (`observability.redact_fields`, reference §2.13). A field name is cut into segments on
//! `_`, `-` and lower-to-upper camelCase boundaries, lower-cased; it is sensitive when a run
//! of adjacent segments spells a sensitive name (its own segments joined): `user_password`,
//! `passWord`, `API-Key` match; `tokenizer`, `passwords` do not.
//!
//! Stand-in until `conduit_policy::redact` exists; same rules, so it can simply be replaced.

use serde_json::Value;

/// What replaces a sensitive value.
pub const REDACTED: &str = "[REDACTED]";

/// Compiled list of sensitive names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    /// Each name's segments joined, lower-case.
    names: Vec<String>,
}

impl Redactor {
    pub fn new<S: AsRef<str>>(fields: &[S]) -> Redactor {
        Redactor {
            names: fields
                .iter()
                .map(|field| segments(field.as_ref()).concat())
                .filter(|name| !name.is_empty())
                .collect(),
        }
    }

    /// A copy of `value` with every sensitive field's value replaced, recursively.
    pub fn redact(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, value)| {
                        let value = if self.is_sensitive(key) {
                            Value::String(REDACTED.to_owned())
                        } else {
                            self.redact(value)
                        };
                        (key.clone(), value)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.redact(v)).collect()),
            other => other.clone(),
        }
    }

    fn is_sensitive(&self, field: &str) -> bool {
        let parts = segments(field);
        self.names.iter().any(|name| {
            (0..parts.len()).any(|start| {
                let mut joined = String::new();
                parts[start..].iter().any(|part| {
                    joined.push_str(part);
                    joined == *name
                })
            })
        })
    }
}

/// `userAPIKey` → `user`, `apikey`; `access-token_v2` → `access`, `token`, `v2`.
fn segments(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for ch in name.chars() {
        if ch == '_' || ch == '-' {
            if !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if ch.is_uppercase() && previous_lower && !current.is_empty() {
            parts.push(std::mem::take(&mut current));
        }
        previous_lower = ch.is_lowercase() || ch.is_ascii_digit();
        current.extend(ch.to_lowercase());
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn redacts_by_segments_recursively() {
        let redactor = Redactor::new(conduit_config::DEFAULT_REDACT_FIELDS);
        let args = json!({
            "user_password": "a", "passWord": "b", "USER_TOKEN": "c", "access-token": "d",
            "apiKey": "e", "api_key": "f",
            "tokenizer": "keep", "passwords": "keep", "path": "/x",
            "nested": [{"secret": {"deep": 1}, "name": "n"}]
        });
        let redacted = redactor.redact(&args);
        for field in [
            "user_password",
            "passWord",
            "USER_TOKEN",
            "access-token",
            "apiKey",
            "api_key",
        ] {
            assert_eq!(redacted[field], REDACTED, "{field}");
        }
        for field in ["tokenizer", "passwords", "path"] {
            assert_eq!(redacted[field], args[field], "{field}");
        }
        assert_eq!(redacted["nested"][0]["secret"], REDACTED);
        assert_eq!(redacted["nested"][0]["name"], "n");
    }
}
