//! Starting runs from presets: the preset (or the conversation's default)
//! is turned into an agent by the [`AgentCatalog`], with the workspace's
//! project directories.

use std::path::PathBuf;

use super::{RunHandle, Runtime, RuntimeError, StartRun};
use crate::agent::{AgentCatalog, ToolDecision};
use crate::ids::{ConversationId, PresetId, SessionId};
use crate::message::Message;

/// A run described by preset rather than by a built agent.
///
/// ```
/// use netherbrain_core::runtime::PresetRun;
/// use netherbrain_core::{ConversationId, Message};
/// let run = PresetRun::new(ConversationId::new(), vec![Message::user("hi")]);
/// assert!(run.preset_id.is_none());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PresetRun {
    /// The conversation (must exist).
    pub conversation_id: ConversationId,
    /// The preset; `None` uses the conversation's default preset.
    pub preset_id: Option<PresetId>,
    /// New user input (empty only for a resume).
    pub input: Vec<Message>,
    /// Branch from this session instead of the latest one (a fork).
    pub parent_session_id: Option<SessionId>,
    /// Decisions for pending tool calls.
    pub resume: Vec<ToolDecision>,
    /// Use this id for the new session.
    pub session_id: Option<SessionId>,
}

impl PresetRun {
    /// A run of the conversation's default preset with new input.
    #[must_use]
    pub fn new(conversation_id: ConversationId, input: Vec<Message>) -> Self {
        Self {
            conversation_id,
            preset_id: None,
            input,
            parent_session_id: None,
            resume: Vec::new(),
            session_id: None,
        }
    }

    /// Uses a specific preset.
    #[must_use]
    pub fn with_preset(mut self, preset: Option<PresetId>) -> Self {
        self.preset_id = preset;
        self
    }

    /// Branches from a session.
    #[must_use]
    pub fn with_parent(mut self, parent: Option<SessionId>) -> Self {
        self.parent_session_id = parent;
        self
    }

    /// Resumes pending tool calls.
    #[must_use]
    pub fn with_resume(mut self, decisions: Vec<ToolDecision>) -> Self {
        self.resume = decisions;
        self
    }

    /// Uses a caller-chosen session id.
    #[must_use]
    pub fn with_session_id(mut self, id: SessionId) -> Self {
        self.session_id = Some(id);
        self
    }
}

impl Runtime {
    /// Starts a run of a preset: resolves the preset (given, else the
    /// conversation's default, else the preset of the conversation's latest
    /// session), builds its agent through `catalog`, confines tools to the
    /// conversation's workspace directories, then [`start`](Self::start)s.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NoPreset`] when no preset applies,
    /// [`RuntimeError::Catalog`] when the preset names an unknown profile or
    /// tool set, and every error of [`start`](Self::start).
    pub async fn start_preset(
        &self,
        catalog: &AgentCatalog,
        run: PresetRun,
    ) -> Result<RunHandle, RuntimeError> {
        let store = self.store().clone();
        let conversation = store.get_conversation(run.conversation_id).await?;
        let preset_id = match run.preset_id.or(conversation.default_preset) {
            Some(id) => id,
            None => store
                .list_sessions(run.conversation_id)
                .await?
                .iter()
                .rev()
                .find_map(|s| s.preset_id)
                .ok_or(RuntimeError::NoPreset)?,
        };
        let preset = store.get_preset(preset_id).await?;
        let agent = catalog.agent(&preset.config).await?;
        let project_dirs: Vec<PathBuf> = match conversation.workspace_id {
            Some(ws) => store
                .get_workspace(ws)
                .await?
                .project_dirs
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            None => Vec::new(),
        };
        let mut start = StartRun::new(run.conversation_id, std::sync::Arc::new(agent), run.input)
            .with_preset(Some(preset_id))
            .with_resume(run.resume)
            .with_project_dirs(project_dirs);
        if let Some(parent) = run.parent_session_id {
            start = start.with_parent(parent);
        }
        if let Some(id) = run.session_id {
            start = start.with_session_id(id);
        }
        self.start(start).await
    }
}
