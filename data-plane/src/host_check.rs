//! The DNS-rebinding guard of the public listener: a request must name an allowed `Host`,
//! and a browser's `Origin`, when sent, must be allowed too.
//!
//! A web page can point a name it controls at 127.0.0.1 and then talk to a local gateway
//! from the victim's browser; its requests then carry the attacker's name in `Host` and the
//! page's `Origin`. Loopback names, the address the client connected to and the operator's
//! `gateway.allowed_hosts` / `gateway.allowed_origins` patterns are accepted, nothing else.

use std::net::{IpAddr, SocketAddr};

use conduit_config::{Gateway, HostPattern, OriginPattern};
use conduit_process::internal_http::split_authority;
use http::Uri;
use http::header::{self, HeaderMap};

/// The compiled `allowed_hosts` / `allowed_origins` of one runtime.
#[derive(Debug, Default)]
pub struct HostPolicy {
    hosts: Vec<HostPattern>,
    origins: Vec<OriginPattern>,
}

/// A `gateway.allowed_*` entry that does not parse: (path, message).
pub(crate) type PatternError = (String, String);

impl HostPolicy {
    /// Compile the `gateway` section; every bad entry is reported with its path.
    pub fn compile(gateway: Option<&Gateway>) -> Result<HostPolicy, Vec<PatternError>> {
        let Some(gateway) = gateway else {
            return Ok(HostPolicy::default());
        };
        let mut errors = Vec::new();
        let mut hosts = Vec::with_capacity(gateway.allowed_hosts.len());
        for (index, text) in gateway.allowed_hosts.iter().enumerate() {
            match HostPattern::parse(text) {
                Ok(pattern) => hosts.push(pattern),
                Err(message) => errors.push((format!("gateway.allowed_hosts[{index}]"), message)),
            }
        }
        let mut origins = Vec::with_capacity(gateway.allowed_origins.len());
        for (index, text) in gateway.allowed_origins.iter().enumerate() {
            match OriginPattern::parse(text) {
                Ok(pattern) => origins.push(pattern),
                Err(message) => errors.push((format!("gateway.allowed_origins[{index}]"), message)),
            }
        }
        if errors.is_empty() {
            Ok(HostPolicy { hosts, origins })
        } else {
            Err(errors)
        }
    }

    /// `Err` with the reason when the request must be refused (403). `local` is the address
    /// the client connected to.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri, local: SocketAddr) -> Result<(), String> {
        // HTTP/2 carries the host in `:authority`, which hyper puts in the URI.
        let host = match headers.get(header::HOST) {
            Some(value) => value.to_str().ok(),
            None => uri.authority().map(|authority| authority.as_str()),
        };
        let Some(host) = host else {
            return Err("the request names no Host".into());
        };
        let allowed = split_authority(host).is_some_and(|(name, _)| {
            is_local(&name, local) || self.hosts.iter().any(|pattern| pattern.matches(&name))
        });
        if !allowed {
            return Err(format!("host {host:?} is not allowed"));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let text = origin.to_str().unwrap_or("(not text)");
            let allowed = origin
                .to_str()
                .ok()
                .and_then(|origin| origin.split_once("://"))
                .and_then(|(scheme, authority)| {
                    split_authority(authority).map(|(name, port)| (scheme, name, port))
                })
                .is_some_and(|(scheme, name, port)| {
                    is_local(&name, local)
                        || self
                            .origins
                            .iter()
                            .any(|pattern| pattern.matches(scheme, &name, port))
                });
            if !allowed {
                return Err(format!("origin {text:?} is not allowed"));
            }
        }
        Ok(())
    }
}

/// Loopback names and addresses, and the address the client connected to.
fn is_local(host: &str, local: SocketAddr) -> bool {
    if host == "localhost" {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip.to_canonical() == local.ip().to_canonical(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn policy(hosts: &[&str], origins: &[&str]) -> HostPolicy {
        let gateway = Gateway {
            allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            ..Gateway::default()
        };
        HostPolicy::compile(Some(&gateway)).expect("valid patterns")
    }

    fn check(policy: &HostPolicy, host: Option<&str>, origin: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        let local: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        policy
            .check(&headers, &Uri::from_static("/mcp/a"), local)
            .is_ok()
    }

    #[test]
    fn loopback_and_the_local_address_are_always_allowed() {
        let none = policy(&[], &[]);
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:9",
            "[::1]",
            "[::1]:8080",
            "10.1.2.3:8080",
        ] {
            assert!(check(&none, Some(host), None), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:80",
            "10.1.2.4",
            "[::1",
            "a b",
            "",
        ] {
            assert!(!check(&none, Some(host), None), "{host}");
        }
        assert!(!check(&none, None, None));
        assert!(check(
            &none,
            Some("localhost"),
            Some("http://localhost:3000")
        ));
        assert!(check(&none, Some("localhost"), Some("https://[::1]")));
        for origin in ["https://evil.example", "null", "localhost", "http://evil:x"] {
            assert!(!check(&none, Some("localhost"), Some(origin)), "{origin}");
        }
    }

    #[test]
    fn configured_patterns_extend_the_defaults() {
        let some = policy(
            &["mcp.example.com", "*.corp.example"],
            &["https://app.example.com", "http://*.corp.example:3000"],
        );
        assert!(check(&some, Some("MCP.example.com:443"), None));
        assert!(check(&some, Some("a.b.corp.example"), None));
        assert!(!check(&some, Some("corp.example"), None));
        assert!(!check(&some, Some("example.com"), None));
        assert!(check(
            &some,
            Some("localhost"),
            Some("https://app.example.com")
        ));
        assert!(check(
            &some,
            Some("localhost"),
            Some("http://ui.corp.example:3000")
        ));
        assert!(!check(
            &some,
            Some("localhost"),
            Some("http://ui.corp.example:3001")
        ));
        assert!(!check(
            &some,
            Some("localhost"),
            Some("http://app.example.com")
        ));

        let any = policy(&["*"], &["*"]);
        assert!(check(
            &any,
            Some("anything.example"),
            Some("https://x.example")
        ));
    }
}
