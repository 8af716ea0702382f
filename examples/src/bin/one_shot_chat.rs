//! One-shot chat against any OpenAI-compatible endpoint, streaming the answer.
//!
//! ```sh
//! export OPENAI_BASE_URL=http://localhost:11434/v1   # Ollama; default: OpenAI
//! export OPENAI_API_KEY=sk-...                       # not needed for Ollama
//! export NETHER_MODEL=llama3.2                       # default: gpt-4o-mini
//! cargo run -p netherbrain-examples --bin one_shot_chat -- "Why is the sky blue?"
//! ```

use std::sync::Arc;

use futures::StreamExt;
use netherbrain_core::agent::{Agent, RunControl, RunRequest};
use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiProvider};
use netherbrain_core::{AgentEvent, ConversationId, SessionId};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let prompt = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    anyhow::ensure!(!prompt.trim().is_empty(), "usage: one_shot_chat <prompt>");

    let base_url =
        std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".into());
    let mut config = OpenAiConfig::new(base_url);
    if let Ok(key) = std::env::var("OPENAI_API_KEY") {
        config = config.with_api_key(key);
    }
    let model = std::env::var("NETHER_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());

    let agent = Arc::new(Agent::builder(Arc::new(OpenAiProvider::new(config)), model).build());
    let request = RunRequest::new(ConversationId::new(), SessionId::new()).with_user_text(prompt);
    let mut events = agent.run_stream(request, RunControl::default());
    while let Some(event) = events.next().await {
        match event {
            AgentEvent::TextMessageContent { delta, .. } => print!("{delta}"),
            AgentEvent::RunError { message, .. } => anyhow::bail!("the run failed: {message}"),
            _ => {}
        }
    }
    println!();
    Ok(())
}
