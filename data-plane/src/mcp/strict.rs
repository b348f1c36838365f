//! A JSON value read strictly: a key repeated in any object, at any depth, is an error.
//!
//! `serde_json::Value` keeps the last of repeated keys, while other parsers keep the
//! first or refuse. The arguments of a call are checked by guardrails and approvals and
//! then forwarded as the client wrote them, so the gateway and the server must not read
//! different values from one body: repeated keys inside `params.arguments` are refused.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A [`Value`] in which no object repeats a key.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Strict(pub Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Strict::deserialize(deserializer).map(|strict| strict.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.contains_key(&key) {
                // The key itself is the caller's: only its length is told.
                return Err(de::Error::custom(format_args!(
                    "an object inside params.arguments repeats a key ({} bytes long)",
                    key.len()
                )));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn strict(text: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str::<Strict>(text).map(|strict| strict.0)
    }

    #[test]
    fn reads_what_serde_json_reads_when_no_key_repeats() {
        let text = r#"{"a":[1,-2,3.5,"x",null,true,{"b":{"c":[]}}],"d\u0065":{}}"#;
        assert_eq!(
            strict(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert_eq!(strict("7").unwrap(), json!(7));
        // Equal keys in different objects are fine.
        assert!(strict(r#"{"a":{"a":1},"b":{"a":2}}"#).is_ok());
    }

    #[test]
    fn a_repeated_key_at_any_depth_is_an_error() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"to":"alice","to":"mallory"}}"#,
            r#"{"x":[{"ok":1},{"y":{"z":1,"z":1}}]}"#,
            // The same key, once escaped: JSON reads both as "to".
            r#"{"x":{"to":"alice","t\u006f":"mallory"}}"#,
        ] {
            let error = strict(text).expect_err(text).to_string();
            assert!(error.contains("repeats a key"), "{text}: {error}");
        }
    }
}
