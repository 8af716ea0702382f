//! [`Channel`]: a chat platform (Telegram, Discord, …) as a gateway sees it.
//!
//! The trait is deliberately small: identity, [capabilities](ChannelCapabilities),
//! a receive loop feeding [`InboundMessage`]s, and send/edit. Throttling,
//! splitting long replies and rendering markup live in the gateway bridge,
//! so a custom bot implements only the platform calls.
//! [`MemoryChannel`] is an in-memory implementation for tests.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netherbrain_core::channel::ChannelError> {
//! use std::sync::Arc;
//! use netherbrain_core::channel::{Channel, MemoryChannel};
//! use tokio_util::sync::CancellationToken;
//!
//! let test_channel = MemoryChannel::new("test");
//! let channel: Arc<dyn Channel> = Arc::new(test_channel.clone());
//!
//! // The bridge runs the receive loop and reads inbound messages…
//! let (tx, mut rx) = tokio::sync::mpsc::channel(16);
//! let cancel = CancellationToken::new();
//! let receiver = tokio::spawn({
//!     let channel = Arc::clone(&channel);
//!     let cancel = cancel.clone();
//!     async move { channel.run(tx, cancel).await }
//! });
//! test_channel.inject_text("chat-1", "user-1", "hello");
//! let inbound = rx.recv().await.unwrap();
//!
//! // …and answers in the same chat.
//! channel.send(&inbound.chat, "hi there").await?;
//! assert_eq!(test_channel.sent()[0].text, "hi there");
//!
//! cancel.cancel();
//! receiver.await.unwrap()?;
//! # Ok(())
//! # }
//! ```

mod memory;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use memory::{MemoryChannel, RecordedMessage, RecordedReaction};
/// Re-exported: [`Channel::run`] takes one.
pub use tokio_util::sync::CancellationToken;

/// A chat on a platform: a direct message, a group, a channel thread.
///
/// ```
/// use netherbrain_core::channel::ChatRef;
/// let chat = ChatRef::new("telegram", "-100123");
/// assert_eq!(chat.channel, "telegram");
/// assert_eq!(chat.to_string(), "telegram:-100123");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRef {
    /// The [`Channel::id`] of the platform.
    pub channel: String,
    /// The platform's id of the chat.
    pub chat_id: String,
}

impl ChatRef {
    /// A chat on a channel.
    ///
    /// ```
    /// let chat = netherbrain_core::channel::ChatRef::new("discord", "998877");
    /// assert_eq!(chat.chat_id, "998877");
    /// ```
    #[must_use]
    pub fn new(channel: impl Into<String>, chat_id: impl Into<String>) -> Self {
        Self {
            channel: channel.into(),
            chat_id: chat_id.into(),
        }
    }
}

impl std::fmt::Display for ChatRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.channel, self.chat_id)
    }
}

/// Who sent an inbound message.
///
/// ```
/// use netherbrain_core::channel::SenderRef;
/// let sender = SenderRef::new("42").with_display_name("Ada");
/// assert_eq!(sender.display_name.as_deref(), Some("Ada"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SenderRef {
    /// The platform's id of the user (what allow-lists match).
    pub id: String,
    /// Name to show, if the platform gives one.
    pub display_name: Option<String>,
}

impl SenderRef {
    /// A sender without display name.
    ///
    /// ```
    /// let sender = netherbrain_core::channel::SenderRef::new("42");
    /// assert_eq!(sender.display_name, None);
    /// ```
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            display_name: None,
        }
    }

    /// Sets the display name.
    ///
    /// ```
    /// let sender = netherbrain_core::channel::SenderRef::new("42").with_display_name("Ada");
    /// assert_eq!(sender.id, "42");
    /// ```
    #[must_use]
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
}

/// What an attachment is, as far as the bridge cares.
///
/// ```
/// use netherbrain_core::channel::AttachmentKind;
/// assert_ne!(AttachmentKind::Image, AttachmentKind::Document);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttachmentKind {
    /// A picture (given to vision models inline).
    Image,
    /// Any other file.
    Document,
}

