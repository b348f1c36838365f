//! The answers of refused messages, exactly as the contract's table has them: JSON-RPC
//! errors at HTTP 200 (MCP clients show a JSON-RPC error to the user, but turn a 4xx into
//! an opaque transport failure; batch entries need per-entry errors), carrying the
//! request's id.

use conduit_config::model::Severity;
use conduit_policy::guardrails::severity_str;
use http::{Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use crate::http::ProxyBody;
use crate::jsonrpc::{self, RequestId};

fn answer(id: &RequestId, code: i64, message: String, data: Option<Value>) -> Response<ProxyBody> {
    let body = jsonrpc::error_object_with_data(id, code, message.as_str(), data);
    let mut response = jsonrpc::json_response(StatusCode::OK, &body)
        .map(|body| body.map_err(|never| match never {}).boxed());
    crate::http::tag(&mut response, code, &message);
    response
}

/// −32003: the ACL denies.
pub(super) fn acl_denied(
    id: &RequestId,
    client: &str,
    verb: &str,
    name: &str,
    server: &str,
) -> Response<ProxyBody> {
    let message =
        format!("access denied: client '{client}' may not {verb} '{name}' on server '{server}'");
    answer(id, jsonrpc::ACCESS_DENIED, message, None)
}

/// −32010: a governance tool policy denies.
pub(super) fn governance_denied(id: &RequestId, policy: &str, reason: &str) -> Response<ProxyBody> {
    answer(
        id,
        jsonrpc::GOVERNANCE_DENIED,
        reason.to_owned(),
        Some(json!({"policy": policy})),
    )
}

/// −32004: a guardrail rule (or `default_action: block`, without a rule) blocks.
pub(super) fn guardrail_blocked(
    id: &RequestId,
    message: &str,
    rule: Option<&str>,
    severity: Option<Severity>,
) -> Response<ProxyBody> {
    let data = match (rule, severity) {
        (Some(rule), Some(severity)) => json!({"rule": rule, "severity": severity_str(severity)}),
        _ => json!({"rule": null, "default_action": "block"}),
    };
    answer(
        id,
        jsonrpc::GUARDRAIL_BLOCKED,
        message.to_owned(),
        Some(data),
    )
}

/// −32011: the approvals phase holds the call (pending, invalid or used-up id, or
/// unavailable); −32029 with `Retry-After` when the client made too many requests.
pub(super) fn approval_refused(
    id: &RequestId,
    refusal: crate::approvals::Refusal,
) -> Response<ProxyBody> {
    let mut response = answer(id, refusal.code, refusal.message, Some(refusal.data));
    if let Some(seconds) = refusal.retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    }
    response
}

/// −32602: a resource URI that stays ambiguous once normalized. The URI itself is not
/// repeated: it is the caller's, and the caller has it.
pub(super) fn ambiguous_uri(
    id: &RequestId,
    why: conduit_policy::uri::AmbiguousUri,
) -> Response<ProxyBody> {
    let message = format!(
        "resource URI refused: {why}, so the gateway cannot tell which resource it names; \
         send it without dot segments or encoded separators"
    );
    answer(id, jsonrpc::INVALID_PARAMS, message, None)
}

/// −32601: a method admission does not know (`method` already bounded).
pub(super) fn unknown_method(id: &RequestId, method: &str) -> Response<ProxyBody> {
    let message =
        format!("method not found: {method:?} is not a method this gateway admits from clients");
    answer(id, jsonrpc::METHOD_NOT_FOUND, message, None)
}

/// 202 for a notification of an unknown method, which goes nowhere (tagged −32601 for the
/// audit record: the gateway answered, the server never saw it).
pub(super) fn dropped_notification(method: &str) -> Response<ProxyBody> {
    let mut response = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::ACCEPTED;
    let message = format!("notification {method:?} dropped: not a method this gateway admits");
    crate::http::tag(&mut response, jsonrpc::METHOD_NOT_FOUND, &message);
    response
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
