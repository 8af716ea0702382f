//! What a run is asked to do, how it is steered, and how it ended.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::event::AgentEvent;
use crate::ids::{ConversationId, SessionId};
use crate::message::{Message, Role, ToolCall};
use crate::session::SessionStatus;
use crate::usage::UsageByModel;

/// One run of the agent: the conversation so far, the new input, and any
/// decisions on tool calls a previous run left pending.
///
/// ```
/// use netherbrain_core::agent::RunRequest;
/// use netherbrain_core::{ConversationId, Message, SessionId};
/// let request = RunRequest::new(ConversationId::new(), SessionId::new())
///     .with_history(vec![Message::user("hi"), Message::assistant("hello")])
///     .with_input(vec![Message::user("what time is it?")])
///     .with_project_dirs(vec!["/srv/project".into()]);
/// assert_eq!(request.history.len(), 2);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunRequest {
    /// The conversation (AG-UI `threadId`).
    pub conversation_id: ConversationId,
    /// This run (AG-UI `runId`).
    pub session_id: SessionId,
    /// Committed messages of earlier runs, oldest first. Only the part from
    /// the last [`Summary`](crate::ContentPart::Summary) on is sent to the
    /// model.
    pub history: Vec<Message>,
    /// The new messages of this run (usually one user message). The caller
    /// has persisted them already, so they are not passed to
    /// [`RunSink::messages`](super::RunSink::messages).
    pub input: Vec<Message>,
    /// Decisions on the calls the last assistant message of `history` left
    /// pending (see [`pending_tool_calls`]). A resume carries no `input`.
    pub resume: Vec<ToolDecision>,
    /// Directories file and shell tools may touch.
    pub project_dirs: Vec<PathBuf>,
    /// Events streamed right after `RUN_STARTED`, saying why the run began
    /// (a background subagent's `subagent_completed`, say).
    pub notices: Vec<AgentEvent>,
    /// The user's memories recalled for this run: added to the system
    /// prompt, and named by a `memories_recalled` event after
    /// `RUN_STARTED`.
    pub memories: Option<crate::memory::Recalled>,
}

impl RunRequest {
    /// An empty request for a conversation and session.
    ///
    /// ```
    /// use netherbrain_core::{ConversationId, SessionId, agent::RunRequest};
    /// let r = RunRequest::new(ConversationId::new(), SessionId::new());
    /// assert!(r.input.is_empty() && r.resume.is_empty());
    /// ```
    #[must_use]
    pub fn new(conversation_id: ConversationId, session_id: SessionId) -> Self {
        Self {
            conversation_id,
            session_id,
            history: Vec::new(),
            input: Vec::new(),
            resume: Vec::new(),
            project_dirs: Vec::new(),
            notices: Vec::new(),
            memories: None,
        }
    }

    /// Sets the events streamed right after `RUN_STARTED`.
    ///
    /// ```
    /// # use netherbrain_core::{AgentEvent, ConversationId, SessionId, agent::RunRequest};
    /// let r = RunRequest::new(ConversationId::new(), SessionId::new())
    ///     .with_notices(vec![AgentEvent::TextMessageEnd { message_id: "m".into() }]);
    /// assert_eq!(r.notices.len(), 1);
    /// ```
    #[must_use]
    pub fn with_notices(mut self, notices: Vec<AgentEvent>) -> Self {
        self.notices = notices;
        self
    }

    /// Sets the recalled memories.
    ///
    /// ```
    /// # use netherbrain_core::{ConversationId, SessionId, agent::RunRequest};
    /// let r = RunRequest::new(ConversationId::new(), SessionId::new()).with_memories(None);
    /// assert!(r.memories.is_none());
    /// ```
    #[must_use]
    pub fn with_memories(mut self, memories: Option<crate::memory::Recalled>) -> Self {
        self.memories = memories;
        self
    }

