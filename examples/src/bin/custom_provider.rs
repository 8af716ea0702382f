//! A custom `Provider`: a tiny rule-based "model" that needs no network,
//! run through the same agent loop as a real LLM.
//!
//! ```sh
//! cargo run -p netherbrain-examples --bin custom_provider -- "hello world"
//! ```

use std::sync::Arc;

use futures::StreamExt;
use netherbrain_core::agent::{Agent, NullSink, RunControl, RunRequest};
use netherbrain_core::provider::{ModelRequest, Provider, ProviderEvent, ProviderStream};
use netherbrain_core::{ConversationId, FinishReason, Role, SessionId, Usage};

/// Answers with the last user message shouted back, one word per chunk.
#[derive(Debug)]
struct Shouter;

impl Provider for Shouter {
    fn name(&self) -> &str {
        "shouter"
    }

    fn stream(&self, request: ModelRequest) -> ProviderStream {
        let last_user = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.text())
            .unwrap_or_default();
        let words: Vec<String> = last_user
            .split_whitespace()
            .map(|w| format!("{} ", w.to_uppercase()))
            .collect();
        let usage = Usage {
            input_tokens: last_user.len() as u64 / 4,
            output_tokens: words.len() as u64,
            requests: 1,
            ..Usage::default()
        };
        let events = words
            .into_iter()
            .map(ProviderEvent::TextDelta)
            .chain([
                ProviderEvent::Usage(usage),
                ProviderEvent::Finish(FinishReason::Stop),
            ])
            .map(Ok);
        futures::stream::iter(events).boxed()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let prompt = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let agent = Agent::builder(Arc::new(Shouter), "shouter-1").build();
    let request = RunRequest::new(ConversationId::new(), SessionId::new()).with_user_text(prompt);
    let outcome = agent
        .run(request, RunControl::default(), &mut NullSink)
        .await;
    println!("{}", outcome.final_message.unwrap_or_default().trim_end());
    println!("usage: {:?}", outcome.usage.total());
    Ok(())
}
