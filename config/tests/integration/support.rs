//! Helpers shared by the integration tests.

use std::collections::BTreeMap;

use conduit_config::{ConfigErrors, Document, ReferenceResolver};

/// The errors of a document that must be invalid.
pub fn errors_of(text: &str) -> ConfigErrors {
    match Document::from_text(text) {
        Ok(document) => panic!(
            "expected errors, got a valid document:\n{}",
            document.to_yaml()
        ),
        Err(errors) => errors,
    }
}

/// Assert that `text` is invalid with an error at `path` whose message contains `needle`.
#[track_caller]
pub fn assert_error(text: &str, path: &str, needle: &str) {
    let errors = errors_of(text);
    assert!(
        errors
            .iter()
            .any(|error| error.path == path && error.message.contains(needle)),
        "no error at `{path}` containing `{needle}`; got:\n{errors}"
    );
}

/// Assert that `text` is valid.
#[track_caller]
pub fn assert_valid(text: &str) -> Document {
    Document::from_text(text).unwrap_or_else(|errors| panic!("unexpected errors:\n{errors}"))
}

/// A resolver with fixed variables and files.
#[derive(Default)]
pub struct FakeResolver {
    pub env: BTreeMap<String, String>,
    pub files: BTreeMap<String, String>,
}

impl FakeResolver {
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    pub fn with_file(mut self, path: &str, content: &str) -> Self {
        self.files.insert(path.into(), content.into());
        self
    }
}

impl ReferenceResolver for FakeResolver {
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn file(&self, path: &str) -> std::io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
        })
    }
}

/// One valid HTTP server, to prepend to documents testing other sections.
pub const SERVER: &str = "servers:\n- id: a\n  url: http://127.0.0.1:3001/mcp\n";
