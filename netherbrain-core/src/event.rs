//! The events a run streams, in the AG-UI vocabulary.
//!
//! Serialized as `{"type": "TEXT_MESSAGE_CONTENT", "messageId": …, "delta": …}`
//! so AG-UI clients can consume a Netherbrain stream directly. Every event
//! stored for a session is wrapped in an [`EventEnvelope`] carrying its
//! per-session sequence number, which is the SSE event id. Both derive
//! [`JsonSchema`] for that serialized form.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ConversationId, EventSeq, SessionId};
use crate::message::{Role, ToolCall, ToolResultStatus};
use crate::session::SessionStatus;
use crate::usage::UsageByModel;

/// Names of the [`AgentEvent::Custom`] events the loop emits.
pub mod custom {
    /// User text injected into a running run (value: `{"text": …}`).
    pub const STEERING_RECEIVED: &str = "steering_received";
    /// Usage so far, after each model round (value: usage by model).
    pub const USAGE_SNAPSHOT: &str = "usage_snapshot";
    /// Older history was compacted (value: strategy and counts).
    pub const COMPACTION: &str = "compaction";
    /// The `delegate` tool started a subagent (value:
    /// [`SubagentStarted`](super::SubagentStarted)).
    pub const SUBAGENT_STARTED: &str = "subagent_started";
    /// A subagent finished (value:
    /// [`SubagentCompleted`](super::SubagentCompleted)); for a background
    /// subagent this is in the parent run its result reached.
    pub const SUBAGENT_COMPLETED: &str = "subagent_completed";
    /// The user's long-term memories were added to the system prompt
    /// (value: [`MemoriesRecalled`](crate::memory::MemoriesRecalled), `{"ids": […], "count": n}`).
    pub const MEMORIES_RECALLED: &str = "memories_recalled";
}

/// The value of a `subagent_started` [`AgentEvent::Custom`] event: a
/// subagent (a run of another preset in a new child conversation) began.
///
/// ```
/// use netherbrain_core::{AgentEvent, ConversationId, SessionId, SubagentStarted};
/// let started = SubagentStarted::new(ConversationId::new(), SessionId::new(), "researcher", false);
/// let event = started.event();
/// assert!(matches!(&event, AgentEvent::Custom { name, .. } if name == "subagent_started"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct SubagentStarted {
    /// The child conversation (owned by the same user).
    pub child_conversation_id: ConversationId,
    /// The child's session.
    pub child_session_id: SessionId,
    /// The preset the child runs.
    pub preset: String,
    /// Whether the parent goes on without waiting (the result reaches the
    /// parent conversation later).
    pub background: bool,
}

impl SubagentStarted {
    /// The payload.
    ///
    /// ```
    /// # use netherbrain_core::{ConversationId, SessionId, SubagentStarted};
    /// let s = SubagentStarted::new(ConversationId::new(), SessionId::new(), "helper", true);
    /// assert!(s.background);
    /// ```
    #[must_use]
    pub fn new(
        child_conversation_id: ConversationId,
        child_session_id: SessionId,
        preset: impl Into<String>,
        background: bool,
    ) -> Self {
        Self {
            child_conversation_id,
            child_session_id,
            preset: preset.into(),
            background,
        }
    }

    /// The `CUSTOM` event carrying it.
    ///
    /// ```
    /// # use netherbrain_core::{ConversationId, SessionId, SubagentStarted};
    /// let e = SubagentStarted::new(ConversationId::new(), SessionId::new(), "helper", true).event();
    /// assert_eq!(e.type_name(), "CUSTOM");
    /// ```
    #[must_use]
    pub fn event(&self) -> AgentEvent {
        AgentEvent::Custom {
            name: custom::SUBAGENT_STARTED.to_owned(),
            value: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }
}

/// The value of a `subagent_completed` [`AgentEvent::Custom`] event: a
/// subagent's run ended.
///
/// ```
/// use netherbrain_core::{ConversationId, SessionId, SessionStatus, SubagentCompleted};
/// let done = SubagentCompleted::new(ConversationId::new(), SessionId::new(), SessionStatus::Committed, "42");
/// assert_eq!(done.summary, "42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct SubagentCompleted {
    /// The child conversation.
    pub child_conversation_id: ConversationId,
    /// The child's session.
    pub child_session_id: SessionId,
    /// How the child's run ended.
    pub status: SessionStatus,
    /// The start of the child's final answer (or why it has none), at most
    /// [`SubagentCompleted::SUMMARY_CHARS`] characters.
    pub summary: String,
}

