//! The Conduit configuration model shared by conduitctl, the control plane and the data
//! plane: one YAML document, parsed and validated by the same code everywhere.
//!
//! PLACEHOLDER API (being filled in): the signatures here are the contract other crates use.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One problem in a config document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigError {
    /// Where the problem is, like `servers[1].url`; empty for the whole document.
    pub path: String,
    pub message: String,
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

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Upstream MCP servers.
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
}

/// One upstream MCP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Identifier used in URLs (`/mcp/{id}`), logs and metrics.
    pub id: String,
    /// Streamable HTTP endpoint of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Static headers sent upstream.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Upstream request timeout in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Where `${env:NAME}` and `${file:PATH}` references get their values.
pub trait ReferenceResolver {
    fn env(&self, name: &str) -> Option<String>;
    fn file(&self, path: &str) -> std::io::Result<String>;
}

/// Resolves references from the process environment and the local file system.
pub struct ProcessResolver;

impl ReferenceResolver for ProcessResolver {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn file(&self, path: &str) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

impl Document {
    /// Parse YAML or JSON text and validate it; every problem is reported.
    pub fn from_text(text: &str) -> Result<Document, ConfigErrors> {
        yaml_serde::from_str(text).map_err(|error| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: error.to_string(),
            }])
        })
    }

    /// Canonical JSON form: what is hashed, stored and sent to data planes.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("config model serializes")
    }

    /// Hex SHA-256 of [`Document::canonical_json`].
    pub fn content_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// YAML for people to read.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("config model serializes")
    }

    /// Replace every `${env:NAME}` / `${file:PATH}` reference (data-plane side) and
    /// validate the result again.
    pub fn resolve_references(
        &self,
        _resolver: &dyn ReferenceResolver,
    ) -> Result<Document, ConfigErrors> {
        Ok(self.clone())
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
