//! [`Bridge`]: serves chats on any [`Channel`] from the runtime.
//!
//! Inbound: access control (allow-list and paired users; everyone else
//! gets a one-time pairing code and nothing more), commands, and messages
//! sent to the chat's conversation (a steer while a run goes). Outbound:
//! one follower per bound chat streams the conversation's events into the
//! chat — drafts or a placeholder edited in place at most once per
//! interval, continued in new messages past the length limit, tool status
//! lines, Approve/Deny buttons — and records the delivery mark, so a
//! restarted bridge delivers what the chat missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use netherbrain_core::agent::ToolDecision;
use netherbrain_core::channel::{
    BotCommand, CancellationToken, Channel, ChannelError, ChatButton, ChatRef, InboundMessage,
    SentMessage,
};
use netherbrain_core::store::{ChatBinding, GatewayStore, NewChatBinding, NewPairing};
use netherbrain_core::{
    AgentEvent, ContentPart, ConversationId, EventSeq, Message, PresetId, Role, SessionId, UserId,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::api::{ApiError, RuntimeApi, SendOutcome};
use crate::attachments::{
    AttachmentStore, DEFAULT_MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, blob_key, display_name,
    input_part, too_large_reply,
};
use crate::markup::render_split;

/// The shortest edit interval accepted (so a zero setting cannot flood).
pub const MIN_EDIT_INTERVAL: Duration = Duration::from_millis(250);

/// How long a stopping bridge waits for its channels' own shutdown.
const CHANNEL_SHUTDOWN: Duration = Duration::from_secs(15);

/// A platform user served without pairing, acting as a Netherbrain user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllowEntry {
    /// The channel's id.
    pub channel: String,
    /// The platform's user id.
    pub sender_id: String,
    /// The Netherbrain user.
    pub user_id: UserId,
}

impl AllowEntry {
    /// An entry.
    #[must_use]
    pub fn new(channel: impl Into<String>, sender_id: impl Into<String>, user_id: UserId) -> Self {
        Self {
            channel: channel.into(),
            sender_id: sender_id.into(),
            user_id,
        }
    }
}

/// How the bridge behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BridgeConfig {
    /// At most one edit (or draft update) per chat per interval; never
    /// below [`MIN_EDIT_INTERVAL`]. Default 1 s.
    pub edit_interval: Duration,
    /// How long a pairing code works. Default 10 minutes.
    pub pairing_ttl: Duration,
    /// Pending pairing codes at most (further unknown users get no reply
    /// until some expire). Default 20.
    pub max_pending_pairings: usize,
    /// Users served without pairing.
    pub allow: Vec<AllowEntry>,
    /// The preset of new conversations (else the runtime's default).
    pub default_preset: Option<PresetId>,
    /// First wait before reconnecting to the runtime; doubles up to 30 s.
    pub retry_base: Duration,
    /// Largest attachment accepted, in bytes (a larger one gets a polite
    /// reply and no run). Default 5 MiB.
    pub max_attachment_bytes: u64,
    /// Where attachments are kept; without one, files are refused with a
    /// reply.
    pub attachments: Option<Arc<dyn AttachmentStore>>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            edit_interval: Duration::from_secs(1),
            pairing_ttl: Duration::from_secs(600),
            max_pending_pairings: 20,
            allow: Vec::new(),
            default_preset: None,
            retry_base: Duration::from_millis(500),
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
            attachments: None,
        }
    }
}

impl BridgeConfig {
    /// Sets the edit interval (raised to [`MIN_EDIT_INTERVAL`]).
    #[must_use]
    pub fn with_edit_interval(mut self, interval: Duration) -> Self {
        self.edit_interval = interval;
        self
    }

    /// Adds a user served without pairing.
    #[must_use]
    pub fn allow(mut self, entry: AllowEntry) -> Self {
        self.allow.push(entry);
        self
    }

    /// Sets the preset of new conversations.
    #[must_use]
    pub fn with_default_preset(mut self, preset: Option<PresetId>) -> Self {
        self.default_preset = preset;
        self
    }

    /// Sets the first reconnect wait.
    #[must_use]
    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// Sets the largest attachment accepted, in bytes.
    #[must_use]
    pub fn with_max_attachment_bytes(mut self, bytes: u64) -> Self {
        self.max_attachment_bytes = bytes;
        self
    }

    /// Sets where attachments are kept.
    #[must_use]
    pub fn with_attachment_store(mut self, store: Arc<dyn AttachmentStore>) -> Self {
        self.attachments = Some(store);
        self
    }

