//! `conduitctl diff -f FILE`: the file against the current version, both in canonical form,
//! so formatting, key order and comments never show up as changes. Exit 0 when equal,
//! 1 when different (an answer, not a failure).

use conduit_config::Document;
use conduit_proto::v1::GetConfigRequest;
use similar::TextDiff;
use tonic::Code;

use crate::cli::{ConnectionArgs, FileArgs};
use crate::client::{CALL_TIMEOUT, Session};
use crate::exit::{CliError, Exit};
use crate::output::yaml_of_json;
use crate::validate;

/// One side of the comparison, in the form that is compared and in the form that is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    pub label: String,
    /// Canonical JSON as a value (key order preserved), `null` for "no version yet".
    pub canonical: serde_json::Value,
    pub yaml: String,
}

impl Side {
    pub fn of_document(label: String, document: &Document) -> Self {
        Self {
            label,
            canonical: canonical_value(&document.canonical_json()),
            yaml: document.to_yaml(),
        }
    }

    /// A stored version. A document this conduitctl cannot read (written by a newer control
    /// plane) is still compared and shown, from its JSON.
    pub fn of_stored(label: String, config_json: &str) -> Result<Self, CliError> {
        if let Ok(document) = Document::from_text(config_json) {
            return Ok(Self::of_document(label, &document));
        }
        let value: serde_json::Value = serde_json::from_str(config_json).map_err(|error| {
            CliError::new(
                Exit::ServerError,
                format!("error: control plane sent a config that is not JSON: {error}"),
            )
        })?;
        Ok(Self {
            label,
            yaml: yaml_of_json(&value),
            canonical: value,
        })
    }

    pub fn empty() -> Self {
        Self {
            label: "no version".to_string(),
            canonical: serde_json::Value::Null,
            yaml: String::new(),
        }
    }
}

fn canonical_value(json: &str) -> serde_json::Value {
    serde_json::from_str(json).expect("canonical JSON of a document is JSON")
}

/// The unified diff from `current` to `new`, `None` when they are the same config.
pub fn unified(current: &Side, new: &Side) -> Option<String> {
    if current.canonical == new.canonical {
        return None;
    }
    let diff = TextDiff::from_lines(&current.yaml, &new.yaml);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header(&current.label, &new.label)
            .to_string(),
    )
}

pub async fn run(connection: &ConnectionArgs, args: &FileArgs) -> Result<Exit, CliError> {
    let local = validate::load(&args.file)?;
    let session = Session::connect(connection).await?;
    let request = GetConfigRequest { version: 0 };
    let current = match session
        .call_status(CALL_TIMEOUT, session.admin.clone().get_config(request))
        .await?
    {
        Ok(stored) if stored.version == 0 => Side::empty(),
        Ok(stored) => Side::of_stored(format!("version {}", stored.version), &stored.config_json)?,
        // A control plane that has never stored a config answers NOT_FOUND.
        Err(status) if status.code() == Code::NotFound => Side::empty(),
        Err(status) => return Err(session.status_error(status)),
    };
    // Compare what the control plane would store: plain API keys as their hashes. A
    // principal below admin reads the stored side masked; then the file is masked alike,
    // so only differences it may see show (and its secrets are not printed either).
    let mut document = local.document;
    conduit_config::hash_plain_api_keys(&mut document);
    let stored_is_masked = current
        .canonical
        .to_string()
        .contains(conduit_config::REDACTED);
    let new = if stored_is_masked {
        let masked = conduit_config::mask_secrets(&document);
        Side {
            label: local.name,
            yaml: yaml_of_json(&masked),
            canonical: masked,
        }
    } else {
        Side::of_document(local.name, &document)
    };
    match unified(&current, &new) {
        Some(diff) => {
            print!("{diff}");
            Ok(Exit::Differences)
        }
        None => {
            println!("no changes");
            Ok(Exit::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(label: &str, json: &str) -> Side {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        Side {
            label: label.into(),
            yaml: yaml_of_json(&value),
            canonical: value,
        }
    }

    #[test]
    fn equal_configs_have_no_diff() {
        let a = side("version 3", r#"{"servers":[{"id":"a","url":"http://a"}]}"#);
        let b = side("c.yaml", r#"{"servers":[{"id":"a","url":"http://a"}]}"#);
        assert_eq!(unified(&a, &b), None);
    }

    #[test]
    fn changed_line_shows_with_headers() {
        let a = side("version 3", r#"{"servers":[{"id":"a","url":"http://a"}]}"#);
        let b = side("c.yaml", r#"{"servers":[{"id":"a","url":"http://b"}]}"#);
        let diff = unified(&a, &b).unwrap();
        assert!(diff.starts_with("--- version 3\n+++ c.yaml\n@@ "), "{diff}");
        assert!(diff.contains("-  url: http://a\n"), "{diff}");
        assert!(diff.contains("+  url: http://b\n"), "{diff}");
    }

    #[test]
    fn against_no_version_everything_is_added() {
        let new = side("c.yaml", r#"{"servers":[]}"#);
        let diff = unified(&Side::empty(), &new).unwrap();
        assert!(diff.starts_with("--- no version\n+++ c.yaml\n"), "{diff}");
        assert!(diff.contains("+servers: []\n"), "{diff}");
    }

    #[test]
    fn stored_json_that_is_not_json_is_a_server_error() {
        let error = Side::of_stored("version 1".into(), "{not json").unwrap_err();
        assert_eq!(error.exit(), Exit::ServerError);
    }
}
