//! Structural checks: the parsed document (a JSON value) walked against the JSON Schema that
//! `schemars` derives from the model, so that every unknown field, wrong type, bad enumeration
//! value, missing field and out-of-range number is reported at once with its path, before the
//! typed document is built. (Deserializing with serde alone would stop at the first error.)
//!
//! The walker understands the subset of JSON Schema that `schemars` emits for the model:
//! `$ref`, `type`, `properties`, `additionalProperties`, `required`, `items`, `enum`, `const`,
//! `oneOf`/`anyOf`, `minimum`/`maximum`, `minLength`, `minItems`, `pattern` and integer
//! `format`s.

mod describe;

use std::sync::OnceLock;

use serde_json::Value;

use crate::error::ConfigError;
use crate::references;
use crate::validate::Mode;
use crate::{path, superseded};
use describe::{bound, describe, enumeration, expected, matches_type, types_of, unknown_field};

/// The JSON Schema (draft 2020-12) of the document, for editors and `conduitctl`.
pub fn json_schema() -> Value {
    schema().clone()
}

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut schema = schemars::schema_for!(crate::model::Document).to_value();
        if let Value::Object(map) = &mut schema {
            map.insert(
                "description".into(),
                "Conduit gateway configuration (conduitctl apply -f). Any string may hold ${env:NAME} or ${file:PATH} references.".into(),
            );
        }
        schema
    })
}

/// A structural error; `fatal` ones keep the typed document from being built.
pub(crate) struct StructuralError {
    pub(crate) error: ConfigError,
    pub(crate) fatal: bool,
}

/// What the structural check found.
pub(crate) struct Checked {
    pub(crate) errors: Vec<StructuralError>,
    /// Paths whose semantic errors must not be reported: an optional field with a broken
    /// value was removed there, so the rest of that object is checked without it and could
    /// draw complaints that only the removal caused.
    pub(crate) hidden: Vec<String>,
}

/// Check `value` against the schema. Unknown and refused fields are removed from `value` (they
/// are reported, not fatal), and so is an optional field whose value is broken, so the
/// semantic checks can still run on the rest and every problem is reported at once.
pub(crate) fn check(value: &mut Value, mode: Mode) -> Checked {
    let mut walker = Walker {
        root: schema(),
        mode,
        errors: Vec::new(),
        hidden: Vec::new(),
        prune: true,
    };
    walker.walk(walker.root, value, "");
    Checked {
        errors: walker.errors,
        hidden: walker.hidden,
    }
}

struct Walker<'s> {
    root: &'s Value,
    mode: Mode,
    errors: Vec<StructuralError>,
    hidden: Vec<String>,
    /// Whether broken optional fields are removed from the value (not when trying one of
    /// several alternatives on a copy).
    prune: bool,
}

impl<'s> Walker<'s> {
    fn error(&mut self, path: &str, message: impl Into<String>, fatal: bool) {
        self.errors.push(StructuralError {
            error: ConfigError::new(path, message),
            fatal,
        });
    }

