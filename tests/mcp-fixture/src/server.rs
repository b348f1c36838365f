//! The fixture's `ServerHandler`: combines the tool and prompt routers of the capability
//! modules, serves the resource catalogue and template, and answers the small session-level
//! requests (`completion/complete`, `logging/setLevel`, `resources/subscribe` and
//! `resources/unsubscribe`).
#![allow(deprecated)] // logging and resource subscriptions predate the 2026-07-28 protocol

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::router::{prompt::PromptRouter, tool::ToolRouter},
    model::{
        CompleteRequestParams, CompleteResult, Implementation, ListResourceTemplatesResult,
        ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams,
        ReadResourceResponse, ServerCapabilities, ServerConfig, SetLevelRequestParams,
        SubscribeRequestParams, UnsubscribeRequestParams,
    },
    prompt_handler,
    service::RequestContext,
    tool_handler,
};

use crate::{completion, resources};

/// Name the fixture reports in `serverInfo`.
pub const SERVER_NAME: &str = "conduit-mcp-fixture";

/// One MCP server instance. Cheap to clone; the streamable HTTP transport builds one per
/// session.
#[derive(Debug, Clone)]
pub struct FixtureServer {
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

impl FixtureServer {
    pub fn new() -> Self {
        Self {
            tool_router: Self::basic_tools()
                + Self::content_tools()
                + Self::notify_tools()
                + Self::client_request_tools(),
            prompt_router: Self::basic_prompts() + Self::conformance_prompts(),
        }
    }
}

impl Default for FixtureServer {
    fn default() -> Self {
        Self::new()
    }
}

// Both handler macros are needed: without them `tools/list` and `prompts/list` come back
// empty even though the routers hold entries.
#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for FixtureServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_logging()
                .enable_completions()
                .build(),
        )
        .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
        .with_instructions("Test and example MCP server of the Conduit gateway.")
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&request.uri).map(Into::into)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        completion::complete(&request)
    }

    /// Accepted for any level. The fixture's log messages are all `info`, sent only by
    /// `test_tool_with_logging`, so there is nothing to filter.
    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    /// Subscribing to a resource the fixture can read succeeds. The fixture's resources
    /// never change, so no `notifications/resources/updated` follows.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        resources::read(&request.uri).map(|_| ())
    }

    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routers_are_populated() {
        let server = FixtureServer::new();
        let tools: Vec<_> = server
            .tool_router
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        for name in ["echo", "add", "echo_headers", "sleep"] {
            assert!(
                tools.iter().any(|t| t == name),
                "missing tool {name}: {tools:?}"
            );
        }
        let prompts = server.prompt_router.list_all();
        assert!(prompts.iter().any(|p| p.name == "greeting"));
    }
}
