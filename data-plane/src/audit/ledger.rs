//! The facts of one request, gathered while it runs and turned into audit records when its
//! answer ends.
//!
//! The request's context (`proxy/context.rs`) starts a [`Ledger`] and puts it in the
//! request's extensions; each phase that learns something writes it down: the context the
//! runtime, the envelope check the method, authentication the caller, dispatch one [`Note`]
//! per message (a batch entry gets its own, in its own copy of the request parts),
//! admission what it decided, an aggregate endpoint the member it called.
//! The lock is a std `Mutex` taken only for plain field writes, never across an `.await`.
//! Nothing here parses or formats: that waits for the end of the answer (`record`), off the
//! path to the upstream.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{Extensions, Response, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use super::Profile;
use crate::caller::Caller;
use crate::http::status::{Answered, Status, answered};
use crate::jsonrpc::BatchEntry;
use crate::mcp::Target;
use crate::trace_context::TraceId;
use crate::verdict::Admitted;

/// The facts of one request; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Ledger(Arc<Shared>);

#[derive(Debug)]
pub(super) struct Shared {
    pub time_unix_ms: i64,
    pub started: Instant,
    pub trace_id: TraceId,
    facts: Mutex<Facts>,
}

/// What the phases learned about the request.
#[derive(Debug, Default)]
pub(super) struct Facts {
    /// What the serving configuration asks of the records (not the runtime itself: a
    /// long event stream would keep a replaced configuration alive).
    pub profile: Option<Arc<Profile>>,
    pub caller: Option<Caller>,
    /// `GET` or `DELETE`; `None` for a POST.
    pub http_method: Option<&'static str>,
    /// The `method` label of `conduit_dp_requests_total`.
    pub method_label: &'static str,
    pub batch: bool,
    /// One per message that reached dispatch (or was refused before it, for a single one).
    pub messages: Vec<MessageFacts>,
}

/// What is known of one message.
#[derive(Debug, Default)]
pub(super) struct MessageFacts {
    /// The message as the client sent it (parsed when the record is built).
    pub body: Bytes,
    /// The member server an aggregate endpoint called.
    pub server: Option<String>,
    /// The name the server knows (an aggregate's unprefixed name), when admission saw it.
    pub target: Option<String>,
    pub acl_policy: Option<String>,
    pub guardrail: Option<(String, String)>,
    /// A batch entry's own answer (a single message's is the response body).
    pub reply: Option<Reply>,
}

/// The answer to one batch entry.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub http: StatusCode,
    pub answered: Option<Answered>,
    pub error: Option<(i64, String)>,
    pub bytes: u64,
}

impl Ledger {
    /// The ledger of a request that arrived at `started` in trace `trace_id`.
    pub fn start(trace_id: TraceId, started: Instant) -> Ledger {
        let time_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        Ledger(Arc::new(Shared {
            time_unix_ms,
            started,
            trace_id,
            facts: Mutex::new(Facts {
                method_label: "none",
                ..Facts::default()
            }),
        }))
    }

    /// The ledger in a request's extensions.
    pub fn of(extensions: &Extensions) -> Option<&Ledger> {
        extensions.get::<Ledger>()
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.0
    }

    pub(super) fn facts(&self) -> MutexGuard<'_, Facts> {
        // Only field writes happen under the lock; a panic cannot leave it torn.
        self.0
            .facts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The audit profile of the runtime that serves the request.
    pub fn profile(&self, profile: &Arc<super::Profile>) {
        self.facts().profile = Some(Arc::clone(profile));
    }

    /// The authenticated caller.
    pub fn caller(&self, caller: &Caller) {
        self.facts().caller = Some(caller.clone());
    }

    /// The `method` label of the request metric.
    pub fn method_label(&self, label: &'static str) {
        self.facts().method_label = label;
    }

