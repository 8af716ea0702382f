//! [`DiscordChannel`]: Discord through twilight (rustls with the webpki
//! roots): the gateway WebSocket (`twilight-gateway`) for what arrives,
//! the REST API (`twilight-http`) for what is sent. Both base URLs are
//! configurable (a proxy, or a fake on loopback in tests).
//!
//! Chats are Discord channel ids: a direct-message channel (one
//! conversation per user until `/new`), or a thread (one conversation per
//! thread). A mention of the bot in a server channel opens a thread on
//! that message, and the conversation goes on there; in threads the bot
//! opened, every message is for it. Commands are slash commands; buttons
//! are message components. Mentions in replies are never pinged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use netherbrain_core::channel::{
    AttachmentKind, BotCommand, CancellationToken, Channel, ChannelCapabilities, ChannelError,
    ChatButton, ChatRef, InboundAttachment, InboundMessage, MarkupDialect, SenderRef, SentMessage,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use twilight_gateway::{
    CloseFrame, ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt,
};
use twilight_http::Client;
use twilight_http::api_error::ApiError;
use twilight_http::error::ErrorType;
use twilight_http::request::channel::reaction::RequestReactionType;
use twilight_model::application::command::{
    Command, CommandOption, CommandOptionType, CommandType,
};
use twilight_model::application::interaction::application_command::CommandOptionValue;
use twilight_model::application::interaction::{Interaction, InteractionData};
use twilight_model::channel::Channel as DiscordChat;
use twilight_model::channel::message::component::{ActionRow, Button, ButtonStyle, Component};
use twilight_model::channel::message::{AllowedMentions, Message};
use twilight_model::http::interaction::{
    InteractionResponse, InteractionResponseData, InteractionResponseType,
};
use twilight_model::id::Id;
use twilight_model::id::marker::{ApplicationMarker, ChannelMarker, MessageMarker, UserMarker};

/// The channel id Discord chats carry.
pub const DISCORD: &str = "discord";

/// The public REST API.
pub const DEFAULT_API_URL: &str = "https://discord.com";

/// Discord's message length limit, in characters.
pub const MAX_MESSAGE_LEN: usize = 2000;

/// How the Discord channel connects.
#[derive(Clone)]
#[non_exhaustive]
pub struct DiscordConfig {
    /// The bot token from the developer portal (never logged).
    pub token: String,
    /// The REST API base URL (`scheme://host[:port]`; the client adds
    /// `/api/v10`). Default [`DEFAULT_API_URL`].
    pub api_url: String,
    /// The gateway WebSocket URL (`ws://` or `wss://`); `None` is
    /// Discord's own (`wss://gateway.discord.gg`).
    pub gateway_url: Option<String>,
}

impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("gateway_url", &self.gateway_url)
            .finish()
    }
}

impl DiscordConfig {
    /// Discord's own API with `token`.
    #[must_use]
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            api_url: DEFAULT_API_URL.to_owned(),
            gateway_url: None,
        }
    }

    /// Sets the REST API base URL.
    #[must_use]
    pub fn with_api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = url.into();
        self
    }

    /// Sets the gateway WebSocket URL.
    #[must_use]
    pub fn with_gateway_url(mut self, url: impl Into<String>) -> Self {
        self.gateway_url = Some(url.into());
        self
    }
}

/// What the gateway told us about ourselves and the server's threads.
#[derive(Debug, Default)]
struct State {
    me: Option<Id<UserMarker>>,
    application: Option<Id<ApplicationMarker>>,
    /// Threads the bot can see; `true` for the ones it owns.
    threads: HashMap<Id<ChannelMarker>, bool>,
}

/// Discord as a [`Channel`].
#[derive(Clone)]
pub struct DiscordChannel {
    http: Arc<Client>,
    /// Downloads attachments from the URLs the gateway gives.
    files: reqwest::Client,
    token: String,
    gateway_url: Option<String>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for DiscordChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordChannel")
            .field("gateway_url", &self.gateway_url)
            .finish_non_exhaustive()
    }
}

/// What the bot needs to see: messages (and their text) in servers and
/// direct messages, and the servers' threads.
fn intents() -> Intents {
    Intents::GUILDS | Intents::GUILD_MESSAGES | Intents::DIRECT_MESSAGES | Intents::MESSAGE_CONTENT
}

