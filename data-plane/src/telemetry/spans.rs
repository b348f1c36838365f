//! The spans of one request, and the hooks the proxy calls to make them.
//!
//! [`Telemetry::start`] opens the request span (`mcp.request`, kind server) as a child of
//! the caller's `traceparent`, or as the root of the request's trace (with the trace id the
//! gateway already reports in `X-Conduit-Trace-Id`). It travels as a [`RequestSpan`] in the
//! request's extensions, where the free functions below find it: each is a no-op returning
//! `None` when the request has none (tracing off). Children: `auth` (when `auth` is
//! configured), `policy` (admission, once per message) and `upstream` (kind client, once
//! per upstream call), whose id is the parent id of the `traceparent` sent upstream.
//!
//! Attributes name the request (HTTP method and status, server, JSON-RPC method, tool,
//! client id) and never carry arguments, results or credentials. A span's status is an
//! error when the gateway refused or failed the request: a 5xx, an authentication failure,
//! a policy refusal, any JSON-RPC error the gateway wrote itself (the answers the audit
//! records tag, [`crate::http::Answered`]), an upstream that could not be reached. Errors
//! the upstream answered are its own.

use http::request::Parts;
use http::{Method, Response, StatusCode, Uri};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, Span};

use super::Telemetry;
use super::sampler::with_trace_id;
use crate::caller::Caller;
use crate::mcp::{Message, Subject};
use crate::trace_context::TraceContext;

/// Name of the authentication span.
pub(crate) const AUTH: &str = "auth";
/// Name of the admission span.
pub(crate) const POLICY: &str = "policy";
/// Attribute values from the request (method and tool names) are cut to this many bytes.
const MAX_NAME_BYTES: usize = 128;

/// The request span, in the request's extensions while it is served.
#[derive(Debug, Clone)]
pub struct RequestSpan {
    /// Holds the span; children are started in it.
    cx: Context,
    tracer: SdkTracer,
    /// A batch names many methods: they go on the messages' spans, not this one.
    batch: bool,
}

impl Telemetry {
    /// Open the span of a request, or `None` when tracing is off (one atomic load).
    pub fn start(&self, trace: &TraceContext, method: &Method) -> Option<RequestSpan> {
        let traces = self.load();
        let traces = traces.as_ref()?;
        let parent = match trace.remote_parent() {
            Some((span_id, flags)) => Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from(trace.trace_id_value()),
                SpanId::from(span_id),
                TraceFlags::new(flags),
                true,
                TraceState::NONE,
            )),
            None => Context::new(),
        };
        let tracer = traces.tracer.clone();
        let builder = tracer
            .span_builder("mcp.request")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("http.request.method", method.to_string())]);
        let span = with_trace_id(trace.trace_id_value(), || {
            builder.start_with_context(&tracer, &parent)
        });
        Some(RequestSpan {
            cx: parent.with_span(span),
            tracer,
            batch: false,
        })
    }
}

impl RequestSpan {
    /// End the span with the response's status; `server` is the request's server label.
    pub fn end<B>(self, server: &str, response: &Response<B>) {
        let span = self.cx.span();
        let status = response.status();
        span.set_attributes([
            KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
            KeyValue::new("conduit.server.id", server.to_owned()),
        ]);
        let gateway_error = crate::http::answered(response)
            .filter(|answered| answered.status != crate::http::Status::Error);
        if let Some(error) = gateway_error {
            span.set_attribute(KeyValue::new("rpc.jsonrpc.error_code", error.code));
            span.set_status(Status::error(format!("JSON-RPC error {}", error.code)));
        } else if status.is_server_error() {
            span.set_status(Status::error(format!("HTTP {}", status.as_u16())));
        }
        span.end();
    }

    /// The span context of the request span (its ids, whether it is sampled).
    pub fn span_context(&self) -> SpanContext {
        self.cx.span().span_context().clone()
    }

    fn child(&self, name: &'static str, kind: SpanKind) -> ChildSpan {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(&self.tracer, &self.cx);
        ChildSpan { span, name }
    }

    fn fail(&self, message: String) {
        self.cx.span().set_status(Status::error(message));
    }
}

/// A span inside the request; it ends when dropped.
#[derive(Debug)]
pub(crate) struct ChildSpan {
    span: Span,
    name: &'static str,
}

impl ChildSpan {
    /// The span's id and whether it is sampled.
    pub(crate) fn span_context(&self) -> &SpanContext {
        self.span.span_context()
    }

