//! `observability` (audit records of tool calls and tracing) and `metrics`.
//!
//! In Conduit the data planes send audit records to the control plane, which stores them in
//! its own database: the original's `observability.db_path` has no counterpart and is refused
//! with that explanation. Metrics are served by each data plane on its internal listener
//! (`--admin-listen`, path `/metrics`), never on the public port, so `metrics.port` and
//! `metrics.require_auth` are refused too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Audit records and tracing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Observability {
    /// Record the arguments of `tools/call` in audit records (strings cut to 500
    /// characters, then `redact_fields` applied). Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_args: Option<bool>,
    /// Record tool results in audit records (same truncation and redaction). Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_responses: Option<bool>,
    /// Argument names whose values are replaced by `[REDACTED]` in audit records, webhook
    /// payloads and approval requests. A name matches when its words (split on `_`, `-` and
    /// camelCase) contain the listed word, the last one possibly plural: `token` matches
    /// `access_token`, `userToken` and `tokens`, not `tokenizer`. Inside any string value,
    /// URL userinfo (`https://user:pass@host`) and the value of a `name=value` pair with a
    /// matching name (`?api_key=…`) are replaced too. Default: `ssn`, `password`, `passwd`,
    /// `pwd`, `passphrase`, `api_key`, `apikey`, `token`, `secret`, `credential`, `auth`,
    /// `authorization`, `bearer`, `cookie`, `session`, `private`, `private_key`,
    /// `privatekey`. Setting the list replaces the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redact_fields: Option<Vec<String>>,
    /// Days the control plane keeps audit records. Default: 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub retention_days: Option<u32>,
    /// OpenTelemetry trace export. Enabled when the block is present unless `enabled: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opentelemetry: Option<OpenTelemetry>,
}

/// OpenTelemetry trace export (OTLP over HTTP).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenTelemetry {
    /// Whether traces are exported. Default: `true` when the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// OTLP/HTTP traces endpoint, like `http://collector:4318/v1/traces`; required when
    /// enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `service.name` of the exported spans. Default: `conduit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Fraction of traces sampled, from 0 to 1. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub sample_rate: Option<f64>,
}

/// Prometheus metrics of the data planes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Whether `/metrics` is served on the data plane's internal listener. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The default of [`Observability::redact_fields`].
pub const DEFAULT_REDACT_FIELDS: &[&str] = &[
    "ssn",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "api_key",
    "apikey",
    "token",
    "secret",
    "credential",
    "auth",
    "authorization",
    "bearer",
    "cookie",
    "session",
    "private",
    "private_key",
    "privatekey",
];

impl Observability {
    /// The redaction list in effect.
    pub fn redact_fields(&self) -> Vec<String> {
        match &self.redact_fields {
            Some(fields) => fields.clone(),
            None => DEFAULT_REDACT_FIELDS
                .iter()
                .map(|f| f.to_string())
                .collect(),
        }
    }
}

impl OpenTelemetry {
    /// Whether traces are exported (a present block is, unless `enabled: false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

impl Metrics {
    /// Whether `/metrics` is served (default `true`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}