    /// Sets the history.
    ///
    /// ```
    /// # use netherbrain_core::{ConversationId, SessionId, Message, agent::RunRequest};
    /// let r = RunRequest::new(ConversationId::new(), SessionId::new()).with_history(vec![Message::user("a")]);
    /// assert_eq!(r.history.len(), 1);
    /// ```
    #[must_use]
    pub fn with_history(mut self, history: Vec<Message>) -> Self {
        self.history = history;
        self
    }

    /// Sets the input messages.
    ///
    /// ```
    /// # use netherbrain_core::{ConversationId, SessionId, Message, agent::RunRequest};
    /// let r = RunRequest::new(ConversationId::new(), SessionId::new()).with_input(vec![Message::user("a")]);
    /// assert_eq!(r.input.len(), 1);
    /// ```
    #[must_use]
    pub fn with_input(mut self, input: Vec<Message>) -> Self {
        self.input = input;
        self
    }

    /// Sets the input to one user text message.
    ///
    /// ```
    /// # use netherbrain_core::{ConversationId, SessionId, agent::RunRequest};
    /// let r = RunRequest::new(ConversationId::new(), SessionId::new()).with_user_text("hi");
    /// assert_eq!(r.input[0].text(), "hi");
    /// ```
    #[must_use]
    pub fn with_user_text(mut self, text: impl Into<String>) -> Self {
        self.input = vec![Message::user(text)];
        self
    }

    /// Sets the tool decisions of a resume.
    ///
    /// ```
    /// # use netherbrain_core::{ConversationId, SessionId, agent::{RunRequest, ToolDecision}};
    /// let r = RunRequest::new(ConversationId::new(), SessionId::new())
    ///     .with_resume(vec![ToolDecision::approve("call_1")]);
    /// assert_eq!(r.resume[0].call_id(), "call_1");
    /// ```
    #[must_use]
    pub fn with_resume(mut self, decisions: Vec<ToolDecision>) -> Self {
        self.resume = decisions;
        self
    }

    /// Sets the project directories.
    ///
    /// ```
    /// # use netherbrain_core::{ConversationId, SessionId, agent::RunRequest};
    /// let r = RunRequest::new(ConversationId::new(), SessionId::new()).with_project_dirs(vec!["/tmp".into()]);
    /// assert_eq!(r.project_dirs.len(), 1);
    /// ```
    #[must_use]
    pub fn with_project_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.project_dirs = dirs;
        self
    }
}

/// The user's (or client's) decision on a deferred tool call.
///
/// ```
/// use netherbrain_core::agent::ToolDecision;
/// let d: ToolDecision = serde_json::from_value(serde_json::json!({
///     "decision": "deny", "call_id": "call_1", "reason": "too risky"
/// })).unwrap();
/// assert_eq!(d.call_id(), "call_1");
/// let r: ToolDecision = serde_json::from_value(serde_json::json!({
///     "decision": "result", "call_id": "call_2", "content": "42"
/// })).unwrap();
/// assert!(matches!(r, ToolDecision::Result { is_error: false, .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolDecision {
    /// Run the call.
    Approve {
        /// The call.
        call_id: String,
    },
    /// Do not run the call; the model gets a `denied` result.
    Deny {
        /// The call.
        call_id: String,
        /// Why, for the model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The client ran the call itself; this is its result.
    Result {
        /// The call.
        call_id: String,
        /// What the model reads.
        content: String,
        /// Whether the call failed.
        #[serde(default)]
        is_error: bool,
    },
}

impl ToolDecision {
    /// Approves a call.
    ///
    /// ```
    /// let d = netherbrain_core::agent::ToolDecision::approve("c");
    /// assert_eq!(d.call_id(), "c");
    /// ```
    #[must_use]
    pub fn approve(call_id: impl Into<String>) -> Self {
        Self::Approve {
            call_id: call_id.into(),
        }
    }

    /// Denies a call, with an optional reason.
    ///
    /// ```
    /// let d = netherbrain_core::agent::ToolDecision::deny("c", Some("no".into()));
    /// assert_eq!(d.call_id(), "c");
    /// ```
    #[must_use]
    pub fn deny(call_id: impl Into<String>, reason: Option<String>) -> Self {
        Self::Deny {
            call_id: call_id.into(),
            reason,
        }
    }

