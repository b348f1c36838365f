//! Config errors: one problem with its path, and the list of every problem in a document.
//!
//! The same two types travel everywhere: `conduitctl validate` prints them, the control plane
//! puts them in an `INVALID_ARGUMENT` status, a data plane sends them in its NACK. That is why
//! they convert to and from the proto messages without loss.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem in a config document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigError {
    /// Where the problem is, like `servers[1].url`; empty for the whole document.
    pub path: String,
    /// What is wrong, written for the person who edits the file.
    pub message: String,
}

impl ConfigError {
    /// An error at `path` (use an empty path for the whole document).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a document (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A list holding one error.
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![ConfigError::new(path, message)])
    }

    /// The errors, in document order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no error (never the case for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when `errors` is empty, else the errors.
    pub(crate) fn check(errors: Vec<ConfigError>) -> Result<(), ConfigErrors> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl From<ConfigError> for conduit_proto::v1::ConfigError {
    fn from(error: ConfigError) -> Self {
        Self {
            path: error.path,
            message: error.message,
        }
    }
}

impl From<conduit_proto::v1::ConfigError> for ConfigError {
    fn from(error: conduit_proto::v1::ConfigError) -> Self {
        Self {
            path: error.path,
            message: error.message,
        }
    }
}

impl From<ConfigErrors> for conduit_proto::v1::ConfigErrors {
    fn from(errors: ConfigErrors) -> Self {
        Self {
            errors: errors.0.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<conduit_proto::v1::ConfigErrors> for ConfigErrors {
    fn from(errors: conduit_proto::v1::ConfigErrors) -> Self {
        Self(errors.errors.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_per_error() {
        let errors = ConfigErrors(vec![
            ConfigError::new("servers[0].url", "bad"),
            ConfigError::new("", "whole document"),
        ]);
        assert_eq!(errors.to_string(), "servers[0].url: bad\nwhole document");
    }

    #[test]
    fn proto_round_trip() {
        let errors = ConfigErrors::single("a.b", "c");
        let proto: conduit_proto::v1::ConfigErrors = errors.clone().into();
        assert_eq!(ConfigErrors::from(proto), errors);
    }
}
