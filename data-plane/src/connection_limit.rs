//! How many connections the public listener holds: at most `--max-connections` in all and
//! `--max-connections-per-address` from one client address. A connection over either
//! limit is closed as soon as it is accepted, before a byte of it is read, and counted.
//!
//! Without a limit every connection a client opens costs a task, buffers and a file
//! descriptor for as long as the header and body timeouts let it live, so one client could
//! hold the process's descriptors and memory. IPv6 clients are counted by their /64: one
//! host usually owns a whole /64 and could otherwise open connections from as many
//! addresses as it likes. Behind a proxy or load balancer every connection comes from its
//! address, so the per-address limit must leave room for its whole pool.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{IntCounterVec, IntGauge, Opts};

use crate::metrics::Metrics;

/// Default for `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default for `--max-connections-per-address`.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 128;

/// Which limit refused a connection (the `reason` label of
/// `conduit_dp_connections_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` were open.
    Total,
    /// `--max-connections-per-address` were open from the client's address.
    PerAddress,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Total => "max_connections",
            Refusal::PerAddress => "max_connections_per_address",
        }
    }
}

/// The open connections of one listener, by client address.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<Open>,
    /// `conduit_dp_connections_open`.
    gauge: IntGauge,
    /// `conduit_dp_connections_refused_total{reason}`.
    refused: IntCounterVec,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it (when the connection ends) frees its place.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    address: IpAddr,
}

impl ConnectionLimits {
    /// Limits whose metrics are exported by `metrics`. Both limits are at least 1.
    pub fn new(max_total: usize, max_per_address: usize, metrics: &Metrics) -> Arc<Self> {
        let gauge = IntGauge::new(
            "conduit_dp_connections_open",
            "Connections open on the public listener.",
        )
        .expect("valid metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "conduit_dp_connections_refused_total",
                "Connections to the public listener closed at once because a limit was \
                 reached, by reason (max_connections, max_connections_per_address).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in [Refusal::Total, Refusal::PerAddress] {
            refused.with_label_values(&[reason.as_str()]);
        }
        for collector in [
            Box::new(gauge.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refused.clone()),
        ] {
            metrics
                .register(collector)
                .expect("connection metric names are unique");
        }
        Arc::new(ConnectionLimits {
            max_total: max_total.max(1),
            max_per_address: max_per_address.max(1),
            open: Mutex::new(Open::default()),
            gauge,
            refused,
        })
    }

    /// A place for a connection from `peer`, or which limit refuses it (counted).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        let address = address_key(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let verdict = if open.total >= self.max_total {
            Err(Refusal::Total)
        } else if open.by_address.get(&address).copied().unwrap_or(0) >= self.max_per_address {
            Err(Refusal::PerAddress)
        } else {
            open.total += 1;
            *open.by_address.entry(address).or_insert(0) += 1;
            Ok(())
        };
        drop(open);
        match verdict {
            Ok(()) => {
                self.gauge.inc();
                Ok(Slot {
                    limits: Arc::clone(self),
                    address,
                })
            }
            Err(refusal) => {
                self.refused.with_label_values(&[refusal.as_str()]).inc();
                Err(refusal)
            }
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                // Forgotten at once, so the map holds only addresses with open connections.
                open.by_address.remove(&self.address);
            }
        }
        drop(open);
        self.limits.gauge.dec();
    }
}

/// What connections are counted by: an IPv4 address (also when mapped into IPv6), or the
/// /64 network of an IPv6 address.
fn address_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(network))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn refused(metrics: &Metrics, reason: Refusal) -> bool {
        metrics.encode().contains(&format!(
            "conduit_dp_connections_refused_total{{reason=\"{}\"}} 1",
            reason.as_str()
        ))
    }

    #[test]
    fn limits_per_address_and_in_total() {
        let metrics = Metrics::new();
        let limits = ConnectionLimits::new(3, 2, &metrics);
        let a1 = limits.admit(ip("10.0.0.1")).unwrap();
        let _a2 = limits.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::PerAddress
        );
        assert!(refused(&metrics, Refusal::PerAddress));
        let _b1 = limits.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(limits.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Total);
        assert!(refused(&metrics, Refusal::Total));
        assert_eq!(limits.open(), 3);
        assert!(metrics.encode().contains("conduit_dp_connections_open 3"));

        // A closed connection frees its place for its address and in total.
        drop(a1);
        assert_eq!(limits.open(), 2);
        let _a3 = limits.admit(ip("10.0.0.1")).unwrap();
        assert!(metrics.encode().contains("conduit_dp_connections_open 3"));
    }

    #[test]
    fn ipv6_counts_by_network_and_mapped_ipv4_as_ipv4() {
        let metrics = Metrics::new();
        let limits = ConnectionLimits::new(10, 1, &metrics);
        let _one = limits.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8:1:2:ffff::9")).unwrap_err(),
            Refusal::PerAddress
        );
        let _other_network = limits.admit(ip("2001:db8:1:3::1")).unwrap();
        let _v4 = limits.admit(ip("192.0.2.7")).unwrap();
        assert_eq!(
            limits.admit(ip("::ffff:192.0.2.7")).unwrap_err(),
            Refusal::PerAddress
        );
    }
}