/// A file sent with an inbound message. The channel fetches its bytes
/// with [`Channel::download`] when the bridge asks (after access control
/// and the size check).
///
/// ```
/// use netherbrain_core::channel::{AttachmentKind, InboundAttachment};
/// let photo = InboundAttachment::new("file-1", AttachmentKind::Image)
///     .with_file_name("photo.jpg")
///     .with_media_type("image/jpeg")
///     .with_size(2048);
/// assert_eq!(photo.size, Some(2048));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InboundAttachment {
    /// The platform's handle of the file (a Telegram file id, a Discord
    /// attachment URL).
    pub id: String,
    /// Image or other file.
    pub kind: AttachmentKind,
    /// The file's name, if the platform gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Its MIME type, if the platform gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Its size in bytes, if the platform tells before the download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl InboundAttachment {
    /// An attachment with only its handle and kind known.
    ///
    /// ```
    /// use netherbrain_core::channel::{AttachmentKind, InboundAttachment};
    /// let doc = InboundAttachment::new("f", AttachmentKind::Document);
    /// assert_eq!(doc.file_name, None);
    /// ```
    #[must_use]
    pub fn new(id: impl Into<String>, kind: AttachmentKind) -> Self {
        Self {
            id: id.into(),
            kind,
            file_name: None,
            media_type: None,
            size: None,
        }
    }

    /// Sets the file name.
    ///
    /// ```
    /// use netherbrain_core::channel::{AttachmentKind, InboundAttachment};
    /// let doc = InboundAttachment::new("f", AttachmentKind::Document).with_file_name("notes.txt");
    /// assert_eq!(doc.file_name.as_deref(), Some("notes.txt"));
    /// ```
    #[must_use]
    pub fn with_file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = Some(name.into());
        self
    }

    /// Sets the MIME type.
    ///
    /// ```
    /// use netherbrain_core::channel::{AttachmentKind, InboundAttachment};
    /// let doc = InboundAttachment::new("f", AttachmentKind::Document).with_media_type("text/plain");
    /// assert_eq!(doc.media_type.as_deref(), Some("text/plain"));
    /// ```
    #[must_use]
    pub fn with_media_type(mut self, media_type: impl Into<String>) -> Self {
        self.media_type = Some(media_type.into());
        self
    }

    /// Sets the size in bytes.
    ///
    /// ```
    /// use netherbrain_core::channel::{AttachmentKind, InboundAttachment};
    /// let doc = InboundAttachment::new("f", AttachmentKind::Document).with_size(10);
    /// assert_eq!(doc.size, Some(10));
    /// ```
    #[must_use]
    pub const fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }
}

/// A text message received from a platform.
///
/// ```
/// use netherbrain_core::channel::{ChatRef, InboundMessage, SenderRef};
/// let msg = InboundMessage::new(ChatRef::new("telegram", "1"), SenderRef::new("7"), "hi", "501");
/// assert_eq!(msg.text, "hi");
/// assert_eq!(msg.message_id, "501");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InboundMessage {
    /// Where it was sent.
    pub chat: ChatRef,
    /// Who sent it.
    pub sender: SenderRef,
    /// Its text (markup already removed by the channel).
    pub text: String,
    /// The platform's id of the message.
    pub message_id: String,
    /// When the channel received it.
    pub received_at: DateTime<Utc>,
    /// A one-to-one chat with the bot (not a group or a server channel).
    #[serde(default = "default_true")]
    pub private: bool,
    /// The [`ChatButton::data`] of a pressed button (then `text` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<String>,
    /// Files sent with it (photos, documents); `text` is their caption.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<InboundAttachment>,
}

fn default_true() -> bool {
    true
}

impl InboundMessage {
    /// A message received now.
    ///
    /// ```
    /// use netherbrain_core::channel::{ChatRef, InboundMessage, SenderRef};
    /// let msg = InboundMessage::new(ChatRef::new("c", "1"), SenderRef::new("u"), "text", "m1");
    /// assert!(msg.received_at <= chrono::Utc::now());
    /// ```
    #[must_use]
    pub fn new(
        chat: ChatRef,
        sender: SenderRef,
        text: impl Into<String>,
        message_id: impl Into<String>,
    ) -> Self {
        Self {
            chat,
            sender,
            text: text.into(),
            message_id: message_id.into(),
            received_at: Utc::now(),
            private: true,
            button: None,
            attachments: Vec::new(),
        }
    }

