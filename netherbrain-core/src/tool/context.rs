//! What a tool knows about the call it serves.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use tokio_util::sync::CancellationToken;

use crate::event::AgentEvent;
use crate::ids::{ConversationId, SessionId};

/// Where a tool sends events for its run's stream (such as the `delegate`
/// tool's `subagent_started`). The agent loop streams them while the call
/// runs; once the call's round is over the channel is closed and
/// [`emit`](Self::emit) returns `false`.
///
/// ```
/// use netherbrain_core::AgentEvent;
/// use netherbrain_core::tool::ToolEvents;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (events, mut rx) = ToolEvents::channel(4);
/// assert!(events.emit(AgentEvent::TextMessageEnd { message_id: "m".into() }).await);
/// assert!(rx.recv().await.is_some());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ToolEvents(tokio::sync::mpsc::Sender<AgentEvent>);

impl ToolEvents {
    /// A sender and the receiver the loop drains; at most `capacity`
    /// events wait at once.
    ///
    /// ```
    /// let (events, rx) = netherbrain_core::tool::ToolEvents::channel(1);
    /// # let _ = (events, rx);
    /// ```
    #[must_use]
    pub fn channel(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<AgentEvent>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (Self(tx), rx)
    }

    /// Sends an event to the run's stream; `false` once the run no longer
    /// takes events from this call.
    ///
    /// ```
    /// # use netherbrain_core::{AgentEvent, tool::ToolEvents};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let (events, rx) = ToolEvents::channel(1);
    /// drop(rx);
    /// assert!(!events.emit(AgentEvent::TextMessageEnd { message_id: "m".into() }).await);
    /// # });
    /// ```
    pub async fn emit(&self, event: AgentEvent) -> bool {
        self.0.send(event).await.is_ok()
    }
}

/// Context of one tool call: cancellation, which session and conversation
/// the call belongs to, and the workspace's project directories (the only
/// places file and shell tools may touch).
///
/// ```
/// use netherbrain_core::tool::ToolContext;
/// let ctx = ToolContext::default().with_project_dirs(vec!["/srv/project".into()]);
/// assert!(!ctx.cancel.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ToolContext {
    /// Cancelled when the run is interrupted; long tools should watch it.
    pub cancel: CancellationToken,
    /// The session running the call.
    pub session_id: SessionId,
    /// The conversation of the session.
    pub conversation_id: ConversationId,
    /// The id of the call being served.
    pub call_id: String,
    /// Directories the workspace allows.
    pub project_dirs: Vec<PathBuf>,
    /// The preset's tool-set options, by set name
    /// ([`PresetConfig::tool_options`](crate::PresetConfig::tool_options)).
    pub options: Arc<BTreeMap<String, Value>>,
    /// Where the call may send events for the run's stream (`None` outside
    /// a run's loop).
    pub events: Option<ToolEvents>,
}

impl ToolContext {
    /// A context for the given session and conversation.
    ///
    /// ```
    /// use netherbrain_core::{ConversationId, SessionId, tool::ToolContext};
    /// let ctx = ToolContext::new(SessionId::new(), ConversationId::new());
    /// # let _ = ctx;
    /// ```
    #[must_use]
    pub fn new(session_id: SessionId, conversation_id: ConversationId) -> Self {
        Self {
            session_id,
            conversation_id,
            ..Self::default()
        }
    }

    /// Sets the cancellation token.
    ///
    /// ```
    /// let ctx = netherbrain_core::tool::ToolContext::default()
    ///     .with_cancel(tokio_util::sync::CancellationToken::new());
    /// # let _ = ctx;
    /// ```
    #[must_use]
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Sets the project directories.
    ///
    /// ```
    /// let ctx = netherbrain_core::tool::ToolContext::default().with_project_dirs(vec![]);
    /// assert!(ctx.project_dirs.is_empty());
    /// ```
    #[must_use]
    pub fn with_project_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.project_dirs = dirs;
        self
    }

    /// Sets the tool-set options.
    ///
    /// ```
    /// let opts = [("web".to_owned(), serde_json::json!({"allow_private": true}))].into();
    /// let ctx = netherbrain_core::tool::ToolContext::default().with_options(std::sync::Arc::new(opts));
    /// assert_eq!(ctx.option::<serde_json::Value>("web").unwrap()["allow_private"], true);
    /// ```
    #[must_use]
    pub fn with_options(mut self, options: Arc<BTreeMap<String, Value>>) -> Self {
        self.options = options;
        self
    }

    /// The options of one tool set, parsed; `T::default()` when the preset
    /// gives none.
    ///
    /// # Errors
    ///
    /// The options do not match `T`.
    pub fn option<T: serde::de::DeserializeOwned + Default>(
        &self,
        set: &str,
    ) -> Result<T, crate::tool::ToolError> {
        match self.options.get(set) {
            None | Some(Value::Null) => Ok(T::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                crate::tool::ToolError::failed(format!(
                    "the preset's `{set}` options are invalid: {e}"
                ))
            }),
        }
    }

    /// Sets where the call's events go.
    ///
    /// ```
    /// let (events, _rx) = netherbrain_core::tool::ToolEvents::channel(1);
    /// let ctx = netherbrain_core::tool::ToolContext::default().with_events(events);
    /// assert!(ctx.events.is_some());
    /// ```
    #[must_use]
    pub fn with_events(mut self, events: ToolEvents) -> Self {
        self.events = Some(events);
        self
    }

    /// Sends an event to the run's stream, if the call has one; whether it
    /// was taken.
    ///
    /// ```
    /// # use netherbrain_core::{AgentEvent, tool::ToolContext};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let ctx = ToolContext::default();
    /// assert!(!ctx.emit(AgentEvent::TextMessageEnd { message_id: "m".into() }).await);
    /// # });
    /// ```
    pub async fn emit(&self, event: AgentEvent) -> bool {
        match &self.events {
            Some(events) => events.emit(event).await,
            None => false,
        }
    }

    /// Sets the call id.
    ///
    /// ```
    /// let ctx = netherbrain_core::tool::ToolContext::default().with_call_id("call_1");
    /// assert_eq!(ctx.call_id, "call_1");
    /// ```
    #[must_use]
    pub fn with_call_id(mut self, call_id: impl Into<String>) -> Self {
        self.call_id = call_id.into();
        self
    }
}