    /// The label noted by [`Ledger::method_label`] (`none` until then).
    pub fn noted_method_label(&self) -> &'static str {
        self.facts().method_label
    }

    /// The one message of a POST (`body`) or a GET/DELETE (`http_method`); the returned
    /// note goes into the request's extensions.
    pub fn message(&self, body: Bytes, http_method: Option<&'static str>) -> Note {
        let mut facts = self.facts();
        facts.http_method = http_method;
        facts.messages.clear();
        facts.messages.push(MessageFacts {
            body,
            ..MessageFacts::default()
        });
        Note {
            ledger: self.clone(),
            index: 0,
        }
    }

    /// A batch: every entry gets its own record. Invalid entries are answered by the
    /// gateway at once, so their records are complete here.
    pub fn batch(&self, entries: &[BatchEntry]) {
        let mut facts = self.facts();
        facts.batch = true;
        facts.messages.clear();
        for entry in entries {
            let BatchEntry::Invalid(error) = entry else {
                continue;
            };
            let (code, message) = error_of(error).unwrap_or_default();
            facts.messages.push(MessageFacts {
                reply: Some(Reply {
                    http: StatusCode::OK,
                    answered: Some(Answered {
                        status: Status::InvalidRequest,
                        code,
                        message: message.clone(),
                    }),
                    error: Some((code, message)),
                    bytes: json_len(error),
                }),
                ..MessageFacts::default()
            });
        }
    }

    /// The parts of batch entry `body`: a copy of `parts` whose note is the entry's own.
    pub fn entry(&self, parts: &Parts, body: Bytes) -> Parts {
        let index = {
            let mut facts = self.facts();
            facts.messages.push(MessageFacts {
                body,
                ..MessageFacts::default()
            });
            facts.messages.len() - 1
        };
        let mut parts = parts.clone();
        parts.extensions.insert(Note {
            ledger: self.clone(),
            index,
        });
        parts
    }
}

/// One message's place in its request's ledger; found in the request parts.
#[derive(Debug, Clone)]
pub struct Note {
    ledger: Ledger,
    index: usize,
}

impl Note {
    /// The note of the message these parts belong to.
    pub fn of(parts: &Parts) -> Option<&Note> {
        parts.extensions.get::<Note>()
    }

    fn update(&self, change: impl FnOnce(&mut MessageFacts)) {
        if let Some(message) = self.ledger.facts().messages.get_mut(self.index) {
            change(message);
        }
    }

    /// What admission decided about `target` (also when it refused: the rule that
    /// blocked, the policy that denied).
    pub fn admission(&self, target: &Target<'_>, admitted: &Admitted) {
        let (server, name) = match *target {
            Target::ToolCall { server, tool, .. } => (server, tool),
            Target::ResourceRead { server, uri } => (server, uri),
            Target::PromptGet { server, name } => (server, name),
            Target::Other => return,
        };
        let guardrail = match (&admitted.guardrail, admitted.shadow.first()) {
            (Some(decided), _) => Some((decided.rule.clone(), action_name(decided.action))),
            (None, Some(shadow)) => Some((
                shadow.rule.clone(),
                format!("shadow:{}", action_name(shadow.action)),
            )),
            // A governance policy held the call: the record names it like a rule.
            (None, None) => admitted
                .governance_policy
                .as_ref()
                .map(|policy| (policy.clone(), "approve".to_owned())),
        };
        self.update(|message| {
            message.server = Some(server.to_owned());
            message.target = Some(name.to_owned());
            message.acl_policy = admitted.acl_policy.clone();
            message.guardrail = guardrail;
        });
    }

    /// The member server an aggregate endpoint sent the message to.
    pub fn member(&self, server: &str) {
        self.update(|message| message.server = Some(server.to_owned()));
    }
}

/// The record's name of a guardrail action (the proto's `approve` for a hold).
fn action_name(action: &str) -> String {
    match action {
        "require_approval" => "approve".to_owned(),
        other => other.to_owned(),
    }
}

/// Follows one batch entry's answer into its record: taken from the response before the
/// batch reads its body, completed with the reply found in it.
#[derive(Debug)]
pub struct EntryWatch {
    note: Option<Note>,
    http: StatusCode,
    answered: Option<Answered>,
}

impl EntryWatch {
    pub fn of<B>(response: &Response<B>) -> EntryWatch {
        EntryWatch {
            note: response.extensions().get::<Note>().cloned(),
            http: response.status(),
            answered: answered(response).cloned(),
        }
    }

    /// The entry's reply (`None` for a notification or a response, which get none).
    pub fn replied(self, reply: Option<&Value>) {
        let Some(note) = self.note else {
            return;
        };
        let reply = Reply {
            http: self.http,
            error: reply.and_then(error_of),
            bytes: reply.map_or(0, json_len),
            answered: self.answered,
        };
        note.update(|message| message.reply = Some(reply));
    }
}

/// `(code, message)` of a JSON-RPC error message.
pub(super) fn error_of(message: &Value) -> Option<(i64, String)> {
    let error = message.get("error")?;
    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    let text = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some((code, text.to_owned()))
}

/// Bytes of `value` written as JSON, counted without writing them anywhere.
fn json_len(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
