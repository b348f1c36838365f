//! The one apply path every configuration source goes through.
//!
//! text → `Document::from_text` → `resolve_references` (within the operator's
//! [`ReferencePolicy`], errors never showing a resolved value) → `Runtime::compile_with` →
//! `ArcSwap::store` → `stdio::Pool::commit`. Nothing is stored (and no stdio process
//! started or stopped) unless every step succeeds, so a rejected candidate leaves the
//! last-known-good runtime serving untouched. Each attempt is reported once, by
//! [`Applier::record`], which writes both the log line and the metrics.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use chrono::Utc;
use conduit_config::{ConfigErrors, Document};

use crate::approvals::Approvals;
use crate::balancer::health::HttpProber;
use crate::metrics::{ApplyOutcome, Metrics};
use crate::references::ReferencePolicy;
use crate::runtime::{Applied, ConfigSource, Runtime};
use crate::services::Services;
use crate::session::KeyRing;
use crate::stdio;
use crate::telemetry::{self, Telemetry};
use crate::webhook::Webhooks;

/// The serving runtime, swapped atomically by the applier and read by requests.
pub(crate) type SharedRuntime = Arc<ArcSwap<Runtime>>;

/// A configuration offered for apply.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// YAML or JSON text of the whole document, references unresolved.
    pub text: String,
    pub version: u64,
    /// The hash the source vouches for (the snapshot hash from the control plane); `None`
    /// means the document's own content hash.
    pub hash: Option<String>,
    pub source: ConfigSource,
}

/// Applies candidates to the shared runtime. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Applier {
    runtime: SharedRuntime,
    /// The process's metrics, approval state and webhook sender, shared with the request
    /// path; no applied configuration replaces them.
    services: Services,
    /// Probes the replicas of the serving runtime's HTTP servers.
    prober: HttpProber,
    /// The stdio processes of the applied runtimes.
    stdio: stdio::Pool,
    /// Session keys from outside the config (control plane, or this process's own).
    key_ring: Arc<KeyRing>,
    /// Trace export, reconfigured by every apply.
    telemetry: Telemetry,
    /// What `${file:}` / `${env:}` references may read.
    references: ReferencePolicy,
}

impl Applier {
    pub fn new(runtime: SharedRuntime, metrics: Arc<Metrics>) -> Self {
        let stdio = stdio::Pool::new(Arc::clone(&metrics));
        Applier {
            runtime,
            services: Services::new(metrics),
            prober: HttpProber::new(),
            stdio,
            key_ring: Arc::new(KeyRing::new()),
            telemetry: Telemetry::new(""),
            references: ReferencePolicy::default(),
        }
    }

    /// Resolve references within `policy` (default: no `${file:}`, `${env:}` only with the
    /// default prefix).
    pub fn with_references(mut self, policy: ReferencePolicy) -> Self {
        self.references = policy;
        self
    }

