//! The canonical forms of a document: the JSON that is hashed, stored by the control plane and
//! sent to data planes, and the YAML shown to people.
//!
//! Canonical JSON is compact with the keys of every object sorted, so that two documents that
//! are equal as values have the same text and hash, whatever the key order of the file (or of
//! free-form values such as plugin settings) was. Defaults left implicit stay implicit: a file
//! that spells out `transport: http` and one that omits it differ only where the model
//! normalizes (non-optional fields are always written).

use sha2::{Digest, Sha256};

use crate::model::Document;

impl Document {
    /// Canonical JSON form: what is hashed, stored and sent to data planes.
    pub fn canonical_json(&self) -> String {
        let value = serde_json::to_value(self).expect("config model serializes");
        serde_json::to_string(&sorted(value)).expect("JSON values serialize")
    }

    /// Hex SHA-256 of [`Document::canonical_json`].
    pub fn content_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// YAML for people to read (sections in the model's order).
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("config model serializes")
    }

    /// Pretty JSON for people to read (sections in the model's order).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("config model serializes")
    }
}

/// The value with the keys of every object in sorted order.
pub(crate) fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, sorted(value)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_change_the_canonical_form() {
        let a = Document::from_text(
            "plugins:\n- name: p\n  path: plugins/p\n  hooks: [before:request]\n  config: {b: 1, a: {y: 2, x: 3}}\n",
        )
        .unwrap();
        let b = Document::from_text(
            "plugins:\n- hooks: [before:request]\n  path: plugins/p\n  config: {a: {x: 3, y: 2}, b: 1}\n  name: p\n",
        )
        .unwrap();
        assert_eq!(a.canonical_json(), b.canonical_json());
        assert_eq!(a.content_hash(), b.content_hash());
        assert!(a.canonical_json().contains(r#"{"a":{"x":3,"y":2},"b":1}"#));
    }

    #[test]
    fn hash_is_hex_sha256_of_canonical_json() {
        let doc =
            Document::from_text("servers:\n- id: a\n  url: http://127.0.0.1:1/mcp\n").unwrap();
        let expected = hex::encode(Sha256::digest(doc.canonical_json().as_bytes()));
        assert_eq!(doc.content_hash(), expected);
        assert_eq!(doc.content_hash().len(), 64);
    }
}
