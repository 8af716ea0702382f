//! Where a run's events and messages go.

use async_trait::async_trait;

use crate::event::AgentEvent;
use crate::message::Message;

/// Why a [`RunSink`] could not take an event or messages. Any sink error
/// ends the run `failed` with a `RUN_ERROR` of code `"sink"`.
///
/// ```
/// use netherbrain_core::agent::SinkError;
/// let e = SinkError::failed("database is locked");
/// assert_eq!(e.to_string(), "sink failed: database is locked");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Whoever consumed the events went away.
    #[error("the event consumer went away")]
    Closed,
    /// Persisting failed.
    #[error("sink failed: {0}")]
    Failed(String),
    /// Persisting failed, with the underlying error.
    #[error("sink failed: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SinkError {
    /// A [`SinkError::Failed`] with a message.
    ///
    /// ```
    /// let e = netherbrain_core::agent::SinkError::failed("disk full");
    /// # let _ = e;
    /// ```
    #[must_use]
    pub fn failed(message: impl std::fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }
}

/// Receives what a run produces, as it happens.
///
/// [`event`](Self::event) gets every [`AgentEvent`] in order;
/// [`messages`](Self::messages) gets every message the loop creates as soon
/// as it is complete (assistant messages, tool messages, steering user
/// messages, compaction summaries) — never the run's input. The session
/// runtime implements this over its store; an error ends the run.
///
/// ```
/// use netherbrain_core::agent::{RunSink, SinkError};
/// use netherbrain_core::{AgentEvent, Message};
///
/// /// Prints events.
/// #[derive(Debug)]
/// struct Print;
///
/// #[async_trait::async_trait]
/// impl RunSink for Print {
///     async fn event(&mut self, event: AgentEvent) -> Result<(), SinkError> {
///         println!("{}", event.type_name());
///         Ok(())
///     }
///     async fn messages(&mut self, messages: &[Message]) -> Result<(), SinkError> {
///         println!("{} new message(s)", messages.len());
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait RunSink: Send {
    /// Takes one event.
    async fn event(&mut self, event: AgentEvent) -> Result<(), SinkError>;

    /// Takes newly completed messages, to persist them.
    async fn messages(&mut self, messages: &[Message]) -> Result<(), SinkError>;
}

/// A sink that keeps everything in memory; handy for tests and one-shot
/// programs.
///
/// ```
/// use netherbrain_core::agent::{CollectingSink, RunSink};
/// use netherbrain_core::{AgentEvent, Message};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut sink = CollectingSink::new();
/// sink.event(AgentEvent::TextMessageEnd { message_id: "m".into() }).await.unwrap();
/// sink.messages(&[Message::assistant("hi")]).await.unwrap();
/// assert_eq!(sink.events.len(), 1);
/// assert_eq!(sink.messages.len(), 1);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct CollectingSink {
    /// Events received, in order.
    pub events: Vec<AgentEvent>,
    /// Messages received, in order.
    pub messages: Vec<Message>,
    /// Fail with [`SinkError::Failed`] once this many events were taken
    /// (to test store failures).
    pub fail_after_events: Option<usize>,
}

impl CollectingSink {
    /// An empty sink.
    ///
    /// ```
    /// assert!(netherbrain_core::agent::CollectingSink::new().events.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink that fails once `n` events were taken.
    ///
    /// ```
    /// let sink = netherbrain_core::agent::CollectingSink::failing_after(3);
    /// assert_eq!(sink.fail_after_events, Some(3));
    /// ```
    #[must_use]
    pub fn failing_after(n: usize) -> Self {
        Self {
            fail_after_events: Some(n),
            ..Self::default()
        }
    }

    /// The AG-UI type names of the events, in order.
    ///
    /// ```
    /// assert!(netherbrain_core::agent::CollectingSink::new().event_types().is_empty());
    /// ```
    #[must_use]
    pub fn event_types(&self) -> Vec<&'static str> {
        self.events.iter().map(AgentEvent::type_name).collect()
    }
}

#[async_trait]
impl RunSink for CollectingSink {
    async fn event(&mut self, event: AgentEvent) -> Result<(), SinkError> {
        if self
            .fail_after_events
            .is_some_and(|n| self.events.len() >= n)
        {
            return Err(SinkError::failed("the sink is configured to fail"));
        }
        self.events.push(event);
        Ok(())
    }

    async fn messages(&mut self, messages: &[Message]) -> Result<(), SinkError> {
        self.messages.extend_from_slice(messages);
        Ok(())
    }
}

/// A sink that discards everything (the outcome still carries the
/// messages).
///
/// ```
/// use netherbrain_core::agent::{NullSink, RunSink};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// NullSink.messages(&[]).await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

#[async_trait]
impl RunSink for NullSink {
    async fn event(&mut self, _event: AgentEvent) -> Result<(), SinkError> {
        Ok(())
    }

    async fn messages(&mut self, _messages: &[Message]) -> Result<(), SinkError> {
        Ok(())
    }
}