    fn resolve(&self, schema: &'s Value) -> &'s Value {
        let mut schema = schema;
        while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let pointer = reference.trim_start_matches('#');
            match self.root.pointer(pointer) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn walk(&mut self, schema: &'s Value, value: &mut Value, at: &str) {
        let schema = self.resolve(schema);
        let Some(object) = schema.as_object() else {
            // `true` accepts anything (free-form values); `false` nothing.
            if schema == &Value::Bool(false) {
                self.error(at, "no value is allowed here", true);
            } else {
                self.check_strings_in(value, at);
            }
            return;
        };
        if let Some(allowed) = enumeration(schema) {
            self.check_enum(&allowed, value, at);
            return;
        }
        if let Some(branches) = object
            .get("anyOf")
            .or_else(|| object.get("oneOf"))
            .and_then(Value::as_array)
        {
            self.walk_alternatives(branches, value, at);
            return;
        }
        let types = types_of(schema);
        if types.is_empty() && !object.contains_key("properties") {
            // A free-form value (plugin settings, condition operands).
            self.check_strings_in(value, at);
            return;
        }
        if !types.is_empty() && !types.iter().any(|t| matches_type(t, value)) {
            let message = format!("expected {}, found {}", expected(&types), describe(value));
            self.error(at, message, true);
            return;
        }
        match value {
            Value::Object(_) => self.walk_object(schema, value, at),
            Value::Array(items) => {
                if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                    && (items.len() as u64) < min
                {
                    self.error(at, format!("must have at least {min} element(s)"), false);
                }
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter_mut().enumerate() {
                        self.walk(item_schema, item, &path::index(at, index));
                    }
                }
            }
            Value::String(text) => self.check_string(schema, text, at),
            Value::Number(_) => self.check_number(schema, value, at),
            _ => {}
        }
    }

    fn walk_alternatives(&mut self, branches: &'s [Value], value: &mut Value, at: &str) {
        let non_null: Vec<&'s Value> = branches
            .iter()
            .filter(|branch| self.resolve(branch).get("type") != Some(&Value::from("null")))
            .collect();
        if value.is_null() && non_null.len() < branches.len() {
            return;
        }
        if let [only] = non_null.as_slice() {
            self.walk(only, value, at);
            return;
        }
        // Several real alternatives: use the first that accepts the value, else report the
        // errors of the first whose type fits.
        let mut fallback = None;
        for branch in &non_null {
            let mut trial = value.clone();
            let mut sub = Walker {
                root: self.root,
                mode: self.mode,
                errors: Vec::new(),
                hidden: Vec::new(),
                prune: false,
            };
            sub.walk(branch, &mut trial, at);
            if sub.errors.is_empty() {
                *value = trial;
                return;
            }
            let type_fits = types_of(self.resolve(branch))
                .iter()
                .any(|t| matches_type(t, value));
            if fallback.is_none() && type_fits {
                fallback = Some(sub.errors);
            }
        }
        match fallback {
            Some(errors) => self.errors.extend(errors),
            None => self.error(at, format!("unexpected {}", describe(value)), true),
        }
    }

    fn walk_object(&mut self, schema: &'s Value, value: &mut Value, at: &str) {
        let Value::Object(map) = value else { return };
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut refused = Vec::new();
        for (key, item) in map.iter_mut() {
            let child = path::key(at, key);
            if let Some(property) = properties.and_then(|p| p.get(key)) {
                let first_new = self.errors.len();
                self.walk(property, item, &child);
                if !required.contains(&key.as_str()) && self.prune_broken(first_new, at, key) {
                    refused.push(key.clone());
                }
                continue;
            }
            match additional {
                Some(Value::Bool(false)) => {
                    let message = match superseded::field(at, key) {
                        Some(message) => message.to_string(),
                        None => unknown_field(key, properties),
                    };
                    self.error(&child, message, false);
                    refused.push(key.clone());
                }
                Some(extra) => self.walk(extra, item, &child),
                None => self.check_strings_in(item, &child),
            }
        }
        for key in refused {
            map.shift_remove(&key);
        }
        for name in required {
            if !map.contains_key(name) {
                self.error(&path::key(at, name), "missing required field", true);
            }
        }
    }

    /// After walking the optional field `key` of the object at `at`: if that produced fatal
    /// errors, keep them as reported-but-not-fatal, hide the semantic errors of the enclosing
    /// object, and return true so the caller removes the field. `servers` is never removed:
    /// other sections refer to servers by id and would draw errors that are not theirs.
    fn prune_broken(&mut self, first_new: usize, at: &str, key: &str) -> bool {
        let new_errors = &mut self.errors[first_new..];
        if !self.prune || !new_errors.iter().any(|error| error.fatal) {
            return false;
        }
        if at.is_empty() && key == "servers" {
            return false;
        }
        for error in new_errors {
            error.fatal = false;
        }
        let hidden = if at.is_empty() {
            key.to_owned()
        } else {
            at.to_owned()
        };
        self.hidden.push(hidden);
        true
    }

    fn check_enum(&mut self, allowed: &[&str], value: &Value, at: &str) {
        let Some(text) = value.as_str() else {
            let message = format!(
                "expected one of {}, found {}",
                allowed.join(", "),
                describe(value)
            );
            self.error(at, message, true);
            return;
        };
        if allowed.contains(&text) {
            return;
        }
        let message = match superseded::value(at, text) {
            Some(message) => message.to_string(),
            None => format!(
                "unknown value \"{text}\"{} (expected one of: {})",
                crate::suggest::hint(text, allowed.iter().copied()),
                allowed.join(", ")
            ),
        };
        self.error(at, message, true);
    }

    fn check_string(&mut self, schema: &Value, text: &str, at: &str) {
        let has_reference = self.check_references(text, at);
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && (text.chars().count() as u64) < min
        {
            self.error(at, "must not be empty", false);
        }
        if has_reference {
            return;
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && !regex::Regex::new(pattern).is_ok_and(|re| re.is_match(text))
        {
            let message = format!("\"{text}\" does not match {pattern}");
            self.error(at, message, false);
        }
    }

    /// Report malformed references (unresolved documents only); true when `text` holds one.
    fn check_references(&mut self, text: &str, at: &str) -> bool {
        if self.mode == Mode::Resolved {
            return false;
        }
        if let Err(message) = references::parse(text) {
            self.error(at, message, false);
        }
        references::contains_reference(text)
    }

    /// Reference syntax inside free-form values (plugin settings, condition operands).
    fn check_strings_in(&mut self, value: &Value, at: &str) {
        match value {
            Value::String(text) => {
                self.check_references(text, at);
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.check_strings_in(item, &path::index(at, index));
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    self.check_strings_in(item, &path::key(at, key));
                }
            }
            _ => {}
        }
    }

    fn check_number(&mut self, schema: &Value, value: &Value, at: &str) {
        let Some(number) = value.as_f64() else { return };
        // Bounds of the Rust type: violating them keeps the typed document from being built.
        let type_max = match schema.get("format").and_then(Value::as_str) {
            Some("uint8") => Some(f64::from(u8::MAX)),
            Some("uint16") => Some(f64::from(u16::MAX)),
            Some("uint32") => Some(f64::from(u32::MAX)),
            _ => None,
        };
        let unsigned = schema
            .get("format")
            .and_then(Value::as_str)
            .is_some_and(|format| format.starts_with("uint"));
        if unsigned && number < 0.0 {
            self.error(at, "must not be negative", true);
            return;
        }
        if let Some(max) = type_max
            && number > max
        {
            self.error(at, format!("must be at most {}", bound(max)), true);
            return;
        }
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            self.error(at, format!("must be at least {}", bound(min)), false);
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            self.error(at, format!("must be at most {}", bound(max)), false);
        }
    }
}

#[cfg(test)]
mod tests;
