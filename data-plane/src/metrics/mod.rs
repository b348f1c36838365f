//! Every Prometheus metric the data plane exports, defined once.
//!
//! The registry is per process instance (not global) so several data planes can run in one
//! test process. Label values come from enums with `as_str()`, never free-form strings,
//! except the server id, which is bounded by the applied configuration. The label enums
//! belong to the features (`auth`, `rate_limit`, `approvals`), which create their series
//! up front themselves (`register_metrics`), so this module imports no feature.

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

mod contact;

pub use contact::{Contact, StaleSeconds};

/// Outcome label of `conduit_dp_config_applies_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied,
    Rejected,
}

impl ApplyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Applied => "applied",
            ApplyOutcome::Rejected => "rejected",
        }
    }
}

/// The data plane's metrics and the registry that exports them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub config_version: IntGauge,
    pub config_applies: IntCounterVec,
    pub config_last_apply_timestamp: Gauge,
    pub control_plane_connected: IntGauge,
    pub stream_reconnects: IntCounter,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub stdio_restarts: IntCounterVec,
    pub stdio_up: IntGaugeVec,
    pub stdio_processes: IntGaugeVec,
    pub stdio_unrouted: IntCounterVec,
    pub stdio_refused: IntCounterVec,
    /// `conduit_acl_denials_total{server, kind}`, kind ∈ tool, resource, prompt.
    pub acl_denials: IntCounterVec,
    /// `conduit_guardrail_actions_total{rule, action, mode}`, mode ∈ enforce, shadow.
    pub guardrail_actions: IntCounterVec,
    /// `conduit_governance_denials_total{policy}`.
    pub governance_denials: IntCounterVec,
    /// `conduit_unknown_methods_total{kind}`, kind ∈ request, notification: methods MCP
    /// does not define for clients, refused (or dropped) with admission on.
    pub unknown_methods: IntCounterVec,
    /// `conduit_auth_failures_total{reason}`, reason from `auth::Reason`.
    pub auth_failures: IntCounterVec,
    /// `conduit_dp_refusals_total{cause, status}`: answers the gateway gave itself instead
    /// of an upstream's, by who caused them (client, upstream, internal, policy) and the
    /// audit status; labels from the refusal's closed sets.
    pub refusals: IntCounterVec,
    pub rate_limit_rejections: IntCounterVec,
    pub rate_limit_backend_errors: IntCounterVec,
    /// `conduit_approvals_total{outcome}` (see `approvals::Outcome`).
    pub approvals: IntCounterVec,
    /// Approval requests dropped because the queue to the control plane was full.
    pub approval_requests_dropped: IntCounter,
    /// Grants in the grant set in use.
    pub approval_grants: IntGauge,
    /// Uses of those grants as the control plane counted them (all data planes).
    pub approval_grant_uses: IntGauge,
    /// `conduit_audit_dropped_total`: audit records dropped because the queue was full.
    pub audit_dropped: IntCounter,
    /// `conduit_dp_audit_undeliverable_total`: audit records dropped because they could
    /// never be delivered (too large for a batch, or refused by the control plane).
    pub audit_undeliverable: IntCounter,
    /// `conduit_dp_audit_queue_depth`: audit records waiting or sent and not yet acked.
    pub audit_queue_depth: IntGauge,
    /// `conduit_dp_audit_queue_bytes`: encoded bytes of those records.
    pub audit_queue_bytes: IntGauge,
    /// `conduit_dp_audit_records_total`: audit records written.
    pub audit_records: IntCounter,
    /// `conduit_dp_snapshot_apply_seconds`: verify, compile and swap of an applied config.
    pub snapshot_apply: Histogram,
    /// When the control plane was last heard from (`conduit_dp_config_stale_seconds`).
    pub contact: Arc<Contact>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let config_version = IntGauge::new(
            "conduit_dp_config_version",
            "Version of the configuration currently serving (0 before the first apply).",
        )
        .expect("valid metric");
        let config_applies = IntCounterVec::new(
            Opts::new(
                "conduit_dp_config_applies_total",
                "Configuration apply attempts by outcome.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let config_last_apply_timestamp = Gauge::new(
            "conduit_dp_config_last_apply_timestamp_seconds",
            "Unix time of the last successful configuration apply.",
        )
        .expect("valid metric");
        let control_plane_connected = IntGauge::new(
            "conduit_dp_control_plane_connected",
            "1 while the config stream to the control plane is open, else 0.",
        )
        .expect("valid metric");
        let stream_reconnects = IntCounter::new(
            "conduit_dp_stream_reconnects_total",
            "Times the config stream was re-established after ending.",
        )
        .expect("valid metric");
        let requests = IntCounterVec::new(
            Opts::new(
                "conduit_dp_requests_total",
                "MCP requests on the public listener by server, JSON-RPC method (a closed set: \
                 see method_label; batch, GET, DELETE, other, none) and HTTP status class.",
            ),
            &["server", "method", "status_class"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "conduit_dp_request_duration_seconds",
                "Time from request start to response headers, by server.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["server"],
        )
        .expect("valid metric");
        let stdio_restarts = IntCounterVec::new(
            Opts::new(
                "conduit_dp_stdio_restarts_total",
                "Times a stdio server's process ended or failed to start and was started again.",
            ),
            &["server"],
        )
        .expect("valid metric");
        let stdio_up = IntGaugeVec::new(
            Opts::new(
                "conduit_dp_stdio_up",
                "1 while a stdio server's process is running and initialized, else 0.",
            ),
            &["server"],
        )
        .expect("valid metric");
        let stdio_processes = IntGaugeVec::new(
            Opts::new(
                "conduit_dp_stdio_processes",
                "Processes a stdio server with isolation tenant or client runs now.",
            ),
            &["server"],
        )
        .expect("valid metric");
        let stdio_unrouted = IntCounterVec::new(
            Opts::new(
                "conduit_dp_stdio_unrouted_total",
                "Messages of a shared stdio process that name no caller and could have come \
                 from more than one (message: request, answered with an error; notification, \
                 dropped).",
            ),
            &["server", "message"],
        )
        .expect("valid metric");
        let stdio_refused = IntCounterVec::new(
            Opts::new(
                "conduit_dp_stdio_refused_total",
                "Requests refused because their tenant or client would need a process beyond \
                 the server's max_processes.",
            ),
            &["server"],
        )
        .expect("valid metric");
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "conduit_auth_failures_total",
                "Requests on the public listener refused by authentication, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let rate_limit_rejections = IntCounterVec::new(
            Opts::new(
                "conduit_rate_limit_rejections_total",
                "Requests refused by a rate limit or workspace quota, by bucket kind and window.",
            ),
            &["bucket", "window"],
        )
        .expect("valid metric");
        let rate_limit_backend_errors = IntCounterVec::new(
            Opts::new(
                "conduit_rate_limit_backend_errors_total",
                "Requests the rate limit backend (Redis) could not decide, by the decision \
                 rate_limits.on_backend_error made (allowed, refused).",
            ),
            &["decision"],
        )
        .expect("valid metric");
        let approvals = IntCounterVec::new(
            Opts::new(
                "conduit_approvals_total",
                "Approvals phase outcomes: requested (a new request, -32011 pending), granted \
                 (a grant let the call through), invalid (the presented id was refused), \
                 used_up (the grant had no use left), throttled (too many new requests \
                 from the client: -32029).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let approval_requests_dropped = IntCounter::new(
            "conduit_dp_approval_requests_dropped_total",
            "Approval requests dropped because the queue to the control plane was full.",
        )
        .expect("valid metric");
        let approval_grants = IntGauge::new(
            "conduit_dp_approval_grants",
            "Grants in the verified grant set this data plane holds.",
        )
        .expect("valid metric");
        let approval_grant_uses = IntGauge::new(
            "conduit_dp_approval_grant_uses",
            "Uses of the grants in that set, as the control plane counted them fleet-wide.",
        )
        .expect("valid metric");

        let acl_denials = IntCounterVec::new(
            Opts::new(
                "conduit_acl_denials_total",
                "Messages the ACL refused, by server and kind (tool, resource, prompt).",
            ),
            &["server", "kind"],
        )
        .expect("valid metric");
        let guardrail_actions = IntCounterVec::new(
            Opts::new(
                "conduit_guardrail_actions_total",
                "Guardrail rules that matched a tool call, by rule, action and mode (enforce, \
                 shadow); calls blocked by default_action count under rule \"default_action\".",
            ),
            &["rule", "action", "mode"],
        )
        .expect("valid metric");
        let governance_denials = IntCounterVec::new(
            Opts::new(
                "conduit_governance_denials_total",
                "Tool calls a governance tool policy denied, by policy.",
            ),
            &["policy"],
        )
        .expect("valid metric");
        let unknown_methods = IntCounterVec::new(
            Opts::new(
                "conduit_unknown_methods_total",
                "Messages with a method MCP does not define for clients, refused (requests) or \
                 dropped (notifications) because a policy section is on.",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let refusals = IntCounterVec::new(
            Opts::new(
                "conduit_dp_refusals_total",
                "Requests and batch entries the gateway answered itself instead of an upstream, \
                 by who caused the refusal (client, upstream, internal, policy) and audit status.",
            ),
            &["cause", "status"],
        )
        .expect("valid metric");
        let audit_dropped = IntCounter::new(
            "conduit_audit_dropped_total",
            "Audit records dropped because the queue to the control plane was full.",
        )
        .expect("valid metric");
        let audit_undeliverable = IntCounter::new(
            "conduit_dp_audit_undeliverable_total",
            "Audit records dropped because they could never be delivered (too large for a \
             batch, or refused by the control plane as too large).",
        )
        .expect("valid metric");
        let audit_queue_depth = IntGauge::new(
            "conduit_dp_audit_queue_depth",
            "Audit records waiting for the control plane or sent and not yet acked.",
        )
        .expect("valid metric");
        let audit_queue_bytes = IntGauge::new(
            "conduit_dp_audit_queue_bytes",
            "Encoded bytes of the audit records waiting for the control plane or sent and \
             not yet acked.",
        )
        .expect("valid metric");
        let audit_records = IntCounter::new(
            "conduit_dp_audit_records_total",
            "Audit records written (one per request, one per batch entry), dropped ones \
             included.",
        )
        .expect("valid metric");
        let snapshot_apply = Histogram::with_opts(
            HistogramOpts::new(
                "conduit_dp_snapshot_apply_seconds",
                "Time to verify, compile and swap in a configuration that was applied.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )
        .expect("valid metric");
        let contact = Arc::new(Contact::new(control_plane_connected.clone()));

        for collector in [
            Box::new(config_version.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(config_applies.clone()),
            Box::new(config_last_apply_timestamp.clone()),
            Box::new(control_plane_connected.clone()),
            Box::new(stream_reconnects.clone()),
            Box::new(requests.clone()),
            Box::new(request_duration.clone()),
            Box::new(stdio_restarts.clone()),
            Box::new(stdio_up.clone()),
            Box::new(stdio_processes.clone()),
            Box::new(stdio_unrouted.clone()),
            Box::new(stdio_refused.clone()),
            Box::new(acl_denials.clone()),
            Box::new(guardrail_actions.clone()),
            Box::new(governance_denials.clone()),
            Box::new(unknown_methods.clone()),
            Box::new(auth_failures.clone()),
            Box::new(refusals.clone()),
            Box::new(rate_limit_rejections.clone()),
            Box::new(rate_limit_backend_errors.clone()),
            Box::new(approvals.clone()),
            Box::new(approval_requests_dropped.clone()),
            Box::new(approval_grants.clone()),
            Box::new(approval_grant_uses.clone()),
            Box::new(audit_dropped.clone()),
            Box::new(audit_undeliverable.clone()),
            Box::new(audit_queue_depth.clone()),
            Box::new(audit_queue_bytes.clone()),
            Box::new(audit_records.clone()),
            Box::new(snapshot_apply.clone()),
            Box::new(StaleSeconds::new(Arc::clone(&contact))),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        // Both outcomes exist from the start so dashboards can rate() them before the first
        // rejection happens.
        for outcome in [ApplyOutcome::Applied, ApplyOutcome::Rejected] {
            config_applies.with_label_values(&[outcome.as_str()]);
        }
        for kind in ["request", "notification"] {
            unknown_methods.with_label_values(&[kind]);
        }
        for decision in ["allowed", "refused"] {
            rate_limit_backend_errors.with_label_values(&[decision]);
        }

        Metrics {
            registry,
            config_version,
            config_applies,
            config_last_apply_timestamp,
            control_plane_connected,
            stream_reconnects,
            requests,
            request_duration,
            stdio_restarts,
            stdio_up,
            stdio_processes,
            stdio_unrouted,
            stdio_refused,
            acl_denials,
            guardrail_actions,
            governance_denials,
            unknown_methods,
            auth_failures,
            refusals,
            rate_limit_rejections,
            rate_limit_backend_errors,
            approvals,
            approval_requests_dropped,
            approval_grants,
            approval_grant_uses,
            audit_dropped,
            audit_undeliverable,
            audit_queue_depth,
            audit_queue_bytes,
            audit_records,
            snapshot_apply,
            contact,
        }
    }

    /// Export `collector`'s metrics too (metrics computed at scrape time).
    pub fn register(&self, collector: Box<dyn Collector>) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|error| format!("# encoding metrics failed: {error}\n"))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `2xx`, `4xx`, ... for a status code.
pub fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_every_metric_name() {
        let metrics = Metrics::new();
        crate::auth::register_metrics(&metrics);
        crate::rate_limit::register_metrics(&metrics);
        crate::approvals::register_metrics(&metrics);
        metrics
            .requests
            .with_label_values(&["a", "tools/call", "2xx"])
            .inc();
        metrics
            .request_duration
            .with_label_values(&["a"])
            .observe(0.1);
        metrics.stdio_restarts.with_label_values(&["s"]).inc();
        metrics
            .refusals
            .with_label_values(&["upstream", "upstream_timeout"])
            .inc();
        metrics.stdio_up.with_label_values(&["s"]).set(1);
        metrics.acl_denials.with_label_values(&["s", "tool"]).inc();
        metrics
            .guardrail_actions
            .with_label_values(&["r", "block", "shadow"])
            .inc();
        metrics.governance_denials.with_label_values(&["p"]).inc();
        metrics
            .rate_limit_rejections
            .with_label_values(&["client", "minute"])
            .inc();
        let text = metrics.encode();
        for name in [
            "conduit_dp_config_version",
            "conduit_dp_config_applies_total{outcome=\"applied\"}",
            "conduit_dp_config_applies_total{outcome=\"rejected\"}",
            "conduit_dp_config_last_apply_timestamp_seconds",
            "conduit_dp_control_plane_connected",
            "conduit_dp_stream_reconnects_total",
            "conduit_dp_requests_total{method=\"tools/call\",server=\"a\",status_class=\"2xx\"}",
            "conduit_dp_request_duration_seconds_bucket",
            "conduit_dp_stdio_restarts_total{server=\"s\"}",
            "conduit_dp_stdio_up{server=\"s\"}",
            "conduit_acl_denials_total{kind=\"tool\",server=\"s\"}",
            "conduit_guardrail_actions_total{action=\"block\",mode=\"shadow\",rule=\"r\"}",
            "conduit_governance_denials_total{policy=\"p\"}",
            "conduit_auth_failures_total{reason=\"invalid_key\"}",
            "conduit_auth_failures_total{reason=\"jwks_unavailable\"}",
            "conduit_rate_limit_rejections_total{bucket=\"client\",window=\"minute\"}",
            "conduit_rate_limit_backend_errors_total{decision=\"allowed\"}",
            "conduit_rate_limit_backend_errors_total{decision=\"refused\"}",
            "conduit_approvals_total{outcome=\"requested\"}",
            "conduit_approvals_total{outcome=\"granted\"}",
            "conduit_approvals_total{outcome=\"invalid\"}",
            "conduit_approvals_total{outcome=\"used_up\"}",
            "conduit_approvals_total{outcome=\"throttled\"}",
            "conduit_dp_approval_requests_dropped_total",
            "conduit_dp_approval_grants",
            "conduit_dp_approval_grant_uses",
            "conduit_dp_refusals_total{cause=\"upstream\",status=\"upstream_timeout\"} 1",
            "conduit_audit_dropped_total 0",
            "conduit_dp_audit_undeliverable_total 0",
            "conduit_dp_audit_queue_depth 0",
            "conduit_dp_audit_queue_bytes 0",
            "conduit_dp_audit_records_total 0",
            "conduit_dp_config_stale_seconds 0",
            "conduit_dp_snapshot_apply_seconds_count 0",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(http::StatusCode::OK), "2xx");
        assert_eq!(status_class(http::StatusCode::NOT_FOUND), "4xx");
        assert_eq!(status_class(http::StatusCode::GATEWAY_TIMEOUT), "5xx");
    }
}