    /// Supplies a call's result.
    ///
    /// ```
    /// let d = netherbrain_core::agent::ToolDecision::result("c", "42", false);
    /// assert_eq!(d.call_id(), "c");
    /// ```
    #[must_use]
    pub fn result(call_id: impl Into<String>, content: impl Into<String>, is_error: bool) -> Self {
        Self::Result {
            call_id: call_id.into(),
            content: content.into(),
            is_error,
        }
    }

    /// The call this decision is about.
    ///
    /// ```
    /// assert_eq!(netherbrain_core::agent::ToolDecision::approve("x").call_id(), "x");
    /// ```
    #[must_use]
    pub fn call_id(&self) -> &str {
        match self {
            Self::Approve { call_id }
            | Self::Deny { call_id, .. }
            | Self::Result { call_id, .. } => call_id,
        }
    }
}

/// User text waiting to be injected into a running run at the next
/// model-round boundary. Cheap to clone; clones share the queue.
///
/// ```
/// use netherbrain_core::agent::SteeringQueue;
/// let queue = SteeringQueue::default();
/// let handle = queue.clone();
/// handle.push("use metric units");
/// assert!(!queue.is_empty());
/// assert_eq!(queue.drain(), vec!["use metric units".to_string()]);
/// assert!(queue.is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct SteeringQueue(Arc<Mutex<VecDeque<Steer>>>);

/// One queued steering text, with the events streamed before it.
#[derive(Debug, Clone)]
pub(crate) struct Steer {
    pub(crate) text: String,
    pub(crate) notices: Vec<AgentEvent>,
}

impl SteeringQueue {
    /// A new, empty queue.
    ///
    /// ```
    /// assert!(netherbrain_core::agent::SteeringQueue::new().is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues text for the next round boundary.
    ///
    /// ```
    /// let q = netherbrain_core::agent::SteeringQueue::new();
    /// q.push("stop after this file");
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn push(&self, text: impl Into<String>) {
        self.push_with_notices(text, Vec::new());
    }

    /// Queues text with events to stream just before it is injected (a
    /// background subagent's `subagent_completed` before its result).
    ///
    /// ```
    /// # use netherbrain_core::AgentEvent;
    /// let q = netherbrain_core::agent::SteeringQueue::new();
    /// q.push_with_notices("result", vec![AgentEvent::TextMessageEnd { message_id: "m".into() }]);
    /// assert_eq!(q.drain(), vec!["result".to_string()]);
    /// ```
    pub fn push_with_notices(&self, text: impl Into<String>, notices: Vec<AgentEvent>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(Steer {
                text: text.into(),
                notices,
            });
    }

    /// Takes everything queued with its notices, oldest first.
    pub(crate) fn drain_steers(&self) -> Vec<Steer> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }

    /// Takes everything queued, oldest first.
    ///
    /// ```
    /// let q = netherbrain_core::agent::SteeringQueue::new();
    /// q.push("a");
    /// q.push("b");
    /// assert_eq!(q.drain(), vec!["a".to_string(), "b".to_string()]);
    /// ```
    #[must_use]
    pub fn drain(&self) -> Vec<String> {
        self.drain_steers().into_iter().map(|s| s.text).collect()
    }

    /// Whether nothing is queued.
    ///
    /// ```
    /// assert!(netherbrain_core::agent::SteeringQueue::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many texts are queued.
    ///
    /// ```
    /// assert_eq!(netherbrain_core::agent::SteeringQueue::new().len(), 0);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Handles through which a caller controls a running run: interrupt and
/// steer. Cheap to clone; keep a clone while the run goes.
///
/// ```
/// use netherbrain_core::agent::RunControl;
/// let control = RunControl::default();
/// let handle = control.clone();
/// handle.steering.push("also check the logs");
/// handle.cancel.cancel(); // interrupt
/// assert!(control.cancel.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// Cancel to interrupt the run.
    pub cancel: CancellationToken,
    /// Text to inject at the next model-round boundary.
    pub steering: SteeringQueue,
}

