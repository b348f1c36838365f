//! Text (YAML or JSON) to a JSON value, refusing what a plain parse would silently accept:
//! a key written twice in one map (a plain parse keeps the last one, so a setting would
//! vanish without a word), non-finite numbers, and YAML anchors and aliases (which can make
//! a small document expand into gigabytes; see `yaml_guard`).
//!
//! Parsing is CPU work proportional to the text: the servers call it off their async
//! threads (`tokio::task::spawn_blocking`).

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{ConfigError, ConfigErrors};
use crate::path;

/// Parse YAML or JSON text; an empty document is an empty map.
pub(crate) fn parse_text(text: &str) -> Result<Value, ConfigErrors> {
    let duplicates = RefCell::new(Vec::new());
    let budget = Cell::new(expansion_budget(text));
    let seed = ValueSeed {
        path: String::new(),
        duplicates: &duplicates,
        budget: &budget,
    };
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let value = if trimmed.starts_with('{') {
        let mut deserializer = serde_json::Deserializer::from_str(trimmed);
        let value = seed
            .deserialize(&mut deserializer)
            .and_then(|value| deserializer.end().map(|()| value));
        value.map_err(|error| ConfigErrors::single("", format!("invalid JSON: {error}")))?
    } else {
        if let Some(found) = crate::yaml_guard::find(text) {
            return Err(ConfigErrors::single("", found.message()));
        }
        seed.deserialize(yaml_serde::Deserializer::from_str(text))
            .map_err(|error| ConfigErrors::single("", format!("invalid YAML: {error}")))?
    };
    ConfigErrors::check(duplicates.into_inner())?;
    Ok(match value {
        Value::Null => Value::Object(Map::new()),
        other => other,
    })
}

/// How many values plus string bytes a document of `text` may build. Without aliases every
/// value and every string byte comes from at least a third of a character of the text (`?`
/// alone is a map, a key and a value; an escape like `\L` is two characters for three
/// bytes), so four times the length is never reached by a document the alias guard let
/// through honestly; it stops an alias the guard missed long before memory is at risk.
fn expansion_budget(text: &str) -> usize {
    text.len().saturating_mul(4).saturating_add(4096)
}

/// Builds a [`Value`], recording keys that appear twice in one map.
struct ValueSeed<'a> {
    path: String,
    duplicates: &'a RefCell<Vec<ConfigError>>,
    /// What is left of [`expansion_budget`].
    budget: &'a Cell<usize>,
}

impl ValueSeed<'_> {
    /// Take `cost` from the budget; an error once it is spent.
    fn spend<E: de::Error>(&self, cost: usize) -> Result<(), E> {
        let left = self.budget.get();
        if cost > left {
            return Err(E::custom(
                "the document expands to far more values than its text holds (YAML aliases?)",
            ));
        }
        self.budget.set(left - cost);
        Ok(())
    }

    fn child(&self, path: String) -> ValueSeed<'_> {
        ValueSeed {
            path,
            duplicates: self.duplicates,
            budget: self.budget,
        }
    }
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

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        self.spend::<E>(1)?;
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        self.spend::<E>(1)?;
        Ok(Value::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        self.spend::<E>(1)?;
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        self.spend::<E>(1)?;
        serde_json::Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{}: not a finite number", self.path)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        self.spend::<E>(1 + value.len())?;
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        self.spend::<E>(1 + value.len())?;
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.spend::<E>(1)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.spend::<E>(1)?;
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.spend::<A::Error>(1)?;
        let mut items = Vec::new();
        loop {
            let seed = self.child(path::index(&self.path, items.len()));
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.spend::<A::Error>(1)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.spend::<A::Error>(1 + key.len())?;
            let key_path = path::key(&self.path, &key);
            let seed = self.child(key_path.clone());
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
    fn aliases_are_refused_with_their_line() {
        let errors = parse_text("a: &x [1, 2]\nb: *x\n").unwrap_err();
        assert!(
            errors
                .to_string()
                .starts_with("line 1, column 4: YAML anchor"),
            "{errors}"
        );
    }

    #[test]
    fn nested_aliases_are_refused_before_expansion() {
        let mut text = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for level in 1..9 {
            let previous = format!("*l{}", level - 1);
            let items = [previous.as_str(); 9].join(", ");
            text.push_str(&format!("l{level}: &l{level} [{items}]\n"));
        }
        let errors = parse_text(&text).unwrap_err();
        assert!(errors.to_string().contains("YAML anchor"), "{errors}");
    }

    #[test]
    fn the_budget_stops_an_expansion_the_guard_did_not_see() {
        // Parse past the guard, as an alias it missed would be.
        let text = "a: &x [1, 2, 3, 4, 5, 6, 7, 8]\nb: [*x, *x, *x, *x, *x, *x, *x, *x]\n";
        let duplicates = RefCell::new(Vec::new());
        let budget = Cell::new(text.len());
        let seed = ValueSeed {
            path: String::new(),
            duplicates: &duplicates,
            budget: &budget,
        };
        let error = seed
            .deserialize(yaml_serde::Deserializer::from_str(text))
            .unwrap_err();
        assert!(error.to_string().contains("expands to far more"), "{error}");
        // Without aliases the same budget is enough.
        let plain = "a: [1, 2, 3, 4, 5, 6, 7, 8]\nb: [x, y]\n";
        assert!(parse_text(plain).is_ok());
        let budget = Cell::new(plain.len());
        let seed = ValueSeed {
            path: String::new(),
            duplicates: &duplicates,
            budget: &budget,
        };
        assert!(
            seed.deserialize(yaml_serde::Deserializer::from_str(plain))
                .is_ok()
        );
    }

    #[test]
    fn trailing_json_is_refused() {
        assert!(parse_text(r#"{"a": 1} x"#).is_err());
    }
}
