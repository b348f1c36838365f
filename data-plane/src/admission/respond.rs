//! The refusals of the policy phases, exactly as the contract's table has them: JSON-RPC
//! errors at HTTP 200 (MCP clients show a JSON-RPC error to the user, but turn a 4xx into
//! an opaque transport failure; batch entries need per-entry errors). The request's id is
//! put in when the refusal is answered (`Refusal::respond`).

use conduit_config::model::Severity;
use conduit_policy::guardrails::severity_str;
use http::StatusCode;
use serde_json::json;

use crate::jsonrpc;
use crate::mcp::Unreadable;
use crate::refusal::{Cause, Refusal};

/// −32003: the ACL denies.
pub(super) fn acl_denied(client: &str, verb: &str, name: &str, server: &str) -> Refusal {
    let message =
        format!("access denied: client '{client}' may not {verb} '{name}' on server '{server}'");
    Refusal::policy(jsonrpc::ACCESS_DENIED, message)
}

/// −32010: a governance tool policy denies.
pub(super) fn governance_denied(policy: &str, reason: &str) -> Refusal {
    Refusal::policy(jsonrpc::GOVERNANCE_DENIED, reason).with_data(json!({"policy": policy}))
}

/// −32004: a guardrail rule (or `default_action: block`, without a rule) blocks.
pub(super) fn guardrail_blocked(
    message: &str,
    rule: Option<&str>,
    severity: Option<Severity>,
) -> Refusal {
    let data = match (rule, severity) {
        (Some(rule), Some(severity)) => json!({"rule": rule, "severity": severity_str(severity)}),
        _ => json!({"rule": null, "default_action": "block"}),
    };
    Refusal::policy(jsonrpc::GUARDRAIL_BLOCKED, message).with_data(data)
}

/// −32011: the approvals phase holds the call (pending, invalid or used-up id, or
/// unavailable); −32029 with `Retry-After` when the client made too many requests.
pub(super) fn approval_refused(refusal: crate::approvals::Refusal) -> Refusal {
    let refused = Refusal::policy(refusal.code, refusal.message).with_data(refusal.data);
    match refusal.retry_after {
        Some(seconds) => {
            refused.with_header(http::header::RETRY_AFTER, http::HeaderValue::from(seconds))
        }
        None => refused,
    }
}

/// −32602: a resource URI that stays ambiguous once normalized. The URI itself is not
/// repeated: it is the caller's, and the caller has it.
pub(super) fn ambiguous_uri(why: conduit_policy::uri::AmbiguousUri) -> Refusal {
    let message = format!(
        "resource URI refused: {why}, so the gateway cannot tell which resource it names; \
         send it without dot segments or encoded separators"
    );
    Refusal::policy(jsonrpc::INVALID_PARAMS, message)
}

/// −32601: a method admission does not know (`method` already bounded).
pub(super) fn unknown_method(method: &str) -> Refusal {
    let message =
        format!("method not found: {method:?} is not a method this gateway admits from clients");
    Refusal::new(
        Cause::Client,
        StatusCode::OK,
        jsonrpc::METHOD_NOT_FOUND,
        message,
    )
}

/// 202 for a notification of an unknown method, which goes nowhere (tagged −32601 for the
/// audit record: the gateway answered, the server never saw it).
pub(super) fn dropped_notification(method: &str) -> Refusal {
    let message = format!("notification {method:?} dropped: not a method this gateway admits");
    Refusal::new(
        Cause::Client,
        StatusCode::ACCEPTED,
        jsonrpc::METHOD_NOT_FOUND,
        message,
    )
    .without_body()
}

/// A message admission cannot read: a missing or malformed parameter is −32602 (as the
/// server would say), a body it cannot trust is refused as invalid.
pub(crate) fn unreadable(unreadable: &Unreadable) -> Refusal {
    match unreadable {
        Unreadable::MissingParam { .. } | Unreadable::Arguments { .. } => Refusal::new(
            Cause::Client,
            StatusCode::OK,
            jsonrpc::INVALID_PARAMS,
            unreadable.to_string(),
        ),
        Unreadable::Invalid(_) => Refusal::new(
            Cause::Client,
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            unreadable.to_string(),
        ),
    }
}

/// Longest method name repeated in an answer or a log line.
const MAX_METHOD_CHARS: usize = 64;

/// `method` cut to [`MAX_METHOD_CHARS`] characters (callers choose method names).
pub(super) fn bounded(method: &str) -> &str {
    match method.char_indices().nth(MAX_METHOD_CHARS) {
        Some((end, _)) => &method[..end],
        None => method,
    }
}
