//! Why a (schema-valid) document cannot be compiled into a `Runtime`, with the path of the
//! field at fault kept apart from the message, as a config error carries them.

use std::fmt;

use conduit_config::ConfigError;

/// Why a (schema-valid) document cannot be compiled into a `Runtime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    MissingUrl {
        path: String,
    },
    InvalidUrl {
        path: String,
        url: String,
        reason: String,
    },
    UnsupportedScheme {
        path: String,
        scheme: String,
    },
    InvalidHeaderName {
        path: String,
        name: String,
    },
    InvalidHeaderValue {
        path: String,
    },
    DuplicateId {
        path: String,
        id: String,
    },
    InvalidPattern {
        path: String,
        message: String,
    },
    Tls {
        path: String,
        message: String,
    },
    InvalidSessionKey {
        path: String,
        message: String,
    },
    UnknownServer {
        path: String,
        id: String,
    },
    Policy {
        path: String,
        message: String,
    },
    Auth {
        path: String,
        message: String,
    },
    RateLimits {
        path: String,
        message: String,
    },
}

impl CompileError {
    fn path(&self) -> &str {
        match self {
            CompileError::MissingUrl { path }
            | CompileError::InvalidUrl { path, .. }
            | CompileError::UnsupportedScheme { path, .. }
            | CompileError::InvalidHeaderName { path, .. }
            | CompileError::InvalidHeaderValue { path }
            | CompileError::DuplicateId { path, .. }
            | CompileError::InvalidPattern { path, .. }
            | CompileError::Tls { path, .. }
            | CompileError::InvalidSessionKey { path, .. }
            | CompileError::UnknownServer { path, .. }
            | CompileError::Policy { path, .. }
            | CompileError::Auth { path, .. }
            | CompileError::RateLimits { path, .. } => path,
        }
    }

    /// What is wrong at [`CompileError::path`].
    fn message(&self) -> String {
        match self {
            CompileError::MissingUrl { .. } => "an HTTP server needs a url".to_owned(),
            CompileError::InvalidUrl { url, reason, .. } => {
                format!("invalid URL {url:?}: {reason}")
            }
            CompileError::UnsupportedScheme { scheme, .. } => {
                format!("unsupported URL scheme {scheme:?} (use http or https)")
            }
            CompileError::InvalidHeaderName { name, .. } => format!("invalid header name {name:?}"),
            CompileError::InvalidHeaderValue { .. } => {
                "header value is not a valid HTTP header value".to_owned()
            }
            CompileError::DuplicateId { id, .. } => format!("duplicate server id {id:?}"),
            CompileError::UnknownServer { id, .. } => format!("unknown server id {id:?}"),
            CompileError::InvalidPattern { message, .. }
            | CompileError::Tls { message, .. }
            | CompileError::InvalidSessionKey { message, .. }
            | CompileError::Policy { message, .. }
            | CompileError::Auth { message, .. }
            | CompileError::RateLimits { message, .. } => message.clone(),
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.message())
    }
}

impl std::error::Error for CompileError {}

impl From<CompileError> for ConfigError {
    fn from(error: CompileError) -> Self {
        ConfigError {
            message: error.message(),
            path: error.path().to_owned(),
        }
    }
}