    /// End the upstream span: its HTTP status, or why no answer came (an error).
    pub(crate) fn upstream_outcome(mut self, outcome: Result<StatusCode, &str>) {
        match outcome {
            Ok(status) => {
                self.span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
                if status.is_server_error() {
                    self.span
                        .set_status(Status::error(format!("HTTP {}", status.as_u16())));
                }
            }
            Err(reason) => self.span.set_status(Status::error(reason.to_owned())),
        }
    }
}

fn request_span(parts: &Parts) -> Option<&RequestSpan> {
    parts.extensions.get::<RequestSpan>()
}

/// Start a child span of the request (`AUTH`, `POLICY`).
pub(crate) fn child(parts: &Parts, name: &'static str) -> Option<ChildSpan> {
    Some(request_span(parts)?.child(name, SpanKind::Internal))
}

/// The caller authenticated: its client id goes on the request span.
pub(crate) fn authenticated(span: Option<ChildSpan>, parts: &Parts, caller: &Caller) {
    let (Some(_span), Some(request)) = (span, request_span(parts)) else {
        return;
    };
    request.cx.span().set_attribute(KeyValue::new(
        "conduit.client.id",
        caller.client_id.to_string(),
    ));
}

/// The phase of `span` refused the request because of `reason` (a bounded word, never a
/// credential).
pub(crate) fn failed(span: Option<ChildSpan>, parts: &Parts, reason: &str) {
    let Some(mut span) = span else { return };
    span.span.set_status(Status::error(reason.to_owned()));
    if let Some(request) = request_span(parts) {
        request.fail(format!("{}: {reason}", span.name));
    }
}

/// End the admission span; `refused` when admission answered instead of the upstream.
pub(crate) fn end_policy(span: Option<ChildSpan>, parts: &Parts, refused: bool) {
    if refused {
        failed(span, parts, "refused");
    }
}

/// The request is a batch: its messages are not described one by one on its span.
pub(crate) fn note_batch(parts: &mut Parts) {
    if let Some(request) = parts.extensions.get_mut::<RequestSpan>() {
        request.batch = true;
        request
            .cx
            .span()
            .set_attribute(KeyValue::new("mcp.method.name", "batch"));
    }
}

/// Put the message's JSON-RPC method and tool name on the request span (unless it is a
/// batch, whose messages are many).
pub(crate) fn describe(parts: &Parts, message: &Message) {
    let Some(request) = request_span(parts) else {
        return;
    };
    if request.batch || !request.cx.span().is_recording() {
        return;
    }
    request
        .cx
        .span()
        .set_attributes(message_attributes(message));
}

/// [`describe`] for a message admission does not read: parsed here only when the request
/// span is recorded, so tracing costs nothing more for requests it does not sample.
pub(crate) fn describe_body(parts: &Parts, body: &[u8]) {
    let recorded = request_span(parts)
        .is_some_and(|request| !request.batch && request.cx.span().is_recording());
    if recorded && let Ok(message) = Message::parse(body) {
        describe(parts, &message);
    }
}

fn message_attributes(message: &Message) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(2);
    if let Some(method) = &message.method {
        attributes.push(KeyValue::new("mcp.method.name", bounded(method)));
    }
    if let Subject::Tool { name, .. } = &message.subject {
        attributes.push(KeyValue::new("gen_ai.tool.name", bounded(name)));
    }
    attributes
}

fn bounded(text: &str) -> String {
    if text.len() <= MAX_NAME_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_NAME_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Start the upstream span of a call to `server` (at `uri` for an HTTP server).
pub(crate) fn upstream(parts: &Parts, server: &str, uri: Option<&Uri>) -> Option<ChildSpan> {
    let mut span = request_span(parts)?.child("upstream", SpanKind::Client);
    if span.span.is_recording() {
        span.span
            .set_attribute(KeyValue::new("conduit.server.id", server.to_owned()));
        // Host and port only: a URL may carry credentials.
        if let Some(host) = uri.and_then(Uri::host) {
            span.span
                .set_attribute(KeyValue::new("server.address", host.to_owned()));
        }
        if let Some(port) = uri.and_then(Uri::port_u16) {
            span.span
                .set_attribute(KeyValue::new("server.port", i64::from(port)));
        }
    }
    Some(span)
}

/// The trace context to propagate upstream: the upstream span as the parent when there is
/// one (with its sampling decision), else `trace` unchanged.
pub(crate) fn upstream_context(trace: &TraceContext, span: Option<&ChildSpan>) -> TraceContext {
    match span {
        Some(span) => {
            let context = span.span_context();
            let span_id = u64::from_be_bytes(context.span_id().to_bytes());
            trace.with_span(span_id, context.is_sampled())
        }
        None => *trace,
    }
}
