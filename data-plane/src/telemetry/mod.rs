//! OpenTelemetry traces (`observability.opentelemetry`, off by default): one server span per
//! request, with children for authentication, admission (policy) and the upstream call,
//! exported over OTLP/HTTP.
//!
//! [`Telemetry`] is the process's one owner of the tracer provider. The applier hands it the
//! trace settings of every configuration it applies; the provider is rebuilt only when they
//! change (enabled, endpoint, service name, sample rate), and the one it replaces is shut
//! down (flushed) off the request path. The request path reads the current tracer with one
//! atomic load: when tracing is off that load and a branch are all it costs, nothing is
//! allocated and the propagated `traceparent` is what `trace_context` writes.
//!
//! The spans are made with the OpenTelemetry API directly (`spans`), not through
//! `tracing-opentelemetry`: the gateway needs a handful of spans with explicit parents
//! (the caller's `traceparent`, the request span) and explicit ids (the upstream span's id
//! goes into the upstream `traceparent`); a `tracing` layer would put every `tracing` span
//! and event of the process on the export path and cost a subscriber lookup per span even
//! when export is off.

mod export;
mod sampler;
mod spans;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use conduit_config::{ConfigError, Document};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

pub(crate) use spans::{
    AUTH, ChildSpan, POLICY, RequestSpan, authenticated, child, describe, describe_body,
    end_policy, failed, note_batch, upstream, upstream_context,
};

/// `service.name` when the config names none.
pub(crate) const DEFAULT_SERVICE_NAME: &str = "conduit";
/// How long process shutdown waits for the last spans to be exported.
pub(crate) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The trace export settings of one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// OTLP/HTTP traces URL.
    pub endpoint: String,
    pub service_name: String,
    /// 0..=1.
    pub sample_rate: f64,
}

impl Settings {
    /// The settings of `document`; `None` when traces are not exported. The config crate
    /// has validated the block; an endpoint hyper cannot use is still refused here, so a
    /// configuration that could not export is rejected rather than silently not tracing.
    pub fn compile(document: &Document) -> Result<Option<Settings>, ConfigError> {
        let Some(otel) = document
            .observability
            .as_ref()
            .and_then(|o| o.opentelemetry.as_ref())
            .filter(|otel| otel.is_enabled())
        else {
            return Ok(None);
        };
        let path = "observability.opentelemetry.endpoint";
        let endpoint = otel
            .endpoint
            .clone()
            .ok_or_else(|| ConfigError::new(path, "required when opentelemetry is enabled"))?;
        match endpoint.parse::<http::Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => {}
            _ => return Err(ConfigError::new(path, "not an http or https URL")),
        }
        Ok(Some(Settings {
            endpoint,
            service_name: otel
                .service_name
                .clone()
                .unwrap_or_else(|| DEFAULT_SERVICE_NAME.into()),
            sample_rate: otel.sample_rate.unwrap_or(1.0),
        }))
    }
}

/// The process's trace export. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `service.instance.id` of every span.
    node_id: String,
    /// What requests use; `None` while tracing is off.
    current: ArcSwapOption<Traces>,
    /// Held while settings are compared and a provider built (applies are rare; never
    /// held across an await).
    configuring: Mutex<()>,
}

/// One provider and its tracer, built from one [`Settings`].
#[derive(Debug)]
pub(crate) struct Traces {
    settings: Settings,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Telemetry {
    /// Tracing off until [`Telemetry::configure`] turns it on.
    pub fn new(node_id: impl Into<String>) -> Telemetry {
        Telemetry {
            inner: Arc::new(Inner {
                node_id: node_id.into(),
                current: ArcSwapOption::empty(),
                configuring: Mutex::new(()),
            }),
        }
    }

    /// Export with `settings` from now on (`None`: stop exporting). Unchanged settings keep
    /// the running provider and its queue; a replaced provider is flushed and shut down in
    /// the background. Needs a Tokio runtime (the batch task is spawned on it).
    pub fn configure(&self, settings: Option<&Settings>) {
        let _configuring = self
            .inner
            .configuring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let unchanged = match (&*self.inner.current.load(), settings) {
            (Some(current), Some(settings)) => current.settings == *settings,
            (None, None) => true,
            _ => false,
        };
        if unchanged {
            return;
        }
        let next =
            settings.and_then(
                |settings| match export::provider(settings, &self.inner.node_id) {
                    Ok(provider) => {
                        tracing::info!(
                            endpoint = %settings.endpoint,
                            sample_rate = settings.sample_rate,
                            "exporting traces"
                        );
                        let tracer = provider.tracer("conduit-data-plane");
                        Some(Arc::new(Traces {
                            settings: settings.clone(),
                            provider,
                            tracer,
                        }))
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot export traces; tracing is off");
                        None
                    }
                },
            );
        if next.is_none() && settings.is_none() {
            tracing::info!("trace export stopped");
        }
        if let Some(previous) = self.inner.current.swap(next) {
            // Requests still holding the old tracer end their spans into a closed queue:
            // a change of trace settings may lose the spans of requests in flight.
            drop(shut_down(previous.provider.clone()));
        }
    }

    /// Whether spans are being exported.
    pub fn is_enabled(&self) -> bool {
        self.inner.current.load().is_some()
    }

    /// Stop exporting and flush what is queued, waiting at most [`SHUTDOWN_TIMEOUT`].
    pub async fn shutdown(&self) {
        let Some(previous) = self.inner.current.swap(None) else {
            return;
        };
        let done = shut_down(previous.provider.clone());
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, done).await {
            Ok(Ok(())) => tracing::debug!("trace export flushed"),
            Ok(Err(_)) => tracing::warn!("the trace exporter failed while shutting down"),
            Err(_) => tracing::warn!(
                timeout = ?SHUTDOWN_TIMEOUT,
                "trace export did not finish in time; queued spans are lost"
            ),
        }
    }

    /// The current tracer, for the request path.
    fn load(&self) -> arc_swap::Guard<Option<Arc<Traces>>> {
        self.inner.current.load()
    }
}

/// Shut `provider` down on a thread of its own: the SDK's shutdown blocks until the batch
/// task (on the Tokio runtime) has exported what is queued, which must not happen on a
/// runtime worker. The receiver reports the end; dropping it leaves the thread to finish.
fn shut_down(provider: SdkTracerProvider) -> tokio::sync::oneshot::Receiver<()> {
    let (done, finished) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("trace-export-shutdown".into())
        .spawn(move || {
            if let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                tracing::debug!(%error, "trace provider shutdown");
            }
            let _ = done.send(());
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the trace shutdown thread");
    }
    finished
}

#[cfg(test)]
mod tests;
