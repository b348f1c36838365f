//! Reading the schema (types, enumerations) and describing values and expectations in
//! error messages.

use serde_json::Value;

use crate::suggest;

/// The allowed strings when the schema is an enumeration of constants.
pub(super) fn enumeration(schema: &Value) -> Option<Vec<&str>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.iter().map(Value::as_str).collect();
    }
    let branches = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))?
        .as_array()?;
    branches
        .iter()
        .map(|branch| match branch.get("const") {
            Some(constant) => constant.as_str(),
            None => branch
                .get("enum")
                .and_then(Value::as_array)
                .filter(|values| values.len() == 1)
                .and_then(|values| values[0].as_str()),
        })
        .collect()
}

pub(super) fn types_of(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(single)) => vec![single.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn matches_type(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => true,
    }
}

pub(super) fn expected(types: &[&str]) -> String {
    let names: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null" || types.len() == 1)
        .map(|t| match *t {
            "object" => "a map",
            "array" => "a list",
            "string" => "a string",
            "boolean" => "true or false",
            "null" => "nothing",
            "number" => "a number",
            "integer" => "a whole number",
            other => other,
        })
        .collect();
    names.join(" or ")
}

/// How a found value is named in errors.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_string(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string \"{}\"", shorten(s)),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a map".to_string(),
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(MAX).collect::<String>())
    }
}

/// Whole bounds print without a fraction (`1`, not `1.0`).
pub(super) fn bound(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

pub(super) fn unknown_field(
    key: &str,
    properties: Option<&serde_json::Map<String, Value>>,
) -> String {
    let names: Vec<&str> = properties
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    match suggest::closest(key, names.iter().copied()) {
        Some(name) => format!("unknown field, did you mean \"{name}\"?"),
        None if names.is_empty() => "unknown field".to_string(),
        None => format!("unknown field (expected one of: {})", names.join(", ")),
    }
}