    /// Configure `telemetry` (the process's trace export) from every applied configuration.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Send guardrail webhook events through `webhooks` (the process's one sender).
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.services = self.services.with_webhooks(webhooks);
        self
    }

    pub fn runtime(&self) -> &SharedRuntime {
        &self.runtime
    }

    /// The data plane's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.services.metrics
    }

    /// The services the request path shares with this applier.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The stdio processes, for the shutdown path.
    pub fn stdio(&self) -> &stdio::Pool {
        &self.stdio
    }

    /// The session keys not named by the config; shared with the proxy.
    pub fn key_ring(&self) -> &Arc<KeyRing> {
        &self.key_ring
    }

    /// The process's approval state.
    pub fn approvals(&self) -> &Approvals {
        &self.services.approvals
    }

    /// What is serving now, if anything.
    pub fn current(&self) -> Option<Applied> {
        self.runtime.load().applied().cloned()
    }

    /// Apply `candidate` entirely or not at all. On error every problem is returned and
    /// the previous runtime keeps serving. Needs a Tokio runtime (health checks start).
    pub fn apply(&self, candidate: &Candidate) -> Result<Applied, ConfigErrors> {
        self.apply_since(candidate, Instant::now())
    }

    /// [`Applier::apply`] of a candidate whose checks began at `started` (a snapshot's
    /// verification), which is when `conduit_dp_snapshot_apply_seconds` starts counting.
    pub fn apply_since(
        &self,
        candidate: &Candidate,
        started: Instant,
    ) -> Result<Applied, ConfigErrors> {
        let result =
            compile(candidate, &self.stdio, &self.references).map(|(mut runtime, traces)| {
                let previous = self.runtime.load_full();
                runtime.inherit(&previous);
                let runtime = Arc::new(runtime);
                // Before the swap: once the new configuration is reported applied, its trace
                // settings are in effect (building an exporter loads the trust store).
                self.telemetry.configure(traces.as_ref());
                self.runtime.store(Arc::clone(&runtime));
                previous.stop_health_checks();
                runtime.start_health_checks(&self.prober);
                self.stdio.commit(runtime.stdio_groups());
                self.key_ring.note_applied(runtime.session_keys().is_some());
                runtime
                    .applied()
                    .cloned()
                    .expect("a compiled runtime is applied")
            });
        self.record(candidate, &result);
        if result.is_ok() {
            self.services
                .metrics
                .snapshot_apply
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    /// The single place that reports an apply attempt: one log line and its metrics.
    fn record(&self, candidate: &Candidate, result: &Result<Applied, ConfigErrors>) {
        let source = candidate.source.as_str();
        match result {
            Ok(applied) => {
                self.services
                    .metrics
                    .config_applies
                    .with_label_values(&[ApplyOutcome::Applied.as_str()])
                    .inc();
                self.services
                    .metrics
                    .config_version
                    .set(i64::try_from(applied.version).unwrap_or(i64::MAX));
                self.services
                    .metrics
                    .config_last_apply_timestamp
                    .set(applied.applied_at.timestamp_millis() as f64 / 1000.0);
                tracing::info!(
                    version = applied.version,
                    hash = %applied.hash,
                    source,
                    "configuration applied"
                );
            }
            Err(errors) => {
                self.services
                    .metrics
                    .config_applies
                    .with_label_values(&[ApplyOutcome::Rejected.as_str()])
                    .inc();
                let listed: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                tracing::warn!(
                    version = candidate.version,
                    source,
                    errors = %listed.join("; "),
                    "configuration rejected; the previous configuration keeps serving"
                );
            }
        }
    }
}

/// The runtime of `candidate` and its trace export settings.
/// Errors of the steps after resolution name references, never their values.
fn compile(
    candidate: &Candidate,
    stdio: &stdio::Pool,
    references: &ReferencePolicy,
) -> Result<(Runtime, Option<telemetry::Settings>), ConfigErrors> {
    let document = Document::from_text(&candidate.text)?;
    let (resolved, provenance) = references.resolve(&document)?;
    compile_resolved(candidate, &document, &resolved, stdio).map_err(|e| provenance.redact(e))
}

fn compile_resolved(
    candidate: &Candidate,
    document: &Document,
    resolved: &Document,
    stdio: &stdio::Pool,
) -> Result<(Runtime, Option<telemetry::Settings>), ConfigErrors> {
    let traces = telemetry::Settings::compile(resolved);
    let applied = Applied {
        version: candidate.version,
        hash: candidate
            .hash
            .clone()
            .unwrap_or_else(|| document.content_hash()),
        source: candidate.source,
        applied_at: Utc::now(),
    };
    let runtime = Runtime::compile_with(resolved, applied, stdio);
    match (runtime, traces) {
        (Ok(runtime), Ok(traces)) => Ok((runtime, traces)),
        (Ok(_), Err(error)) => Err(ConfigErrors(vec![error])),
        (Err(mut errors), Err(error)) => {
            errors.0.push(error);
            Err(errors)
        }
        (Err(errors), Ok(_)) => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applier() -> (Applier, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let runtime = Arc::new(ArcSwap::from_pointee(Runtime::empty()));
        (Applier::new(runtime, Arc::clone(&metrics)), metrics)
    }

    fn candidate(text: &str, version: u64) -> Candidate {
        Candidate {
            text: text.into(),
            version,
            hash: None,
            source: ConfigSource::File,
        }
    }

    const GOOD: &str = "servers:\n  - id: a\n    url: http://127.0.0.1:1/mcp\n";

    #[tokio::test]
    async fn applies_and_counts() {
        let (applier, metrics) = applier();
        let applied = applier.apply(&candidate(GOOD, 3)).expect("applies");
        assert_eq!(applied.version, 3);
        assert_eq!(
            applied.hash,
            Document::from_text(GOOD).unwrap().content_hash()
        );
        assert_eq!(applier.current(), Some(applied));
        assert_eq!(metrics.config_version.get(), 3);
        assert_eq!(metrics.snapshot_apply.get_sample_count(), 1);
        assert_eq!(
            metrics.config_applies.with_label_values(&["applied"]).get(),
            1
        );
    }

    #[tokio::test]
    async fn errors_of_the_compile_step_name_references_not_values() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        // A key set the validator accepts and the compile step refuses (no usable key).
        std::fs::write(
            &jwks,
            r#"{"keys": [{"kty": "oct", "k": "c2stbGl2ZS1rZXk"}]}"#,
        )
        .unwrap();
        let policy = ReferencePolicy::new(
            &[dir.path().to_path_buf()],
            Vec::new(),
            1024,
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        let (applier, _) = applier();
        let applier = applier.with_references(policy);
        let text = format!(
            "auth: {{method: jwt, audience: a, jwks: '${{file:{}}}'}}\n",
            jwks.display()
        );
        let errors = applier.apply(&candidate(&text, 1)).expect_err("rejected");
        let shown = errors.to_string();
        assert!(shown.contains("auth.jwks"), "{shown}");
        assert!(shown.contains("${file:"), "{shown}");
        assert!(!shown.contains("c2stbGl2ZS1rZXk"), "{shown}");
    }

    #[tokio::test]
    async fn rejection_keeps_the_last_known_good() {
        let (applier, metrics) = applier();
        applier.apply(&candidate(GOOD, 1)).expect("applies");
        let errors = applier
            .apply(&candidate("servers: [{id: b, url: 'ftp://x/'}]", 2))
            .expect_err("rejected");
        assert!(!errors.0.is_empty());
        assert_eq!(applier.current().map(|a| a.version), Some(1));
        assert!(applier.runtime().load().server("a").is_some());
        assert_eq!(metrics.config_version.get(), 1);
        assert_eq!(
            metrics
                .config_applies
                .with_label_values(&["rejected"])
                .get(),
            1
        );
    }
}