/// `scheme://host[:port]` to twilight's proxy host and whether it is
/// plain HTTP; `None` for Discord's own API.
fn proxy(api_url: &str) -> Result<Option<(String, bool)>, ChannelError> {
    let trimmed = api_url.trim().trim_end_matches('/');
    if trimmed == DEFAULT_API_URL {
        return Ok(None);
    }
    let (host, use_http) = if let Some(host) = trimmed.strip_prefix("http://") {
        (host, true)
    } else if let Some(host) = trimmed.strip_prefix("https://") {
        (host, false)
    } else {
        return Err(ChannelError::Transport(format!(
            "bad Discord API URL (want http:// or https://): {trimmed}"
        )));
    };
    if host.is_empty() {
        return Err(ChannelError::Transport(format!(
            "bad Discord API URL: {trimmed}"
        )));
    }
    Ok(Some((host.to_owned(), use_http)))
}

impl DiscordChannel {
    /// A channel for a bot.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Transport`] for an API URL that is not
    /// `http(s)://host[:port]`.
    pub fn new(config: DiscordConfig) -> Result<Self, ChannelError> {
        let mut builder = Client::builder()
            .token(config.token.clone())
            .timeout(Duration::from_secs(30));
        if let Some((host, use_http)) = proxy(&config.api_url)? {
            builder = builder.proxy(host, use_http);
        }
        let bad_gateway = config
            .gateway_url
            .as_deref()
            .filter(|url| !(url.starts_with("ws://") || url.starts_with("wss://")));
        if let Some(url) = bad_gateway {
            return Err(ChannelError::Transport(format!(
                "bad Discord gateway URL (want ws:// or wss://): {url}"
            )));
        }
        let files = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ChannelError::Transport(e.to_string()))?;
        Ok(Self {
            http: Arc::new(builder.build()),
            files,
            token: config.token,
            gateway_url: config
                .gateway_url
                .map(|u| u.trim_end_matches('/').to_owned()),
            state: Arc::new(Mutex::new(State::default())),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The application's id (for slash commands): from the gateway's
    /// `READY`, else asked of the REST API.
    async fn application(&self) -> Result<Id<ApplicationMarker>, ChannelError> {
        if let Some(id) = self.state().application {
            return Ok(id);
        }
        let app = self
            .http
            .current_user_application()
            .await
            .map_err(channel_error)?
            .model()
            .await
            .map_err(|e| ChannelError::Transport(e.to_string()))?;
        self.state().application = Some(app.id);
        Ok(app.id)
    }

    /// Handles one gateway event; what is for the bridge goes to `inbound`.
    async fn event(
        &self,
        event: Event,
        inbound: &mpsc::Sender<InboundMessage>,
    ) -> Result<(), ChannelError> {
        let message = match event {
            Event::Ready(ready) => {
                info!(bot = %ready.user.name, "connected to Discord");
                let mut state = self.state();
                state.me = Some(ready.user.id);
                state.application = Some(ready.application.id);
                None
            }
            Event::GuildCreate(guild) => {
                if let twilight_model::gateway::payload::incoming::GuildCreate::Available(guild) =
                    &*guild
                {
                    for thread in &guild.threads {
                        self.learn_thread(thread);
                    }
                }
                None
            }
            Event::ThreadCreate(thread) => {
                self.learn_thread(&thread.0);
                None
            }
            Event::ThreadListSync(sync) => {
                for thread in &sync.threads {
                    self.learn_thread(thread);
                }
                None
            }
            Event::ThreadDelete(thread) => {
                self.state().threads.remove(&thread.id);
                None
            }
            Event::MessageCreate(message) => self.message(&message.0).await,
            Event::InteractionCreate(interaction) => self.interaction(&interaction.0).await,
            _ => None,
        };
        match message {
            Some(message) => inbound
                .send(message)
                .await
                .map_err(|_| ChannelError::Closed),
            None => Ok(()),
        }
    }

    fn learn_thread(&self, thread: &DiscordChat) {
        if !thread.kind.is_thread() {
            return;
        }
        let mut state = self.state();
        let owned = state.me.is_some() && thread.owner_id == state.me;
        state.threads.insert(thread.id, owned);
    }

    /// A message: a direct message, a message in a thread the bot owns,
    /// or a mention (which opens a thread in a server channel).
    async fn message(&self, message: &Message) -> Option<InboundMessage> {
        if message.author.bot {
            return None;
        }
        let (me, thread) = {
            let state = self.state();
            (state.me, state.threads.get(&message.channel_id).copied())
        };
        let mentioned = me.is_some_and(|me| message.mentions.iter().any(|m| m.id == me));
        let text = strip_mention(&message.content, me);
        let sender = sender(&message.author);
        let received = chrono::DateTime::from_timestamp_micros(message.timestamp.as_micros())
            .unwrap_or_else(chrono::Utc::now);
        let inbound = |chat: Id<ChannelMarker>| {
            let mut inbound = InboundMessage::new(
                ChatRef::new(DISCORD, chat.to_string()),
                sender.clone(),
                text.clone(),
                message.id.to_string(),
            )
            .with_received_at(received);
            for file in &message.attachments {
                let kind = if file
                    .content_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("image/"))
                {
                    AttachmentKind::Image
                } else {
                    AttachmentKind::Document
                };
                let mut attachment = InboundAttachment::new(file.url.clone(), kind)
                    .with_file_name(file.filename.clone())
                    .with_size(file.size);
                if let Some(media) = &file.content_type {
                    attachment = attachment.with_media_type(media.clone());
                }
                inbound = inbound.with_attachment(attachment);
            }
            inbound
        };
        if message.guild_id.is_none() {
            return Some(inbound(message.channel_id));
        }
        match thread {
            Some(owned) if owned || mentioned => Some(inbound(message.channel_id).in_group()),
            Some(_) => None,
            None if mentioned => {
                let chat = self.open_thread(message, &text).await;
                Some(inbound(chat).in_group())
            }
            None => None,
        }
    }

    /// Opens a thread on a message that mentioned the bot; where that is
    /// refused, the conversation stays in the channel.
    async fn open_thread(&self, message: &Message, text: &str) -> Id<ChannelMarker> {
        let name = thread_name(text);
        let created = self
            .http
            .create_thread_from_message(message.channel_id, message.id, &name)
            .await;
        let thread = match created {
            Ok(response) => response.model().await.ok(),
            Err(e) => {
                warn!(channel = %message.channel_id, error = %e, "could not open a thread; answering in the channel");
                None
            }
        };
        match thread {
            Some(thread) => {
                self.state().threads.insert(thread.id, true);
                thread.id
            }
            None => message.channel_id,
        }
    }

    /// A slash command or a button press: acknowledged to Discord, then
    /// given to the bridge.
    async fn interaction(&self, interaction: &Interaction) -> Option<InboundMessage> {
        let author = interaction.author()?;
        #[allow(deprecated)]
        let chat = interaction
            .channel
            .as_ref()
            .map(|c| c.id)
            .or(interaction.channel_id)?;
        let chat = ChatRef::new(DISCORD, chat.to_string());
        let sender = sender(author);
        let (message, response) = match interaction.data.as_ref()? {
            InteractionData::ApplicationCommand(command) => {
                let mut text = format!("/{}", command.name);
                for option in &command.options {
                    if let CommandOptionValue::String(value) = &option.value {
                        text.push(' ');
                        text.push_str(value);
                    }
                }
                let echo = InteractionResponse {
                    kind: InteractionResponseType::ChannelMessageWithSource,
                    data: Some(InteractionResponseData {
                        content: Some(format!("`{}`", text.replace('`', "'"))),
                        allowed_mentions: Some(AllowedMentions::default()),
                        ..InteractionResponseData::default()
                    }),
                };
                let message = InboundMessage::new(chat, sender, text, interaction.id.to_string());
                (message, echo)
            }
            InteractionData::MessageComponent(component) => {
                let message_id = interaction
                    .message
                    .as_ref()
                    .map(|m| m.id.to_string())
                    .unwrap_or_default();
                let message = InboundMessage::button_press(
                    chat,
                    sender,
                    component.custom_id.clone(),
                    message_id,
                );
                let ack = InteractionResponse {
                    kind: InteractionResponseType::DeferredUpdateMessage,
                    data: None,
                };
                (message, ack)
            }
            _ => return None,
        };
        let acked = self
            .http
            .interaction(interaction.application_id)
            .create_response(interaction.id, &interaction.token, &response)
            .await;
        if let Err(e) = acked {
            debug!(error = %e, "could not acknowledge an interaction");
        }
        Some(if interaction.guild_id.is_some() {
            message.in_group()
        } else {
            message
        })
    }
}

fn sender(user: &twilight_model::user::User) -> SenderRef {
    let name = user
        .global_name
        .clone()
        .unwrap_or_else(|| user.name.clone());
    SenderRef::new(user.id.to_string()).with_display_name(name)
}

/// The text without the bot's mention (`<@id>` or `<@!id>`).
fn strip_mention(content: &str, me: Option<Id<UserMarker>>) -> String {
    let Some(me) = me else {
        return content.trim().to_owned();
    };
    content
        .replace(&format!("<@{me}>"), "")
        .replace(&format!("<@!{me}>"), "")
        .trim()
        .to_owned()
}

/// A thread's name from the message that opened it (Discord allows 100
/// characters).
fn thread_name(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        return "Netherbrain".to_owned();
    }
    let mut name: String = first.chars().take(80).collect();
    if first.chars().count() > 80 {
        name.push('…');
    }
    name
}

