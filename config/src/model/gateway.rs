//! `gateway` (TLS of the data planes' public MCP listener) and `admin`.
//!
//! The original ran one process whose address came from `gateway.port`/`gateway.host` and whose
//! admin API was guarded by `admin.key`. In Conduit the public address is a data plane flag
//! (`conduit-data-plane run --listen ADDR`) and the admin API lives on the control plane
//! (`CONDUIT_ADMIN_TOKEN`), so those fields are refused with that explanation.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Settings of the data planes' public listener.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// TLS on the public listener. Enabled when the block is present unless `enabled: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// TLS of the public listener. Paths are read on each data plane.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Whether TLS is used. Default: `true` when the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// PEM certificate chain; required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<String>,
    /// PEM private key; required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_path: Option<String>,
    /// PEM bundle of CAs for client certificates. When set, every client must present a
    /// certificate signed by one of them (mutual TLS); the original accepted this field
    /// without ever requesting client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_path: Option<String>,
    /// Oldest TLS version accepted. Default: `TLSv1.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<TlsVersion>,
}

/// TLS protocol versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[serde(rename = "TLSv1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

/// Gateway-wide safety switches of the original `admin` section that still apply.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Let discovered servers (`discovery`) and registry imports use private, loopback and
    /// cloud metadata addresses. Default: `false`. Servers listed in `servers` are trusted
    /// as written and not affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_private_networks: Option<bool>,
}

impl Tls {
    /// Whether TLS is on (a present block is, unless `enabled: false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}
