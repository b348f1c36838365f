//! Audit records: one per request the data plane serves, written when its answer ends
//! (the request path's final step), whatever the outcome.
//!
//! - `ledger`: the per-request facts the phases write down as they learn them;
//! - `body`: the response body that completes the records when it ends;
//! - `record`: building the records (parsing, redaction, truncation, error detection);
//! - `status`: the closed set of statuses and the tag on the gateway's own answers;
//! - `queue`: records waiting for the control plane (the config stream session ships them).
//!
//! Connected to a control plane, records are queued and sent in batches; standalone
//! (`--config`), each record is one structured `tracing` event at info level with target
//! `conduit::audit`. Arguments and responses are redacted with the configuration's
//! `observability.redact_fields` and their strings cut before a record leaves this module.

mod body;
mod ledger;
pub mod queue;
mod record;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use conduit_config::Document;
use conduit_policy::Redactor;
use conduit_proto::v1::AuditRecord;
use http::request::Parts;
use http::{Method, Response};
use prometheus::IntCounter;

pub use crate::http::status::{Answered, Status, tag, tag_as};
pub use body::AuditedBody;
pub use ledger::{EntryWatch, Ledger, Note};
pub use queue::Queue;
pub use record::MAX_STRING_CHARS;

use crate::http::{ProxyBody, is_event_stream};
use crate::jsonrpc::{Envelope, Rejection};
use crate::metrics::Metrics;

/// What goes into records, from `observability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `observability.log_args` (default true).
    pub log_args: bool,
    /// `observability.log_responses` (default false).
    pub log_responses: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log_args: true,
            log_responses: false,
        }
    }
}

impl Settings {
    pub fn compile(document: &Document) -> Settings {
        let observability = document.observability.as_ref();
        Settings {
            log_args: observability.and_then(|o| o.log_args).unwrap_or(true),
            log_responses: observability.and_then(|o| o.log_responses).unwrap_or(false),
        }
    }
}

/// What one configuration asks of the records, shared by its runtime and the requests it
/// serves.
#[derive(Debug)]
pub struct Profile {
    /// The config version (0 before any was applied).
    pub version: u64,
    pub settings: Settings,
    /// `observability.redact_fields`.
    pub redactor: Redactor,
}

impl Profile {
    pub fn compile(document: &Document, version: u64) -> Profile {
        Profile {
            version,
            settings: Settings::compile(document),
            redactor: Redactor::for_document(document),
        }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            version: 0,
            settings: Settings::default(),
            redactor: Redactor::new(conduit_config::model::DEFAULT_REDACT_FIELDS),
        }
    }
}

/// Where records go.
#[derive(Debug)]
enum Sink {
    /// To the control plane, through the config stream.
    Queue(Arc<Queue>),
    /// One `tracing` event per record (a standalone data plane).
    Log,
}

/// Writes the records of every request of one data plane.
#[derive(Debug)]
pub struct Auditor {
    node_id: String,
    sink: Sink,
    written: IntCounter,
}

impl Auditor {
    /// Records queued for the control plane.
    pub fn to_queue(node_id: String, queue: Arc<Queue>, metrics: &Metrics) -> Auditor {
        Auditor {
            node_id,
            sink: Sink::Queue(queue),
            written: metrics.audit_records.clone(),
        }
    }

    /// Records written to the log (target `conduit::audit`).
    pub fn to_log(node_id: String, metrics: &Metrics) -> Auditor {
        Auditor {
            node_id,
            sink: Sink::Log,
            written: metrics.audit_records.clone(),
        }
    }

    /// Whether records are written at all: a log filtered below info takes none, and then
    /// no request pays for building them.
    fn active(&self) -> bool {
        match self.sink {
            Sink::Queue(_) => true,
            Sink::Log => tracing::enabled!(target: "conduit::audit", tracing::Level::INFO),
        }
    }

