//! The argument fingerprint that binds an approval to one call: lowercase hex SHA-256 of
//! `server + "\n" + tool + "\n" + canonical JSON(arguments)`, where canonical JSON sorts
//! object keys recursively and has no whitespace. Missing (or `null`) arguments count as `{}`.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The fingerprint of a call of `tool` on `server` with `args`.
pub fn fingerprint(server: &str, tool: &str, args: Option<&Value>) -> String {
    let mut text = String::with_capacity(server.len() + tool.len() + 64);
    text.push_str(server);
    text.push('\n');
    text.push_str(tool);
    text.push('\n');
    match args {
        None | Some(Value::Null) => text.push_str("{}"),
        Some(args) => canonical(args, &mut text),
    }
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Canonical JSON text of `value`: object keys sorted (by their UTF-8 bytes) at every level,
/// no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    canonical(value, &mut out);
    out
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_form_sorts_keys_recursively() {
        let value = json!({"b": [ {"y": 1, "x": "é\n"} ], "a": null});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":null,"b":[{"x":"é\n","y":1}]}"#
        );
    }

    #[test]
    fn fingerprint_is_the_documented_digest() {
        let args = json!({"b": 2, "a": 1});
        let expected = hex::encode(Sha256::digest(b"s\nt\n{\"a\":1,\"b\":2}"));
        assert_eq!(fingerprint("s", "t", Some(&args)), expected);
        let reordered = json!({"a": 1, "b": 2});
        assert_eq!(fingerprint("s", "t", Some(&reordered)), expected);
        assert_ne!(fingerprint("s", "u", Some(&args)), expected);
        assert_eq!(
            fingerprint("s", "t", None),
            fingerprint("s", "t", Some(&json!({})))
        );
        assert_eq!(
            fingerprint("s", "t", Some(&Value::Null)),
            fingerprint("s", "t", None)
        );
        assert_eq!(expected.len(), 64);
        assert!(
            expected
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
}