    /// Adds an attachment.
    ///
    /// ```
    /// use netherbrain_core::channel::{AttachmentKind, ChatRef, InboundAttachment, InboundMessage, SenderRef};
    /// let msg = InboundMessage::new(ChatRef::new("c", "1"), SenderRef::new("u"), "look", "m")
    ///     .with_attachment(InboundAttachment::new("f", AttachmentKind::Image));
    /// assert_eq!(msg.attachments.len(), 1);
    /// ```
    #[must_use]
    pub fn with_attachment(mut self, attachment: InboundAttachment) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Marks the message as sent in a group (or server channel) chat.
    ///
    /// ```
    /// use netherbrain_core::channel::{ChatRef, InboundMessage, SenderRef};
    /// let msg = InboundMessage::new(ChatRef::new("c", "g"), SenderRef::new("u"), "hi", "m")
    ///     .in_group();
    /// assert!(!msg.private);
    /// ```
    #[must_use]
    pub fn in_group(mut self) -> Self {
        self.private = false;
        self
    }

    /// A button press: `data` is the pressed [`ChatButton::data`];
    /// `message_id` is the message that carried the button.
    ///
    /// ```
    /// use netherbrain_core::channel::{ChatRef, InboundMessage, SenderRef};
    /// let press = InboundMessage::button_press(ChatRef::new("c", "1"), SenderRef::new("u"), "approve:7", "12");
    /// assert_eq!(press.button.as_deref(), Some("approve:7"));
    /// assert!(press.text.is_empty());
    /// ```
    #[must_use]
    pub fn button_press(
        chat: ChatRef,
        sender: SenderRef,
        data: impl Into<String>,
        message_id: impl Into<String>,
    ) -> Self {
        let mut message = Self::new(chat, sender, "", message_id);
        message.button = Some(data.into());
        message
    }

    /// Sets when it was received (e.g. the platform's timestamp).
    ///
    /// ```
    /// use netherbrain_core::channel::{ChatRef, InboundMessage, SenderRef};
    /// let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    /// let msg = InboundMessage::new(ChatRef::new("c", "1"), SenderRef::new("u"), "t", "m")
    ///     .with_received_at(at);
    /// assert_eq!(msg.received_at, at);
    /// ```
    #[must_use]
    pub fn with_received_at(mut self, at: DateTime<Utc>) -> Self {
        self.received_at = at;
        self
    }
}

/// A message the channel sent, as needed to edit it later.
///
/// ```
/// use netherbrain_core::channel::{ChatRef, SentMessage};
/// let sent = SentMessage::new(ChatRef::new("telegram", "1"), "77");
/// assert_eq!(sent.message_id, "77");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SentMessage {
    /// The chat it was sent to.
    pub chat: ChatRef,
    /// The platform's id of the message.
    pub message_id: String,
}

impl SentMessage {
    /// A sent message.
    ///
    /// ```
    /// use netherbrain_core::channel::{ChatRef, SentMessage};
    /// let sent = SentMessage::new(ChatRef::new("discord", "5"), "1234");
    /// assert_eq!(sent.chat.chat_id, "5");
    /// ```
    #[must_use]
    pub fn new(chat: ChatRef, message_id: impl Into<String>) -> Self {
        Self {
            chat,
            message_id: message_id.into(),
        }
    }
}

/// A button under a message (Telegram inline keyboard, Discord component);
/// pressing it arrives as an [`InboundMessage`] with
/// [`button`](InboundMessage::button) set to `data`.
///
/// ```
/// use netherbrain_core::channel::ChatButton;
/// let b = ChatButton::new("Approve", "approve:call_1");
/// assert_eq!(b.label, "Approve");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatButton {
    /// What the button shows.
    pub label: String,
    /// What a press delivers (at most 64 bytes on Telegram).
    pub data: String,
}

