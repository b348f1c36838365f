//! The prompts the conformance suite's server scenarios get: one without arguments, one
//! with two required arguments, one embedding a resource, and one carrying an image.
//! Summed into the prompt router in [`crate::server`].

use rmcp::{
    handler::server::wrapper::Parameters,
    model::{ContentBlock, PromptMessage, ResourceContents, Role},
    prompt, prompt_router,
    schemars::{self, JsonSchema},
};
use serde::Deserialize;

use crate::{content_tools::PNG_BASE64, server::FixtureServer};

/// Arguments of `test_prompt_with_arguments`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TwoArgs {
    /// First argument.
    pub arg1: String,
    /// Second argument.
    pub arg2: String,
}

/// Arguments of `test_prompt_with_embedded_resource`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceArgs {
    /// URI of the resource to embed.
    pub resource_uri: String,
}

#[prompt_router(router = "conformance_prompts", vis = "pub(crate)")]
impl FixtureServer {
    /// One user message, no arguments.
    #[prompt(
        name = "test_simple_prompt",
        description = "A simple prompt without arguments."
    )]
    pub async fn test_simple_prompt(&self) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            "This is a simple prompt for testing.",
        )]
    }

    /// One user message quoting both arguments.
    #[prompt(
        name = "test_prompt_with_arguments",
        description = "A prompt with two required arguments, arg1 and arg2."
    )]
    pub async fn test_prompt_with_arguments(
        &self,
        Parameters(TwoArgs { arg1, arg2 }): Parameters<TwoArgs>,
    ) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
        )]
    }

    /// An embedded text resource at `resourceUri`, then a question about it.
    #[prompt(
        name = "test_prompt_with_embedded_resource",
        description = "A prompt embedding the resource named by resourceUri."
    )]
    pub async fn test_prompt_with_embedded_resource(
        &self,
        Parameters(ResourceArgs { resource_uri }): Parameters<ResourceArgs>,
    ) -> Vec<PromptMessage> {
        let resource =
            ResourceContents::text("Embedded resource content for testing.", resource_uri);
        vec![
            PromptMessage::new(Role::User, ContentBlock::resource(resource)),
            PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
        ]
    }

    /// An image, then a question about it.
    #[prompt(
        name = "test_prompt_with_image",
        description = "A prompt carrying an image (a 1x1 PNG)."
    )]
    pub async fn test_prompt_with_image(&self) -> Vec<PromptMessage> {
        vec![
            PromptMessage::new(Role::User, ContentBlock::image(PNG_BASE64, "image/png")),
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_lists_match_the_suite() {
        let prompts = FixtureServer::conformance_prompts().list_all();
        let args = |name: &str| -> Vec<(String, bool)> {
            let prompt = prompts.iter().find(|p| p.name == name).expect(name);
            prompt
                .arguments
                .iter()
                .flatten()
                .map(|a| (a.name.clone(), a.required.unwrap_or(false)))
                .collect()
        };
        assert!(args("test_simple_prompt").is_empty());
        assert!(args("test_prompt_with_image").is_empty());
        assert_eq!(
            args("test_prompt_with_arguments"),
            vec![("arg1".to_owned(), true), ("arg2".to_owned(), true)]
        );
        assert_eq!(
            args("test_prompt_with_embedded_resource"),
            vec![("resourceUri".to_owned(), true)]
        );
    }
}
