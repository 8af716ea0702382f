//! [`MemoryChannel`]: an in-memory [`Channel`] for tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    BotCommand, Channel, ChannelCapabilities, ChannelError, ChatButton, ChatRef, InboundMessage,
    SenderRef, SentMessage,
};

/// A message a [`MemoryChannel`] sent, with every text it had.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use netherbrain_core::channel::{Channel, ChannelCapabilities, MemoryChannel};
/// let channel = MemoryChannel::new("test")
///     .with_capabilities(ChannelCapabilities::new().with_edit_in_place(true));
/// let sent = channel.send(&channel.chat("c1"), "Thinking…").await.unwrap();
/// channel.edit(&sent, "Done.").await.unwrap();
/// let record = &channel.sent()[0];
/// assert_eq!(record.text, "Done.");
/// assert_eq!(record.versions, ["Thinking…", "Done."]);
/// assert_eq!(record.edits(), 1);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedMessage {
    /// The message as [`Channel::send`] returned it.
    pub message: SentMessage,
    /// Its current text.
    pub text: String,
    /// Every text it had, oldest first; the last is [`text`](Self::text).
    pub versions: Vec<String>,
    /// The buttons sent with it.
    pub buttons: Vec<ChatButton>,
}

/// A reaction a [`MemoryChannel`] was asked to show.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use netherbrain_core::channel::{Channel, MemoryChannel};
/// let channel = MemoryChannel::new("test");
/// channel.react(&channel.chat("c"), "in-1", "👀").await.unwrap();
/// assert_eq!(channel.reactions()[0].emoji, "👀");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedReaction {
    /// The chat.
    pub chat: ChatRef,
    /// The message reacted to.
    pub message_id: String,
    /// The emoji.
    pub emoji: String,
}

impl RecordedMessage {
    /// How often it was edited.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use netherbrain_core::channel::{Channel, MemoryChannel};
    /// let channel = MemoryChannel::new("test");
    /// channel.send(&channel.chat("c"), "hi").await.unwrap();
    /// assert_eq!(channel.sent()[0].edits(), 0);
    /// # }
    /// ```
    #[must_use]
    pub fn edits(&self) -> usize {
        self.versions.len().saturating_sub(1)
    }
}

/// An in-memory [`Channel`] for tests: inject inbound messages, inspect
/// what was sent and edited, script failures.
///
/// Cloning gives another handle to the same channel, so a test keeps one
/// while the code under test owns another. Messages injected before
/// [`run`](Channel::run) starts are queued and delivered in order; one
/// `run` delivers at a time (a second waits until the first returns), and
/// a cancelled `run` loses no queued message. Outbound message ids are
/// `"1"`, `"2"`, … in sending order.
/// [`send`](Channel::send) and [`edit`](Channel::edit) enforce the
/// configured [`ChannelCapabilities`] like a real platform would:
/// over-long text is [`ChannelError::TooLong`], editing without
/// `edit_in_place` is [`ChannelError::Unsupported`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use netherbrain_core::channel::{Channel, ChannelCapabilities, ChannelError, MemoryChannel};
///
/// let channel = MemoryChannel::new("test")
///     .with_capabilities(ChannelCapabilities::new().with_max_message_len(5));
/// let chat = channel.chat("c1");
/// assert_eq!(
///     channel.send(&chat, "too long").await,
///     Err(ChannelError::TooLong { len: 8, max: 5 })
/// );
/// channel.fail_next(ChannelError::RateLimited { retry_after: None });
/// assert!(channel.send(&chat, "hi").await.unwrap_err().is_retryable());
/// channel.send(&chat, "hi").await.unwrap();
/// assert_eq!(channel.sent().len(), 1);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryChannel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    queue_tx: mpsc::UnboundedSender<InboundMessage>,
    /// Held by `run` while it runs (an async mutex: held across awaits).
    queue_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<InboundMessage>>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    capabilities: ChannelCapabilities,
    sent: Vec<RecordedMessage>,
    failures: VecDeque<ChannelError>,
    reactions: Vec<RecordedReaction>,
    drafts: Vec<(ChatRef, u64, String)>,
    typing: Vec<ChatRef>,
    commands: Vec<BotCommand>,
    next_outbound: u64,
    next_inbound: u64,
}