impl ChatButton {
    /// A button.
    ///
    /// ```
    /// let b = netherbrain_core::channel::ChatButton::new("Deny", "deny:1");
    /// assert_eq!(b.data, "deny:1");
    /// ```
    #[must_use]
    pub fn new(label: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            data: data.into(),
        }
    }
}

/// A command the bot offers (`/new`), registered with the platform.
///
/// ```
/// use netherbrain_core::channel::BotCommand;
/// let c = BotCommand::new("new", "Start a new conversation");
/// assert_eq!(c.name, "new");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BotCommand {
    /// The name, without the slash.
    pub name: String,
    /// What it does.
    pub description: String,
}

impl BotCommand {
    /// A command.
    ///
    /// ```
    /// let c = netherbrain_core::channel::BotCommand::new("stop", "Stop the run");
    /// assert_eq!(c.description, "Stop the run");
    /// ```
    #[must_use]
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
        }
    }
}

/// The markup a platform renders in message text.
///
/// ```
/// use netherbrain_core::channel::MarkupDialect;
/// assert_eq!(MarkupDialect::default(), MarkupDialect::Plain);
/// assert_eq!(MarkupDialect::TelegramHtml.as_str(), "telegram_html");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MarkupDialect {
    /// No markup: text is shown as is.
    #[default]
    Plain,
    /// CommonMark.
    Markdown,
    /// Telegram's HTML subset (`<b>`, `<i>`, `<code>`, `<pre>`, `<a>`, …).
    TelegramHtml,
    /// Telegram's MarkdownV2 (with its escaping rules).
    TelegramMarkdownV2,
    /// Discord's Markdown flavour.
    DiscordMarkdown,
}

impl MarkupDialect {
    /// The snake_case name.
    ///
    /// ```
    /// assert_eq!(netherbrain_core::channel::MarkupDialect::DiscordMarkdown.as_str(), "discord_markdown");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Markdown => "markdown",
            Self::TelegramHtml => "telegram_html",
            Self::TelegramMarkdownV2 => "telegram_markdown_v2",
            Self::DiscordMarkdown => "discord_markdown",
        }
    }
}

/// What a platform can do, so the bridge can adapt its output: stream by
/// editing one message or send several, split at the length limit, render
/// markup.
///
/// ```
/// use netherbrain_core::channel::{ChannelCapabilities, MarkupDialect};
/// let telegram = ChannelCapabilities::new()
///     .with_edit_in_place(true)
///     .with_max_message_len(4096)
///     .with_markup(MarkupDialect::TelegramHtml);
/// assert!(telegram.edit_in_place);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChannelCapabilities {
    /// Sent messages can be edited (streamed replies update one message).
    pub edit_in_place: bool,
    /// Longest message text, in characters.
    pub max_message_len: usize,
    /// Markup the platform renders.
    pub markup: MarkupDialect,
    /// Private chats can show a streamed draft ([`Channel::send_draft`]).
    pub drafts: bool,
}

impl Default for ChannelCapabilities {
    /// No editing, 4096 characters, plain text.
    ///
    /// ```
    /// let caps = netherbrain_core::channel::ChannelCapabilities::default();
    /// assert!(!caps.edit_in_place);
    /// assert_eq!(caps.max_message_len, 4096);
    /// ```
    fn default() -> Self {
        Self {
            edit_in_place: false,
            max_message_len: 4096,
            markup: MarkupDialect::Plain,
            drafts: false,
        }
    }
}

impl ChannelCapabilities {
    /// The [`Default`] capabilities.
    ///
    /// ```
    /// use netherbrain_core::channel::ChannelCapabilities;
    /// assert_eq!(ChannelCapabilities::new(), ChannelCapabilities::default());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets whether sent messages can be edited.
    ///
    /// ```
    /// let caps = netherbrain_core::channel::ChannelCapabilities::new().with_edit_in_place(true);
    /// assert!(caps.edit_in_place);
    /// ```
    #[must_use]
    pub const fn with_edit_in_place(mut self, edit_in_place: bool) -> Self {
        self.edit_in_place = edit_in_place;
        self
    }