impl SubagentCompleted {
    /// The longest [`summary`](Self::summary), in characters.
    pub const SUMMARY_CHARS: usize = 500;

    /// The payload; `result` is cut to [`SUMMARY_CHARS`](Self::SUMMARY_CHARS).
    ///
    /// ```
    /// # use netherbrain_core::{ConversationId, SessionId, SessionStatus, SubagentCompleted};
    /// let long = "x".repeat(2000);
    /// let done = SubagentCompleted::new(ConversationId::new(), SessionId::new(), SessionStatus::Committed, &long);
    /// assert!(done.summary.chars().count() <= SubagentCompleted::SUMMARY_CHARS);
    /// ```
    #[must_use]
    pub fn new(
        child_conversation_id: ConversationId,
        child_session_id: SessionId,
        status: SessionStatus,
        result: &str,
    ) -> Self {
        let mut summary: String = result.chars().take(Self::SUMMARY_CHARS).collect();
        if summary.len() < result.len() {
            summary.pop();
            summary.push('…');
        }
        Self {
            child_conversation_id,
            child_session_id,
            status,
            summary,
        }
    }

    /// The `CUSTOM` event carrying it.
    ///
    /// ```
    /// # use netherbrain_core::{ConversationId, SessionId, SessionStatus, SubagentCompleted};
    /// let e = SubagentCompleted::new(ConversationId::new(), SessionId::new(), SessionStatus::Failed, "").event();
    /// assert_eq!(e.type_name(), "CUSTOM");
    /// ```
    #[must_use]
    pub fn event(&self) -> AgentEvent {
        AgentEvent::Custom {
            name: custom::SUBAGENT_COMPLETED.to_owned(),
            value: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }
}

/// How a run ended, carried by [`AgentEvent::RunFinished`].
///
/// ```
/// use netherbrain_core::{RunResult, SessionStatus};
/// let r = RunResult::new(SessionStatus::Committed);
/// assert!(r.deferred_tool_calls.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RunResult {
    /// The session's final status.
    pub status: SessionStatus,
    /// Tokens spent, per model.
    #[serde(default)]
    pub usage: UsageByModel,
    /// Calls waiting for approval or client-supplied results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred_tool_calls: Vec<ToolCall>,
    /// Why the model's last answer ended, when that was not a normal stop
    /// or a request for tools: `length` (the output token limit),
    /// `content_filter` or `other`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<crate::FinishReason>,
}

impl RunResult {
    /// A result with no usage and no deferred calls.
    ///
    /// ```
    /// let r = netherbrain_core::RunResult::new(netherbrain_core::SessionStatus::Interrupted);
    /// assert!(r.usage.is_empty());
    /// ```
    #[must_use]
    pub fn new(status: SessionStatus) -> Self {
        Self {
            status,
            usage: UsageByModel::default(),
            deferred_tool_calls: Vec::new(),
            finish_reason: None,
        }
    }
}

