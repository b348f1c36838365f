//! Conduit's policy engines. Each is compiled once from the validated config model into a
//! runtime type that cannot be invalid, then evaluated per request by the data plane and
//! offline by `conduitctl` (`acl check`, `guardrails check`), so both give the same answer.
#![forbid(unsafe_code)]

pub mod pattern;

pub use pattern::{Pattern, PatternError, PatternSet};