    fn interval(&self) -> Duration {
        self.edit_interval.max(MIN_EDIT_INTERVAL)
    }
}

/// The commands every channel offers.
#[must_use]
pub fn commands() -> Vec<BotCommand> {
    vec![
        BotCommand::new("new", "Start a new conversation"),
        BotCommand::new("stop", "Stop the running reply"),
        BotCommand::new("preset", "Switch preset (list them without a name)"),
        BotCommand::new("status", "Show the conversation and what runs"),
        BotCommand::new("help", "What this bot understands"),
    ]
}

/// What went wrong running the bridge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// A channel failed for good.
    #[error("channel {channel}: {error}")]
    Channel {
        /// The channel's id.
        channel: String,
        /// The failure.
        error: ChannelError,
    },
}

/// Serves chats on channels from a runtime. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    api: Arc<dyn RuntimeApi>,
    store: Arc<dyn GatewayStore>,
    channels: HashMap<String, Arc<dyn Channel>>,
    config: BridgeConfig,
    /// One follower per chat: its conversation and its cancel token.
    followers: Mutex<HashMap<ChatRef, (ConversationId, CancellationToken)>>,
    /// Serialises sends per chat, so throttling is per chat.
    chat_locks: Mutex<HashMap<ChatRef, Arc<tokio::sync::Mutex<()>>>>,
    /// Chats seen to be private (drafts are shown there).
    private_chats: Mutex<std::collections::HashSet<ChatRef>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("api", &self.api)
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// A bridge over `api`, keeping its records in `store`.
    #[must_use]
    pub fn new(
        api: Arc<dyn RuntimeApi>,
        store: Arc<dyn GatewayStore>,
        channels: Vec<Arc<dyn Channel>>,
        config: BridgeConfig,
    ) -> Self {
        let channels = channels
            .into_iter()
            .map(|c| (c.id().to_owned(), c))
            .collect();
        Self {
            inner: Arc::new(Inner {
                api,
                store,
                channels,
                config,
                followers: Mutex::new(HashMap::new()),
                chat_locks: Mutex::new(HashMap::new()),
                private_chats: Mutex::new(std::collections::HashSet::new()),
            }),
        }
    }

    /// Runs until `cancel` fires: registers commands, re-attaches every
    /// bound chat, runs the channels' receive loops and handles what they
    /// deliver.
    ///
    /// # Errors
    ///
    /// [`BridgeError::Channel`] when a channel's receive loop fails for good.
    pub async fn run(&self, cancel: CancellationToken) -> Result<(), BridgeError> {
        let (tx, mut rx) = mpsc::channel::<InboundMessage>(256);
        let mut loops = tokio::task::JoinSet::new();
        for channel in self.inner.channels.values() {
            if let Err(e) = channel.set_commands(&commands()).await {
                warn!(channel = channel.id(), error = %e, "could not register commands");
            }
            self.reattach(channel.id()).await;
            let channel = Arc::clone(channel);
            let tx = tx.clone();
            let cancel = cancel.clone();
            loops.spawn(async move {
                let id = channel.id().to_owned();
                channel
                    .run(tx, cancel)
                    .await
                    .map_err(|error| BridgeError::Channel { channel: id, error })
            });
        }
        drop(tx);
        let result = loop {
            tokio::select! {
                () = cancel.cancelled() => break Ok(()),
                message = rx.recv() => match message {
                    Some(message) => {
                        let bridge = self.clone();
                        // Each chat's messages in order; chats in parallel.
                        let lock = self.chat_lock(&message.chat);
                        tokio::spawn(async move {
                            let _turn = lock.lock().await;
                            bridge.handle(message).await;
                        });
                    }
                    None => break Ok(()),
                },
                Some(done) = loops.join_next() => {
                    if let Ok(Err(e)) = done {
                        cancel.cancel();
                        break Err(e);
                    }
                }
            }
        };
        self.stop_followers();
        // The receive loops see `cancel` too: let them finish their own
        // shutdown (a webhook is removed) for a while before aborting them.
        // Nothing reads their messages any more.
        drop(rx);
        let finished = async { while loops.join_next().await.is_some() {} };
        if tokio::time::timeout(CHANNEL_SHUTDOWN, finished)
            .await
            .is_err()
        {
            warn!("a channel did not stop in time; aborting it");
        }
        loops.shutdown().await;
        result
    }

    fn stop_followers(&self) {
        let followers = self
            .inner
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, token) in followers.values() {
            token.cancel();
        }
    }

    fn chat_lock(&self, chat: &ChatRef) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .chat_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(chat.clone()).or_default())
    }

    fn channel(&self, chat: &ChatRef) -> Option<Arc<dyn Channel>> {
        self.inner.channels.get(&chat.channel).cloned()
    }

    /// Starts followers for every chat bound on a channel.
    async fn reattach(&self, channel: &str) {
        match self.inner.store.list_chat_bindings(channel).await {
            Ok(bindings) => {
                for binding in bindings {
                    self.ensure_follower(&binding);
                }
            }
            Err(e) => warn!(channel, error = %e, "could not list bound chats"),
        }
    }

    /// Handles one inbound message or button press.
    pub async fn handle(&self, message: InboundMessage) {
        let Some(channel) = self.channel(&message.chat) else {
            return;
        };
        let user = match self.identify(&message).await {
            Some(user) => user,
            None => {
                self.pairing_reply(&*channel, &message).await;
                return;
            }
        };
        let chat = &message.chat;
        if message.private {
            self.inner
                .private_chats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(chat.clone());
        }
        if let Some(data) = &message.button {
            self.button(&*channel, &message, user, data).await;
            return;
        }
        let text = message.text.trim();
        if let Some(command) = text.strip_prefix('/') {
            let (name, args) = command
                .split_once(char::is_whitespace)
                .unwrap_or((command, ""));
            let name = name.split('@').next().unwrap_or(name);
            self.command(&*channel, chat, user, name, args.trim()).await;
            return;
        }
        if text.is_empty() && message.attachments.is_empty() {
            return;
        }
        // Files first: one over the limit is refused before any
        // conversation exists or a model is called.
        let mut content = Vec::new();
        if !text.is_empty() {
            content.push(ContentPart::text(text));
        }
        match self.attachment_parts(&*channel, &message).await {
            Ok(parts) => content.extend(parts),
            Err(reply) => {
                self.notice(&*channel, chat, &reply).await;
                return;
            }
        }
        let binding = match self.binding_or_new(chat, user).await {
            Ok(binding) => binding,
            Err(e) => {
                self.notice(&*channel, chat, &format!("⚠️ {e}")).await;
                return;
            }
        };
        let outcome = self
            .inner
            .api
            .send(
                binding.user_id,
                binding.conversation_id,
                binding.preset_id,
                vec![Message::new(Role::User, content)],
            )
            .await;
        match outcome {
            Ok(SendOutcome::Started(session)) => {
                debug!(%chat, %session, "run started");
                let _ = channel.typing(chat).await;
            }
            Ok(SendOutcome::Steered(_)) => {
                if channel
                    .react(chat, &message.message_id, "👀")
                    .await
                    .is_err()
                {
                    self.notice(&*channel, chat, "↪️ Added to the running reply.")
                        .await;
                }
            }
            Ok(_) => {
                self.notice(
                    &*channel,
                    chat,
                    "A reply is running elsewhere; /stop it first.",
                )
                .await;
            }
            Err(e) => {
                warn!(%chat, error = %e, "send failed");
                self.notice(&*channel, chat, &format!("⚠️ {e}")).await;
            }
        }
    }

    /// The message's files as input parts, each fetched within the limit
    /// and kept in the attachment store; `Err` is the reply to send
    /// instead of running.
    async fn attachment_parts(
        &self,
        channel: &dyn Channel,
        message: &InboundMessage,
    ) -> Result<Vec<ContentPart>, String> {
        if message.attachments.is_empty() {
            return Ok(Vec::new());
        }
        let Some(store) = &self.inner.config.attachments else {
            return Err("Sorry, I can't take files here. Send the text instead.".to_owned());
        };
        if message.attachments.len() > MAX_ATTACHMENTS {
            return Err(format!(
                "Sorry, at most {MAX_ATTACHMENTS} files per message. Nothing was sent to the agent."
            ));
        }
        let max = self.inner.config.max_attachment_bytes;
        let mut parts = Vec::new();
        for (index, attachment) in message.attachments.iter().enumerate() {
            let name = display_name(attachment);
            if attachment.size.is_some_and(|size| size > max) {
                return Err(too_large_reply(&name, max));
            }
            let bytes = match channel.download(attachment, max).await {
                Ok(bytes) if u64::try_from(bytes.len()).unwrap_or(u64::MAX) <= max => bytes,
                Ok(_) | Err(ChannelError::TooLarge { .. }) => {
                    return Err(too_large_reply(&name, max));
                }
                Err(e) => {
                    warn!(chat = %message.chat, error = %e, "could not fetch an attachment");
                    return Err(format!(
                        "Sorry, I could not fetch {name}. Nothing was sent to the agent."
                    ));
                }
            };
            let key = blob_key(
                &message.chat.channel,
                &message.chat.chat_id,
                &message.message_id,
                index,
                &name,
            );
            if let Err(e) = store.put(&key, bytes.clone()).await {
                warn!(chat = %message.chat, error = %e, "could not store an attachment");
                return Err(format!(
                    "Sorry, I could not keep {name}. Nothing was sent to the agent."
                ));
            }
            parts.push(input_part(attachment, bytes, &key));
        }
        Ok(parts)
    }

    /// The Netherbrain user a sender acts as: allow-listed or paired.
    async fn identify(&self, message: &InboundMessage) -> Option<UserId> {
        let (channel, sender) = (&message.chat.channel, &message.sender.id);
        if let Some(entry) = self
            .inner
            .config
            .allow
            .iter()
            .find(|e| &e.channel == channel && &e.sender_id == sender)
        {
            return Some(entry.user_id);
        }
        match self.inner.store.gateway_identity(channel, sender).await {
            Ok(found) => found.map(|i| i.user_id),
            Err(e) => {
                warn!(%channel, error = %e, "could not read paired users");
                None
            }
        }
    }

    /// An unknown sender: one code per sender per validity, a bounded
    /// number pending, nothing else stored or run.
    async fn pairing_reply(&self, channel: &dyn Channel, message: &InboundMessage) {
        let now = Utc::now();
        let pending = match self.inner.store.pending_pairings(now).await {
            Ok(pending) => pending,
            Err(e) => {
                warn!(error = %e, "could not read pairing requests");
                return;
            }
        };
        let sender = &message.sender;
        if pending
            .iter()
            .any(|p| p.channel == message.chat.channel && p.sender_id == sender.id)
        {
            debug!(sender = %sender.id, "pairing already pending");
            return;
        }
        if pending.len() >= self.inner.config.max_pending_pairings {
            warn!(channel = %message.chat.channel, "too many pending pairing requests; ignoring");
            return;
        }
        let ttl = chrono::Duration::from_std(self.inner.config.pairing_ttl)
            .unwrap_or_else(|_| chrono::Duration::minutes(10));
        let mut request = NewPairing::new(
            pairing_code(),
            message.chat.channel.clone(),
            sender.id.clone(),
            message.chat.chat_id.clone(),
            now + ttl,
        );
        if let Some(name) = &sender.display_name {
            request = request.with_display_name(name.chars().take(100).collect::<String>());
        }
        match self.inner.store.create_pairing(request).await {
            Ok(created) => {
                info!(channel = %created.channel, sender = %created.sender_id, "pairing requested");
                let minutes = self.inner.config.pairing_ttl.as_secs().div_ceil(60);
                let text = format!(
                    "I don't know you yet. Ask the admin to approve you with:\n\nnetherbrain gateway pair {}\n\nThe code works for {minutes} minutes.",
                    created.code
                );
                let _ = channel.send(&message.chat, &text).await;
            }
            Err(e) => warn!(error = %e, "could not record a pairing request"),
        }
    }

    async fn binding_or_new(&self, chat: &ChatRef, user: UserId) -> Result<ChatBinding, String> {
        match self
            .inner
            .store
            .chat_binding(&chat.channel, &chat.chat_id)
            .await
        {
            Ok(Some(binding)) => {
                self.ensure_follower(&binding);
                Ok(binding)
            }
            Ok(None) => {
                self.new_conversation(chat, user, self.inner.config.default_preset)
                    .await
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn new_conversation(
        &self,
        chat: &ChatRef,
        user: UserId,
        preset: Option<PresetId>,
    ) -> Result<ChatBinding, String> {
        let preset = match preset {
            Some(preset) => Some(preset),
            // No preset configured: the first one by name.
            None => self
                .inner
                .api
                .presets(user)
                .await
                .map_err(|e| e.to_string())?
                .first()
                .map(|p| p.id),
        };
        let conversation = self
            .inner
            .api
            .create_conversation(user, &format!("{} chat {}", chat.channel, chat.chat_id))
            .await
            .map_err(|e| e.to_string())?;
        let binding = self
            .inner
            .store
            .bind_chat(
                NewChatBinding::new(
                    chat.channel.clone(),
                    chat.chat_id.clone(),
                    user,
                    conversation,
                )
                .with_preset(preset),
            )
            .await
            .map_err(|e| e.to_string())?;
        self.ensure_follower(&binding);
        Ok(binding)
    }

    async fn command(
        &self,
        channel: &dyn Channel,
        chat: &ChatRef,
        user: UserId,
        name: &str,
        args: &str,
    ) {
        let reply = match name {
            "new" => {
                let preset = match self
                    .inner
                    .store
                    .chat_binding(&chat.channel, &chat.chat_id)
                    .await
                {
                    Ok(Some(b)) => b.preset_id,
                    _ => self.inner.config.default_preset,
                };
                match self.new_conversation(chat, user, preset).await {
                    Ok(_) => "🆕 New conversation started.".to_owned(),
                    Err(e) => format!("⚠️ {e}"),
                }
            }
            "stop" => match self
                .inner
                .store
                .chat_binding(&chat.channel, &chat.chat_id)
                .await
            {
                Ok(Some(b)) => match self.inner.api.interrupt(b.user_id, b.conversation_id).await {
                    Ok(true) => "⏹ Stopped.".to_owned(),
                    Ok(false) => "Nothing is running.".to_owned(),
                    Err(e) => format!("⚠️ {e}"),
                },
                _ => "Nothing is running.".to_owned(),
            },
            "preset" => self.preset_command(chat, user, args).await,
            "status" => self.status(chat).await,
            "help" | "start" => help_text(),
            other => format!("Unknown command /{other}.\n\n{}", help_text()),
        };
        self.notice(channel, chat, &reply).await;
    }

    async fn preset_command(&self, chat: &ChatRef, user: UserId, args: &str) -> String {
        let presets = match self.inner.api.presets(user).await {
            Ok(presets) => presets,
            Err(e) => return format!("⚠️ {e}"),
        };
        let binding = self
            .inner
            .store
            .chat_binding(&chat.channel, &chat.chat_id)
            .await;
        let current = binding
            .as_ref()
            .ok()
            .and_then(|b| b.as_ref())
            .and_then(|b| b.preset_id);
        if args.is_empty() {
            if presets.is_empty() {
                return "No presets are defined.".to_owned();
            }
            let mut text = "Presets:".to_owned();
            for p in &presets {
                let mark = if Some(p.id) == current { " ✓" } else { "" };
                text.push_str(&format!("\n• {}{mark}", p.name));
            }
            text.push_str("\n\nSwitch with /preset NAME.");
            return text;
        }
        let Some(preset) = presets.iter().find(|p| p.name == args) else {
            return format!("No preset is named “{args}”. /preset lists them.");
        };
        let binding = match binding {
            Ok(Some(b)) => b,
            Ok(None) => {
                return match self.new_conversation(chat, user, Some(preset.id)).await {
                    Ok(_) => format!("Preset set to {}.", preset.name),
                    Err(e) => format!("⚠️ {e}"),
                };
            }
            Err(e) => return format!("⚠️ {e}"),
        };
        let rebind = NewChatBinding::new(
            chat.channel.clone(),
            chat.chat_id.clone(),
            binding.user_id,
            binding.conversation_id,
        )
        .with_preset(Some(preset.id));
        match self.inner.store.bind_chat(rebind).await {
            Ok(_) => format!("Preset set to {}.", preset.name),
            Err(e) => format!("⚠️ {e}"),
        }
    }

    async fn status(&self, chat: &ChatRef) -> String {
        let binding = match self
            .inner
            .store
            .chat_binding(&chat.channel, &chat.chat_id)
            .await
        {
            Ok(Some(b)) => b,
            Ok(None) => return "No conversation yet: send a message to start one.".to_owned(),
            Err(e) => return format!("⚠️ {e}"),
        };
        let running = match self
            .inner
            .api
            .latest_session(binding.user_id, binding.conversation_id)
            .await
        {
            Ok(Some(s)) if s.active => "a reply is running".to_owned(),
            Ok(_) => "idle".to_owned(),
            Err(e) => format!("unknown ({e})"),
        };
        let preset = match binding.preset_id {
            Some(id) => match self.inner.api.presets(binding.user_id).await {
                Ok(list) => list
                    .into_iter()
                    .find(|p| p.id == id)
                    .map_or_else(|| id.to_string(), |p| p.name),
                Err(_) => id.to_string(),
            },
            None => "default".to_owned(),
        };
        format!(
            "Conversation {}\nPreset: {preset}\nState: {running}",
            binding.conversation_id
        )
    }

    async fn button(
        &self,
        channel: &dyn Channel,
        message: &InboundMessage,
        user: UserId,
        data: &str,
    ) {
        let chat = &message.chat;
        let Some((verb, call_id)) = data.split_once(':') else {
            return;
        };
        let binding = match self
            .inner
            .store
            .chat_binding(&chat.channel, &chat.chat_id)
            .await
        {
            Ok(Some(b)) => b,
            _ => return,
        };
        if binding.user_id != user {
            self.notice(
                channel,
                chat,
                "Only the conversation's owner can answer this.",
            )
            .await;
            return;
        }
        let session = match self
            .inner
            .api
            .latest_session(user, binding.conversation_id)
            .await
        {
            Ok(Some(s)) if !s.active => s.id,
            Ok(_) => {
                self.notice(channel, chat, "Nothing waits for an answer.")
                    .await;
                return;
            }
            Err(e) => {
                self.notice(channel, chat, &format!("⚠️ {e}")).await;
                return;
            }
        };
        let decision = match verb {
            "approve" => ToolDecision::Approve {
                call_id: call_id.to_owned(),
            },
            "deny" => ToolDecision::Deny {
                call_id: call_id.to_owned(),
                reason: Some("denied in chat".into()),
            },
            _ => return,
        };
        match self.inner.api.resume(user, session, vec![decision]).await {
            Ok(_) => {
                let label = if verb == "approve" {
                    "✅ Approved."
                } else {
                    "🚫 Denied."
                };
                self.notice(channel, chat, label).await;
            }
            Err(e) => self.notice(channel, chat, &format!("⚠️ {e}")).await,
        }
    }

    async fn notice(&self, channel: &dyn Channel, chat: &ChatRef, text: &str) {
        if let Err(e) = send_retrying(channel, chat, text, &[]).await {
            warn!(%chat, error = %e, "could not send a notice");
        }
    }

    /// Starts (or moves) the chat's follower to the binding's conversation.
    fn ensure_follower(&self, binding: &ChatBinding) {
        let chat = ChatRef::new(binding.channel.clone(), binding.chat_id.clone());
        let Some(channel) = self.channel(&chat) else {
            return;
        };
        let mut followers = self
            .inner
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((conversation, token)) = followers.get(&chat) {
            if *conversation == binding.conversation_id && !token.is_cancelled() {
                return;
            }
            token.cancel();
        }
        let token = CancellationToken::new();
        followers.insert(chat.clone(), (binding.conversation_id, token.clone()));
        let follower = Follower {
            bridge: self.clone(),
            channel,
            chat,
            user: binding.user_id,
            conversation: binding.conversation_id,
            after: binding
                .delivered_session_id
                .map(|s| (s, binding.delivered_seq)),
        };
        tokio::spawn(follower.run(token));
    }
}

fn help_text() -> String {
    let mut text =
        "Send a message to talk to the agent; a message while it answers steers the reply.\n"
            .to_owned();
    for c in commands() {
        text.push_str(&format!("\n/{} — {}", c.name, c.description));
    }
    text
}

/// A one-time code: 8 characters without look-alikes, from the OS's
/// random generator (UUID v4).
fn pairing_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(8)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// Sends, waiting out rate limits (at most 5 tries).
async fn send_retrying(
    channel: &dyn Channel,
    chat: &ChatRef,
    text: &str,
    buttons: &[ChatButton],
) -> Result<SentMessage, ChannelError> {
    let mut tries = 0;
    loop {
        let sent = if buttons.is_empty() {
            channel.send(chat, text).await
        } else {
            channel.send_buttons(chat, text, buttons).await
        };
        match sent {
            Err(e) if e.is_retryable() && tries < 5 => {
                tries += 1;
                tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_secs(1))).await;
            }
            other => return other,
        }
    }
}