impl MemoryChannel {
    /// A channel with the given [`id`](Channel::id) and default
    /// capabilities.
    ///
    /// ```
    /// use netherbrain_core::channel::{Channel, MemoryChannel};
    /// assert_eq!(MemoryChannel::new("test").id(), "test");
    /// ```
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                id: id.into(),
                queue_tx,
                queue_rx: tokio::sync::Mutex::new(queue_rx),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Sets the capabilities.
    ///
    /// ```
    /// use netherbrain_core::channel::{Channel, ChannelCapabilities, MarkupDialect, MemoryChannel};
    /// let channel = MemoryChannel::new("test")
    ///     .with_capabilities(ChannelCapabilities::new().with_markup(MarkupDialect::Markdown));
    /// assert_eq!(channel.capabilities().markup, MarkupDialect::Markdown);
    /// ```
    #[must_use]
    pub fn with_capabilities(self, capabilities: ChannelCapabilities) -> Self {
        self.set_capabilities(capabilities);
        self
    }

    /// Changes the capabilities (for every handle).
    ///
    /// ```
    /// use netherbrain_core::channel::{Channel, ChannelCapabilities, MemoryChannel};
    /// let channel = MemoryChannel::new("test");
    /// channel.set_capabilities(ChannelCapabilities::new().with_max_message_len(10));
    /// assert_eq!(channel.capabilities().max_message_len, 10);
    /// ```
    pub fn set_capabilities(&self, capabilities: ChannelCapabilities) {
        self.state().capabilities = capabilities;
    }

    /// A [`ChatRef`] on this channel.
    ///
    /// ```
    /// let channel = netherbrain_core::channel::MemoryChannel::new("test");
    /// assert_eq!(channel.chat("c1").to_string(), "test:c1");
    /// ```
    #[must_use]
    pub fn chat(&self, chat_id: impl Into<String>) -> ChatRef {
        ChatRef::new(self.inner.id.clone(), chat_id)
    }

    /// Queues an inbound message for [`run`](Channel::run) to deliver.
    ///
    /// ```
    /// use netherbrain_core::channel::{InboundMessage, MemoryChannel, SenderRef};
    /// let channel = MemoryChannel::new("test");
    /// channel.inject(InboundMessage::new(channel.chat("c1"), SenderRef::new("u1"), "hi", "m1"));
    /// ```
    pub fn inject(&self, message: InboundMessage) {
        // The receiver lives in `inner`, as long as this sender: never closed.
        let _ = self.inner.queue_tx.send(message);
    }

    /// Queues a text message from `sender_id` in chat `chat_id`, with a
    /// generated message id (`"in-1"`, `"in-2"`, …), and returns it.
    ///
    /// ```
    /// let channel = netherbrain_core::channel::MemoryChannel::new("test");
    /// let msg = channel.inject_text("c1", "u1", "hello");
    /// assert_eq!(msg.message_id, "in-1");
    /// assert_eq!(msg.chat.channel, "test");
    /// ```
    pub fn inject_text(
        &self,
        chat_id: impl Into<String>,
        sender_id: impl Into<String>,
        text: impl Into<String>,
    ) -> InboundMessage {
        let message_id = {
            let mut state = self.state();
            state.next_inbound += 1;
            format!("in-{}", state.next_inbound)
        };
        let message = InboundMessage::new(
            self.chat(chat_id),
            SenderRef::new(sender_id),
            text,
            message_id,
        );
        self.inject(message.clone());
        message
    }

