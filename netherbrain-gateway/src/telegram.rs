//! [`TelegramChannel`]: Telegram through teloxide (rustls), long polling
//! `getUpdates` by default, or a webhook ([`WebhookConfig`]: Telegram POSTs
//! updates to the gateway's own listener); the Bot API base URL is
//! configurable (a self-hosted Bot API server, or a fake in tests). Polling
//! starts with `deleteWebhook`, since Telegram refuses `getUpdates` while a
//! webhook is set.
//!
//! Chats are `"<chat id>"`, or `"<chat id>:<topic id>"` for a forum topic
//! (one conversation per topic). Text is sent as Telegram HTML; when
//! Telegram refuses the entities the same text goes again as plain text.
//! Drafts use `sendMessageDraft` as a raw request (teloxide has no typed
//! method for it); a refusal makes the bridge edit a placeholder instead.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use netherbrain_core::channel::{
    AttachmentKind, BotCommand, CancellationToken, Channel, ChannelCapabilities, ChannelError,
    ChatButton, ChatRef, InboundAttachment, InboundMessage, MarkupDialect, SenderRef, SentMessage,
};
use std::future::IntoFuture;
use teloxide::ApiError as TgApiError;
use teloxide::RequestError;
use teloxide::net::Download;
use teloxide::payloads::{
    EditMessageTextSetters, GetUpdatesSetters, SendChatActionSetters, SendMessageSetters,
    SetMessageReactionSetters,
};
use teloxide::prelude::{Bot, Requester};
use teloxide::types::{
    ChatAction, ChatId, FileId, InlineKeyboardButton, InlineKeyboardMarkup, MessageId, ParseMode,
    ReactionType, ThreadId, Update, UpdateKind,
};

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::markup::html_to_plain;

mod webhook;

pub use webhook::{
    DEFAULT_MAX_BODY_BYTES, MAX_SECRET_LEN, MIN_SECRET_LEN, SECRET_HEADER, WebhookConfig,
    WebhookConfigError,
};

/// The channel id Telegram chats carry.
pub const TELEGRAM: &str = "telegram";

/// The public Bot API.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org/";

/// How the Telegram channel connects.
#[derive(Clone)]
#[non_exhaustive]
pub struct TelegramConfig {
    /// The bot token from @BotFather (never logged).
    pub token: String,
    /// The Bot API base URL. Default [`DEFAULT_API_URL`].
    pub api_url: String,
    /// Long-polling timeout of `getUpdates`. Default 30 s.
    pub poll_timeout: Duration,
    /// Webhook mode instead of long polling. Default none (polling).
    pub webhook: Option<WebhookConfig>,
}

impl std::fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("poll_timeout", &self.poll_timeout)
            .field("webhook", &self.webhook)
            .finish()
    }
}

impl TelegramConfig {
    /// The public Bot API with `token`.
    #[must_use]
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            api_url: DEFAULT_API_URL.to_owned(),
            poll_timeout: Duration::from_secs(30),
            webhook: None,
        }
    }

    /// Sets the Bot API base URL.
    #[must_use]
    pub fn with_api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = url.into();
        self
    }

    /// Sets the long-polling timeout.
    #[must_use]
    pub fn with_poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Receives updates through a webhook instead of long polling.
    #[must_use]
    pub fn with_webhook(mut self, webhook: WebhookConfig) -> Self {
        self.webhook = Some(webhook);
        self
    }
}

/// Telegram as a [`Channel`].
#[derive(Clone)]
pub struct TelegramChannel {
    bot: Bot,
    api_url: reqwest::Url,
    token: String,
    poll_timeout: Duration,
    webhook: Option<WebhookConfig>,
}

impl std::fmt::Debug for TelegramChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramChannel")
            .field("api_url", &self.api_url.as_str())
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

impl TelegramChannel {
    /// A channel for a bot.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Transport`] for an unparsable API URL.
    pub fn new(config: TelegramConfig) -> Result<Self, ChannelError> {
        let mut url = config.api_url.clone();
        if !url.ends_with('/') {
            url.push('/');
        }
        let api_url = reqwest::Url::parse(&url)
            .map_err(|e| ChannelError::Transport(format!("bad Bot API URL: {e}")))?;
        let bot = Bot::new(config.token.clone()).set_api_url(api_url.clone());
        Ok(Self {
            bot,
            api_url,
            token: config.token,
            poll_timeout: config.poll_timeout,
            webhook: config.webhook,
        })
    }

