//! A custom chat channel: each line on stdin is a message, each reply a line
//! on stdout — served by the same gateway bridge as Telegram, over an
//! in-process runtime (memory store, any OpenAI-compatible endpoint).
//!
//! ```sh
//! export OPENAI_BASE_URL=http://localhost:11434/v1 NETHER_MODEL=llama3.2
//! echo "Why is the sky blue?" | cargo run -p netherbrain-examples --bin line_channel
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use async_trait::async_trait;
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::channel::*;
use netherbrain_core::conversation::ConversationService;
use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiProvider};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewPreset, NewUser, UserRole};
use netherbrain_gateway::{AllowEntry, Bridge, BridgeConfig, LocalRuntime};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Lines in, lines out; done once stdin ended and every line got a reply.
#[derive(Debug, Default)]
struct LineChannel {
    read: AtomicUsize,
    replied: AtomicUsize,
    eof: AtomicBool,
    done: CancellationToken,
}

#[async_trait]
impl Channel for LineChannel {
    fn id(&self) -> &str {
        "lines"
    }
    fn capabilities(&self) -> ChannelCapabilities {
        // No editing: the bridge sends each reply once, complete.
        ChannelCapabilities::new().with_max_message_len(usize::MAX)
    }
    async fn run(
        &self,
        inbound: mpsc::Sender<InboundMessage>,
        cancel: CancellationToken,
    ) -> Result<(), ChannelError> {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let n = self.read.fetch_add(1, SeqCst) + 1;
            let chat = ChatRef::new("lines", "stdin");
            let message = InboundMessage::new(chat, SenderRef::new("me"), line, n.to_string());
            inbound
                .send(message)
                .await
                .map_err(|_| ChannelError::Closed)?;
        }
        self.eof.store(true, SeqCst);
        cancel.cancelled().await;
        Ok(())
    }
    async fn send(&self, chat: &ChatRef, text: &str) -> Result<SentMessage, ChannelError> {
        println!("{}", text.replace('\n', " "));
        let n = self.replied.fetch_add(1, SeqCst) + 1;
        if self.eof.load(SeqCst) && n >= self.read.load(SeqCst) {
            self.done.cancel();
        }
        Ok(SentMessage::new(chat.clone(), n.to_string()))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base_url =
        std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".into());
    let mut config = OpenAiConfig::new(base_url);
    if let Ok(key) = std::env::var("OPENAI_API_KEY") {
        config = config.with_api_key(key);
    }
    let model = std::env::var("NETHER_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
    let provider = Arc::new(OpenAiProvider::new(config));
    let catalog = AgentCatalog::new().with_provider("llm", provider, vec![model.clone()]);

    let store = Arc::new(MemoryStore::new());
    let me = store
        .create_user(NewUser::new("me", UserRole::User))
        .await?;
    let preset = netherbrain_core::PresetConfig::new("llm", model);
    store.create_preset(NewPreset::new("chat", preset)).await?;
    let service = ConversationService::new(store.clone() as Arc<dyn StateStore>, Arc::new(catalog));

    let channel = Arc::new(LineChannel::default());
    let done = channel.done.clone();
    let bridge = Bridge::new(
        Arc::new(LocalRuntime::new(service)),
        store,
        vec![channel],
        BridgeConfig::default().allow(AllowEntry::new("lines", "me", me.id)),
    );
    bridge.run(done).await?;
    Ok(())
}
