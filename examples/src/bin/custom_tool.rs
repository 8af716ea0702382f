//! A custom typed tool, run through the agent loop.
//!
//! Uses the same environment variables as `one_shot_chat`.

use std::sync::Arc;

use netherbrain_core::agent::{Agent, NullSink, RunControl, RunRequest};
use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiProvider};
use netherbrain_core::schemars::JsonSchema;
use netherbrain_core::tool::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
use netherbrain_core::{ConversationId, SessionId};
use serde::Deserialize;

// --- the tool: 21 lines ---
/// Arguments of `word_count`.
#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "netherbrain_core::schemars")]
struct WordCountArgs {
    /// The text to count words in.
    text: String,
}

#[derive(Debug)]
struct WordCount;

#[async_trait::async_trait]
impl Tool for WordCount {
    type Args = WordCountArgs;
    fn name(&self) -> &str {
        "word_count"
    }
    fn description(&self) -> &str {
        "Counts the words in a text"
    }
    async fn call(&self, args: WordCountArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::text(
            args.text.split_whitespace().count().to_string(),
        ))
    }
}
// --- end of the tool ---

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base_url =
        std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".into());
    let mut config = OpenAiConfig::new(base_url);
    if let Ok(key) = std::env::var("OPENAI_API_KEY") {
        config = config.with_api_key(key);
    }
    let model = std::env::var("NETHER_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());

    let agent = Agent::builder(Arc::new(OpenAiProvider::new(config)), model)
        .system_prompt("Use the word_count tool to count words; never count yourself.")
        .tools(ToolRegistry::new().with(WordCount)?)
        .build();
    let request = RunRequest::new(ConversationId::new(), SessionId::new())
        .with_user_text("How many words are in 'the quick brown fox jumps'?");
    let outcome = agent
        .run(request, RunControl::default(), &mut NullSink)
        .await;
    if let Some(error) = outcome.error {
        anyhow::bail!("the run failed: {}", error.message);
    }
    println!("{}", outcome.final_message.unwrap_or_default());
    Ok(())
}