fn channel_id(chat: &ChatRef) -> Result<Id<ChannelMarker>, ChannelError> {
    chat.chat_id
        .parse::<u64>()
        .ok()
        .and_then(Id::new_checked)
        .ok_or_else(|| ChannelError::Transport(format!("not a Discord channel: {chat}")))
}

fn message_id(id: &str) -> Result<Id<MessageMarker>, ChannelError> {
    id.parse::<u64>()
        .ok()
        .and_then(Id::new_checked)
        .ok_or_else(|| ChannelError::Transport(format!("not a Discord message id: {id}")))
}

/// twilight's errors as channel errors (429 → `RateLimited`; text over
/// the limit is caught before sending, by [`too_long`]).
fn channel_error(e: twilight_http::Error) -> ChannelError {
    match e.kind() {
        ErrorType::Response { error, status, .. } if status.get() == 429 => {
            let retry_after = match error {
                ApiError::Ratelimited(limit) if limit.retry_after.is_finite() => {
                    Some(Duration::from_secs_f64(limit.retry_after.max(0.0)))
                }
                _ => None,
            };
            ChannelError::RateLimited { retry_after }
        }
        _ => ChannelError::Transport(e.to_string()),
    }
}

fn too_long(text: &str) -> Option<ChannelError> {
    let len = text.chars().count();
    (len > MAX_MESSAGE_LEN).then_some(ChannelError::TooLong {
        len,
        max: MAX_MESSAGE_LEN,
    })
}

