//! The approvals phase of `tools/call` (after guardrails and governance, before rate limits),
//! without a round trip to the control plane on the request path.
//!
//! When a guardrail rule or governance policy asks for approval:
//! * a call carrying `X-Conduit-Approval-Id: ID` proceeds if the grant set this data plane
//!   holds has a grant `ID` for the same client, tenant, server, tool and argument
//!   fingerprint that has not expired and has a use left ([`usage`]; the use is taken
//!   and reported to the control plane); a used-up grant gets −32011 `approval is used
//!   up`, any other id −32011 `approval is invalid, expired, or does not match this
//!   request`;
//! * a call without the header gets −32011 at once with a new request id (`apr_…`,
//!   status `pending`), and the request (arguments redacted with
//!   `observability.redact_fields`, `conduit_policy::redact`) is queued for the control
//!   plane ([`outbox`]), which an approver then decides with `conduitctl approvals`;
//!   a client past `governance.approvals.requests_per_minute` new requests gets −32029
//!   instead and no request is made ([`throttle`]);
//! * a standalone data plane (file config) has no control plane to record requests or
//!   issue grants, so it answers −32011 with status `unavailable`.
//!
//! Grant sets arrive on the config stream, signed with the control plane's Ed25519 key; the
//! public key comes with each snapshot and a set that does not verify is refused
//! ([`grants`]). Expiry is judged by this data plane's clock, read through tokio's clock
//! (so tests can pause it) from a wall-clock reading taken at start.

pub(crate) mod grants;
pub(crate) mod ids;
pub(crate) mod outbox;
pub(crate) mod throttle;
pub(crate) mod usage;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use conduit_config::Document;
use conduit_proto::v1 as pb;
use http::HeaderMap;
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::metrics::Metrics;
use conduit_policy::Redactor;
use grants::{GrantSetError, GrantTable, Presented};
use outbox::Outbox;
use throttle::Throttle;
use usage::Usage;

/// The request header carrying a granted approval's id.
pub(crate) const APPROVAL_HEADER: &str = "X-Conduit-Approval-Id";
/// JSON-RPC error code of every approvals answer.
pub(crate) const APPROVAL_REQUIRED: i64 = crate::jsonrpc::APPROVAL_REQUIRED;
/// Message of a refused approval id.
pub(crate) const INVALID_MESSAGE: &str =
    "approval is invalid, expired, or does not match this request";
/// Request lifetime when `governance.approvals.ttl_seconds` is not set.
pub(crate) const DEFAULT_TTL_SECONDS: u64 = 3600;
/// Start of the answer to a grant with no use left.
pub(crate) const USED_UP_MESSAGE: &str = "approval is used up";

/// `conduit_approvals_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A new request was made (−32011 pending).
    Requested,
    /// A grant let the call through.
    Granted,
    /// The presented id did not match a valid grant.
    Invalid,
    /// The presented grant has no use left.
    UsedUp,
    /// No new request: the client made too many (−32029).
    Throttled,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 5] = [
        Outcome::Requested,
        Outcome::Granted,
        Outcome::Invalid,
        Outcome::UsedUp,
        Outcome::Throttled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Requested => "requested",
            Outcome::Granted => "granted",
            Outcome::Invalid => "invalid",
            Outcome::UsedUp => "used_up",
            Outcome::Throttled => "throttled",
        }
    }
}

/// What asked for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Guardrail,
    Governance,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Guardrail => "guardrail",
            Source::Governance => "governance",
        }
    }
}

/// The rule or policy that wants an approval.
#[derive(Debug, Clone, Copy)]
pub struct Need<'a> {
    pub source: Source,
    /// Guardrail rule or governance policy name.
    pub rule: &'a str,
    /// Its message or reason, shown to the caller.
    pub reason: Option<&'a str>,
}