/// One event of a run.
///
/// ```
/// use netherbrain_core::AgentEvent;
/// let e = AgentEvent::TextMessageContent { message_id: "m1".into(), delta: "Hi".into() };
/// assert_eq!(
///     serde_json::to_value(&e).unwrap(),
///     serde_json::json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "Hi"})
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum AgentEvent {
    /// The run began.
    RunStarted {
        /// The conversation.
        thread_id: ConversationId,
        /// The session.
        run_id: SessionId,
    },
    /// An assistant message begins.
    TextMessageStart {
        /// Fresh id per assistant message.
        message_id: String,
        /// Always [`Role::Assistant`] from the loop.
        role: Role,
    },
    /// More text of a message.
    TextMessageContent {
        /// The message.
        message_id: String,
        /// The new text.
        delta: String,
    },
    /// A message is complete.
    TextMessageEnd {
        /// The message.
        message_id: String,
    },
    /// The model starts reasoning.
    ReasoningStart {
        /// Id of the reasoning block.
        message_id: String,
    },
    /// A reasoning message begins.
    ReasoningMessageStart {
        /// Id of the reasoning block.
        message_id: String,
        /// Always [`Role::Assistant`].
        role: Role,
    },
    /// More reasoning text.
    ReasoningMessageContent {
        /// Id of the reasoning block.
        message_id: String,
        /// The new text.
        delta: String,
    },
    /// A reasoning message is complete.
    ReasoningMessageEnd {
        /// Id of the reasoning block.
        message_id: String,
    },
    /// The model stopped reasoning.
    ReasoningEnd {
        /// Id of the reasoning block.
        message_id: String,
    },
    /// The model started a tool call.
    ToolCallStart {
        /// The call id.
        tool_call_id: String,
        /// The tool.
        tool_call_name: String,
        /// The assistant message this call belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_message_id: Option<String>,
    },
    /// More of a call's JSON arguments.
    ToolCallArgs {
        /// The call id.
        tool_call_id: String,
        /// The fragment.
        delta: String,
    },
    /// A call's arguments are complete.
    ToolCallEnd {
        /// The call id.
        tool_call_id: String,
    },
    /// A tool call's result.
    ToolCallResult {
        /// Id of the tool message.
        message_id: String,
        /// The call answered.
        tool_call_id: String,
        /// What the model reads.
        content: String,
        /// Always [`Role::Tool`].
        role: Role,
        /// How the call ended.
        #[serde(default)]
        status: ToolResultStatus,
    },
    /// The run ended (committed, awaiting tool results or interrupted).
    RunFinished {
        /// The conversation.
        thread_id: ConversationId,
        /// The session.
        run_id: SessionId,
        /// Status, usage and deferred calls.
        result: RunResult,
    },
    /// The run failed.
    RunError {
        /// What went wrong, for people.
        message: String,
        /// A machine-readable code (`"rate_limited"`, `"max_tool_rounds"`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// An extension event; see [`custom`] for the names the loop uses.
    Custom {
        /// The event name.
        name: String,
        /// Its payload.
        value: Value,
    },
}

impl AgentEvent {
    /// Whether this event ends a run's stream.
    ///
    /// ```
    /// use netherbrain_core::AgentEvent;
    /// assert!(AgentEvent::RunError { message: "x".into(), code: None }.is_terminal());
    /// ```
    #[must_use]
    pub const fn is_terminal(&self) -> bool {
        matches!(self, Self::RunFinished { .. } | Self::RunError { .. })
    }

    /// The AG-UI type name (`"RUN_STARTED"`, …).
    ///
    /// ```
    /// use netherbrain_core::AgentEvent;
    /// let e = AgentEvent::ToolCallEnd { tool_call_id: "c".into() };
    /// assert_eq!(e.type_name(), "TOOL_CALL_END");
    /// ```
    #[must_use]
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::RunStarted { .. } => "RUN_STARTED",
            Self::TextMessageStart { .. } => "TEXT_MESSAGE_START",
            Self::TextMessageContent { .. } => "TEXT_MESSAGE_CONTENT",
            Self::TextMessageEnd { .. } => "TEXT_MESSAGE_END",
            Self::ReasoningStart { .. } => "REASONING_START",
            Self::ReasoningMessageStart { .. } => "REASONING_MESSAGE_START",
            Self::ReasoningMessageContent { .. } => "REASONING_MESSAGE_CONTENT",
            Self::ReasoningMessageEnd { .. } => "REASONING_MESSAGE_END",
            Self::ReasoningEnd { .. } => "REASONING_END",
            Self::ToolCallStart { .. } => "TOOL_CALL_START",
            Self::ToolCallArgs { .. } => "TOOL_CALL_ARGS",
            Self::ToolCallEnd { .. } => "TOOL_CALL_END",
            Self::ToolCallResult { .. } => "TOOL_CALL_RESULT",
            Self::RunFinished { .. } => "RUN_FINISHED",
            Self::RunError { .. } => "RUN_ERROR",
            Self::Custom { .. } => "CUSTOM",
        }
    }
}

/// A stored event: its sequence number within the session, when it
/// happened, and the event.
///
/// ```
/// use netherbrain_core::{AgentEvent, EventEnvelope, SessionId};
/// let env = EventEnvelope::new(SessionId::new(), 1, AgentEvent::TextMessageEnd { message_id: "m".into() });
/// assert_eq!(env.seq, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct EventEnvelope {
    /// The session the event belongs to.
    pub session_id: SessionId,
    /// Sequence number within the session, starting at 1.
    pub seq: EventSeq,
    /// When the event was recorded.
    pub at: DateTime<Utc>,
    /// The event.
    pub event: AgentEvent,
}

impl EventEnvelope {
    /// Wraps an event recorded now.
    ///
    /// ```
    /// use netherbrain_core::{AgentEvent, EventEnvelope, SessionId};
    /// let env = EventEnvelope::new(SessionId::new(), 7, AgentEvent::ToolCallEnd { tool_call_id: "c".into() });
    /// assert_eq!(env.seq, 7);
    /// ```
    #[must_use]
    pub fn new(session_id: SessionId, seq: EventSeq, event: AgentEvent) -> Self {
        Self {
            session_id,
            seq,
            at: Utc::now(),
            event,
        }
    }
}
