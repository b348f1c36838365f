//! Integration tests of the config model through its public API only.

#[path = "integration/errors.rs"]
mod errors;
#[path = "integration/examples.rs"]
mod examples;
#[path = "integration/references.rs"]
mod references;
#[path = "integration/secrets.rs"]
mod secrets;
#[path = "integration/sections.rs"]
mod sections;
#[path = "integration/semantic.rs"]
mod semantic;
#[path = "integration/support.rs"]
mod support;
