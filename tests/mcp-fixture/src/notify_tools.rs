//! Conformance tools that send notifications while they run: `test_tool_with_logging`
//! (`notifications/message`) and `test_tool_with_progress` (`notifications/progress` against
//! the caller's `_meta.progressToken`).
//!
//! Both pause briefly between notifications so that a gateway in the path has to stream
//! them as they come instead of collecting the whole exchange first.
//!
//! Over streamable HTTP, rmcp routes progress notifications onto the POST response stream
//! of the request that carries the token; log messages have no such link and travel on the
//! session's standalone GET stream when the client opened one.
#![allow(deprecated)] // logging is deprecated by the 2026-07-28 protocol, still in use before it

use std::time::Duration;

use rmcp::{
    ErrorData, RoleServer,
    model::{
        CallToolResult, ContentBlock, LoggingLevel, LoggingMessageNotificationParam,
        ProgressNotificationParam,
    },
    service::RequestContext,
    tool, tool_router,
};
use serde_json::json;

use crate::server::FixtureServer;

/// Pause between two notifications of one call.
const STEP: Duration = Duration::from_millis(50);

/// Logger name put on the fixture's log messages.
pub const LOGGER: &str = "conduit-mcp-fixture";

/// The messages `test_tool_with_logging` sends, in order.
pub const LOG_MESSAGES: [&str; 3] = [
    "Tool execution started",
    "Tool processing data",
    "Tool execution completed",
];

/// The progress values `test_tool_with_progress` reports, out of [`PROGRESS_TOTAL`].
pub const PROGRESS_STEPS: [f64; 3] = [0.0, 50.0, 100.0];

/// The `total` of every progress notification.
pub const PROGRESS_TOTAL: f64 = 100.0;

fn send_failed(what: &str, err: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(format!("sending {what} failed: {err}"), None)
}

#[tool_router(router = notify_tools, vis = "pub(crate)")]
impl FixtureServer {
    /// Three info-level log messages, then a text result.
    #[tool(description = "Send three log messages (notifications/message) while running.")]
    pub async fn test_tool_with_logging(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        for (index, message) in LOG_MESSAGES.iter().enumerate() {
            if index > 0 {
                tokio::time::sleep(STEP).await;
            }
            let param = LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(message))
                .with_logger(LOGGER);
            context
                .peer
                .notify_logging_message(param)
                .await
                .map_err(|err| send_failed("a log message", err))?;
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(
            "Tool with logging executed successfully",
        )]))
    }

    /// Progress 0, 50 and 100 of 100 when the caller supplied a progress token; without a
    /// token the tool still answers, with nothing to report progress against.
    #[tool(description = "Report progress (notifications/progress) 0, 50 and 100 of 100.")]
    pub async fn test_tool_with_progress(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let token = context.meta.get_progress_token();
        for (index, progress) in PROGRESS_STEPS.iter().enumerate() {
            if index > 0 {
                tokio::time::sleep(STEP).await;
            }
            let Some(token) = token.clone() else {
                continue;
            };
            let param = ProgressNotificationParam::new(token, *progress)
                .with_total(PROGRESS_TOTAL)
                .with_message(format!("step {} of {}", index + 1, PROGRESS_STEPS.len()));
            context
                .peer
                .notify_progress(param)
                .await
                .map_err(|err| send_failed("a progress notification", err))?;
        }
        let text = if token.is_some() {
            "Tool with progress executed successfully"
        } else {
            "Tool with progress executed successfully (no progress token given)"
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_steps_rise_to_the_total() {
        assert!(PROGRESS_STEPS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(PROGRESS_STEPS.last().copied(), Some(PROGRESS_TOTAL));
    }

    #[test]
    fn both_tools_are_routed() {
        let names: Vec<String> = FixtureServer::notify_tools()
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(
            names,
            vec!["test_tool_with_logging", "test_tool_with_progress"]
        );
    }
}
