//! How long the data plane has gone without hearing from its control plane:
//! `conduit_dp_config_stale_seconds`, computed when `/metrics` is scraped.
//!
//! While the config stream is open the configuration is as fresh as the control plane's
//! (0). Once it is closed the gauge counts the seconds since the last message (or since the
//! process started, when none ever came), so an alert can tell "briefly reconnecting"
//! from "serving a configuration nobody has confirmed for an hour". A data plane fed by a
//! file has no control plane to be stale against (0).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntGauge};
use tokio::time::Instant;

/// The data plane's contact with its control plane.
#[derive(Debug)]
pub struct Contact {
    /// Whether a control plane feeds this data plane at all.
    used: AtomicBool,
    /// `conduit_dp_control_plane_connected`, which the stream client keeps.
    connected: IntGauge,
    /// The last message from the control plane, else when the process started.
    last_heard: Mutex<Instant>,
}

impl Contact {
    pub fn new(connected: IntGauge) -> Contact {
        Contact {
            used: AtomicBool::new(false),
            connected,
            last_heard: Mutex::new(Instant::now()),
        }
    }

    /// This data plane takes its configuration from a control plane.
    pub fn use_control_plane(&self) {
        self.used.store(true, Ordering::Relaxed);
    }

    /// A message arrived from the control plane.
    pub fn heard(&self) {
        *self.lock() = Instant::now();
    }

    /// Seconds the configuration has gone unconfirmed (see the module docs).
    pub fn stale_seconds(&self) -> f64 {
        if !self.used.load(Ordering::Relaxed) || self.connected.get() != 0 {
            return 0.0;
        }
        self.lock().elapsed().as_secs_f64()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.last_heard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The collector of `conduit_dp_config_stale_seconds`.
#[derive(Debug)]
pub struct StaleSeconds {
    gauge: Gauge,
    contact: std::sync::Arc<Contact>,
}

impl StaleSeconds {
    pub fn new(contact: std::sync::Arc<Contact>) -> StaleSeconds {
        let gauge = Gauge::new(
            "conduit_dp_config_stale_seconds",
            "Seconds since the control plane was last heard from while the config stream is \
             down (0 while it is open, and for a data plane fed by a file).",
        )
        .expect("valid metric");
        StaleSeconds { gauge, contact }
    }
}

impl Collector for StaleSeconds {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set(self.contact.stale_seconds());
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stale_only_while_a_used_control_plane_is_away() {
        let connected = IntGauge::new("connected", "test").unwrap();
        let contact = Contact::new(connected.clone());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(contact.stale_seconds(), 0.0, "file mode is never stale");

        contact.use_control_plane();
        assert_eq!(contact.stale_seconds(), 5.0, "never heard: since the start");
        connected.set(1);
        tokio::time::advance(Duration::from_secs(5)).await;
        contact.heard();
        assert_eq!(contact.stale_seconds(), 0.0, "connected");
        connected.set(0);
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(contact.stale_seconds(), 7.0);
        let families = StaleSeconds::new(std::sync::Arc::new(contact)).collect();
        assert_eq!(families[0].get_metric()[0].get_gauge().get_value(), 7.0);
    }
}
