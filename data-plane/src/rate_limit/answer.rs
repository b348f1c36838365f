//! The refusal of a message over a limit: HTTP 200 with a JSON-RPC error −32029 carrying the
//! request's id, `rate limit exceeded: <bucket>/<window>, retry after <n> s`, data
//! `{limit, window, retry_after, bucket}`, and a `Retry-After: <n>` header (which a batch
//! answer drops: its entries are answered together, each with its own `retry_after`).
//!
//! Which messages count: every request. `tools/call` counts with its tool; reads, gets and
//! completions (the other admission [`Target`]s) and every other request ([`admit_other`]:
//! initialize, lists, ping, ...) without one. Notifications and responses are not counted.

use http::header::{self, HeaderValue};
use serde_json::{Value, json};

use super::{RateLimited, RateLimiter, RateRequest};
use crate::caller::Caller;
use crate::jsonrpc::{self, RATE_LIMITED, RequestId};
use crate::mcp::Target;
use crate::refusal::Refusal;

/// The admission phase: count `target` for `caller`, or the refusal.
pub(crate) async fn admit(
    limiter: &RateLimiter,
    caller: &Caller,
    target: &Target<'_>,
) -> Result<(), Refusal> {
    if !limiter.is_enabled() {
        return Ok(());
    }
    let Some(request) = request_of(caller, target) else {
        return Ok(());
    };
    check(limiter, &request).await
}

/// The rate-limit phase of a request without a [`Target`] on `server` (`None`: an
/// aggregate endpoint, no single server): the global, client, server and workspace
/// buckets.
pub(crate) async fn admit_other(
    limiter: &RateLimiter,
    caller: &Caller,
    server: Option<&str>,
) -> Result<(), Refusal> {
    if !limiter.is_enabled() {
        return Ok(());
    }
    let request = RateRequest {
        client_id: &caller.client_id,
        tenant_id: &caller.tenant_id,
        server_id: server,
        tool: None,
    };
    check(limiter, &request).await
}

async fn check(limiter: &RateLimiter, request: &RateRequest<'_>) -> Result<(), Refusal> {
    limiter.check(request).await.map_err(|refused| {
        tracing::debug!(
            client = request.client_id,
            server = request.server_id,
            tool = request.tool,
            %refused,
            "rate limited"
        );
        refused.refusal()
    })
}

/// What `target` counts as: tool calls with their tool, reads and gets without; `None`
/// for messages that are not limited.
fn request_of<'a>(caller: &'a Caller, target: &Target<'a>) -> Option<RateRequest<'a>> {
    let (server_id, tool) = match *target {
        Target::ToolCall { server, tool, .. } => (server, Some(tool)),
        Target::ResourceRead { server, .. } | Target::PromptGet { server, .. } => (server, None),
        Target::Other => return None,
    };
    Some(RateRequest {
        client_id: &caller.client_id,
        tenant_id: &caller.tenant_id,
        server_id: Some(server_id),
        tool,
    })
}

impl RateLimited {
    /// `data` of the JSON-RPC error.
    pub fn data(&self) -> Value {
        json!({
            "limit": self.limit,
            "window": self.window.as_str(),
            "retry_after": self.retry_after_secs,
            "bucket": self.bucket.as_str(),
        })
    }

    /// The JSON-RPC error message answering request `id`.
    pub fn error_object(&self, id: &RequestId) -> Value {
        let mut error = jsonrpc::error_object(id, RATE_LIMITED, self.to_string());
        error["error"]["data"] = self.data();
        error
    }

    /// The refusal of the admission phase: −32029 with `data` and `Retry-After`.
    pub(crate) fn refusal(&self) -> Refusal {
        Refusal::policy(RATE_LIMITED, self.to_string())
            .with_data(self.data())
            .with_header(
                header::RETRY_AFTER,
                HeaderValue::from(self.retry_after_secs),
            )
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;
    use crate::rate_limit::{BucketKind, Window};

    #[test]
    fn the_contract_answer() {
        let refused = RateLimited {
            bucket: BucketKind::ClientServerTool,
            window: Window::Hour,
            limit: 5,
            retry_after_secs: 42,
        };
        let id = RequestId(json!(7));
        assert_eq!(
            refused.error_object(&id),
            json!({
                "jsonrpc": "2.0",
                "id": 7,
                "error": {
                    "code": -32029,
                    "message": "rate limit exceeded: client_server_tool/hour, retry after 42 s",
                    "data": {"limit": 5, "window": "hour", "retry_after": 42, "bucket": "client_server_tool"},
                },
            })
        );
        let response = refused
            .refusal()
            .respond(&id, &crate::metrics::Metrics::new());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
    }

    #[test]
    fn calls_count_with_their_tool_reads_and_gets_without() {
        let caller = Caller::authenticated("agent", Some("acme"));
        let args = json!({});
        let call = Target::ToolCall {
            server: "s",
            tool: "t",
            args: &args,
        };
        let request = request_of(&caller, &call).unwrap();
        assert_eq!(
            (
                request.client_id,
                request.tenant_id,
                request.server_id,
                request.tool
            ),
            ("agent", "acme", Some("s"), Some("t"))
        );
        for target in [
            Target::ResourceRead {
                server: "s",
                uri: "fixture://greeting",
            },
            Target::PromptGet {
                server: "s",
                name: "greeting",
            },
        ] {
            let request = request_of(&caller, &target).unwrap();
            assert_eq!((request.server_id, request.tool), (Some("s"), None));
        }
        assert!(request_of(&caller, &Target::Other).is_none());
    }
}