    /// Every message sent so far, in sending order, with its edits.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use netherbrain_core::channel::{Channel, MemoryChannel};
    /// let channel = MemoryChannel::new("test");
    /// channel.send(&channel.chat("c1"), "one").await.unwrap();
    /// channel.send(&channel.chat("c2"), "two").await.unwrap();
    /// let texts: Vec<_> = channel.sent().into_iter().map(|m| m.text).collect();
    /// assert_eq!(texts, ["one", "two"]);
    /// # }
    /// ```
    #[must_use]
    pub fn sent(&self) -> Vec<RecordedMessage> {
        self.state().sent.clone()
    }

    /// The messages sent to one chat, in sending order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use netherbrain_core::channel::{Channel, MemoryChannel};
    /// let channel = MemoryChannel::new("test");
    /// channel.send(&channel.chat("c1"), "one").await.unwrap();
    /// channel.send(&channel.chat("c2"), "two").await.unwrap();
    /// assert_eq!(channel.sent_to(&channel.chat("c2"))[0].text, "two");
    /// # }
    /// ```
    #[must_use]
    pub fn sent_to(&self, chat: &ChatRef) -> Vec<RecordedMessage> {
        self.state()
            .sent
            .iter()
            .filter(|m| &m.message.chat == chat)
            .cloned()
            .collect()
    }

    /// Forgets the sent messages.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use netherbrain_core::channel::{Channel, MemoryChannel};
    /// let channel = MemoryChannel::new("test");
    /// channel.send(&channel.chat("c1"), "one").await.unwrap();
    /// channel.clear_sent();
    /// assert!(channel.sent().is_empty());
    /// # }
    /// ```
    pub fn clear_sent(&self) {
        self.state().sent.clear();
    }

    /// Makes the next [`send`](Channel::send) or [`edit`](Channel::edit)
    /// fail with `error` (queued: several calls script several failures).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use netherbrain_core::channel::{Channel, ChannelError, MemoryChannel};
    /// let channel = MemoryChannel::new("test");
    /// channel.fail_next(ChannelError::Transport("boom".into()));
    /// assert!(channel.send(&channel.chat("c"), "x").await.is_err());
    /// assert!(channel.send(&channel.chat("c"), "x").await.is_ok());
    /// # }
    /// ```
    pub fn fail_next(&self, error: ChannelError) {
        self.state().failures.push_back(error);
    }

    /// The reactions shown so far.
    ///
    /// ```
    /// let channel = netherbrain_core::channel::MemoryChannel::new("test");
    /// assert!(channel.reactions().is_empty());
    /// ```
    #[must_use]
    pub fn reactions(&self) -> Vec<RecordedReaction> {
        self.state().reactions.clone()
    }

    /// The drafts shown so far: chat, draft id, text.
    ///
    /// ```
    /// let channel = netherbrain_core::channel::MemoryChannel::new("test");
    /// assert!(channel.drafts().is_empty());
    /// ```
    #[must_use]
    pub fn drafts(&self) -> Vec<(ChatRef, u64, String)> {
        self.state().drafts.clone()
    }

    /// How often a typing indicator was shown in `chat`.
    ///
    /// ```
    /// let channel = netherbrain_core::channel::MemoryChannel::new("test");
    /// assert_eq!(channel.typing_count(&channel.chat("c")), 0);
    /// ```
    #[must_use]
    pub fn typing_count(&self, chat: &ChatRef) -> usize {
        self.state().typing.iter().filter(|c| *c == chat).count()
    }