/// Streams one conversation into one chat.
struct Follower {
    bridge: Bridge,
    channel: Arc<dyn Channel>,
    chat: ChatRef,
    user: UserId,
    conversation: ConversationId,
    after: Option<(SessionId, EventSeq)>,
}

impl Follower {
    async fn run(mut self, cancel: CancellationToken) {
        let base = self.bridge.inner.config.retry_base;
        let mut wait = base;
        while !cancel.is_cancelled() {
            let feed = self
                .bridge
                .inner
                .api
                .follow(self.user, self.conversation, self.after)
                .await;
            let mut feed = match feed {
                Ok(feed) => feed,
                Err(ApiError::NotFound(e) | ApiError::Refused(e)) => {
                    warn!(chat = %self.chat, error = %e, "cannot follow the conversation; giving up");
                    return;
                }
                Err(e) => {
                    warn!(chat = %self.chat, error = %e, retry_in = ?wait, "runtime unreachable");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            let mut reply: Option<Reply> = None;
            loop {
                let deadline = reply.as_ref().and_then(Reply::next_flush);
                let next = tokio::select! {
                    () = cancel.cancelled() => return,
                    next = feed.next() => next,
                    () = sleep_until(deadline) => {
                        if let Some(r) = reply.as_mut() {
                            r.flush(&*self.channel, false).await;
                        }
                        continue;
                    }
                };
                match next {
                    Some(Ok(envelope)) => {
                        wait = base;
                        let session = envelope.session_id;
                        let seq = envelope.seq;
                        let r = match reply.as_mut() {
                            Some(r) if r.session == session => r,
                            _ => {
                                // A new session: a new reply.
                                if let Some(old) = reply.as_mut() {
                                    old.flush(&*self.channel, true).await;
                                }
                                reply.insert(Reply::new(&self, session))
                            }
                        };
                        let terminal = envelope.event.is_terminal();
                        r.apply(envelope.event);
                        if terminal {
                            r.flush(&*self.channel, true).await;
                            r.finish(&*self.channel).await;
                            self.mark(session, seq).await;
                            reply = None;
                        } else if r.due() {
                            r.flush(&*self.channel, false).await;
                        }
                    }
                    Some(Err(e)) => {
                        warn!(chat = %self.chat, error = %e, "event stream failed; reconnecting");
                        break;
                    }
                    None => break,
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    async fn mark(&mut self, session: SessionId, seq: EventSeq) {
        self.after = Some((session, seq));
        if let Err(e) = self
            .bridge
            .inner
            .store
            .mark_delivered(&self.chat.channel, &self.chat.chat_id, session, seq)
            .await
        {
            warn!(chat = %self.chat, error = %e, "could not record the delivery mark");
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How a reply is shown while it streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Native drafts (private chats), then the final messages.
    Draft,
    /// A message edited in place, continued in new ones.
    Edit,
    /// Only the final messages.
    Final,
}

/// One session's reply in one chat.
struct Reply {
    session: SessionId,
    chat: ChatRef,
    mode: Mode,
    interval: Duration,
    markup: netherbrain_core::channel::MarkupDialect,
    max_len: usize,
    text: String,
    tools: Vec<(String, String, bool)>,
    deferred: Vec<(String, String)>,
    error: Option<String>,
    sent: Vec<(SentMessage, String)>,
    dirty: bool,
    next_allowed: Instant,
    draft_id: u64,
    typing_at: Option<Instant>,
}

impl Reply {
    fn new(follower: &Follower, session: SessionId) -> Self {
        let caps = follower.channel.capabilities();
        let private = follower
            .bridge
            .inner
            .private_chats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&follower.chat);
        let mode = if caps.drafts && private {
            Mode::Draft
        } else if caps.edit_in_place {
            Mode::Edit
        } else {
            Mode::Final
        };
        let uuid = uuid::Uuid::from(session);
        let draft_id = u64::from_le_bytes(uuid.as_bytes()[8..16].try_into().unwrap_or([1; 8])) | 1;
        Self {
            session,
            chat: follower.chat.clone(),
            mode,
            interval: follower.bridge.inner.config.interval(),
            markup: caps.markup,
            max_len: caps.max_message_len,
            text: String::new(),
            tools: Vec::new(),
            deferred: Vec::new(),
            error: None,
            sent: Vec::new(),
            dirty: false,
            next_allowed: Instant::now(),
            draft_id: draft_id & (i64::MAX as u64),
            typing_at: None,
        }
    }

    fn apply(&mut self, event: AgentEvent) {
        match event {
            AgentEvent::TextMessageContent { delta, .. } => {
                self.text.push_str(&delta);
                self.dirty = true;
            }
            AgentEvent::ToolCallStart {
                tool_call_id,
                tool_call_name,
                ..
            } => {
                self.tools.push((tool_call_id, tool_call_name, false));
                self.dirty = true;
            }
            AgentEvent::ToolCallResult { tool_call_id, .. } => {
                for tool in &mut self.tools {
                    if tool.0 == tool_call_id {
                        tool.2 = true;
                    }
                }
                self.dirty = true;
            }
            AgentEvent::RunFinished { result, .. } => {
                self.deferred = result
                    .deferred_tool_calls
                    .into_iter()
                    .map(|c| (c.id, c.name))
                    .collect();
                self.dirty = true;
            }
            AgentEvent::RunError { message, .. } => {
                self.error = Some(message);
                self.dirty = true;
            }
            _ => {}
        }
    }

    /// Markdown of the whole reply: tool status lines, then the text.
    fn markdown(&self) -> String {
        let mut out = String::new();
        for (_, name, done) in &self.tools {
            let mark = if *done { "✓" } else { "…" };
            out.push_str(&format!("🔧 `{name}` {mark}\n"));
        }
        if !self.tools.is_empty() && !self.text.is_empty() {
            out.push('\n');
        }
        out.push_str(&self.text);
        if let Some(error) = &self.error {
            out.push_str(&format!("\n\n⚠️ {error}"));
        }
        out
    }

    fn due(&self) -> bool {
        self.dirty && self.mode != Mode::Final && Instant::now() >= self.next_allowed
    }

    fn next_flush(&self) -> Option<Instant> {
        (self.dirty && self.mode != Mode::Final).then_some(self.next_allowed)
    }

    /// Shows the reply as it is now; `last` waits out the interval.
    async fn flush(&mut self, channel: &dyn Channel, last: bool) {
        if !self.dirty && !last {
            return;
        }
        if !last && self.mode == Mode::Final {
            return;
        }
        if last {
            tokio::time::sleep_until(self.next_allowed).await;
        } else if Instant::now() < self.next_allowed {
            return;
        }
        let markdown = self.markdown();
        if markdown.trim().is_empty() {
            self.keep_typing(channel).await;
            self.dirty = false;
            return;
        }
        let pieces = render_split(&markdown, self.markup, self.max_len);
        let result = if self.mode == Mode::Draft && !last {
            let preview = pieces.last().cloned().unwrap_or_default();
            match channel
                .send_draft(&self.chat, self.draft_id, &preview)
                .await
            {
                Err(ChannelError::Unsupported | ChannelError::Transport(_)) => {
                    debug!(chat = %self.chat, "drafts refused; editing in place");
                    self.mode = Mode::Edit;
                    self.show(channel, &pieces).await
                }
                other => other,
            }
        } else {
            self.show(channel, &pieces).await
        };
        match result {
            Ok(()) => {
                self.dirty = false;
                self.next_allowed = Instant::now() + self.interval;
                self.keep_typing(channel).await;
            }
            Err(e) => {
                let wait = e.retry_after().unwrap_or(self.interval);
                warn!(chat = %self.chat, error = %e, "could not update the reply");
                self.next_allowed = Instant::now() + wait;
                if last && e.is_retryable() {
                    // Waits out the limit and tries again (bounded by retries inside).
                    Box::pin(self.flush(channel, true)).await;
                }
            }
        }
    }

    /// Sends or edits the messages so they show `pieces`.
    async fn show(&mut self, channel: &dyn Channel, pieces: &[String]) -> Result<(), ChannelError> {
        for (i, piece) in pieces.iter().enumerate() {
            match self.sent.get(i) {
                Some((_, shown)) if shown == piece => {}
                Some((message, _)) => {
                    let message = message.clone();
                    match channel.edit(&message, piece).await {
                        Ok(()) => self.sent[i].1 = piece.clone(),
                        Err(ChannelError::Unsupported) => {}
                        Err(e) => return Err(e),
                    }
                }
                None => {
                    let message = channel.send(&self.chat, piece).await?;
                    self.sent.push((message, piece.clone()));
                }
            }
        }
        Ok(())
    }

    async fn keep_typing(&mut self, channel: &dyn Channel) {
        let due = self
            .typing_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(4));
        if due && self.error.is_none() {
            self.typing_at = Some(Instant::now());
            let _ = channel.typing(&self.chat).await;
        }
    }

    /// After the terminal event: approval buttons.
    async fn finish(&mut self, channel: &dyn Channel) {
        for (call_id, name) in std::mem::take(&mut self.deferred) {
            let text = format!("The agent wants to run `{name}`. Allow it?");
            let text = crate::markup::render(&text, self.markup);
            let buttons = [
                ChatButton::new("✅ Approve", format!("approve:{call_id}")),
                ChatButton::new("🚫 Deny", format!("deny:{call_id}")),
            ];
            if let Err(e) = send_retrying(channel, &self.chat, &text, &buttons).await {
                warn!(chat = %self.chat, error = %e, "could not ask for approval");
            }
        }
    }
}
