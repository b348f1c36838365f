use conduit_config::Document;
use opentelemetry::trace::{Span as _, TraceId, Tracer as _};

use super::*;

fn settings(text: &str) -> Result<Option<Settings>, ConfigError> {
    Settings::compile(&Document::from_text(text).expect("a valid document"))
}

const SERVERS: &str = "servers:\n  - id: a\n    url: http://127.0.0.1:1/mcp\n";

#[test]
fn traces_are_off_unless_the_block_enables_them() {
    assert_eq!(settings(SERVERS).unwrap(), None);
    let disabled = format!(
        "{SERVERS}observability:\n  opentelemetry:\n    enabled: false\n    endpoint: http://127.0.0.1:4318/v1/traces\n"
    );
    assert_eq!(settings(&disabled).unwrap(), None);
    let enabled = format!(
        "{SERVERS}observability:\n  opentelemetry:\n    endpoint: http://127.0.0.1:4318/v1/traces\n"
    );
    assert_eq!(
        settings(&enabled).unwrap(),
        Some(Settings {
            endpoint: "http://127.0.0.1:4318/v1/traces".into(),
            service_name: DEFAULT_SERVICE_NAME.into(),
            sample_rate: 1.0,
        })
    );
    let tuned = format!(
        "{SERVERS}observability:\n  opentelemetry:\n    endpoint: https://collector:4318/v1/traces\n    service_name: edge\n    sample_rate: 0.25\n"
    );
    let tuned = settings(&tuned).unwrap().unwrap();
    assert_eq!(
        (tuned.service_name.as_str(), tuned.sample_rate),
        ("edge", 0.25)
    );
}

fn at(endpoint: &str, sample_rate: f64) -> Settings {
    Settings {
        endpoint: endpoint.into(),
        service_name: "conduit".into(),
        sample_rate,
    }
}

fn current(telemetry: &Telemetry) -> Option<Arc<Traces>> {
    telemetry.inner.current.load_full()
}

#[tokio::test]
async fn the_provider_is_rebuilt_only_when_the_settings_change() {
    let telemetry = Telemetry::new("node-1");
    assert!(!telemetry.is_enabled());
    telemetry.configure(None);
    assert!(!telemetry.is_enabled());

    let first = at("http://127.0.0.1:1/v1/traces", 1.0);
    telemetry.configure(Some(&first));
    let built = current(&telemetry).expect("tracing is on");
    telemetry.configure(Some(&first.clone()));
    assert!(Arc::ptr_eq(&built, &current(&telemetry).unwrap()));

    // A new endpoint or sample rate is a new provider; the old one is shut down.
    telemetry.configure(Some(&at("http://127.0.0.1:2/v1/traces", 1.0)));
    let moved = current(&telemetry).unwrap();
    assert!(!Arc::ptr_eq(&built, &moved));
    assert_eq!(moved.settings.endpoint, "http://127.0.0.1:2/v1/traces");
    tokio::time::timeout(Duration::from_secs(10), async {
        // A shut-down provider starts only invalid, non-recording spans.
        while built.tracer.start("probe").span_context().is_valid() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the replaced provider is shut down");

    telemetry.configure(Some(&at("http://127.0.0.1:2/v1/traces", 0.5)));
    assert_eq!(current(&telemetry).unwrap().settings.sample_rate, 0.5);

    telemetry.configure(None);
    assert!(!telemetry.is_enabled());
    assert!(telemetry.start(&trace(), &http::Method::POST).is_none());
}

fn trace() -> crate::trace_context::TraceContext {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        http::HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    crate::trace_context::TraceContext::from_headers(&headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_span_continues_the_callers_trace_and_parents_the_upstream() {
    let telemetry = Telemetry::new("node-1");
    telemetry.configure(Some(&at("http://127.0.0.1:1/v1/traces", 0.0)));
    let trace = trace();
    let request = telemetry
        .start(&trace, &http::Method::POST)
        .expect("tracing is on");
    let context = request.span_context();
    assert_eq!(
        context.trace_id(),
        TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128)
    );
    // The caller sampled its trace: followed although the rate is 0.
    assert!(context.is_sampled());

    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.extensions.insert(request.clone());
    let call = upstream(&parts, "a", None).expect("a child span");
    assert_eq!(call.span_context().trace_id(), context.trace_id());
    assert_ne!(call.span_context().span_id(), context.span_id());
    let sent = upstream_context(&trace, Some(&call)).traceparent();
    assert_eq!(
        sent,
        format!(
            "00-0af7651916cd43dd8448eb211c80319c-{}-01",
            call.span_context().span_id()
        )
    );

    // Without a caller's traceparent the request's own trace id is used, and the rate (0)
    // leaves it unsampled: the upstream hears that.
    let own = crate::trace_context::TraceContext::from_headers(&http::HeaderMap::new());
    let unsampled = telemetry.start(&own, &http::Method::POST).unwrap();
    assert_eq!(
        unsampled.span_context().trace_id(),
        TraceId::from(own.trace_id_value())
    );
    assert!(!unsampled.span_context().is_sampled());
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.extensions.insert(unsampled);
    let call = upstream(&parts, "a", None).unwrap();
    assert!(
        upstream_context(&own, Some(&call))
            .traceparent()
            .ends_with("-00")
    );
    telemetry.shutdown().await;
    assert!(!telemetry.is_enabled());
}

/// Counts the POSTs a collector receives (answering each with 200).
async fn collector() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&posts);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buffer = vec![0; 1 << 16];
                while let Ok(read) = stream.read(&mut buffer).await {
                    if read == 0 {
                        return;
                    }
                    if buffer[..read].starts_with(b"POST ") {
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    }
                }
            });
        }
    });
    (url, posts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_resumes_after_being_turned_off_and_on() {
    let (url, posts) = collector().await;
    let telemetry = Telemetry::new("node-1");
    let exported = |expected: usize| {
        let posts = Arc::clone(&posts);
        async move {
            tokio::time::timeout(Duration::from_secs(10), async {
                while posts.load(std::sync::atomic::Ordering::SeqCst) < expected {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("the span is exported");
        }
    };
    telemetry.configure(Some(&at(&url, 1.0)));
    drop(telemetry.start(&trace(), &http::Method::POST).unwrap());
    exported(1).await;
    telemetry.configure(None);
    telemetry.configure(Some(&at(&url, 1.0)));
    drop(telemetry.start(&trace(), &http::Method::POST).unwrap());
    exported(2).await;
}
