//! Every Prometheus metric the control plane exports, defined once, on a registry of its
//! own (no process-global state, so tests can run several control planes in one process).
//!
//! Label values come from enums (`as_str`), never from request data, so cardinality stays
//! bounded.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Census for the `conduit_cp_data_planes` gauge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetCounts {
    pub connected: usize,
    pub disconnected: usize,
    pub converged: usize,
    pub rejecting: usize,
}

/// The control plane's metrics.
pub struct Metrics {
    registry: Registry,
    /// Current config version (0 before the first apply).
    pub config_version: IntGauge,
    /// Versions created by Apply or Rollback.
    pub versions_created: IntCounter,
    data_planes: IntGaugeVec,
    /// Snapshots acknowledged (applied) by data planes.
    pub snapshot_acks: IntCounter,
    /// Snapshots rejected by data planes.
    pub snapshot_nacks: IntCounter,
    /// Snapshots sent to data planes.
    pub snapshots_sent: IntCounter,
    admin_requests: IntCounterVec,
    /// Approval requests data planes reported, by what became of them.
    approval_requests: IntCounterVec,
    /// Time from publishing a version to each data plane's ACK of it.
    pub propagation_seconds: Histogram,
    /// Audit records stored (a resent record is not counted again).
    pub audit_records: IntCounter,
    /// Sum of the `dropped` counts the data planes reported in their audit batches.
    pub audit_dropped: IntCounter,
    /// Audit records deleted by retention.
    pub audit_purged: IntCounter,
    /// Audit batches not stored (database error, or the stream's ingest queue full); the
    /// data plane keeps them and sends them again.
    pub audit_ingest_failures: IntCounter,
}

/// Admin RPC names, for the `method` label.
#[derive(Debug, Clone, Copy)]
pub enum AdminMethod {
    Apply,
    Rollback,
    GetConfig,
    ListVersions,
    FleetStatus,
    WaitRollout,
    ListApprovals,
    DecideApproval,
    QueryAudit,
    AuditStats,
}

