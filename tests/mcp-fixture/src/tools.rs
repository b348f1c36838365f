//! Tools of the fixture. Each group is its own `#[tool_router]` block; [`crate::server`] sums
//! the routers, so adding a group is one new block plus one `+` in `FixtureServer::new`.

use rmcp::{
    ErrorData, RoleServer,
    handler::server::wrapper::Parameters,
    model::{CallToolResult, ContentBlock},
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::server::FixtureServer;

/// Arguments of `echo`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// The text to send back.
    pub message: String,
}

/// Arguments of `add`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddArgs {
    /// First addend.
    pub a: f64,
    /// Second addend.
    pub b: f64,
}

/// Arguments of `sleep`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// How long to wait before answering, in milliseconds (at most 60000).
    pub ms: u64,
}

/// Upper bound of `sleep`, so a test cannot park the fixture forever.
const MAX_SLEEP_MS: u64 = 60_000;

#[tool_router(router = basic_tools, vis = "pub(crate)")]
impl FixtureServer {
    /// Returns `message` unchanged as text content. Annotated read-only (gateways select
    /// tools by annotations; `add` is annotated too, the other tools are not).
    #[tool(
        description = "Echo the `message` argument back unchanged.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub fn echo(&self, Parameters(EchoArgs { message }): Parameters<EchoArgs>) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(message)])
    }

    /// Returns `a + b` as text (`2 + 3` gives `5`).
    #[tool(
        description = "Add two numbers and return the sum as text.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(format_number(a + b))])
    }

    /// Answers after `ms` milliseconds: a slow upstream for timeout and drain tests.
    #[tool(description = "Wait `ms` milliseconds (at most 60000), then answer.")]
    pub async fn sleep(
        &self,
        Parameters(SleepArgs { ms }): Parameters<SleepArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if ms > MAX_SLEEP_MS {
            return Err(ErrorData::invalid_params(
                format!("ms must be at most {MAX_SLEEP_MS}"),
                None,
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "slept {ms} ms"
        ))]))
    }

    /// Reports the HTTP request headers this call arrived with, as a JSON object with
    /// lower-case names. Lets tests observe what a gateway adds, strips or forwards.
    #[tool(
        description = "Return the HTTP request headers of this call as a JSON object (empty over stdio)."
    )]
    pub fn echo_headers(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut headers = Map::new();
        if let Some(parts) = context.extensions.get::<http::request::Parts>() {
            for (name, value) in &parts.headers {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
        let text = serde_json::to_string(&headers)
            .map_err(|err| ErrorData::internal_error(err.to_string(), None))?;
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }
}

/// Integers print without a fractional part so `add(2, 3)` reads `5`, not `5.0`.
fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::format_number;

    #[test]
    fn integers_print_without_fraction() {
        assert_eq!(format_number(5.0), "5");
        assert_eq!(format_number(-2.0), "-2");
        assert_eq!(format_number(0.5), "0.5");
    }
}
