//! Redaction of sensitive values in audit records, webhook payloads and approval requests,
//! and the string truncation applied before it.
//!
//! Field names: a name is split into words on `_`, `-` and lower→upper camelCase
//! boundaries, lower-cased; it is sensitive when a listed name's words appear in it as a
//! contiguous run (`user_password`, `access_token`, `USER_TOKEN` for `password`/`token`), or
//! when adjacent words of it join into the listed name (`passWord` for `password`); the
//! last word may be a plural (`tokens`, `api_keys`, `passwords`, `credentials`). A listed
//! word inside a longer word does not count (`tokenizer`, `secretary`, `author` and
//! `sessionize` are not sensitive), and `key` alone is not listed. Values of sensitive
//! fields become `"[REDACTED]"`, whatever their type; everything else is copied
//! recursively.
//!
//! Strings: secrets written inline in any string value are replaced too: the userinfo of a
//! URL (`https://user:pass@host/` becomes `https://[REDACTED]@host/`) and the value of a
//! `name=value` pair whose name is sensitive by the rule above (`?token=…&api_key=…`,
//! `--password=…`, `DB_PASSWORD=…`), up to the next whitespace, `&`, `;`, `,`, `#`, quote
//! or bracket. A secret that is only a path segment (`/hooks/T0/B0/xyz`) has no name and
//! is not found.

use std::borrow::Cow;

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
        // Every match contains a listed name's first word; most names contain none, and
        // then nothing is allocated (strings may hold millions of `name=` pairs).
        let candidate = self.names.iter().any(|(sensitive, _)| {
            let first = sensitive[0].as_bytes();
            !first.is_ascii()
                || name
                    .as_bytes()
                    .windows(first.len())
                    .any(|window| window.eq_ignore_ascii_case(first))
        });
        if !candidate {
            return false;
        }
        let field = words(name);
        self.names.iter().any(|(sensitive, joined)| {
            field
                .windows(sensitive.len())
                .any(|run| same_words(run, sensitive))
                || (2..=field.len()).any(|len| {
                    field.windows(len).any(|run| {
                        let run_len = run.iter().map(String::len).sum::<usize>();
                        (joined.len()..=joined.len() + 2).contains(&run_len)
                            && same_or_plural(&run.concat(), joined)
                    })
                })
        })
    }

    /// `text` with the secrets written inline in it replaced (see the module docs): URL
    /// userinfo and the values of sensitive `name=value` pairs. Borrowed when nothing is.
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !text.contains('=') && !text.contains("://") {
            return Cow::Borrowed(text);
        }
        let mut spans = userinfo_spans(text);
        for (equals, _) in text.match_indices('=') {
            let name_start = text[..equals]
                .char_indices()
                .rev()
                .take(MAX_INLINE_NAME + 1)
                .find(|(_, c)| !is_name_char(*c))
                .map_or(0, |(at, c)| at + c.len_utf8());
            let name = &text[name_start..equals];
            if name.is_empty() || name.len() > MAX_INLINE_NAME || !self.is_sensitive(name) {
                continue;
            }
            let value_start = equals + 1;
            let value_end = text[value_start..]
                .find(ends_value)
                .map_or(text.len(), |end| value_start + end);
            if value_end > value_start {
                spans.push((value_start, value_end));
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_unstable();
        let mut redacted = String::with_capacity(text.len());
        let mut copied = 0;
        for (start, end) in spans {
            if end <= copied {
                continue;
            }
            let start = start.max(copied);
            redacted.push_str(&text[copied..start]);
            redacted.push_str(REDACTED);
            copied = end;
        }
        redacted.push_str(&text[copied..]);
        Cow::Owned(redacted)
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
            Value::String(text) => Value::String(self.redact_text(text).into_owned()),
            scalar => scalar.clone(),
        }
    }
}

/// Longest name looked at in an inline `name=value` pair: real parameter names are short,
/// and the bound keeps a string of long runs cheap to scan.
const MAX_INLINE_NAME: usize = 64;

/// Whether the field words `run` are the listed words `listed`, the last one possibly in
/// its plural.
fn same_words(run: &[String], listed: &[String]) -> bool {
    match (run.split_last(), listed.split_last()) {
        (Some((last, rest)), Some((listed_last, listed_rest))) => {
            rest == listed_rest && same_or_plural(last, listed_last)
        }
        _ => false,
    }
}

/// `word` is `listed`, or `listed` with `s` or `es` (`tokens`, `passphrases`, `keys`).
fn same_or_plural(word: &str, listed: &str) -> bool {
    match word.strip_prefix(listed) {
        Some(rest) => matches!(rest, "" | "s" | "es"),
        None => false,
    }
}

/// Characters of a name in `name=value`.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Characters that end an inline value (or a URL's authority).
fn ends_value(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '&' | ';'
                | ','
                | '#'
                | '"'
                | '\''
                | '`'
                | '<'
                | '>'
                | '('
                | ')'
                | '['
                | ']'
                | '{'
                | '}'
        )
}

/// The userinfo of every `scheme://userinfo@host` in `text`, as byte ranges.
fn userinfo_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let separator = from + found;
        let authority = separator + 3;
        let has_scheme = text[..separator]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let end = text[authority..]
            .find(|c: char| matches!(c, '/' | '?') || ends_value(c))
            .map_or(text.len(), |end| authority + end);
        if has_scheme && let Some(at) = text[authority..end].rfind('@').filter(|at| *at > 0) {
            spans.push((authority, authority + at));
        }
        from = end.max(authority);
    }
    spans
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
