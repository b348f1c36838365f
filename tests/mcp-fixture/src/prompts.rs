//! Prompts of the fixture, one `#[prompt_router]` block per group (summed in
//! [`crate::server`]).

use rmcp::{
    handler::server::wrapper::Parameters,
    model::{PromptMessage, Role},
    prompt, prompt_router,
    schemars::{self, JsonSchema},
};
use serde::Deserialize;

use crate::server::FixtureServer;

/// Arguments of the `greeting` prompt.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GreetingArgs {
    /// Who to greet.
    pub name: String,
}

#[prompt_router(router = "basic_prompts", vis = "pub(crate)")]
impl FixtureServer {
    /// A one-message prompt that greets `name`.
    #[prompt(
        name = "greeting",
        description = "Ask the model to greet someone by name."
    )]
    pub async fn greeting(
        &self,
        Parameters(GreetingArgs { name }): Parameters<GreetingArgs>,
    ) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!("Please greet {name} warmly."),
        )]
    }
}