/// The call being decided.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub caller: &'a Caller,
    pub server_id: &'a str,
    /// Tool name as the server knows it.
    pub tool: &'a str,
    /// `params.arguments` (`None` = `{}`).
    pub arguments: Option<&'a Value>,
    pub trace_id: &'a str,
}

/// A refusal of the approvals phase: HTTP 200 with a JSON-RPC error, −32011
/// ([`APPROVAL_REQUIRED`]) or −32029 when the client made too many requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: i64,
    pub message: String,
    pub data: Value,
    /// Seconds for the `Retry-After` header (−32029 only).
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A −32011 answer.
    fn held(message: String, data: Value) -> Refusal {
        Refusal {
            code: APPROVAL_REQUIRED,
            message,
            data,
            retry_after: None,
        }
    }

    pub fn code(&self) -> i64 {
        self.code
    }
}

/// The approval settings of one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSettings {
    pub ttl_seconds: u64,
    pub redactor: Redactor,
    /// New requests per client and minute (`governance.approvals.requests_per_minute`).
    pub requests_per_minute: u32,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            ttl_seconds: DEFAULT_TTL_SECONDS,
            redactor: Redactor::new(conduit_config::DEFAULT_REDACT_FIELDS),
            requests_per_minute: conduit_config::model::DEFAULT_APPROVAL_REQUESTS_PER_MINUTE,
        }
    }
}

impl ApprovalSettings {
    pub fn compile(document: &Document) -> ApprovalSettings {
        let approvals = document
            .governance
            .as_ref()
            .and_then(|governance| governance.approvals.as_ref());
        ApprovalSettings {
            ttl_seconds: approvals
                .and_then(|approvals| approvals.ttl_seconds)
                .unwrap_or(DEFAULT_TTL_SECONDS),
            redactor: Redactor::for_document(document),
            requests_per_minute: approvals
                .and_then(|approvals| approvals.requests_per_minute)
                .unwrap_or(conduit_config::model::DEFAULT_APPROVAL_REQUESTS_PER_MINUTE),
        }
    }
}

