//! Conformance tools that only shape their result: one per content type the MCP spec
//! defines (text, image, audio, embedded resource), a mix of them, and a tool that reports
//! a failure inside its result (`isError: true`) rather than as a JSON-RPC error, and one
//! whose input schema uses JSON Schema 2020-12 keywords (`$schema`, `$defs`, `$ref`,
//! `additionalProperties`) that a gateway must pass through untouched.
//!
//! The names are the ones the official conformance suite's server scenarios call. The image
//! and audio payloads are tiny media files generated for this fixture (a 1×1 PNG and a
//! 2 ms, 8 kHz mono WAV), base64-encoded.

use std::sync::Arc;

use rmcp::{
    model::{CallToolResult, ContentBlock, JsonObject, ResourceContents},
    tool, tool_router,
};
use serde_json::json;

use crate::server::FixtureServer;

/// A 1×1 RGB PNG, base64.
pub const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNQaDgAAAIkAWHdFJqQAAAAAElFTkSuQmCC";

/// A 16-sample, 8-bit, 8 kHz mono WAV, base64.
pub const WAV_BASE64: &str =
    "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YRAAAACAoIBggKCAYICggGCAoIBg";

/// Text of `test_simple_text`.
pub const SIMPLE_TEXT: &str = "This is a simple text response for testing.";

/// URI of the resource embedded by `test_embedded_resource`.
pub const EMBEDDED_URI: &str = "test://embedded-resource";

/// Text of the resource embedded by `test_embedded_resource`.
pub const EMBEDDED_TEXT: &str = "This is an embedded resource content.";

/// Text of the `test_error_handling` failure.
pub const ERROR_TEXT: &str = "This tool intentionally returns an error for testing";

/// Name of the tool whose input schema is written by hand in JSON Schema 2020-12.
pub const SCHEMA_2020_12_TOOL: &str = "json_schema_2020_12_tool";

/// The input schema of [`SCHEMA_2020_12_TOOL`]: a `$defs` entry referenced from a property,
/// the dialect named in `$schema`, and no extra properties allowed. Written out rather than
/// derived, because a derived schema would not carry these keywords.
pub fn schema_2020_12() -> Arc<JsonObject> {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "properties": {
                    "street": { "type": "string" },
                    "city": { "type": "string" }
                }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" }
        },
        "additionalProperties": false
    });
    match schema {
        serde_json::Value::Object(object) => Arc::new(object),
        _ => unreachable!("the schema literal is an object"),
    }
}

fn image() -> ContentBlock {
    ContentBlock::image(PNG_BASE64, "image/png")
}

fn audio() -> ContentBlock {
    ContentBlock::audio(WAV_BASE64, "audio/wav")
}

fn embedded() -> ContentBlock {
    ContentBlock::resource(ResourceContents::text(EMBEDDED_TEXT, EMBEDDED_URI))
}

#[tool_router(router = content_tools, vis = "pub(crate)")]
impl FixtureServer {
    /// One text block.
    #[tool(description = "Return a single text content block.")]
    pub fn test_simple_text(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(SIMPLE_TEXT)])
    }

    /// One image block (PNG).
    #[tool(description = "Return a single image content block (a 1x1 PNG).")]
    pub fn test_image_content(&self) -> CallToolResult {
        CallToolResult::success(vec![image()])
    }

    /// One audio block (WAV).
    #[tool(description = "Return a single audio content block (a short WAV).")]
    pub fn test_audio_content(&self) -> CallToolResult {
        CallToolResult::success(vec![audio()])
    }

    /// One embedded text resource.
    #[tool(description = "Return an embedded text resource.")]
    pub fn test_embedded_resource(&self) -> CallToolResult {
        CallToolResult::success(vec![embedded()])
    }

    /// Text, image and an embedded resource in one result.
    #[tool(description = "Return text, image and embedded resource content together.")]
    pub fn test_multiple_content_types(&self) -> CallToolResult {
        CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            image(),
            embedded(),
        ])
    }

    /// A tool-level failure: `isError: true` with an explanation, not a protocol error.
    #[tool(description = "Always fail, reporting the failure in the tool result (isError).")]
    pub fn test_error_handling(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(ERROR_TEXT)])
    }

    /// Lists with a hand-written JSON Schema 2020-12 input schema; a call just acknowledges.
    #[tool(
        name = "json_schema_2020_12_tool",
        description = "Tool with JSON Schema 2020-12 features",
        input_schema = schema_2020_12()
    )]
    pub fn json_schema_2020_12_tool(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(format!(
            "{SCHEMA_2020_12_TOOL} called"
        ))])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn wire(result: CallToolResult) -> Value {
        serde_json::to_value(result).expect("serializes")
    }

    #[test]
    fn every_content_type_has_its_wire_shape() {
        let server = FixtureServer::new();
        let text = wire(server.test_simple_text());
        assert_eq!(text["content"][0]["text"], json!(SIMPLE_TEXT));
        let image = wire(server.test_image_content());
        assert_eq!(image["content"][0]["type"], json!("image"));
        assert_eq!(image["content"][0]["mimeType"], json!("image/png"));
        let audio = wire(server.test_audio_content());
        assert_eq!(audio["content"][0]["type"], json!("audio"));
        assert_eq!(audio["content"][0]["mimeType"], json!("audio/wav"));
        let embedded = wire(server.test_embedded_resource());
        assert_eq!(embedded["content"][0]["type"], json!("resource"));
        assert_eq!(
            embedded["content"][0]["resource"]["uri"],
            json!(EMBEDDED_URI)
        );
        let mixed = wire(server.test_multiple_content_types());
        let types: Vec<&str> = mixed["content"]
            .as_array()
            .expect("content")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(types, vec!["text", "image", "resource"]);
        let failed = wire(server.test_error_handling());
        assert_eq!(failed["isError"], json!(true));
    }

    #[test]
    fn schema_2020_12_keeps_its_keywords() {
        let tool = FixtureServer::json_schema_2020_12_tool_tool_attr();
        assert_eq!(tool.name, SCHEMA_2020_12_TOOL);
        let schema = Value::Object(tool.input_schema.as_ref().clone());
        assert_eq!(
            schema["$schema"],
            json!("https://json-schema.org/draft/2020-12/schema")
        );
        assert!(schema["$defs"]["address"].is_object(), "{schema}");
        assert_eq!(schema["additionalProperties"], json!(false));
    }

    #[test]
    fn media_payloads_start_with_their_magic_numbers() {
        // "iVBORw0KGgo" is base64 of the PNG signature, "UklGR" of "RIFF".
        assert!(PNG_BASE64.starts_with("iVBORw0KGgo"));
        assert!(WAV_BASE64.starts_with("UklGR"));
    }
}
