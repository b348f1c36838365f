//! `gateway` (TLS of the data planes' public MCP listener, Host/Origin checks, session
//! token keys) and `admin`.
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
    /// Extra values accepted in the `Host` header of MCP requests, against DNS rebinding:
    /// host names or addresses (`mcp.example.com`, `10.0.0.5`, `[fd00::1]`), `*.example.com`
    /// for any subdomain, or `*` for any host. Ports are not written: any port matches.
    /// Loopback names (`localhost`, `127.0.0.1`, `[::1]`) and the address a client connected
    /// to are always accepted; any other host gets 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Extra browser origins accepted in the `Origin` header of MCP requests:
    /// `scheme://host[:port]` (`https://app.example.com`, `https://*.example.com`; without a
    /// port any port matches), or `*` for any origin. Requests without `Origin` are not
    /// affected; loopback origins are always accepted; any other origin gets 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Keys that encrypt the `Mcp-Session-Id` tokens the data planes give MCP clients
    /// (AES-256-GCM). Usually left out: the control plane generates, rotates and ships keys
    /// itself, and a standalone data plane makes one at start (its sessions then end with
    /// the process). Set keys to let several standalone data planes continue each other's
    /// sessions. When present they win over the control plane's. The first key encrypts new
    /// tokens and every key decrypts, so to rotate put a new key first and keep the old one
    /// for as long as its sessions should live (at most 7 days).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_keys: Vec<SessionKeyConfig>,
}

/// One `gateway.session_keys` entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionKeyConfig {
    /// Names the key inside tokens, in the clear: 1 to 32 characters of `A-Z`, `a-z`, `0-9`,
    /// `_` and `-`, unique in the list.
    pub id: String,
    /// 32 random bytes in standard base64 (`openssl rand -base64 32`). A secret: write a
    /// `${env:NAME}` or `${file:PATH}` reference rather than the value.
    pub key: String,
}

/// Length of a session key in bytes (AES-256).
pub const SESSION_KEY_BYTES: usize = 32;

impl SessionKeyConfig {
    /// Whether `id` may name a session key (it travels in every token).
    pub fn valid_id(id: &str) -> bool {
        (1..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    /// The key material, or why `key` is not 32 bytes of base64.
    pub fn decode_key(key: &str) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| {
                "is not valid base64 (standard alphabet, e.g. from `openssl rand -base64 32`)"
                    .to_owned()
            })?;
        if bytes.len() != SESSION_KEY_BYTES {
            return Err(format!(
                "decodes to {} bytes; a session key is {SESSION_KEY_BYTES} random bytes",
                bytes.len()
            ));
        }
        Ok(bytes)
    }
}

/// One parsed `gateway.allowed_hosts` entry (and the host part of an origin pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every host.
    Any,
    /// One host name or address, lower case, an IPv6 address without brackets.
    Exact(String),
    /// `*.example.com`, kept as `.example.com`: any subdomain, not the domain itself.
    Subdomains(String),
}

impl HostPattern {
    /// Parse an entry; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        if text == "*" {
            return Ok(HostPattern::Any);
        }
        let lower = text.to_ascii_lowercase();
        if let Some(domain) = lower.strip_prefix("*.") {
            check_host_name(domain, text)?;
            return Ok(HostPattern::Subdomains(format!(".{domain}")));
        }
        if let Some(inner) = lower.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return match inner.parse::<std::net::Ipv6Addr>() {
                Ok(_) => Ok(HostPattern::Exact(inner.to_owned())),
                Err(_) => Err(format!("\"{text}\" is not an IPv6 address in brackets")),
            };
        }
        if lower.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(HostPattern::Exact(lower));
        }
        check_host_name(&lower, text)?;
        Ok(HostPattern::Exact(lower))
    }

    /// Whether `host` (lower case, no port, IPv6 without brackets) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => exact == host,
            HostPattern::Subdomains(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

fn check_host_name(name: &str, text: &str) -> Result<(), String> {
    if name.contains(':') {
        return Err(format!(
            "\"{text}\": write the host without a port (every port matches)"
        ));
    }
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "\"{text}\" is not a host name, an address, `*.domain` or `*`"
        ))
    }
}

/// One parsed `gateway.allowed_origins` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: every origin.
    Any,
    /// `scheme://host[:port]`; `port: None` matches any port.
    Origin {
        scheme: String,
        host: HostPattern,
        port: Option<u16>,
    },
}

impl OriginPattern {
    /// Parse an entry; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<OriginPattern, String> {
        if text == "*" {
            return Ok(OriginPattern::Any);
        }
        let malformed = || format!("\"{text}\" is not an origin like https://app.example.com");
        let (scheme, authority) = text.split_once("://").ok_or_else(malformed)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("\"{text}\": the scheme must be http or https"));
        }
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(malformed());
        }
        // A port follows the last colon, unless that colon is inside an IPv6 address.
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port))
                if !port.contains(']') && (!host.contains(':') || host.ends_with(']')) =>
            {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("\"{text}\": invalid port \"{port}\""))?;
                (host, Some(port))
            }
            _ => (authority, None),
        };
        if host == "*" {
            return Err(format!("\"{text}\": use `*` alone to accept every origin"));
        }
        Ok(OriginPattern::Origin {
            scheme,
            host: HostPattern::parse(host)?,
            port,
        })
    }

    /// Whether an origin matches (`host` lower case, IPv6 without brackets).
    pub fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Origin {
                scheme: want_scheme,
                host: want_host,
                port: want_port,
            } => {
                want_scheme.eq_ignore_ascii_case(scheme)
                    && want_host.matches(host)
                    && want_port.is_none_or(|want| Some(want) == port)
            }
        }
    }
}

/// TLS of the public listener. Paths are read on each data plane (relative ones from its
/// working directory) when it applies the configuration, and again whenever the files
/// change, so rotated certificates are served to new connections without a restart.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Whether TLS is used. Default: `true` when the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// PEM certificate chain, the server's certificate first; required when enabled.
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
