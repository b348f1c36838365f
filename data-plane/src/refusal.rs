//! What every phase of the request path returns when it will not let a request (or one
//! message of it) go on: a [`Refusal`], and the one function that turns it into the answer
//! the client gets ([`Refusal::respond`]).
//!
//! A refusal says who caused it ([`Cause`]), the HTTP status and JSON-RPC error of the
//! answer (code, message, optional `data`), an extra header when the protocol asks for one
//! (`Allow`, `WWW-Authenticate`, `Retry-After`), whether it was given before the caller was
//! authenticated (then the answer does not name the server: see the request path's final
//! step) and its audit [`Status`]. The answer is built, tagged for the audit record, counted
//! and logged in [`Refusal::respond`] only, so every phase stays a plain `Result`.
//!
//! The refusal is boxed: `Result<_, Refusal>` is returned by every phase on the hot path,
//! where the `Ok` side must stay small; the box is only allocated when a request is refused.

use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt as _;
use prometheus::IntCounter;
use serde_json::Value;

use crate::http::ProxyBody;
use crate::http::status::{Answered, Status};
use crate::jsonrpc::{self, RequestId};
use crate::metrics::Metrics;

/// Who made the request fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The client: a request the gateway cannot take as sent (transport, envelope,
    /// credentials, session).
    Client,
    /// An upstream server, or its absence.
    Upstream,
    /// The gateway itself (no configuration yet, a runtime it does not run).
    Internal,
    /// A policy phase (ACL, governance, guardrails, rate limits, approvals).
    Policy,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::Client => "client",
            Cause::Upstream => "upstream",
            Cause::Internal => "internal",
            Cause::Policy => "policy",
        }
    }
}

/// A request (or one message of a batch) refused by a phase of the request path.
#[derive(Debug)]
pub(crate) struct Refusal(Box<Facts>);

#[derive(Debug)]
struct Facts {
    cause: Cause,
    http: StatusCode,
    code: i64,
    message: String,
    data: Option<Value>,
    header: Option<(HeaderName, HeaderValue)>,
    before_auth: bool,
    status: Status,
    /// Answered without a body (a dropped notification: the protocol answers 202).
    empty: bool,
    /// What the refusal counts besides the request itself (`conduit_auth_failures_total`).
    counted: Option<IntCounter>,
}

impl Refusal {
    /// A refusal answered with HTTP `http` and JSON-RPC error `code`; its audit status is
    /// what that pair means ([`Status::of_gateway_error`]).
    pub(crate) fn new(
        cause: Cause,
        http: StatusCode,
        code: i64,
        message: impl Into<String>,
    ) -> Refusal {
        Refusal(Box::new(Facts {
            cause,
            http,
            code,
            message: message.into(),
            data: None,
            header: None,
            before_auth: false,
            status: Status::of_gateway_error(http, code),
            empty: false,
            counted: None,
        }))
    }

    /// A policy phase's refusal: HTTP 200 with JSON-RPC error `code` (MCP clients show a
    /// JSON-RPC error to the user, but turn a 4xx into an opaque transport failure; batch
    /// entries need per-entry errors).
    pub(crate) fn policy(code: i64, message: impl Into<String>) -> Refusal {
        Refusal::new(Cause::Policy, StatusCode::OK, code, message)
    }

    /// The JSON-RPC error's `data`.
    pub(crate) fn with_data(mut self, data: Value) -> Refusal {
        self.0.data = Some(data);
        self
    }

    /// An extra header on the answer (`Allow`, `WWW-Authenticate`, `Retry-After`).
    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Refusal {
        self.0.header = Some((name, value));
        self
    }

    /// Given before the caller was authenticated: with `auth` configured the answer does
    /// not name the server, which would tell an unauthenticated caller that it exists.
    pub(crate) fn before_auth(mut self) -> Refusal {
        self.0.before_auth = true;
        self
    }

    /// Counted in `counter` when answered (a failed authentication, by its reason).
    pub(crate) fn counting(mut self, counter: IntCounter) -> Refusal {
        self.0.counted = Some(counter);
        self
    }

    /// Answered with an empty body (the 202 of a notification that goes nowhere); the
    /// audit record still says why.
    pub(crate) fn without_body(mut self) -> Refusal {
        self.0.empty = true;
        self
    }

    pub(crate) fn is_before_auth(&self) -> bool {
        self.0.before_auth
    }

    /// The answer to request `id`: a JSON-RPC error carrying `id` (or an empty body), its
    /// extra header, and the tag the audit record and the span read ([`Answered`]). The one
    /// place a refusal is counted (`conduit_dp_refusals_total` in `metrics`, and its own
    /// counter if it has one) and logged.
    pub(crate) fn respond(self, id: &RequestId, metrics: &Metrics) -> Response<ProxyBody> {
        let facts = *self.0;
        metrics
            .refusals
            .with_label_values(&[facts.cause.as_str(), facts.status.as_str()])
            .inc();
        if let Some(counter) = &facts.counted {
            counter.inc();
        }
        // What the operator must look at (an upstream that fails) is a warning; what callers
        // did wrong, or policies decided, only shows when debugging.
        if facts.cause == Cause::Upstream {
            tracing::warn!(
                http = facts.http.as_u16(),
                message = %facts.message,
                "upstream request failed"
            );
        } else {
            tracing::debug!(
                cause = facts.cause.as_str(),
                http = facts.http.as_u16(),
                code = facts.code,
                message = %facts.message,
                "request refused"
            );
        }
        let mut response = if facts.empty {
            Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed(),
            )
        } else {
            let body =
                jsonrpc::error_object_with_data(id, facts.code, facts.message.as_str(), facts.data);
            jsonrpc::json_response(facts.http, &body)
                .map(|body| body.map_err(|never| match never {}).boxed())
        };
        *response.status_mut() = facts.http;
        if let Some((name, value)) = facts.header {
            response.headers_mut().insert(name, value);
        }
        // Audit records and trace spans both read why the gateway answered from this tag.
        response.extensions_mut().insert(Answered {
            status: facts.status,
            code: facts.code,
            message: facts.message,
        });
        response
    }
}

#[cfg(test)]
mod tests {
    use http::header;
    use serde_json::json;

    use super::*;
    use crate::http::answered;

    #[tokio::test]
    async fn the_answer_carries_the_id_the_header_and_the_tag() {
        let metrics = Metrics::new();
        let refusal = Refusal::new(
            Cause::Client,
            StatusCode::UNAUTHORIZED,
            jsonrpc::AUTHENTICATION_FAILED,
            "authentication failed: missing credentials",
        )
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
        .before_auth()
        .counting(metrics.auth_failures.with_label_values(&["missing"]));
        assert!(refusal.is_before_auth());
        let response = refusal.respond(&RequestId(json!(3)), &metrics);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(answered(&response).unwrap().status, Status::AuthFailed);
        assert_eq!(
            metrics.auth_failures.with_label_values(&["missing"]).get(),
            1
        );
        let refusals = metrics
            .refusals
            .with_label_values(&["client", "auth_failed"]);
        assert_eq!(refusals.get(), 1);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"jsonrpc": "2.0", "id": 3, "error": {"code": -32000, "message": "authentication failed: missing credentials"}})
        );
    }

    #[tokio::test]
    async fn a_dropped_notification_has_no_body_but_a_status() {
        let response = Refusal::new(
            Cause::Client,
            StatusCode::ACCEPTED,
            jsonrpc::METHOD_NOT_FOUND,
            "dropped",
        )
        .without_body()
        .respond(&RequestId::null(), &Metrics::new());
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(answered(&response).unwrap().status, Status::InvalidRequest);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
    }
}
