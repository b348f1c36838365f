//! The Conduit configuration model shared by conduitctl, the control plane and the data
//! plane: one YAML (or JSON) document, parsed and validated by the same code everywhere.
//!
//! What other crates call:
//! - [`Document::from_text`]: parse and validate (every error, each with its path).
//! - [`Document::canonical_json`], [`Document::content_hash`], [`Document::to_yaml`].
//! - [`Document::resolve_references`] with a [`ReferenceResolver`] (the data plane, with
//!   its own restricted resolver): replaces `${env:NAME}` / `${file:PATH}` and validates
//!   again; [`Provenance`] keeps the resolved values out of errors.
//! - [`mask_secrets`]: the document as JSON with secrets replaced, for `/config_dump` and for
//!   Admin API principals below `admin`.
//! - [`literal_secret_warnings`] and [`hash_plain_api_keys`]: secrets written into the
//!   document itself rather than referenced.
//! - [`json_schema`]: the JSON Schema of the document, for editors.
#![forbid(unsafe_code)]

mod canonical;
mod document;
mod error;
mod literal_secrets;
pub mod model;
mod parse;
mod path;
mod provenance;
pub mod references;
mod schema_check;
mod secrets;
mod suggest;
mod superseded;
mod validate;
mod yaml_guard;

pub use error::{ConfigError, ConfigErrors};
pub use literal_secrets::{hash_plain_api_keys, literal_secret_warnings};
pub use model::*;
pub use provenance::Provenance;
pub use references::{ProcessResolver, ReferenceResolver};
pub use schema_check::json_schema;
pub use secrets::{REDACTED, mask_secrets, mask_url};