    /// One update, polled or posted to the webhook, into the bridge: a
    /// button press is acknowledged (stops its spinner), a message or press
    /// is handed on, anything else is ignored.
    async fn deliver(
        &self,
        update: Update,
        inbound: &mpsc::Sender<InboundMessage>,
    ) -> Result<(), ChannelError> {
        if let UpdateKind::CallbackQuery(query) = &update.kind {
            // Stops the button's spinner; the bridge answers in the chat.
            if let Err(e) = self.bot.answer_callback_query(query.id.clone()).await {
                debug!(error = %e, "could not answer a callback query");
            }
        }
        if let Some(message) = Self::inbound(update) {
            inbound
                .send(message)
                .await
                .map_err(|_| ChannelError::Closed)?;
        }
        Ok(())
    }

    /// Long polling: `deleteWebhook` until it succeeds, then `getUpdates`.
    async fn run_polling(
        &self,
        inbound: mpsc::Sender<InboundMessage>,
        cancel: CancellationToken,
    ) -> Result<(), ChannelError> {
        let mut offset: i32 = 0;
        let mut wait = Duration::from_millis(500);
        let timeout = u32::try_from(self.poll_timeout.as_secs()).unwrap_or(30);
        let mut webhook_removed = false;
        loop {
            let result = if webhook_removed {
                let request = self.bot.get_updates().offset(offset).timeout(timeout);
                tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    updates = request.into_future() => updates,
                }
            } else {
                // Telegram refuses `getUpdates` while a webhook is set.
                let request = self.bot.delete_webhook();
                tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    removed = request.into_future() => removed.map(|_| {
                        webhook_removed = true;
                        Vec::new()
                    }),
                }
            };
            match result {
                Ok(updates) => {
                    wait = Duration::from_millis(500);
                    for update in updates {
                        offset = i32::try_from(update.id.0)
                            .unwrap_or(i32::MAX)
                            .saturating_add(1);
                        self.deliver(update, &inbound).await?;
                    }
                }
                Err(e) => {
                    let pause = match &e {
                        RequestError::RetryAfter(s) => s.duration(),
                        _ => wait,
                    };
                    let call = if webhook_removed {
                        "getUpdates"
                    } else {
                        "deleteWebhook"
                    };
                    warn!(error = %e, retry_in = ?pause, "{call} failed");
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        () = tokio::time::sleep(pause) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn inbound(update: Update) -> Option<InboundMessage> {
        match update.kind {
            UpdateKind::Message(message) => {
                let from = message.from.as_ref()?;
                let text = message
                    .text()
                    .or_else(|| message.caption())
                    .unwrap_or_default()
                    .to_owned();
                let chat_id = chat_key(
                    message.chat.id,
                    message
                        .is_topic_message
                        .then_some(message.thread_id)
                        .flatten(),
                );
                let mut sender = SenderRef::new(from.id.0.to_string());
                sender = sender.with_display_name(from.full_name());
                let mut inbound = InboundMessage::new(
                    ChatRef::new(TELEGRAM, chat_id),
                    sender,
                    text,
                    message.id.0.to_string(),
                )
                .with_received_at(message.date);
                if !message.chat.is_private() {
                    inbound = inbound.in_group();
                }
                // The largest size of a photo; a document as it was sent.
                if let Some(photo) = message.photo().and_then(|sizes| {
                    sizes
                        .iter()
                        .max_by_key(|p| u64::from(p.width) * u64::from(p.height))
                }) {
                    inbound = inbound.with_attachment(
                        InboundAttachment::new(photo.file.id.0.clone(), AttachmentKind::Image)
                            .with_file_name("photo.jpg")
                            .with_media_type("image/jpeg")
                            .with_size(u64::from(photo.file.size)),
                    );
                }
                if let Some(document) = message.document() {
                    let media = document.mime_type.as_ref().map(ToString::to_string);
                    let kind = if media.as_deref().is_some_and(|m| m.starts_with("image/")) {
                        AttachmentKind::Image
                    } else {
                        AttachmentKind::Document
                    };
                    let mut attachment = InboundAttachment::new(document.file.id.0.clone(), kind)
                        .with_size(u64::from(document.file.size));
                    if let Some(name) = &document.file_name {
                        attachment = attachment.with_file_name(name.clone());
                    }
                    if let Some(media) = media {
                        attachment = attachment.with_media_type(media);
                    }
                    inbound = inbound.with_attachment(attachment);
                }
                Some(inbound)
            }
            UpdateKind::CallbackQuery(query) => {
                let message = query.message.as_ref()?;
                let thread = message
                    .regular_message()
                    .filter(|m| m.is_topic_message)
                    .and_then(|m| m.thread_id);
                let chat = message.chat();
                let mut press = InboundMessage::button_press(
                    ChatRef::new(TELEGRAM, chat_key(chat.id, thread)),
                    SenderRef::new(query.from.id.0.to_string())
                        .with_display_name(query.from.full_name()),
                    query.data.clone().unwrap_or_default(),
                    message.id().0.to_string(),
                );
                if !chat.is_private() {
                    press = press.in_group();
                }
                Some(press)
            }
            _ => None,
        }
    }

    async fn send_html(
        &self,
        chat: &ChatRef,
        text: &str,
        markup: Option<InlineKeyboardMarkup>,
    ) -> Result<SentMessage, ChannelError> {
        let (chat_id, thread) = parse_chat(chat)?;
        let mut request = self
            .bot
            .send_message(chat_id, text.to_owned())
            .parse_mode(ParseMode::Html);
        if let Some(thread) = thread {
            request = request.message_thread_id(thread);
        }
        if let Some(markup) = markup.clone() {
            request = request.reply_markup(markup);
        }
        let sent = match request.await {
            Err(RequestError::Api(TgApiError::CantParseEntities(e))) => {
                debug!(error = %e, "Telegram refused the HTML; sending plain text");
                let mut plain = self.bot.send_message(chat_id, html_to_plain(text));
                if let Some(thread) = thread {
                    plain = plain.message_thread_id(thread);
                }
                if let Some(markup) = markup {
                    plain = plain.reply_markup(markup);
                }
                plain.await
            }
            other => other,
        }
        .map_err(channel_error)?;
        Ok(SentMessage::new(chat.clone(), sent.id.0.to_string()))
    }
}

/// `"<chat>"` or `"<chat>:<topic>"`.
fn chat_key(chat: ChatId, thread: Option<ThreadId>) -> String {
    match thread {
        Some(thread) => format!("{}:{}", chat.0, thread.0.0),
        None => chat.0.to_string(),
    }
}

fn parse_chat(chat: &ChatRef) -> Result<(ChatId, Option<ThreadId>), ChannelError> {
    let bad = || ChannelError::Transport(format!("not a Telegram chat: {chat}"));
    let (id, thread) = match chat.chat_id.split_once(':') {
        Some((id, thread)) => (id, Some(thread)),
        None => (chat.chat_id.as_str(), None),
    };
    let id: i64 = id.parse().map_err(|_| bad())?;
    let thread = match thread {
        Some(t) => Some(ThreadId(MessageId(t.parse().map_err(|_| bad())?))),
        None => None,
    };
    Ok((ChatId(id), thread))
}

fn message_id(id: &str) -> Result<MessageId, ChannelError> {
    id.parse()
        .map(MessageId)
        .map_err(|_| ChannelError::Transport(format!("not a Telegram message id: {id}")))
}

/// teloxide's errors as channel errors (429 → `RateLimited`).
fn channel_error(e: RequestError) -> ChannelError {
    match e {
        RequestError::RetryAfter(s) => ChannelError::RateLimited {
            retry_after: Some(s.duration()),
        },
        RequestError::Api(TgApiError::MessageIsTooLong | TgApiError::EditedMessageIsTooLong) => {
            ChannelError::TooLong { len: 0, max: 4096 }
        }
        other => ChannelError::Transport(other.to_string()),
    }
}

#[async_trait]
impl Channel for TelegramChannel {
    fn id(&self) -> &str {
        TELEGRAM
    }

    fn capabilities(&self) -> ChannelCapabilities {
        ChannelCapabilities::new()
            .with_edit_in_place(true)
            .with_max_message_len(4096)
            .with_markup(MarkupDialect::TelegramHtml)
            .with_drafts(true)
    }

    async fn run(
        &self,
        inbound: mpsc::Sender<InboundMessage>,
        cancel: CancellationToken,
    ) -> Result<(), ChannelError> {
        match &self.webhook {
            Some(hook) => self.run_webhook(hook, inbound, cancel).await,
            None => self.run_polling(inbound, cancel).await,
        }
    }

    async fn send(&self, chat: &ChatRef, text: &str) -> Result<SentMessage, ChannelError> {
        self.send_html(chat, text, None).await
    }

    async fn edit(&self, message: &SentMessage, text: &str) -> Result<(), ChannelError> {
        let (chat_id, _) = parse_chat(&message.chat)?;
        let id = message_id(&message.message_id)?;
        let result = match self
            .bot
            .edit_message_text(chat_id, id, text.to_owned())
            .parse_mode(ParseMode::Html)
            .await
        {
            Err(RequestError::Api(TgApiError::CantParseEntities(_))) => {
                self.bot
                    .edit_message_text(chat_id, id, html_to_plain(text))
                    .await
            }
            other => other,
        };
        match result {
            Ok(_) | Err(RequestError::Api(TgApiError::MessageNotModified)) => Ok(()),
            Err(e) => Err(channel_error(e)),
        }
    }

    async fn send_buttons(
        &self,
        chat: &ChatRef,
        text: &str,
        buttons: &[ChatButton],
    ) -> Result<SentMessage, ChannelError> {
        let row: Vec<InlineKeyboardButton> = buttons
            .iter()
            .map(|b| InlineKeyboardButton::callback(b.label.clone(), b.data.clone()))
            .collect();
        self.send_html(chat, text, Some(InlineKeyboardMarkup::new([row])))
            .await
    }

    async fn send_draft(
        &self,
        chat: &ChatRef,
        draft_id: u64,
        text: &str,
    ) -> Result<(), ChannelError> {
        let (chat_id, thread) = parse_chat(chat)?;
        // Not `Url::join`: `bot123:abc` would read as a URL scheme.
        let url = reqwest::Url::parse(&format!(
            "{}bot{}/sendMessageDraft",
            self.api_url, self.token
        ))
        .map_err(|_| ChannelError::Transport("bad Bot API URL".into()))?;
        let mut body = serde_json::json!({
            "chat_id": chat_id.0,
            "draft_id": draft_id,
            "text": text,
            "parse_mode": "HTML",
        });
        if let Some(thread) = thread {
            body["message_thread_id"] = serde_json::json!(thread.0.0);
        }
        let response = self
            .bot
            .client()
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| ChannelError::Transport(e.without_url().to_string()))?;
        let reply: serde_json::Value = response
            .json()
            .await
            .map_err(|e| ChannelError::Transport(e.without_url().to_string()))?;
        if reply["ok"].as_bool() == Some(true) {
            return Ok(());
        }
        match reply["error_code"].as_u64() {
            Some(429) => Err(ChannelError::RateLimited {
                retry_after: reply["parameters"]["retry_after"]
                    .as_u64()
                    .map(Duration::from_secs),
            }),
            // Not offered here (an older Bot API server, a group chat).
            _ => Err(ChannelError::Unsupported),
        }
    }

    async fn download(
        &self,
        attachment: &InboundAttachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        let file = self
            .bot
            .get_file(FileId(attachment.id.clone()))
            .await
            .map_err(channel_error)?;
        let size = u64::from(file.meta.size);
        if size > max_bytes {
            return Err(ChannelError::TooLarge {
                size,
                max: max_bytes,
            });
        }
        let mut stream = self.bot.download_file_stream(&file.path);
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            // Without the URL: it holds the token.
            let chunk = chunk.map_err(|e| ChannelError::Transport(e.without_url().to_string()))?;
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
        let (chat_id, _) = parse_chat(chat)?;
        self.bot
            .set_message_reaction(chat_id, message_id(message_id_text)?)
            .reaction(vec![ReactionType::Emoji {
                emoji: emoji.to_owned(),
            }])
            .await
            .map(|_| ())
            .map_err(channel_error)
    }

    async fn typing(&self, chat: &ChatRef) -> Result<(), ChannelError> {
        let (chat_id, thread) = parse_chat(chat)?;
        let mut request = self.bot.send_chat_action(chat_id, ChatAction::Typing);
        if let Some(thread) = thread {
            request = request.message_thread_id(thread);
        }
        request.await.map(|_| ()).map_err(channel_error)
    }

    async fn set_commands(&self, commands: &[BotCommand]) -> Result<(), ChannelError> {
        let commands: Vec<teloxide::types::BotCommand> = commands
            .iter()
            .map(|c| teloxide::types::BotCommand::new(c.name.clone(), c.description.clone()))
            .collect();
        self.bot
            .set_my_commands(commands)
            .await
            .map(|_| ())
            .map_err(channel_error)
    }
}
