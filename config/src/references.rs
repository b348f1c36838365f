//! `${env:NAME}` and `${file:PATH}` references in string values.
//!
//! Any string value may be, or contain, references: `Bearer ${env:API_TOKEN}`. They are
//! resolved only on the data plane ([`crate::Document::resolve_references`]), so secrets
//! never pass through the control plane or conduitctl. Rules:
//! - `NAME` is an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
//! - `PATH` is a file path on the data plane (relative paths are relative to its working
//!   directory); the file's content is used with one trailing newline removed.
//! - `$${` is a literal `${` (so `$${env:X}` stays the text `${env:X}`). A `$` anywhere else is
//!   a plain character.
//! - Anything else starting with `${` (`${env:}`, `${foo:x}`, `${NAME}`, no closing `}`) is an
//!   error.
//! - References are only allowed in string fields; numbers, booleans and enumeration values
//!   are checked as written.
//!
//! What a reference may read is the resolver's decision (the data plane allows only the
//! directories and variable names its operator lists); errors name the reference, never
//! its value (see [`crate::Provenance`]).

/// Where `${env:NAME}` and `${file:PATH}` references get their values.
pub trait ReferenceResolver {
    /// The value of environment variable `name`, if set.
    fn env(&self, name: &str) -> Option<String>;
    /// The content of the file at `path`. The error's text is shown with the path, so it
    /// must not hold any of the file's content.
    fn file(&self, path: &str) -> std::io::Result<String>;
    /// Why `${env:name}` may not be read, when it may not (default: any name may).
    fn refuse_env(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Resolves references from the process environment and the local file system, with no
/// restriction: for tools and tests. The data plane uses its own, restricted resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessResolver;

impl ReferenceResolver for ProcessResolver {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn file(&self, path: &str) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// One piece of a string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text used as it is (with `$${` already turned into `${`).
    Literal(String),
    /// `${env:NAME}`.
    Env(String),
    /// `${file:PATH}`.
    File(String),
}

/// Split a string value into literal text and references.
pub fn parse(text: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            literal.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(format!(
                    "unterminated reference `{tail}`: close it with `}}`, or write `$${{` for a literal `${{`"
                ));
            };
            let reference = reference(&after[..end])?;
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(reference);
            rest = &after[end + 1..];
        } else {
            literal.push('$');
            rest = &tail[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

fn reference(inner: &str) -> Result<Segment, String> {
    let Some((source, argument)) = inner.split_once(':') else {
        return Err(format!(
            "`${{{inner}}}` is not a reference: write `${{env:{inner}}}` for an environment variable, `${{file:PATH}}` for a file, or `$${{` for a literal `${{`"
        ));
    };
    match source {
        "env" if argument.is_empty() => {
            Err("empty environment variable name in `${env:}`".to_string())
        }
        "env" if !is_env_name(argument) => Err(format!(
            "`{argument}` in `${{env:{argument}}}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"
        )),
        "env" => Ok(Segment::Env(argument.to_string())),
        "file" if argument.is_empty() => Err("empty file path in `${file:}`".to_string()),
        "file" => Ok(Segment::File(argument.to_string())),
        other => Err(format!(
            "unknown reference source `{other}` in `${{{inner}}}`{}: references are `${{env:NAME}}` and `${{file:PATH}}`",
            crate::suggest::hint(other, ["env", "file"])
        )),
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether the string holds at least one reference (`$${` escapes do not count). Malformed
/// text counts as a reference, so that format checks are not run on it: its syntax error is
/// reported on its own.
pub fn contains_reference(text: &str) -> bool {
    match parse(text) {
        Ok(segments) => segments
            .iter()
            .any(|segment| !matches!(segment, Segment::Literal(_))),
        Err(_) => true,
    }
}

/// Resolve the references of one string; every failing reference is reported.
pub fn resolve_str(text: &str, resolver: &dyn ReferenceResolver) -> Result<String, Vec<String>> {
    resolve_parts(text, resolver).map(|(resolved, _)| resolved)
}

/// [`resolve_str`], also returning the value of each reference on its own.
fn resolve_parts(
    text: &str,
    resolver: &dyn ReferenceResolver,
) -> Result<(String, Vec<String>), Vec<String>> {
    let segments = parse(text).map_err(|error| vec![error])?;
    let mut out = String::new();
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for segment in segments {
        match segment {
            Segment::Literal(literal) => out.push_str(&literal),
            Segment::Env(name) => match resolver.refuse_env(&name) {
                Some(reason) => errors.push(format!("`${{env:{name}}}` is not allowed: {reason}")),
                None => match resolver.env(&name) {
                    Some(value) => {
                        out.push_str(&value);
                        values.push(value);
                    }
                    None => errors.push(format!("environment variable {name} is not set")),
                },
            },
            Segment::File(path) => match resolver.file(&path) {
                Ok(content) => {
                    let content = trim_one_newline(&content);
                    out.push_str(content);
                    values.push(content.to_owned());
                }
                Err(error) => errors.push(format!(
                    "cannot read file {path}: {}",
                    describe_io_error(&error)
                )),
            },
        }
    }
    if errors.is_empty() {
        Ok((out, values))
    } else {
        Err(errors)
    }
}

/// Replace every reference in every string of `value`, collecting failures with their paths
/// and noting in `provenance` where each resolved value came from.
pub(crate) fn resolve_value(
    value: &mut serde_json::Value,
    resolver: &dyn ReferenceResolver,
    path: &str,
    errors: &mut Vec<crate::ConfigError>,
    provenance: &mut crate::Provenance,
) {
    match value {
        serde_json::Value::String(text) => match resolve_parts(text, resolver) {
            Ok((resolved, values)) => {
                if contains_reference(text) {
                    provenance.record(path, text, &resolved, values);
                }
                *text = resolved;
            }
            Err(messages) => errors.extend(
                messages
                    .into_iter()
                    .map(|message| crate::ConfigError::new(path, message)),
            ),
        },
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                let path = crate::path::index(path, index);
                resolve_value(item, resolver, &path, errors, provenance);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let path = crate::path::key(path, key);
                resolve_value(item, resolver, &path, errors, provenance);
            }
        }
        _ => {}
    }
}

fn trim_one_newline(content: &str) -> &str {
    content
        .strip_suffix("\r\n")
        .or_else(|| content.strip_suffix('\n'))
        .unwrap_or(content)
}

/// The OS message without the "(os error N)" suffix.
fn describe_io_error(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
#[path = "references_tests.rs"]
mod tests;