/// Approve / Deny as one row of buttons (at most 5 in a row).
fn button_row(buttons: &[ChatButton]) -> Component {
    let components = buttons
        .iter()
        .take(5)
        .map(|b| {
            let style = if b.data.starts_with("deny") {
                ButtonStyle::Danger
            } else {
                ButtonStyle::Primary
            };
            Component::Button(Button {
                custom_id: Some(b.data.chars().take(100).collect()),
                disabled: false,
                emoji: None,
                label: Some(b.label.chars().take(80).collect()),
                style,
                url: None,
                sku_id: None,
            })
        })
        .collect();
    Component::ActionRow(ActionRow { components })
}

/// The bridge's commands as slash commands; `/preset` takes a name.
fn slash_commands(commands: &[BotCommand], application: Id<ApplicationMarker>) -> Vec<Command> {
    commands
        .iter()
        .map(|c| {
            let options = if c.name == "preset" {
                vec![CommandOption {
                    autocomplete: None,
                    channel_types: None,
                    choices: None,
                    description: "The preset to switch to (leave out to list them)".to_owned(),
                    description_localizations: None,
                    kind: CommandOptionType::String,
                    max_length: None,
                    max_value: None,
                    min_length: None,
                    min_value: None,
                    name: "name".to_owned(),
                    name_localizations: None,
                    options: None,
                    required: Some(false),
                }]
            } else {
                Vec::new()
            };
            #[allow(deprecated)]
            Command {
                application_id: Some(application),
                contexts: None,
                default_member_permissions: None,
                dm_permission: None,
                description: c.description.chars().take(100).collect(),
                description_localizations: None,
                guild_id: None,
                id: None,
                integration_types: None,
                kind: CommandType::ChatInput,
                name: c.name.clone(),
                name_localizations: None,
                nsfw: None,
                options,
                version: Id::new(1),
            }
        })
        .collect()
}

#[async_trait]
impl Channel for DiscordChannel {
    fn id(&self) -> &str {
        DISCORD
    }

    fn capabilities(&self) -> ChannelCapabilities {
        ChannelCapabilities::new()
            .with_edit_in_place(true)
            .with_max_message_len(MAX_MESSAGE_LEN)
            .with_markup(MarkupDialect::DiscordMarkdown)
    }

