//! Redaction of sensitive argument values in audit records and webhook payloads, and the
//! string truncation applied before it. A field name is split into words on `_`, `-` and
//! lower→upper camelCase boundaries, lower-cased; it is sensitive when a listed name's words
//! appear in it as a contiguous run (`user_password`, `access_token`, `USER_TOKEN` for
//! `password`/`token`), or when adjacent words of it join into the listed name (`passWord`
//! for `password`). `tokenizer` and `passwords` are not sensitive. Values of sensitive
//! fields become `"[REDACTED]"`, whatever their type; everything else is copied recursively.

use serde_json::{Map, Value};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// A compiled redaction list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    /// Per listed name: its words, and the words joined.
    names: Vec<(Vec<String>, String)>,
}

impl Redactor {
    /// Compile a list of sensitive names (like `observability.redact_fields`).
    pub fn new<S: AsRef<str>>(fields: &[S]) -> Redactor {
        Redactor {
            names: fields
                .iter()
                .map(|field| words(field.as_ref()))
                .filter(|words| !words.is_empty())
                .map(|words| {
                    let joined = words.concat();
                    (words, joined)
                })
                .collect(),
        }
    }

    /// The redaction list of a document: `observability.redact_fields`, or its default.
    pub fn for_document(document: &conduit_config::Document) -> Redactor {
        match &document.observability {
            Some(observability) => Redactor::new(&observability.redact_fields()),
            None => Redactor::new(conduit_config::model::DEFAULT_REDACT_FIELDS),
        }
    }

    /// Whether values of the field `name` are redacted.
    pub fn is_sensitive(&self, name: &str) -> bool {
        let field = words(name);
        self.names.iter().any(|(sensitive, joined)| {
            field
                .windows(sensitive.len())
                .any(|run| run == sensitive.as_slice())
                || (2..=field.len()).any(|len| {
                    field.windows(len).any(|run| {
                        run.iter().map(String::len).sum::<usize>() == joined.len()
                            && run.concat() == *joined
                    })
                })
        })
    }

    /// A copy of `value` with sensitive fields redacted, at any depth.
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
                    .collect::<Map<_, _>>(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.redact(v)).collect()),
            scalar => scalar.clone(),
        }
    }
}

/// A copy of `value` with sensitive fields of `fields` redacted.
pub fn redact<S: AsRef<str>>(value: &Value, fields: &[S]) -> Value {
    Redactor::new(fields).redact(value)
}

/// A copy of `value` with every string longer than `max_chars` characters cut to that
/// length, followed by `…[N characters truncated]`.
pub fn truncate_strings(value: &Value, max_chars: usize) -> Value {
    match value {
        Value::String(text) => match text.char_indices().nth(max_chars) {
            Some((cut, _)) => {
                let dropped = text[cut..].chars().count();
                Value::String(format!("{}…[{dropped} characters truncated]", &text[..cut]))
            }
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| truncate_strings(item, max_chars))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), truncate_strings(value, max_chars)))
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}

/// The lower-cased words of a name.
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
