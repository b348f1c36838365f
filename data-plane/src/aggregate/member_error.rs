//! Why a member could not answer, and what the client gets then: every error names the
//! member, and its HTTP status says whose fault it is (502/504 upstream, 404 the session
//! is over, 501 a gap of the gateway, 503 no replica).

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use crate::balancer::NoReplica;
use crate::upstream::exchange::ExchangeError;

/// A member could not answer. Each names the member: the fault is upstream, except
/// `Managed`, a gap of the gateway.
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum MemberError {
    #[error("upstream server {server} is unreachable: {cause}")]
    Unreachable { server: String, cause: String },
    #[error("upstream server {server} did not answer within {timeout}")]
    Timeout { server: String, timeout: String },
    #[error(
        "the session of upstream server {server} has ended (it answered HTTP 404); \
         initialize a new session"
    )]
    SessionGone { server: String },
    #[error("upstream server {server} answered HTTP {status}: {detail}")]
    Status {
        server: String,
        status: u16,
        detail: String,
        /// The JSON-RPC error object of the answer, when it had one.
        error: Option<Value>,
    },
    #[error("upstream server {server} answered {method} with an error: {error}")]
    Refused {
        server: String,
        method: String,
        /// The member's JSON-RPC error object.
        error: Value,
    },
    #[error("upstream server {server} sent an answer that is not JSON-RPC: {reason}")]
    Malformed { server: String, reason: String },
    #[error("managed_runtime servers are not run by this data plane yet (server {server})")]
    Managed { server: String },
    /// No replica of the member can take the request (the message names the member).
    #[error(transparent)]
    NoReplica(#[from] NoReplica),
}

impl MemberError {
    /// The HTTP status the client gets when this error is the whole answer.
    pub(super) fn status(&self) -> StatusCode {
        match self {
            MemberError::Unreachable { .. }
            | MemberError::Malformed { .. }
            | MemberError::Status { .. }
            | MemberError::Refused { .. } => StatusCode::BAD_GATEWAY,
            MemberError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            MemberError::SessionGone { .. } => StatusCode::NOT_FOUND,
            MemberError::Managed { .. } => StatusCode::NOT_IMPLEMENTED,
            MemberError::NoReplica(no_replica) => no_replica.status(),
        }
    }

    /// Whether the client's session cannot go on with this member (the member forgot its
    /// session, or the replica holding it is gone): the client must start a new session.
    pub(super) fn ends_session(&self) -> bool {
        self.status() == StatusCode::NOT_FOUND
    }

    /// The member's exchange failed (`timeout`: the one it had).
    pub(super) fn of_exchange(
        server: &str,
        timeout: Duration,
        failure: ExchangeError,
    ) -> MemberError {
        match failure {
            ExchangeError::NoReplica(no_replica) => MemberError::NoReplica(no_replica),
            ExchangeError::Unreachable { cause } => MemberError::Unreachable {
                server: server.to_owned(),
                cause,
            },
            ExchangeError::TimedOut => MemberError::timeout(server, timeout),
        }
    }

    /// The member did not answer within `timeout`.
    pub(super) fn timeout(server: &str, timeout: Duration) -> MemberError {
        MemberError::Timeout {
            server: server.to_owned(),
            timeout: humantime::format_duration(timeout).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_session_makes_the_client_start_again() {
        let gone = MemberError::SessionGone {
            server: "alpha".into(),
        };
        let removed = MemberError::NoReplica(NoReplica::PinnedRemoved {
            server: "alpha".into(),
        });
        let slow = MemberError::timeout("beta", Duration::from_millis(1500));
        assert!(gone.ends_session() && removed.ends_session());
        assert!(!slow.ends_session());
        assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            slow.to_string(),
            "upstream server beta did not answer within 1s 500ms"
        );
        let managed = MemberError::Managed {
            server: "gamma".into(),
        };
        assert_eq!(managed.status(), StatusCode::NOT_IMPLEMENTED);
        assert!(managed.to_string().contains("gamma"));
    }
}
