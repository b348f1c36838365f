//! The SSRF guard of webhook deliveries: which IP addresses a webhook may reach, and the
//! resolution of a webhook's host into checked addresses only. The delivery then connects to
//! exactly those addresses (no second lookup), so a DNS answer that changes between the check
//! and the connection cannot redirect it.
//!
//! Refused unless private networks are allowed: loopback, private (RFC 1918), shared
//! (100.64/10), link-local, unspecified / "this network", broadcast and reserved (240/4),
//! multicast, IPv6 unique-local, site-local and link-local, and IPv4 addresses carried in
//! IPv6 (IPv4-mapped, IPv4-compatible, 6to4, NAT64), which are judged as the IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address may not be reached.
pub(crate) fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved or broadcast")
    } else {
        None
    }
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return refusal_v4(v4);
    }
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique-local")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first & 0xffc0 == 0xfec0 {
        Some("site-local")
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
/// `::a.b.c.d`, 6to4 `2002:aabb:ccdd::/48`, NAT64 `64:ff9b::a.b.c.d`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        // IPv4-compatible (`::` and `::1` are themselves, not IPv4 addresses).
        Some(low(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(low(s[1], s[2]))
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(low(s[6], s[7]))
    } else {
        None
    }
}

/// Outcome of resolving a webhook's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Addresses that may be reached (never empty).
    Allowed(Vec<SocketAddr>),
    /// Every address the host resolves to is refused; the first one and why.
    Refused(IpAddr, &'static str),
    /// The host does not resolve.
    Failed(String),
}

/// Resolve `host:port` and keep the addresses the guard allows (all of them when
/// `allow_private`).
pub(crate) async fn resolve(host: &str, port: u16, allow_private: bool) -> Resolved {
    // `[::1]` in a URL is the host `::1`.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::net::lookup_host((bare, port)).await {
            Ok(addrs) => addrs.collect(),
            Err(error) => return Resolved::Failed(error.to_string()),
        },
    };
    if allow_private {
        return if addrs.is_empty() {
            Resolved::Failed(format!("{bare} has no address"))
        } else {
            Resolved::Allowed(addrs)
        };
    }
    let mut first_refused = None;
    let mut allowed = Vec::new();
    for addr in addrs {
        match refusal(addr.ip()) {
            Some(why) => {
                first_refused.get_or_insert((addr.ip(), why));
            }
            None => allowed.push(addr),
        }
    }
    match (allowed.is_empty(), first_refused) {
        (false, _) => Resolved::Allowed(allowed),
        (true, Some((ip, why))) => Resolved::Refused(ip, why),
        (true, None) => Resolved::Failed(format!("{bare} has no address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        refusal(text.parse().unwrap()).is_some()
    }

    #[test]
    fn internal_ipv4_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.1.1.1",
            "255.255.255.255",
            "240.0.0.1",
        ] {
            assert!(refused(ip), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "1.1.1.1",
        ] {
            assert!(!refused(ip), "{ip}");
        }
    }

    #[test]
    fn internal_ipv6_addresses_and_embedded_ipv4_are_refused() {
        for ip in [
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "2002:7f00:1::",
            "2002:a00:1::5",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::127.0.0.1",
        ] {
            assert!(refused(ip), "{ip}");
        }
        for ip in [
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "2002:808:808::",
            "64:ff9b::8.8.8.8",
        ] {
            assert!(!refused(ip), "{ip}");
        }
    }

    #[tokio::test]
    async fn resolution_keeps_only_allowed_addresses() {
        assert_eq!(
            resolve("127.0.0.1", 80, false).await,
            Resolved::Refused("127.0.0.1".parse().unwrap(), "loopback")
        );
        assert!(matches!(
            resolve("localhost", 80, false).await,
            Resolved::Refused(_, "loopback")
        ));
        assert!(matches!(
            resolve("[::1]", 80, false).await,
            Resolved::Refused(_, "loopback")
        ));
        assert_eq!(
            resolve("127.0.0.1", 8080, true).await,
            Resolved::Allowed(vec!["127.0.0.1:8080".parse().unwrap()])
        );
        assert_eq!(
            resolve("93.184.215.14", 443, false).await,
            Resolved::Allowed(vec!["93.184.215.14:443".parse().unwrap()])
        );
    }
}