impl AdminMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Rollback => "rollback",
            Self::GetConfig => "get_config",
            Self::ListVersions => "list_versions",
            Self::FleetStatus => "fleet_status",
            Self::WaitRollout => "wait_rollout",
            Self::ListApprovals => "list_approvals",
            Self::DecideApproval => "decide_approval",
            Self::QueryAudit => "query_audit",
            Self::AuditStats => "audit_stats",
        }
    }

    /// What the RPC does, for permission errors.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Apply => "applying a config",
            Self::Rollback => "rolling back",
            Self::GetConfig => "reading a config",
            Self::ListVersions => "listing versions",
            Self::FleetStatus => "reading the fleet status",
            Self::WaitRollout => "waiting for a rollout",
            Self::ListApprovals => "listing approvals",
            Self::DecideApproval => "deciding an approval",
            Self::QueryAudit => "reading audit records",
            Self::AuditStats => "reading audit statistics",
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let config_version = IntGauge::new(
            "conduit_cp_config_version",
            "Current configuration version (0 before the first apply).",
        )
        .expect("valid metric");
        let versions_created = IntCounter::new(
            "conduit_cp_config_versions_created_total",
            "Configuration versions created by apply or rollback.",
        )
        .expect("valid metric");
        let data_planes = IntGaugeVec::new(
            Opts::new(
                "conduit_cp_data_planes",
                "Known data planes by state (connected, disconnected, converged: connected \
                 and on the current version, rejecting: connected with an unresolved NACK).",
            ),
            &["state"],
        )
        .expect("valid metric");
        let snapshot_acks = IntCounter::new(
            "conduit_cp_snapshot_acks_total",
            "Snapshots data planes reported as applied.",
        )
        .expect("valid metric");
        let snapshot_nacks = IntCounter::new(
            "conduit_cp_snapshot_nacks_total",
            "Snapshots data planes rejected.",
        )
        .expect("valid metric");
        let snapshots_sent = IntCounter::new(
            "conduit_cp_snapshots_sent_total",
            "Snapshots sent to data planes.",
        )
        .expect("valid metric");
        let admin_requests = IntCounterVec::new(
            Opts::new(
                "conduit_cp_admin_requests_total",
                "Admin API requests by method and outcome (ok or the gRPC code name).",
            ),
            &["method", "outcome"],
        )
        .expect("valid metric");
        let approval_requests = IntCounterVec::new(
            Opts::new(
                "conduit_cp_approval_requests_total",
                "Approval requests data planes reported, by outcome (inserted, duplicate, \
                 client_full, node_full: not stored past a pending bound; invalid).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let propagation_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "conduit_cp_propagation_seconds",
                "Time from publishing a configuration version to a data plane's ACK of it.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let audit_records = counter(
            "conduit_cp_audit_records_total",
            "Audit records stored (records resent by a data plane are not counted again).",
        );
        let audit_dropped = counter(
            "conduit_cp_audit_dropped_total",
            "Audit records the data planes reported dropped because their queue was full.",
        );
        let audit_purged = counter(
            "conduit_cp_audit_purged_total",
            "Audit records deleted by retention (observability.retention_days).",
        );
        let audit_ingest_failures = counter(
            "conduit_cp_audit_ingest_failures_total",
            "Audit batches not stored and not acknowledged (the data plane sends them again).",
        );

        for collector in [
            Box::new(config_version.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(versions_created.clone()),
            Box::new(data_planes.clone()),
            Box::new(snapshot_acks.clone()),
            Box::new(snapshot_nacks.clone()),
            Box::new(snapshots_sent.clone()),
            Box::new(admin_requests.clone()),
            Box::new(approval_requests.clone()),
            Box::new(propagation_seconds.clone()),
            Box::new(audit_records.clone()),
            Box::new(audit_dropped.clone()),
            Box::new(audit_purged.clone()),
            Box::new(audit_ingest_failures.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            config_version,
            versions_created,
            data_planes,
            snapshot_acks,
            snapshot_nacks,
            snapshots_sent,
            admin_requests,
            approval_requests,
            propagation_seconds,
            audit_records,
            audit_dropped,
            audit_purged,
            audit_ingest_failures,
        }
    }

    /// Count one finished Admin call; `outcome` is `ok` or the gRPC code.
    pub fn admin_request(&self, method: AdminMethod, result: Result<(), tonic::Code>) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(code) => code_name(code),
        };
        self.admin_requests
            .with_label_values(&[method.as_str(), outcome])
            .inc();
    }

    /// Count one reported approval request by `outcome`.
    pub fn approval_request(&self, outcome: &str) {
        self.approval_requests.with_label_values(&[outcome]).inc();
    }

    /// Set the fleet gauges from a census taken at scrape time.
    pub fn set_fleet(&self, counts: FleetCounts) {
        for (state, value) in [
            ("connected", counts.connected),
            ("disconnected", counts.disconnected),
            ("converged", counts.converged),
            ("rejecting", counts.rejecting),
        ] {
            self.data_planes
                .with_label_values(&[state])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let metrics = Metrics::new();
        metrics.admin_request(AdminMethod::Apply, Err(tonic::Code::InvalidArgument));
        metrics.set_fleet(FleetCounts {
            connected: 2,
            disconnected: 1,
            converged: 1,
            rejecting: 1,
        });
        metrics.propagation_seconds.observe(0.004);
        let text = metrics.render();
        for needle in [
            "conduit_cp_config_version 0",
            "conduit_cp_admin_requests_total{method=\"apply\",outcome=\"invalid_argument\"} 1",
            "conduit_cp_data_planes{state=\"connected\"} 2",
            "conduit_cp_data_planes{state=\"rejecting\"} 1",
            "conduit_cp_propagation_seconds_count 1",
            "conduit_cp_snapshot_acks_total 0",
            "conduit_cp_audit_records_total 0",
            "conduit_cp_audit_dropped_total 0",
            "conduit_cp_audit_purged_total 0",
            "conduit_cp_audit_ingest_failures_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
