//! Semantic checks of a typed [`Document`]: everything the schema cannot say (references
//! between sections, fields that only apply to some variants, URLs, regular expressions,
//! uniqueness). Every check appends to one list, so all problems are reported together.
//!
//! In [`Mode::Unresolved`] (control plane, conduitctl, and the data plane before resolving)
//! a string holding a `${env:}`/`${file:}` reference skips its format checks: its value is not
//! known yet. [`Mode::Resolved`] runs every check, and reads strings literally.

mod platform;
mod policy;
mod security;
mod servers;
mod traffic;

use std::collections::BTreeMap;

use crate::error::ConfigError;
use crate::model::Document;
use crate::references;

/// Whether references in strings are still to be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// References are syntax-checked; format checks skip strings holding one.
    Unresolved,
    /// Strings are final values.
    Resolved,
}

/// Every semantic problem of the document.
pub(crate) fn document(document: &Document, mode: Mode) -> Vec<ConfigError> {
    let mut checker = Checker {
        mode,
        errors: Vec::new(),
    };
    servers::check(&mut checker, document);
    traffic::check(&mut checker, document);
    security::check(&mut checker, document);
    policy::check(&mut checker, document);
    platform::check(&mut checker, document);
    checker.errors
}

/// Collects errors and holds the shared format checks.
pub(crate) struct Checker {
    mode: Mode,
    errors: Vec<ConfigError>,
}

/// Directories a sandbox or plugin may never live in.
const SYSTEM_DIRS: &[&str] = &[
    "/etc", "/root", "/proc", "/sys", "/dev", "/boot", "/var/log", "/var/run", "/bin", "/sbin",
    "/usr", "/lib",
];

impl Checker {
    pub(crate) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    /// True when the value's format cannot be checked yet.
    pub(crate) fn deferred(&self, value: &str) -> bool {
        self.mode == Mode::Unresolved && references::contains_reference(value)
    }

    /// Report `field` when it is set although it does not apply.
    pub(crate) fn forbid(&mut self, path: String, present: bool, reason: &str) {
        if present {
            self.error(path, format!("not allowed: {reason}"));
        }
    }

    /// Report `field` when it is missing although it is needed.
    pub(crate) fn require(&mut self, path: String, present: bool, reason: &str) {
        if !present {
            self.error(path, format!("required {reason}"));
        }
    }

    /// A URL with one of `schemes`; returns it when it could be checked and is valid.
    pub(crate) fn url(&mut self, path: &str, value: &str, schemes: &[&str]) -> Option<url::Url> {
        if self.deferred(value) {
            return None;
        }
        match url::Url::parse(value) {
            Ok(url) if !schemes.contains(&url.scheme()) => {
                self.error(
                    path,
                    format!(
                        "URL scheme must be {}, found \"{}\"",
                        schemes.join(" or "),
                        url.scheme()
                    ),
                );
                None
            }
            Ok(url) if url.scheme().starts_with("http") && url.host().is_none() => {
                self.error(path, "URL has no host");
                None
            }
            Ok(url) => Some(url),
            Err(error) => {
                self.error(path, format!("invalid URL \"{value}\": {error}"));
                None
            }
        }
    }

    /// A name pattern (`*`, `prefix*` or an exact name).
    pub(crate) fn pattern(&mut self, path: String, pattern: &str) {
        if pattern.is_empty() {
            self.error(path, "empty pattern: use \"*\" to match everything");
        } else if pattern.strip_suffix('*').unwrap_or(pattern).contains('*') {
            self.error(
                path,
                format!("invalid pattern \"{pattern}\": `*` is only allowed at the end"),
            );
        }
    }

    /// Every pattern of a list, which must not be empty when `required`.
    pub(crate) fn patterns(&mut self, path: &str, patterns: &[String], required: bool) {
        if required && patterns.is_empty() {
            self.error(
                path,
                "must list at least one pattern (\"*\" matches everything)",
            );
        }
        for (index, pattern) in patterns.iter().enumerate() {
            self.pattern(crate::path::index(path, index), pattern);
        }
    }

    /// Report values that appear more than once; `items` are (path, value).
    pub(crate) fn unique<'a>(
        &mut self,
        what: &str,
        items: impl IntoIterator<Item = (String, &'a str)>,
    ) {
        let mut seen: BTreeMap<&'a str, String> = BTreeMap::new();
        for (path, value) in items {
            match seen.get(value) {
                Some(first) => {
                    let message = format!("duplicate {what} \"{value}\" (first at {first})");
                    self.error(path, message);
                }
                None => {
                    seen.insert(value, path);
                }
            }
        }
    }

    /// An HTTP header name, and the value unless it is deferred.
    pub(crate) fn header(&mut self, path: String, name: &str, value: Option<&str>) {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            self.error(path, format!("invalid HTTP header name \"{name}\""));
            return;
        }
        if let Some(value) = value
            && !self.deferred(value)
            && http::HeaderValue::from_str(value).is_err()
        {
            self.error(
                path,
                "invalid HTTP header value (control characters or line breaks)",
            );
        }
    }

    /// A directory that must not be a system directory.
    pub(crate) fn safe_dir(&mut self, path: String, dir: &str) {
        if self.deferred(dir) {
            return;
        }
        let trimmed = dir.trim_end_matches('/');
        if trimmed.is_empty() && dir.starts_with('/') {
            self.error(path, "the root directory is not allowed");
            return;
        }
        if let Some(system) = SYSTEM_DIRS
            .iter()
            .find(|system| trimmed == **system || trimmed.starts_with(&format!("{system}/")))
        {
            self.error(path, format!("system directory {system} is not allowed"));
        }
    }

    /// A regular expression (linear-time engine).
    pub(crate) fn regex(&mut self, path: String, pattern: &str) {
        if self.deferred(pattern) {
            return;
        }
        if let Err(error) = crate::model::compile_condition_regex(pattern) {
            self.error(path, format!("invalid regular expression: {error}"));
        }
    }
}

/// `path.key` shorthand.
pub(crate) fn at(parent: &str, key: &str) -> String {
    crate::path::key(parent, key)
}

/// `path[index]` shorthand.
pub(crate) fn nth(parent: &str, index: usize) -> String {
    crate::path::index(parent, index)
}
