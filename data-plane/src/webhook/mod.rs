//! Webhooks of guardrail rules: when a rule with a `webhook` blocks or alerts, a JSON event
//! is `POST`ed to it. Delivery never slows the request: [`Webhooks::notify`] puts the event
//! in a bounded queue (a full queue drops the event and counts it) and a background task
//! delivers it with a timeout, bounded retries and the SSRF guard of `address`.
//!
//! Payload: `{event: "guardrail_block" | "guardrail_alert", rule, severity, client_id,
//! tenant_id, server_id, tool, arguments, message, trace_id, timestamp}`, where `arguments`
//! are redacted with `observability.redact_fields` before they are queued.
//! Outcomes are counted in `conduit_webhook_deliveries_total{outcome}` (delivered, failed,
//! refused_address, dropped).

pub(crate) mod address;
pub(crate) mod deliver;

use std::sync::Arc;

use bytes::Bytes;
use conduit_policy::guardrails::severity_str;
use conduit_policy::{GuardrailRule, Redactor};
use prometheus::{IntCounterVec, Opts};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

pub(crate) use deliver::{Delivery, DeliveryOptions};

/// `event` of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The rule blocked the call.
    GuardrailBlock,
    /// The rule let the call through and reports it.
    GuardrailAlert,
}

/// The JSON body of one webhook call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEvent {
    pub event: EventKind,
    pub rule: String,
    pub severity: &'static str,
    pub client_id: String,
    pub tenant_id: String,
    pub server_id: String,
    pub tool: String,
    /// Redacted tool arguments.
    pub arguments: Value,
    pub message: Option<String>,
    pub trace_id: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
}

/// Who called what, for [`WebhookEvent::guardrail`].
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    pub client_id: &'a str,
    pub tenant_id: &'a str,
    pub server_id: &'a str,
    pub tool: &'a str,
    pub arguments: &'a Value,
    pub trace_id: &'a str,
}

impl WebhookEvent {
    /// The event of `rule` deciding `kind` on a call; arguments redacted with `redactor`.
    pub fn guardrail(
        kind: EventKind,
        rule: &GuardrailRule,
        call: CallFacts<'_>,
        redactor: &Redactor,
    ) -> WebhookEvent {
        let message = match kind {
            EventKind::GuardrailBlock => Some(rule.block_message()),
            EventKind::GuardrailAlert => rule.message().map(str::to_owned),
        };
        WebhookEvent {
            event: kind,
            rule: rule.name().to_owned(),
            severity: severity_str(rule.severity()),
            client_id: call.client_id.to_owned(),
            tenant_id: call.tenant_id.to_owned(),
            server_id: call.server_id.to_owned(),
            tool: call.tool.to_owned(),
            arguments: redactor.redact(call.arguments),
            message,
            trace_id: call.trace_id.to_owned(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The rule's webhook URL (http or https, references resolved).
    pub url: String,
    /// `guardrails.webhook_allow_private_networks`.
    pub allow_private_networks: bool,
}

/// Queue and concurrency limits.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Events waiting for delivery; more are dropped.
    pub queue: usize,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    pub delivery: DeliveryOptions,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            queue: 1024,
            concurrency: 8,
            delivery: DeliveryOptions::default(),
        }
    }
}

struct Job {
    target: WebhookTarget,
    body: Bytes,
}

/// The webhook sender of one data plane. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    queue: mpsc::Sender<Job>,
    deliveries: IntCounterVec,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field(
                "queued",
                &(self.queue.max_capacity() - self.queue.capacity()),
            )
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Start the delivery task (needs a Tokio runtime) and register the deliveries counter
    /// with `metrics`.
    pub fn start(metrics: &crate::metrics::Metrics, options: WebhookOptions) -> Webhooks {
        let deliveries = IntCounterVec::new(
            Opts::new(
                "conduit_webhook_deliveries_total",
                "Guardrail webhook events by outcome (delivered, failed, refused_address, dropped).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        // Every outcome exists from the start so alerts can rate() them before the first event.
        for outcome in ["delivered", "failed", "refused_address", "dropped"] {
            deliveries.with_label_values(&[outcome]);
        }
        if let Err(error) = metrics.register(Box::new(deliveries.clone())) {
            tracing::warn!(%error, "webhook metrics not registered");
        }
        Webhooks::spawn(deliveries, options)
    }

    fn spawn(deliveries: IntCounterVec, options: WebhookOptions) -> Webhooks {
        let (queue, receiver) = mpsc::channel(options.queue.max(1));
        tokio::spawn(run(receiver, deliveries.clone(), options));
        Webhooks { queue, deliveries }
    }

    /// Queue `event` for `target`; never waits. A full queue drops the event (counted as
    /// `dropped`).
    pub fn notify(&self, target: WebhookTarget, event: &WebhookEvent) {
        let body = match serde_json::to_vec(event) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                tracing::warn!(%error, "webhook event not serializable");
                return;
            }
        };
        if self.queue.try_send(Job { target, body }).is_err() {
            self.deliveries.with_label_values(&["dropped"]).inc();
            tracing::warn!(rule = %event.rule, "webhook queue full: event dropped");
        }
    }

    /// Send the event of an enforced guardrail decision when its rule has a webhook: a block
    /// or an alert (bypass, approval and default decisions send nothing; neither do shadow
    /// hits, which are only recorded).
    pub fn notify_decision(
        &self,
        decision: &conduit_policy::Decision<'_>,
        call: CallFacts<'_>,
        redactor: &Redactor,
        allow_private_networks: bool,
    ) {
        let (kind, rule) = match decision {
            conduit_policy::Decision::Block { rule } => (EventKind::GuardrailBlock, *rule),
            conduit_policy::Decision::Alert { rule } => (EventKind::GuardrailAlert, *rule),
            _ => return,
        };
        let Some(url) = rule.webhook() else {
            return;
        };
        let target = WebhookTarget {
            url: url.to_owned(),
            allow_private_networks,
        };
        self.notify(target, &WebhookEvent::guardrail(kind, rule, call, redactor));
    }

    /// Deliveries so far with `outcome`.
    pub fn count(&self, outcome: &str) -> u64 {
        self.deliveries.with_label_values(&[outcome]).get()
    }
}

async fn run(
    mut receiver: mpsc::Receiver<Job>,
    deliveries: IntCounterVec,
    options: WebhookOptions,
) {
    let tls = Arc::new(tls_config());
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let options = Arc::new(options);
    while let Some(job) = receiver.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tls, options, deliveries) = (tls.clone(), options.clone(), deliveries.clone());
        tokio::spawn(async move {
            let outcome = deliver::deliver(
                &tls,
                &job.target.url,
                job.body,
                job.target.allow_private_networks,
                &options.delivery,
            )
            .await;
            let label = match &outcome {
                Delivery::Delivered => "delivered",
                Delivery::Failed(reason) => {
                    tracing::warn!(url = %host_of(&job.target.url), %reason, "webhook delivery failed");
                    "failed"
                }
                Delivery::RefusedAddress(reason) => {
                    tracing::warn!(url = %host_of(&job.target.url), %reason, "webhook refused: private address");
                    "refused_address"
                }
            };
            deliveries.with_label_values(&[label]).inc();
            drop(permit);
        });
    }
}

/// The host of a URL, for logs (webhook URLs may carry secrets in their path or query).
fn host_of(url: &str) -> String {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_owned))
        .unwrap_or_default()
}

fn tls_config() -> rustls::ClientConfig {
    use hyper_rustls::ConfigBuilderExt as _;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default protocol versions are supported")
        .with_webpki_roots()
        .with_no_client_auth()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
