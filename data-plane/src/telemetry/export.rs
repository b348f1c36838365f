//! The tracer provider of one set of trace settings: OTLP over HTTP (protobuf) to the
//! configured endpoint, through a batch span processor on the Tokio runtime.
//!
//! The request path only ever hands a finished span to the processor's bounded channel
//! (`try_send`): when the collector is slow or down the queue fills and further spans are
//! dropped, never waited for. Each export is cut off after [`EXPORT_TIMEOUT`]. The HTTP
//! client is hyper over the rustls connector of upstream calls, so an `https` collector is
//! verified against the same roots and no second TLS stack is linked.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_otlp::{
    ExporterBuildError, Protocol, SpanExporter, WithExportConfig as _, WithHttpConfig as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, SdkTracerProvider};

use super::Settings;
use super::sampler::{RatioSampler, RequestIds};

/// Spans waiting for export; more are dropped (a burst of a few thousand requests fits).
pub(crate) const MAX_QUEUE_SIZE: usize = 4096;
/// Spans per OTLP request.
const MAX_EXPORT_BATCH_SIZE: usize = 512;
/// How often queued spans are sent when the batch is not full.
const SCHEDULED_DELAY: Duration = Duration::from_secs(1);
/// One export (an HTTP request to the collector) gives up after this long.
pub(crate) const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Build the provider of `settings`; its batch task is spawned on the current Tokio runtime.
pub(super) fn provider(
    settings: &Settings,
    node_id: &str,
) -> Result<SdkTracerProvider, ExporterBuildError> {
    let client = HyperClient::new(crate::upstream::https_connector(), EXPORT_TIMEOUT, None);
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(MAX_QUEUE_SIZE)
        .with_max_export_batch_size(MAX_EXPORT_BATCH_SIZE)
        .with_scheduled_delay(SCHEDULED_DELAY)
        .with_max_export_timeout(EXPORT_TIMEOUT)
        .build();
    let processor = BatchSpanProcessor::builder(exporter, Tokio)
        .with_batch_config(batch)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(RatioSampler::new(settings.sample_rate))
        .with_id_generator(RequestIds::default())
        .with_resource(resource(settings, node_id))
        .build())
}

/// `service.name` (configured), `service.instance.id` (the node id) and `service.version`.
/// Built without the SDK's detectors, so the environment cannot override the config.
fn resource(settings: &Settings, node_id: &str) -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", settings.service_name.clone()),
            KeyValue::new("service.instance.id", node_id.to_owned()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build()
}
