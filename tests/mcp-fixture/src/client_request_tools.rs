//! Conformance tools that send a request back to the client while they run:
//! `test_sampling` (`sampling/createMessage`) and the three elicitation tools
//! (`elicitation/create` in form mode): a plain form, a form whose fields carry defaults
//! (SEP-1034), and a form using every enum shape (SEP-1330).
//!
//! The requests are built from JSON so the schemas read like the wire format. rmcp sends
//! them on the POST response stream of the `tools/call` they belong to. Over stdio nothing
//! on the wire says which call that is; when the call carries a progress token, an
//! elicitation names it in `_meta.relatedRequestId` (the call's id), so a gateway sharing
//! the process among clients can tell whose it is, and a test can exercise both cases. Each tool answers
//! with a text block that echoes what the client replied, so a test can tell the round trip
//! happened.
#![allow(deprecated)] // sampling is deprecated by the 2026-07-28 protocol, still in use before it

use rmcp::{
    ErrorData, RoleServer,
    handler::server::wrapper::Parameters,
    model::{
        CallToolResult, ClientResult, ContentBlock, CreateMessageRequestParams, ElicitRequest,
        ElicitRequestParams, RequestMetaObject, ServerRequest,
    },
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::FixtureServer;

/// Arguments of `test_sampling`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SamplingArgs {
    /// The prompt to send to the client's model.
    #[serde(default = "default_prompt")]
    pub prompt: String,
}

fn default_prompt() -> String {
    "Say hello.".to_owned()
}

/// Arguments of `test_elicitation`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ElicitationArgs {
    /// The message shown to the user.
    #[serde(default = "default_message")]
    pub message: String,
}

fn default_message() -> String {
    "Please provide your information.".to_owned()
}

/// The form of `test_elicitation`: two required strings.
pub fn basic_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "username": { "type": "string", "description": "Your user name" },
            "email": { "type": "string", "description": "Your e-mail address" }
        },
        "required": ["username", "email"]
    })
}

/// The form of `test_elicitation_sep1034_defaults`: one field of each primitive type, each
/// with a default value.
pub fn defaults_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "Name", "default": "John Doe" },
            "age": { "type": "integer", "description": "Age", "default": 30 },
            "score": { "type": "number", "description": "Score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "Status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verified", "default": true }
        }
    })
}

/// The form of `test_elicitation_sep1330_enums`: untitled and titled single choice, the
/// legacy `enumNames` form, and untitled and titled multiple choice.
pub fn enums_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Pick one",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string",
                "description": "Pick one (titled)",
                "oneOf": [
                    { "const": "value1", "title": "First Option" },
                    { "const": "value2", "title": "Second Option" },
                    { "const": "value3", "title": "Third Option" }
                ]
            },
            "legacyEnum": {
                "type": "string",
                "description": "Pick one (legacy titles)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "description": "Pick any",
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array",
                "description": "Pick any (titled)",
                "items": {
                    "anyOf": [
                        { "const": "value1", "title": "First Choice" },
                        { "const": "value2", "title": "Second Choice" },
                        { "const": "value3", "title": "Third Choice" }
                    ]
                }
            }
        }
    })
}

/// `elicitation/create` params (form mode) for `message` and `schema`.
pub fn form_request(message: &str, schema: Value) -> Result<ElicitRequestParams, ErrorData> {
    let params = json!({ "mode": "form", "message": message, "requestedSchema": schema });
    serde_json::from_value(params)
        .map_err(|err| ErrorData::internal_error(format!("bad elicitation form: {err}"), None))
}

fn client_failed(what: &str, err: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(format!("{what} failed: {err}"), None)
}

async fn elicit(
    context: &RequestContext<RoleServer>,
    message: &str,
    schema: Value,
) -> Result<CallToolResult, ErrorData> {
    // rmcp's typed helper sits behind a crate feature; the plain request needs none.
    let mut params = form_request(message, schema)?;
    if let (Some(_), ElicitRequestParams::FormElicitationParams { meta, .. }) =
        (context.meta.get_progress_token(), &mut params)
    {
        let mut named = RequestMetaObject::new();
        let id = serde_json::to_value(&context.id)
            .map_err(|err| ErrorData::internal_error(err.to_string(), None))?;
        named.0.insert("relatedRequestId".into(), id);
        *meta = Some(named);
    }
    let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
    let reply = match context.peer.send_request(request).await {
        Ok(ClientResult::ElicitResult(reply)) => reply,
        Ok(other) => {
            return Err(client_failed(
                "elicitation/create",
                format!("unexpected reply {other:?}"),
            ));
        }
        Err(err) => return Err(client_failed("elicitation/create", err)),
    };
    let action = serde_json::to_value(&reply.action).unwrap_or(Value::Null);
    let action = action.as_str().unwrap_or("unknown");
    let content = reply.content.unwrap_or(Value::Null);
    Ok(CallToolResult::success(vec![ContentBlock::text(format!(
        "User response: action={action}, content={content}"
    ))]))
}

#[tool_router(router = client_request_tools, vis = "pub(crate)")]
impl FixtureServer {
    /// Asks the client's model to answer `prompt` and returns what it said.
    #[tool(description = "Ask the client to sample an LLM (sampling/createMessage) with `prompt`.")]
    pub async fn test_sampling(
        &self,
        Parameters(SamplingArgs { prompt }): Parameters<SamplingArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let params: CreateMessageRequestParams = serde_json::from_value(json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": 100
        }))
        .map_err(|err| ErrorData::internal_error(err.to_string(), None))?;
        let reply = context
            .peer
            .create_message(params)
            .await
            .map_err(|err| client_failed("sampling/createMessage", err))?;
        let content = serde_json::to_value(&reply.message.content).unwrap_or(Value::Null);
        let text = content["text"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| content.to_string());
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "LLM response: {text}"
        ))]))
    }

    /// Asks the user for a user name and an e-mail address.
    #[tool(description = "Ask the user for input (elicitation/create) with `message`.")]
    pub async fn test_elicitation(
        &self,
        Parameters(ElicitationArgs { message }): Parameters<ElicitationArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        elicit(&context, &message, basic_schema()).await
    }

    /// Asks for a form whose every field has a default value (SEP-1034).
    #[tool(description = "Elicit a form whose fields all carry default values (SEP-1034).")]
    pub async fn test_elicitation_sep1034_defaults(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        elicit(
            &context,
            "Please review and update the form fields with defaults",
            defaults_schema(),
        )
        .await
    }

    /// Asks for a form using every enum shape (SEP-1330).
    #[tool(
        description = "Elicit a form using titled, untitled, legacy and multi-select enums (SEP-1330)."
    )]
    pub async fn test_elicitation_sep1330_enums(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        elicit(
            &context,
            "Please select options from the enum fields",
            enums_schema(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_a_valid_elicitation_request() {
        for schema in [basic_schema(), defaults_schema(), enums_schema()] {
            let params = form_request("m", schema.clone()).expect("parses");
            let wire = serde_json::to_value(params).expect("serializes");
            assert_eq!(wire["requestedSchema"]["properties"], schema["properties"]);
        }
    }
}
