//! The pipeline from text to a validated [`Document`]: parse (YAML or JSON) into a JSON value,
//! check its structure against the schema (all structural errors at once), build the typed
//! document, then run the semantic checks.

use crate::error::{ConfigError, ConfigErrors};
use crate::model::Document;
use crate::provenance::Provenance;
use crate::references::{self, ReferenceResolver};
use crate::validate::{self, Mode};
use crate::{path, schema_check};

impl Document {
    /// Parse YAML or JSON text and validate it; every problem is reported, each with its path.
    ///
    /// References (`${env:NAME}`, `${file:PATH}`) are checked for syntax but not resolved, and
    /// the format checks of a string holding one are left to [`Document::resolve_references`].
    pub fn from_text(text: &str) -> Result<Document, ConfigErrors> {
        let value = crate::parse::parse_text(text)?;
        from_value_in(value, Mode::Unresolved)
    }

    /// Validate a JSON value (for example a document decoded by another tool).
    pub fn from_value(value: serde_json::Value) -> Result<Document, ConfigErrors> {
        from_value_in(value, Mode::Unresolved)
    }

    /// Run the checks of [`Document::from_text`] on a document built in code.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let value = serde_json::to_value(self).expect("config model serializes");
        from_value_in(value, Mode::Unresolved).map(|_| ())
    }

    /// Replace every `${env:NAME}` / `${file:PATH}` reference (data-plane side), collecting
    /// every failure with its path, then validate the result again, now with the format checks
    /// of resolved values. `$${` stands for a literal `${` and becomes `${`.
    ///
    /// The returned document holds secrets: never send it anywhere, and dump it only through
    /// [`crate::mask_secrets`]. Errors never show a resolved value (see [`Provenance`]).
    pub fn resolve_references(
        &self,
        resolver: &dyn ReferenceResolver,
    ) -> Result<Document, ConfigErrors> {
        self.resolve_references_traced(resolver)
            .map(|(document, _)| document)
    }

    /// [`Document::resolve_references`], also returning where the resolved values came from,
    /// to keep them out of the errors of later steps (a data plane compiling the document).
    pub fn resolve_references_traced(
        &self,
        resolver: &dyn ReferenceResolver,
    ) -> Result<(Document, Provenance), ConfigErrors> {
        let mut value = serde_json::to_value(self).expect("config model serializes");
        let mut errors = Vec::new();
        let mut provenance = Provenance::default();
        references::resolve_value(&mut value, resolver, "", &mut errors, &mut provenance);
        ConfigErrors::check(errors)?;
        match from_value_in(value, Mode::Resolved) {
            Ok(document) => Ok((document, provenance)),
            Err(errors) => Err(provenance.redact(errors)),
        }
    }
}

fn from_value_in(mut value: serde_json::Value, mode: Mode) -> Result<Document, ConfigErrors> {
    let checked = schema_check::check(&mut value, mode);
    let fatal = checked.errors.iter().any(|error| error.fatal);
    let mut errors: Vec<ConfigError> = checked
        .errors
        .into_iter()
        .map(|error| error.error)
        .collect();
    if fatal {
        return Err(ConfigErrors(errors));
    }
    // Non-fatal errors (unknown fields and broken optional fields, which were pruned from
    // `value`, bad patterns, numbers out of range) leave a document that can be typed, so the
    // semantic checks still run and the user sees every problem at once.
    let document: Document = match serde_json::from_value(value) {
        Ok(document) => document,
        Err(error) => {
            errors.push(ConfigError::new("", error.to_string()));
            return Err(ConfigErrors(errors));
        }
    };
    errors.extend(
        validate::document(&document, mode)
            .into_iter()
            .filter(|error| {
                !checked
                    .hidden
                    .iter()
                    .any(|hidden| path::within(&error.path, hidden))
            }),
    );
    ConfigErrors::check(errors)?;
    Ok(document)
}