    /// The commands registered last.
    ///
    /// ```
    /// let channel = netherbrain_core::channel::MemoryChannel::new("test");
    /// assert!(channel.commands().is_empty());
    /// ```
    #[must_use]
    pub fn commands(&self) -> Vec<BotCommand> {
        self.state().commands.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn check_len(text: &str, max: usize) -> Result<(), ChannelError> {
    let len = text.chars().count();
    if len > max {
        return Err(ChannelError::TooLong { len, max });
    }
    Ok(())
}

#[async_trait]
impl Channel for MemoryChannel {
    fn id(&self) -> &str {
        &self.inner.id
    }

    fn capabilities(&self) -> ChannelCapabilities {
        self.state().capabilities
    }

    async fn run(
        &self,
        inbound: mpsc::Sender<InboundMessage>,
        cancel: CancellationToken,
    ) -> Result<(), ChannelError> {
        let mut queue = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(()),
            queue = self.inner.queue_rx.lock() => queue,
        };
        loop {
            // Reserve room first, so a message taken from the queue is never
            // lost to a cancellation.
            let permit = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                permit = inbound.reserve() => permit.map_err(|_| ChannelError::Closed)?,
            };
            let message = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                message = queue.recv() => message.ok_or(ChannelError::Closed)?,
            };
            permit.send(message);
        }
    }

    async fn send(&self, chat: &ChatRef, text: &str) -> Result<SentMessage, ChannelError> {
        let mut state = self.state();
        if let Some(error) = state.failures.pop_front() {
            return Err(error);
        }
        if chat.channel != self.inner.id {
            return Err(ChannelError::Transport(format!(
                "chat {chat} is not on channel `{}`",
                self.inner.id
            )));
        }
        check_len(text, state.capabilities.max_message_len)?;
        state.next_outbound += 1;
        let message = SentMessage::new(chat.clone(), state.next_outbound.to_string());
        state.sent.push(RecordedMessage {
            message: message.clone(),
            text: text.to_owned(),
            versions: vec![text.to_owned()],
            buttons: Vec::new(),
        });
        Ok(message)
    }

    async fn send_buttons(
        &self,
        chat: &ChatRef,
        text: &str,
        buttons: &[ChatButton],
    ) -> Result<SentMessage, ChannelError> {
        let sent = self.send(chat, text).await?;
        if let Some(record) = self.state().sent.last_mut() {
            record.buttons = buttons.to_vec();
        }
        Ok(sent)
    }

    async fn send_draft(
        &self,
        chat: &ChatRef,
        draft_id: u64,
        text: &str,
    ) -> Result<(), ChannelError> {
        let mut state = self.state();
        if let Some(error) = state.failures.pop_front() {
            return Err(error);
        }
        if !state.capabilities.drafts {
            return Err(ChannelError::Unsupported);
        }
        check_len(text, state.capabilities.max_message_len)?;
        state.drafts.push((chat.clone(), draft_id, text.to_owned()));
        Ok(())
    }

    async fn react(
        &self,
        chat: &ChatRef,
        message_id: &str,
        emoji: &str,
    ) -> Result<(), ChannelError> {
        self.state().reactions.push(RecordedReaction {
            chat: chat.clone(),
            message_id: message_id.to_owned(),
            emoji: emoji.to_owned(),
        });
        Ok(())
    }

    async fn typing(&self, chat: &ChatRef) -> Result<(), ChannelError> {
        self.state().typing.push(chat.clone());
        Ok(())
    }

    async fn set_commands(&self, commands: &[BotCommand]) -> Result<(), ChannelError> {
        self.state().commands = commands.to_vec();
        Ok(())
    }

    async fn edit(&self, message: &SentMessage, text: &str) -> Result<(), ChannelError> {
        let mut state = self.state();
        if let Some(error) = state.failures.pop_front() {
            return Err(error);
        }
        if !state.capabilities.edit_in_place {
            return Err(ChannelError::Unsupported);
        }
        check_len(text, state.capabilities.max_message_len)?;
        let record = state
            .sent
            .iter_mut()
            .find(|m| &m.message == message)
            .ok_or_else(|| {
                ChannelError::Transport(format!("unknown message {}", message.message_id))
            })?;
        record.text = text.to_owned();
        record.versions.push(text.to_owned());
        Ok(())
    }
}