    async fn run(
        &self,
        inbound: mpsc::Sender<InboundMessage>,
        cancel: CancellationToken,
    ) -> Result<(), ChannelError> {
        let mut config = ConfigBuilder::new(self.token.clone(), intents());
        if let Some(url) = &self.gateway_url {
            config = config.proxy_url(url.clone());
        }
        let mut shard = Shard::with_config(ShardId::ONE, config.build());
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => {
                    shard.close(CloseFrame::NORMAL);
                    return Ok(());
                }
                next = shard.next_event(EventTypeFlags::all()) => next,
            };
            match next {
                Some(Ok(event)) => self.event(event, &inbound).await?,
                // The shard reconnects by itself; this is one bad frame.
                Some(Err(e)) => warn!(error = %e, "could not read a Discord gateway event"),
                None => {
                    return Err(ChannelError::Transport(
                        "the Discord gateway closed the connection for good (bad token, or the message-content intent not enabled?)"
                            .to_owned(),
                    ));
                }
            }
        }
    }

    async fn send(&self, chat: &ChatRef, text: &str) -> Result<SentMessage, ChannelError> {
        self.send_buttons(chat, text, &[]).await
    }

    async fn edit(&self, message: &SentMessage, text: &str) -> Result<(), ChannelError> {
        if let Some(e) = too_long(text) {
            return Err(e);
        }
        let channel = channel_id(&message.chat)?;
        let id = message_id(&message.message_id)?;
        let none = AllowedMentions::default();
        self.http
            .update_message(channel, id)
            .content(Some(text))
            .allowed_mentions(Some(&none))
            .await
            .map(|_| ())
            .map_err(channel_error)
    }

    async fn send_buttons(
        &self,
        chat: &ChatRef,
        text: &str,
        buttons: &[ChatButton],
    ) -> Result<SentMessage, ChannelError> {
        if let Some(e) = too_long(text) {
            return Err(e);
        }
        let channel = channel_id(chat)?;
        let none = AllowedMentions::default();
        let rows = [button_row(buttons)];
        let mut request = self
            .http
            .create_message(channel)
            .content(text)
            .allowed_mentions(Some(&none));
        if !buttons.is_empty() {
            request = request.components(&rows);
        }
        let sent = request
            .await
            .map_err(channel_error)?
            .model()
            .await
            .map_err(|e| ChannelError::Transport(e.to_string()))?;
        Ok(SentMessage::new(chat.clone(), sent.id.to_string()))
    }

    async fn download(
        &self,
        attachment: &InboundAttachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        let transport = |e: reqwest::Error| ChannelError::Transport(e.without_url().to_string());
        let mut response = self
            .files
            .get(&attachment.id)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(transport)?;
        if let Some(size) = response.content_length().filter(|size| *size > max_bytes) {
            return Err(ChannelError::TooLarge {
                size,
                max: max_bytes,
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            let read = u64::try_from(bytes.len() + chunk.len()).unwrap_or(u64::MAX);
            if read > max_bytes {
                return Err(ChannelError::TooLarge {
                    size: read,
                    max: max_bytes,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    async fn react(
        &self,
        chat: &ChatRef,
        message_id_text: &str,
        emoji: &str,
    ) -> Result<(), ChannelError> {
        let channel = channel_id(chat)?;
        let id = message_id(message_id_text)?;
        let emoji = RequestReactionType::Unicode { name: emoji };
        self.http
            .create_reaction(channel, id, &emoji)
            .await
            .map(|_| ())
            .map_err(channel_error)
    }

    async fn typing(&self, chat: &ChatRef) -> Result<(), ChannelError> {
        self.http
            .create_typing_trigger(channel_id(chat)?)
            .await
            .map(|_| ())
            .map_err(channel_error)
    }

    async fn set_commands(&self, commands: &[BotCommand]) -> Result<(), ChannelError> {
        let application = self.application().await?;
        let commands = slash_commands(commands, application);
        self.http
            .interaction(application)
            .set_global_commands(&commands)
            .await
            .map(|_| ())
            .map_err(channel_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls() {
        assert_eq!(proxy("https://discord.com/").unwrap(), None);
        assert_eq!(
            proxy("http://127.0.0.1:9").unwrap(),
            Some(("127.0.0.1:9".to_owned(), true))
        );
        assert_eq!(
            proxy("https://proxy.lan").unwrap(),
            Some(("proxy.lan".to_owned(), false))
        );
        assert!(proxy("discord.com").is_err());
        assert!(proxy("http://").is_err());
    }

    #[test]
    fn mentions_and_thread_names() {
        let me = Id::new(42);
        assert_eq!(strip_mention("<@42> hello <@!42>", Some(me)), "hello");
        assert_eq!(thread_name(""), "Netherbrain");
        assert_eq!(thread_name("why\nmore").as_str(), "why");
        assert_eq!(thread_name(&"é".repeat(90)).chars().count(), 81);
    }
}