    /// Sets the longest message text, in characters.
    ///
    /// ```
    /// let caps = netherbrain_core::channel::ChannelCapabilities::new().with_max_message_len(2000);
    /// assert_eq!(caps.max_message_len, 2000);
    /// ```
    #[must_use]
    pub const fn with_max_message_len(mut self, max_message_len: usize) -> Self {
        self.max_message_len = max_message_len;
        self
    }

    /// Sets the markup dialect.
    ///
    /// ```
    /// use netherbrain_core::channel::{ChannelCapabilities, MarkupDialect};
    /// let caps = ChannelCapabilities::new().with_markup(MarkupDialect::DiscordMarkdown);
    /// assert_eq!(caps.markup, MarkupDialect::DiscordMarkdown);
    /// ```
    #[must_use]
    pub const fn with_markup(mut self, markup: MarkupDialect) -> Self {
        self.markup = markup;
        self
    }

    /// Sets whether private chats can show streamed drafts.
    ///
    /// ```
    /// let caps = netherbrain_core::channel::ChannelCapabilities::new().with_drafts(true);
    /// assert!(caps.drafts);
    /// ```
    #[must_use]
    pub const fn with_drafts(mut self, drafts: bool) -> Self {
        self.drafts = drafts;
        self
    }
}

/// What went wrong talking to a platform.
///
/// ```
/// use std::time::Duration;
/// use netherbrain_core::channel::ChannelError;
/// let e = ChannelError::RateLimited { retry_after: Some(Duration::from_secs(3)) };
/// assert!(e.is_retryable());
/// assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
/// assert!(!ChannelError::Unsupported.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The platform throttled us; try again after `retry_after` if given.
    #[error("rate limited by the platform{}", retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        /// How long the platform asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The text exceeds the platform's message length.
    #[error("message of {len} characters exceeds the limit of {max}")]
    TooLong {
        /// Length of the text, in characters.
        len: usize,
        /// The limit ([`ChannelCapabilities::max_message_len`]).
        max: usize,
    },
    /// A file exceeds the size limit.
    #[error("file of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its size (or as much as was read before stopping), in bytes.
        size: u64,
        /// The limit, in bytes.
        max: u64,
    },
    /// The channel cannot do this (e.g. edit messages).
    #[error("operation not supported by this channel")]
    Unsupported,
    /// Network or platform API failure.
    #[error("channel transport error: {0}")]
    Transport(String),
    /// The channel or the receiving side is closed.
    #[error("channel closed")]
    Closed,
}

impl ChannelError {
    /// Whether trying again later may succeed ([`RateLimited`](Self::RateLimited)
    /// and [`Transport`](Self::Transport)).
    ///
    /// ```
    /// use netherbrain_core::channel::ChannelError;
    /// assert!(ChannelError::Transport("timeout".into()).is_retryable());
    /// assert!(!ChannelError::Closed.is_retryable());
    /// ```
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transport(_))
    }

    /// The wait a rate limit asked for.
    ///
    /// ```
    /// use netherbrain_core::channel::ChannelError;
    /// assert_eq!(ChannelError::Closed.retry_after(), None);
    /// ```
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// A chat platform. Object-safe: gateways hold `Arc<dyn Channel>`.
///
/// Implementations translate platform calls only; they do not throttle,
/// split or format (the gateway bridge does, guided by
/// [`capabilities`](Self::capabilities)). They should map platform
/// throttling to [`ChannelError::RateLimited`] and over-long text to
/// [`ChannelError::TooLong`].
///
/// ```
/// use async_trait::async_trait;
/// use netherbrain_core::channel::{
///     Channel, ChannelCapabilities, ChannelError, ChatRef, InboundMessage, SentMessage,
/// };
/// use tokio::sync::mpsc;
/// use tokio_util::sync::CancellationToken;
///
/// /// Prints replies; receives nothing.
/// struct Stdout;
///
/// #[async_trait]
/// impl Channel for Stdout {
///     fn id(&self) -> &str {
///         "stdout"
///     }
///     fn capabilities(&self) -> ChannelCapabilities {
///         ChannelCapabilities::new().with_max_message_len(usize::MAX)
///     }
///     async fn run(
///         &self,
///         _inbound: mpsc::Sender<InboundMessage>,
///         cancel: CancellationToken,
///     ) -> Result<(), ChannelError> {
///         cancel.cancelled().await;
///         Ok(())
///     }
///     async fn send(&self, chat: &ChatRef, text: &str) -> Result<SentMessage, ChannelError> {
///         println!("{chat}: {text}");
///         Ok(SentMessage::new(chat.clone(), "0"))
///     }
///     // `edit` keeps its default: `ChannelError::Unsupported`.
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let channel: Box<dyn Channel> = Box::new(Stdout);
/// let sent = channel.send(&ChatRef::new("stdout", "-"), "hello").await.unwrap();
/// assert_eq!(channel.edit(&sent, "bye").await, Err(ChannelError::Unsupported));
/// # }
/// ```
#[async_trait]
pub trait Channel: Send + Sync {
    /// The platform's identity (`"telegram"`, `"discord"`), as found in
    /// [`ChatRef::channel`].
    fn id(&self) -> &str;

