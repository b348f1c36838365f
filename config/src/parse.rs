//! Text (YAML or JSON) to a JSON value, refusing what a plain parse would silently accept:
//! a key written twice in one map (a plain parse keeps the last one, so a setting would
//! vanish without a word) and non-finite numbers.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{ConfigError, ConfigErrors};
use crate::path;

/// Parse YAML or JSON text; an empty document is an empty map.
pub(crate) fn parse_text(text: &str) -> Result<Value, ConfigErrors> {
    let duplicates = RefCell::new(Vec::new());
    let seed = ValueSeed {
        path: String::new(),
        duplicates: &duplicates,
    };
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let value = if trimmed.starts_with('{') {
        let mut deserializer = serde_json::Deserializer::from_str(trimmed);
        let value = seed
            .deserialize(&mut deserializer)
            .and_then(|value| deserializer.end().map(|()| value));
        value.map_err(|error| ConfigErrors::single("", format!("invalid JSON: {error}")))?
    } else {
        seed.deserialize(yaml_serde::Deserializer::from_str(text))
            .map_err(|error| ConfigErrors::single("", format!("invalid YAML: {error}")))?
    };
    ConfigErrors::check(duplicates.into_inner())?;
    Ok(match value {
        Value::Null => Value::Object(Map::new()),
        other => other,
    })
}

/// Builds a [`Value`], recording keys that appear twice in one map.
struct ValueSeed<'a> {
    path: String,
    duplicates: &'a RefCell<Vec<ConfigError>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{}: not a finite number", self.path)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = ValueSeed {
                path: path::index(&self.path, items.len()),
                duplicates: self.duplicates,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let key_path = path::key(&self.path, &key);
            let seed = ValueSeed {
                path: key_path.clone(),
                duplicates: self.duplicates,
            };
            let value = map.next_value_seed(seed)?;
            if object.insert(key, value).is_some() {
                self.duplicates.borrow_mut().push(ConfigError::new(
                    key_path,
                    "duplicate key: this map already has it",
                ));
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_errors_with_paths() {
        let errors =
            parse_text("servers:\n- id: a\n  id: b\nrouter: {}\nrouter: {}\n").unwrap_err();
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "servers[0].id: duplicate key: this map already has it",
                "router: duplicate key: this map already has it",
            ]
        );
        let errors = parse_text(r#"{"a": {"b": 1, "b": 2}}"#).unwrap_err();
        assert_eq!(errors.0[0].path, "a.b");
    }

    #[test]
    fn parses_yaml_and_json_alike() {
        let yaml = parse_text("a: [1, -2, 1.5, x, null, true]\n").unwrap();
        let json = parse_text(r#"{"a": [1, -2, 1.5, "x", null, true]}"#).unwrap();
        assert_eq!(yaml, json);
        assert_eq!(parse_text("").unwrap(), serde_json::json!({}));
        assert_eq!(
            parse_text("# only a comment\n").unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        let errors = parse_text("a: .nan\n").unwrap_err();
        assert!(
            errors.to_string().contains("a: not a finite number"),
            "{errors}"
        );
    }

    #[test]
    fn trailing_json_is_refused() {
        assert!(parse_text(r#"{"a": 1} x"#).is_err());
    }
}