    /// The response of a request, with a body that writes its records when it ends.
    /// `server` is the request's server label (`unknown`/`none` are not server ids).
    pub fn watch(
        self: &Arc<Self>,
        response: Response<ProxyBody>,
        ledger: Option<Ledger>,
        server: &str,
    ) -> Response<AuditedBody> {
        let Some(ledger) = ledger.filter(|_| self.active()) else {
            return response.map(AuditedBody::plain);
        };
        let server = match server {
            "unknown" | "none" => String::new(),
            known => known.to_owned(),
        };
        let http = response.status();
        let answered = crate::http::answered(&response).cloned();
        let event_stream = is_event_stream(response.headers());
        let auditor = Arc::clone(self);
        response.map(|body| {
            AuditedBody::watched(body, auditor, ledger, server, http, answered, event_stream)
        })
    }

    /// Build and write the records of a request whose answer ended.
    fn complete(&self, ledger: &Ledger, server: &str, ending: &record::Ending) {
        let facts = std::mem::take(&mut *ledger.facts());
        let origin = record::Origin {
            node_id: &self.node_id,
            server,
        };
        for audit in record::build(&origin, ledger.shared(), facts, ending) {
            self.write(audit);
        }
    }

    fn write(&self, record: AuditRecord) {
        self.written.inc();
        match &self.sink {
            Sink::Queue(queue) => {
                queue.push(record);
            }
            Sink::Log => log(&record),
        }
    }
}

/// One record as one structured event. Every field is already redacted.
fn log(record: &AuditRecord) {
    tracing::info!(
        target: "conduit::audit",
        id = %record.id,
        time_unix_ms = record.time_unix_ms,
        trace_id = %record.trace_id,
        node_id = %record.node_id,
        config_version = record.config_version,
        client_id = %record.client_id,
        tenant_id = %record.tenant_id,
        server_id = %record.server_id,
        method = %record.method,
        target = %record.target,
        arguments = %record.arguments_json,
        duration_ms = record.duration_micros as f64 / 1000.0,
        status = %record.status,
        http_status = record.http_status,
        error_code = record.error_code,
        error_message = %record.error_message,
        response_bytes = record.response_bytes,
        guardrail_rule = %record.guardrail_rule,
        guardrail_action = %record.guardrail_action,
        acl_policy = %record.acl_policy,
        response = %record.response_json,
        "audit"
    );
}

/// Note what the transport checks learned about a request: its method label and its
/// message (or a batch's entries). Call once the body is read and checked.
pub fn begin(parts: &mut Parts, body: &Bytes, envelope: Option<&Result<Envelope, Rejection>>) {
    let Some(ledger) = Ledger::of(&parts.extensions).cloned() else {
        return;
    };
    let note = match envelope {
        None if parts.method == Method::GET => {
            ledger.method_label("GET");
            Some(ledger.message(Bytes::new(), Some("GET")))
        }
        None if parts.method == Method::DELETE => {
            ledger.method_label("DELETE");
            Some(ledger.message(Bytes::new(), Some("DELETE")))
        }
        Some(Ok(Envelope::Single(_, label))) => {
            ledger.method_label(label);
            Some(ledger.message(body.clone(), None))
        }
        Some(Ok(Envelope::Batch(batch))) => {
            ledger.method_label("batch");
            ledger.batch(&batch.entries);
            None
        }
        _ => None,
    };
    if let Some(note) = note {
        parts.extensions.insert(note);
    }
}

/// The parts batch entry `message` runs with: its own note, in a copy of the request's.
pub fn entry(parts: &Parts, message: &Bytes) -> Parts {
    match Ledger::of(&parts.extensions) {
        Some(ledger) => ledger.entry(parts, message.clone()),
        None => parts.clone(),
    }
}

/// A batch entry's response, carrying the entry's note to the batch (`EntryWatch`).
pub fn entry_answer(parts: &Parts, mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    if let Some(note) = Note::of(parts) {
        response.extensions_mut().insert(note.clone());
    }
    response
}
