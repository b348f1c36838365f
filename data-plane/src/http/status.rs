//! The `status` of an audit record (the closed set of the proto's `AuditRecord.status`)
//! and the tag the gateway puts on the answers it makes itself.
//!
//! A gateway answer knows why it was given (its HTTP status and JSON-RPC code), so it
//! carries an [`Answered`] in its response extensions: the record then needs no parse of
//! the body to tell an ACL denial from a rate limit or an upstream timeout. Answers from
//! the upstream carry no tag and are judged by their status and body (see `audit::record`).

use http::{Response, StatusCode};

use crate::jsonrpc;

/// What happened to one request, as the audit record says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The server answered a JSON-RPC error.
    Error,
    UpstreamError,
    UpstreamTimeout,
    AuthFailed,
    AclDenied,
    GovernanceDenied,
    GuardrailBlocked,
    ApprovalRequired,
    RateLimited,
    InvalidRequest,
    NotFound,
    Unavailable,
    /// The client went away before the answer was complete.
    ClientClosed,
}

impl Status {
    pub const ALL: [Status; 14] = [
        Status::Ok,
        Status::Error,
        Status::UpstreamError,
        Status::UpstreamTimeout,
        Status::AuthFailed,
        Status::AclDenied,
        Status::GovernanceDenied,
        Status::GuardrailBlocked,
        Status::ApprovalRequired,
        Status::RateLimited,
        Status::InvalidRequest,
        Status::NotFound,
        Status::Unavailable,
        Status::ClientClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::UpstreamError => "upstream_error",
            Status::UpstreamTimeout => "upstream_timeout",
            Status::AuthFailed => "auth_failed",
            Status::AclDenied => "acl_denied",
            Status::GovernanceDenied => "governance_denied",
            Status::GuardrailBlocked => "guardrail_blocked",
            Status::ApprovalRequired => "approval_required",
            Status::RateLimited => "rate_limited",
            Status::InvalidRequest => "invalid_request",
            Status::NotFound => "not_found",
            Status::Unavailable => "unavailable",
            Status::ClientClosed => "client_closed",
        }
    }

    /// The status of an answer the gateway made itself with HTTP `http` and JSON-RPC
    /// error `code`. Refusals of the policy phases come at HTTP 200 and are told apart by
    /// their code (the contract's error table); transport refusals by their HTTP status.
    pub fn of_gateway_error(http: StatusCode, code: i64) -> Status {
        match http.as_u16() {
            401 => Status::AuthFailed,
            404 => Status::NotFound,
            429 => Status::RateLimited,
            501 | 503 => Status::Unavailable,
            504 => Status::UpstreamTimeout,
            400..=499 => Status::InvalidRequest,
            500..=599 => Status::UpstreamError,
            _ => match code {
                jsonrpc::ACCESS_DENIED => Status::AclDenied,
                jsonrpc::GOVERNANCE_DENIED => Status::GovernanceDenied,
                jsonrpc::GUARDRAIL_BLOCKED => Status::GuardrailBlocked,
                jsonrpc::APPROVAL_REQUIRED => Status::ApprovalRequired,
                jsonrpc::RATE_LIMITED => Status::RateLimited,
                jsonrpc::AUTHENTICATION_FAILED => Status::AuthFailed,
                jsonrpc::PARSE_ERROR
                | jsonrpc::INVALID_REQUEST
                | jsonrpc::INVALID_PARAMS
                | jsonrpc::METHOD_NOT_FOUND => Status::InvalidRequest,
                jsonrpc::INTERNAL_ERROR => Status::UpstreamError,
                _ => Status::Error,
            },
        }
    }
}

/// The tag of an answer the gateway made itself: why, with the JSON-RPC error it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub status: Status,
    pub code: i64,
    pub message: String,
}

/// Tag `response`, a JSON-RPC error `code` with `message` made by the gateway.
pub fn tag<B>(response: &mut Response<B>, code: i64, message: &str) {
    let status = Status::of_gateway_error(response.status(), code);
    tag_as(response, status, code, message);
}

/// Tag `response` with an explicit `status` (when the code alone would mislead, as for a
/// member server's own error relayed by an aggregate endpoint).
pub fn tag_as<B>(response: &mut Response<B>, status: Status, code: i64, message: &str) {
    response.extensions_mut().insert(Answered {
        status,
        code,
        message: message.to_owned(),
    });
}

/// The tag of `response`, if the gateway made it.
pub(crate) fn answered<B>(response: &Response<B>) -> Option<&Answered> {
    response.extensions().get::<Answered>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_errors_map_to_the_closed_set() {
        let cases = [
            (401, jsonrpc::AUTHENTICATION_FAILED, Status::AuthFailed),
            (404, jsonrpc::METHOD_NOT_FOUND, Status::NotFound),
            (400, jsonrpc::PARSE_ERROR, Status::InvalidRequest),
            (413, jsonrpc::INVALID_REQUEST, Status::InvalidRequest),
            (403, jsonrpc::INVALID_REQUEST, Status::InvalidRequest),
            (503, jsonrpc::INTERNAL_ERROR, Status::Unavailable),
            (502, jsonrpc::INTERNAL_ERROR, Status::UpstreamError),
            (504, jsonrpc::INTERNAL_ERROR, Status::UpstreamTimeout),
            (200, jsonrpc::ACCESS_DENIED, Status::AclDenied),
            (200, jsonrpc::GOVERNANCE_DENIED, Status::GovernanceDenied),
            (200, jsonrpc::GUARDRAIL_BLOCKED, Status::GuardrailBlocked),
            (200, jsonrpc::APPROVAL_REQUIRED, Status::ApprovalRequired),
            (200, jsonrpc::RATE_LIMITED, Status::RateLimited),
            (200, jsonrpc::INVALID_PARAMS, Status::InvalidRequest),
            (200, -32042, Status::Error),
        ];
        for (http, code, expected) in cases {
            let http = StatusCode::from_u16(http).unwrap();
            assert_eq!(
                Status::of_gateway_error(http, code),
                expected,
                "{http} {code}"
            );
        }
    }

    #[test]
    fn the_statuses_are_the_closed_set_of_the_wire() {
        let names = Status::ALL.map(Status::as_str);
        assert_eq!(names, conduit_proto::AUDIT_STATUSES);
    }

    #[test]
    fn a_tag_travels_with_the_response() {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::OK;
        tag(&mut response, jsonrpc::RATE_LIMITED, "slow down");
        let answered = answered(&response).unwrap();
        assert_eq!(answered.status, Status::RateLimited);
        assert_eq!(answered.message, "slow down");
    }
}
