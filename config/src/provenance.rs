//! Which values of a resolved document came from `${env:}` / `${file:}` references, so
//! that no error about them shows what they resolved to.
//!
//! Errors about a resolved document travel far: a data plane's NACK is stored by the
//! control plane and shown to every principal that may read the fleet status, and it is
//! logged. A secret that is not valid for its field (a token where a URL belongs, a key
//! file that is not a key set) must not come back in the message that says so. Two rules:
//! - an error at a value that held a reference, or inside it, gets a message that names
//!   the reference as written (`Bearer ${file:/run/secrets/token}`) and withholds the
//!   checker's own words, which may quote the value or a piece of it;
//! - any other error has every resolved value it quotes (as is, or escaped as in a quoted
//!   string) replaced by the reference text.
//!
//! Values shorter than [`MIN_SCRUBBED_LEN`] are not scrubbed from other paths' messages:
//! replacing every `a` would make messages unreadable, and such values are not secrets.

use crate::error::{ConfigError, ConfigErrors};
use crate::path;

/// Shortest resolved value scrubbed from messages at paths that held no reference.
pub const MIN_SCRUBBED_LEN: usize = 4;

/// One string value that held at least one reference.
#[derive(Debug, Clone)]
struct Origin {
    /// Its path, like `servers[0].headers.Authorization`.
    path: String,
    /// The value as written, references unresolved (holds no secret).
    written: String,
    /// The value after resolution, then the value of each reference in it.
    resolved: Vec<String>,
}

/// The references of a resolved document. Holds the resolved values, so it is as secret as
/// the resolved document: never send it anywhere.
#[derive(Default, Clone)]
pub struct Provenance {
    origins: Vec<Origin>,
}

impl std::fmt::Debug for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.origins.iter().map(|o| &o.path))
            .finish()
    }
}

impl Provenance {
    /// Note that the value at `path`, written as `written`, resolved to `resolved`.
    /// `parts` are the values of its references on their own (`t0k` of `Bearer t0k`).
    pub(crate) fn record(&mut self, path: &str, written: &str, resolved: &str, parts: Vec<String>) {
        let mut values = vec![resolved.to_owned()];
        values.extend(parts);
        self.origins.push(Origin {
            path: path.to_owned(),
            written: written.to_owned(),
            resolved: values,
        });
    }

    /// How many values came from references.
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// True when no value came from a reference.
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// `errors` with nothing of a resolved value left in them (see the module doc).
    pub fn redact(&self, errors: ConfigErrors) -> ConfigErrors {
        ConfigErrors(errors.0.into_iter().map(|e| self.redact_one(e)).collect())
    }

    fn redact_one(&self, error: ConfigError) -> ConfigError {
        if let Some(origin) = self
            .origins
            .iter()
            .find(|origin| path::within(&error.path, &origin.path))
        {
            return ConfigError::new(
                error.path,
                format!(
                    "the value of `{}` is not valid here (the reason is withheld because it \
                     could show the value; check what the reference resolves to on this data plane)",
                    origin.written
                ),
            );
        }
        let mut message = error.message;
        for origin in &self.origins {
            for value in &origin.resolved {
                message = scrub(&message, value, &origin.written);
            }
        }
        ConfigError::new(error.path, message)
    }
}

/// `message` with `secret` (as is, and escaped the way `{:?}` and JSON quote strings)
/// replaced by `written`.
fn scrub(message: &str, secret: &str, written: &str) -> String {
    if secret.len() < MIN_SCRUBBED_LEN {
        return message.to_owned();
    }
    let debug = format!("{secret:?}");
    let json = serde_json::Value::from(secret).to_string();
    let mut out = message.to_owned();
    for form in [&json[1..json.len() - 1], &debug[1..debug.len() - 1], secret] {
        if form.len() >= MIN_SCRUBBED_LEN && out.contains(form) {
            out = out.replace(form, written);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance() -> Provenance {
        let mut p = Provenance::default();
        p.record(
            "servers[0].url",
            "${file:/run/secrets/url}",
            "sk-live-SECRET\"x",
            vec!["sk-live-SECRET\"x".into()],
        );
        p.record(
            "auth.secret",
            "Bearer ${env:CONDUIT_SECRET_JWT}",
            "Bearer hmac-key",
            vec!["hmac-key".into()],
        );
        p
    }

    #[test]
    fn errors_at_a_referenced_value_name_the_reference_only() {
        let errors = ConfigErrors(vec![
            ConfigError::new("servers[0].url", "invalid URL \"sk-live-SECRET\\\"x\""),
            ConfigError::new("servers[0].url.host", "bad host sk-live"),
        ]);
        for error in provenance().redact(errors).iter() {
            assert!(!error.message.contains("sk-live"), "{error}");
            assert!(
                error.message.contains("${file:/run/secrets/url}"),
                "{error}"
            );
        }
    }

    #[test]
    fn other_errors_have_resolved_values_scrubbed() {
        let errors = ConfigErrors(vec![
            ConfigError::new("servers[1].url", "same URL as sk-live-SECRET\"x"),
            ConfigError::new("auth", "secret \"hmac-key\" and \"sk-live-SECRET\\\"x\""),
            // `servers[01]` is not inside `servers[0]`.
            ConfigError::new("servers[01]", "sk-live-SECRET\"x"),
        ]);
        let redacted = provenance().redact(errors);
        for error in redacted.iter() {
            assert!(
                !error.message.contains("sk-live") && !error.message.contains("hmac-key"),
                "{error}"
            );
        }
        assert_eq!(
            redacted.0[1].message,
            "secret \"Bearer ${env:CONDUIT_SECRET_JWT}\" and \"${file:/run/secrets/url}\""
        );
        // Short values are left alone.
        let mut short = Provenance::default();
        short.record("a", "${env:CONDUIT_SECRET_A}", "abc", vec!["abc".into()]);
        let kept = short.redact(ConfigErrors::single("b", "abc is fine"));
        assert_eq!(kept.0[0].message, "abc is fine");
        assert!(!format!("{short:?}").contains("abc"));
    }
}