    /// What the platform can do.
    fn capabilities(&self) -> ChannelCapabilities;

    /// The receive loop: feeds every inbound message into `inbound` until
    /// `cancel` fires, then returns `Ok(())`. Returns
    /// [`ChannelError::Closed`] if the receiving side is dropped, and other
    /// errors when the platform connection fails for good (transient
    /// failures are retried inside).
    async fn run(
        &self,
        inbound: mpsc::Sender<InboundMessage>,
        cancel: CancellationToken,
    ) -> Result<(), ChannelError>;

    /// Sends `text` (in the platform's [`MarkupDialect`]) to a chat.
    async fn send(&self, chat: &ChatRef, text: &str) -> Result<SentMessage, ChannelError>;

    /// Replaces the text of a sent message. The default returns
    /// [`ChannelError::Unsupported`]; channels with
    /// [`ChannelCapabilities::edit_in_place`] override it.
    async fn edit(&self, message: &SentMessage, text: &str) -> Result<(), ChannelError> {
        let _ = (message, text);
        Err(ChannelError::Unsupported)
    }

    /// Sends `text` with buttons under it. The default sends the text
    /// alone, with the buttons' data as `/`-commands to type.
    async fn send_buttons(
        &self,
        chat: &ChatRef,
        text: &str,
        buttons: &[ChatButton],
    ) -> Result<SentMessage, ChannelError> {
        let mut text = text.to_owned();
        for button in buttons {
            text.push_str(&format!("\n{}: /{}", button.label, button.data));
        }
        self.send(chat, &text).await
    }

    /// Shows a streamed draft of a reply in a private chat (Telegram's
    /// `sendMessageDraft`); the same `draft_id` updates it. The default
    /// returns [`ChannelError::Unsupported`].
    async fn send_draft(
        &self,
        chat: &ChatRef,
        draft_id: u64,
        text: &str,
    ) -> Result<(), ChannelError> {
        let _ = (chat, draft_id, text);
        Err(ChannelError::Unsupported)
    }

    /// Reacts to a received message with an emoji (a steer's
    /// acknowledgement). The default returns [`ChannelError::Unsupported`].
    async fn react(
        &self,
        chat: &ChatRef,
        message_id: &str,
        emoji: &str,
    ) -> Result<(), ChannelError> {
        let _ = (chat, message_id, emoji);
        Err(ChannelError::Unsupported)
    }

    /// Fetches an attachment's bytes, at most `max_bytes` of them
    /// ([`ChannelError::TooLarge`] past that, without reading the rest).
    /// The default returns [`ChannelError::Unsupported`].
    async fn download(
        &self,
        attachment: &InboundAttachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        let _ = (attachment, max_bytes);
        Err(ChannelError::Unsupported)
    }

    /// Shows that the bot is working (a typing indicator). The default
    /// does nothing.
    async fn typing(&self, chat: &ChatRef) -> Result<(), ChannelError> {
        let _ = chat;
        Ok(())
    }

    /// Registers the bot's commands with the platform. The default does
    /// nothing.
    async fn set_commands(&self, commands: &[BotCommand]) -> Result<(), ChannelError> {
        let _ = commands;
        Ok(())
    }
}