impl RunControl {
    /// A fresh control.
    ///
    /// ```
    /// let c = netherbrain_core::agent::RunControl::new();
    /// assert!(!c.cancel.is_cancelled());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// Why a run failed: a machine-readable code and a message for people.
///
/// Codes the loop uses: `"sink"`, `"max_tool_rounds"`, `"invalid_resume"`,
/// `"panic"`, and [`ProviderError::code`](crate::ProviderError::code) for
/// provider failures.
///
/// ```
/// let f = netherbrain_core::agent::RunFailure::new("invalid_resume", "call c1 has no decision");
/// assert_eq!(f.code, "invalid_resume");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    /// Machine-readable code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl RunFailure {
    /// Creates a failure.
    ///
    /// ```
    /// let f = netherbrain_core::agent::RunFailure::new("sink", "store down");
    /// assert_eq!(f.message, "store down");
    /// ```
    #[must_use]
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// How a run ended and what it produced.
///
/// ```
/// use netherbrain_core::agent::RunOutcome;
/// use netherbrain_core::SessionStatus;
/// let outcome = RunOutcome::new(SessionStatus::Committed);
/// assert!(outcome.is_success());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunOutcome {
    /// `committed`, `awaiting_tool_results`, `interrupted` or `failed`.
    pub status: SessionStatus,
    /// The input followed by every message the run created, in order.
    pub new_messages: Vec<Message>,
    /// Tokens spent, per model (including compaction calls).
    pub usage: UsageByModel,
    /// The text of the last assistant message, if it had any.
    pub final_message: Option<String>,
    /// Calls waiting for approval (status `awaiting_tool_results`).
    pub deferred_tool_calls: Vec<ToolCall>,
    /// Why the run failed (status `failed`).
    pub error: Option<RunFailure>,
}

impl RunOutcome {
    /// An outcome with a status and nothing else.
    ///
    /// ```
    /// let o = netherbrain_core::agent::RunOutcome::new(netherbrain_core::SessionStatus::Failed);
    /// assert!(!o.is_success());
    /// ```
    #[must_use]
    pub fn new(status: SessionStatus) -> Self {
        Self {
            status,
            new_messages: Vec::new(),
            usage: UsageByModel::default(),
            final_message: None,
            deferred_tool_calls: Vec::new(),
            error: None,
        }
    }

    /// Whether the run committed.
    ///
    /// ```
    /// let o = netherbrain_core::agent::RunOutcome::new(netherbrain_core::SessionStatus::Interrupted);
    /// assert!(!o.is_success());
    /// ```
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.status == SessionStatus::Committed
    }
}

/// The tool calls of the last assistant message in `history` that have no
/// result after it: what a resume must decide on.
///
/// ```
/// use netherbrain_core::agent::pending_tool_calls;
/// use netherbrain_core::{ContentPart, Message, Role, ToolCall, ToolResult};
/// let call = |id: &str| ContentPart::ToolCall(ToolCall::new(id, "shell", serde_json::json!({})));
/// let history = vec![
///     Message::user("clean up"),
///     Message::new(Role::Assistant, vec![call("a"), call("b")]),
///     Message::tool(vec![ToolResult::success("a", "ok")]),
/// ];
/// let pending = pending_tool_calls(&history);
/// assert_eq!(pending.len(), 1);
/// assert_eq!(pending[0].id, "b");
/// ```
#[must_use]
pub fn pending_tool_calls(history: &[Message]) -> Vec<ToolCall> {
    let Some(last) = history.iter().rposition(|m| m.role == Role::Assistant) else {
        return Vec::new();
    };
    let answered: HashSet<&str> = history[last + 1..]
        .iter()
        .flat_map(Message::tool_results)
        .map(|r| r.call_id.as_str())
        .collect();
    history[last]
        .tool_calls()
        .filter(|c| !answered.contains(c.id.as_str()))
        .cloned()
        .collect()
}