/// The data plane's approval state (grants, outgoing requests); cheap to clone.
#[derive(Debug, Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Whether a control plane records requests (false: standalone).
    control_plane: AtomicBool,
    /// Public key of grant sets, from the applied snapshot.
    key: ArcSwapOption<Vec<u8>>,
    grants: ArcSwap<GrantTable>,
    /// This data plane's uses of each grant.
    usage: Usage,
    /// Per-client rate of new requests.
    throttle: Throttle,
    /// This data plane's node id (set with the control plane), to read its uses in a set.
    node_id: OnceLock<String>,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl Approvals {
    /// A standalone data plane's approvals (until [`Approvals::use_control_plane`]).
    pub fn new(metrics: Arc<Metrics>) -> Approvals {
        Approvals {
            inner: Arc::new(Inner {
                control_plane: AtomicBool::new(false),
                key: ArcSwapOption::empty(),
                grants: ArcSwap::from_pointee(GrantTable::default()),
                usage: Usage::default(),
                throttle: Throttle::default(),
                node_id: OnceLock::new(),
                outbox: Outbox::default(),
                metrics,
                clock: Clock::start(),
            }),
        }
    }

    /// Requests go to the control plane from now on; grant uses are reported as `node_id`
    /// (the id the config stream's Hello carries, which the control plane counts them under).
    pub fn use_control_plane(&self, node_id: &str) {
        let _ = self.inner.node_id.set(node_id.to_owned());
        self.inner.control_plane.store(true, Ordering::Relaxed);
    }

    /// A new config stream opened: requests sent on the previous one may not have arrived,
    /// so recent ones go again, and so do this data plane's use counts of every grant.
    pub fn new_stream(&self) {
        self.inner.outbox.resend(self.now());
        for (id, count) in self.inner.usage.counts() {
            self.inner.outbox.report_use(&id, count);
        }
    }

    /// The outgoing request queue, for the config stream.
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// Verify grant sets with `public_key` from now on (the applied snapshot's key).
    pub fn set_key(&self, public_key: Option<Vec<u8>>) {
        self.inner.key.store(public_key.map(Arc::new));
    }

    /// Use `set` if it verifies; returns how many grants it holds.
    pub fn apply_grant_set(&self, set: &pb::GrantSet) -> Result<usize, GrantSetError> {
        let key = self.inner.key.load_full();
        let current = self.inner.grants.load();
        let table = GrantTable::verify(set, key.as_deref().map(Vec::as_slice), &current)?;
        let count = table.len();
        self.inner
            .metrics
            .approval_grant_uses
            .set(i64::try_from(table.counted_uses()).unwrap_or(i64::MAX));
        self.inner.usage.retain(&table);
        self.inner.grants.store(Arc::new(table));
        self.inner
            .metrics
            .approval_grants
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        Ok(count)
    }

    /// Grants in the set in use.
    pub fn grant_count(&self) -> usize {
        self.inner.grants.load().len()
    }

    /// Now, unix seconds.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// The approvals phase for a call `need` holds: `Ok` lets it proceed.
    pub fn check(
        &self,
        settings: &ApprovalSettings,
        headers: &HeaderMap,
        call: &Call<'_>,
        need: &Need<'_>,
    ) -> Result<(), Refusal> {
        let presented = headers
            .get(APPROVAL_HEADER)
            .map(|value| value.to_str().map(str::trim).unwrap_or_default().to_owned());
        let fingerprint =
            || conduit_policy::fingerprint::fingerprint(call.server_id, call.tool, call.arguments);
        if let Some(id) = presented {
            return self.use_grant(&id, call, need);
        }
        if !self.inner.control_plane.load(Ordering::Relaxed) {
            return Err(Refusal::held(
                format!(
                    "{}: approvals need a control plane, and this data plane runs from a local config file",
                    reason(need)
                ),
                json!({ "status": "unavailable", "approval_header": APPROVAL_HEADER }),
            ));
        }
        let client = call.caller;
        if let Err(throttled) = self.inner.throttle.take(
            &client.tenant_id,
            &client.client_id,
            settings.requests_per_minute,
        ) {
            self.count(Outcome::Throttled);
            tracing::info!(rule = need.rule, client_id = %client.client_id, tenant_id = %client.tenant_id, "too many approval requests; refused without a new request");
            return Err(Refusal {
                code: crate::jsonrpc::RATE_LIMITED,
                message: format!(
                    "too many approval requests from this client: at most {} a minute \
                     (governance.approvals.requests_per_minute); retry in {} s",
                    settings.requests_per_minute, throttled.retry_after_secs
                ),
                data: json!({
                    "limit": settings.requests_per_minute,
                    "window": "minute",
                    "retry_after": throttled.retry_after_secs,
                    "bucket": "approval_requests",
                }),
                retry_after: Some(throttled.retry_after_secs),
            });
        }
        let id = ids::new_id();
        let created_at = self.now();
        let expires_at =
            created_at.saturating_add(i64::try_from(settings.ttl_seconds).unwrap_or(i64::MAX));
        let arguments = settings
            .redactor
            .redact(call.arguments.unwrap_or(&Value::Object(Default::default())));
        let request = pb::ApprovalRequest {
            id: id.clone(),
            client_id: call.caller.client_id.to_string(),
            tenant_id: call.caller.tenant_id.to_string(),
            server_id: call.server_id.to_owned(),
            tool: call.tool.to_owned(),
            fingerprint: fingerprint(),
            arguments_json: arguments.to_string(),
            rule: need.rule.to_owned(),
            source: need.source.as_str().to_owned(),
            reason: need.reason.unwrap_or_default().to_owned(),
            trace_id: call.trace_id.to_owned(),
            created_at,
            expires_at,
        };
        if self.inner.outbox.push(request) {
            self.inner.metrics.approval_requests_dropped.inc();
            tracing::warn!("approval request queue full; dropped the oldest request");
        }
        self.count(Outcome::Requested);
        tracing::info!(approval_id = %id, rule = need.rule, source = need.source.as_str(), client_id = %call.caller.client_id, server = call.server_id, tool = call.tool, "call held for approval");
        Err(Refusal::held(
            reason(need),
            json!({
                "approval_request_id": id,
                "status": "pending",
                "approval_header": APPROVAL_HEADER,
                "expires_at": rfc3339(expires_at),
            }),
        ))
    }

    /// A retry presenting approval `id`: let it through if a matching grant has a use left,
    /// taking that use (reported to the control plane), else refuse it.
    fn use_grant(&self, id: &str, call: &Call<'_>, need: &Need<'_>) -> Result<(), Refusal> {
        let fingerprint =
            conduit_policy::fingerprint::fingerprint(call.server_id, call.tool, call.arguments);
        let table = self.inner.grants.load();
        let grant = ids::is_well_formed(id)
            .then(|| {
                table.matching(
                    &Presented {
                        id,
                        client_id: &call.caller.client_id,
                        tenant_id: &call.caller.tenant_id,
                        server_id: call.server_id,
                        tool: call.tool,
                        fingerprint: &fingerprint,
                    },
                    self.now(),
                )
            })
            .flatten();
        let Some(grant) = grant else {
            self.count(Outcome::Invalid);
            // The header is the client's: only an id of the right shape is logged.
            let id = if ids::is_well_formed(id) {
                id
            } else {
                "(malformed)"
            };
            tracing::info!(approval_id = %id, rule = need.rule, client_id = %call.caller.client_id, "approval id refused");
            return Err(Refusal::held(
                INVALID_MESSAGE.to_owned(),
                json!({ "approval_header": APPROVAL_HEADER }),
            ));
        };
        let node_id = self.inner.node_id.get().map_or("", String::as_str);
        match self.inner.usage.consume(id, grant, node_id) {
            Ok(count) => {
                self.inner.outbox.report_use(id, count);
                self.count(Outcome::Granted);
                tracing::debug!(approval_id = %id, rule = need.rule, uses = count, max_uses = grant.max_uses, "approved call proceeds");
                Ok(())
            }
            Err(used_up) => {
                self.count(Outcome::UsedUp);
                tracing::info!(approval_id = %id, rule = need.rule, client_id = %call.caller.client_id, max_uses = used_up.max_uses, "approval used up");
                Err(Refusal::held(
                    format!(
                        "{USED_UP_MESSAGE}: it allowed {} call{}; a new call needs a new approval",
                        used_up.max_uses,
                        if used_up.max_uses == 1 { "" } else { "s" }
                    ),
                    json!({ "status": "used_up", "approval_header": APPROVAL_HEADER }),
                ))
            }
        }
    }

    fn count(&self, outcome: Outcome) {
        self.inner
            .metrics
            .approvals
            .with_label_values(&[outcome.as_str()])
            .inc();
    }
}

/// What the caller is told needs approval.
fn reason(need: &Need<'_>) -> String {
    match need.reason {
        Some(reason) if !reason.is_empty() => reason.to_owned(),
        _ => format!(
            "approval required by {} \"{}\"",
            match need.source {
                Source::Guardrail => "guardrail rule",
                Source::Governance => "governance policy",
            },
            need.rule
        ),
    }
}

fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Unix time derived from tokio's clock and one wall-clock reading.
#[derive(Debug)]
struct Clock {
    unix_at_start: i64,
    start: tokio::time::Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            unix_at_start: chrono::Utc::now().timestamp(),
            start: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_secs()).unwrap_or(i64::MAX);
        self.unix_at_start.saturating_add(elapsed)
    }
}

/// Create every `conduit_approvals_total{outcome}` series up front, so dashboards can
/// rate() them before the first approval.
pub(crate) fn register_metrics(metrics: &Metrics) {
    for outcome in Outcome::ALL {
        metrics.approvals.with_label_values(&[outcome.as_str()]);
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
