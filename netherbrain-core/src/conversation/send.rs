//! Starting, resuming, steering and interrupting runs, and reading their
//! events.

use std::sync::Arc;

use futures::stream::BoxStream;

use super::{ConversationService, ServiceError};
use crate::agent::{RunOverrides, ToolDecision};
use crate::auth::Principal;
use crate::cluster::RunCommand;
use crate::event::{AgentEvent, EventEnvelope};
use crate::ids::{ConversationId, EventSeq, PresetId, SessionId};
use crate::message::Message;
use crate::runtime::{PreparedHistory, RunHandle, RuntimeError, StartRun};
use crate::store::{Conversation, Metadata, NewConversation, Preset, Session, StoreError};

/// What [`send`](ConversationService::send) does when the conversation is
/// already running.
///
/// ```
/// use netherbrain_core::conversation::WhenBusy;
/// assert_eq!(WhenBusy::default(), WhenBusy::Refuse);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenBusy {
    /// Refuse with [`RuntimeError::Busy`] naming the running session.
    #[default]
    Refuse,
    /// Steer the running session with the message's text.
    Steer,
}

/// A user message for [`send`](ConversationService::send).
///
/// ```
/// use netherbrain_core::conversation::SendMessage;
/// use netherbrain_core::{ConversationId, Message, PresetId};
/// let to_existing = SendMessage::to(ConversationId::new(), vec![Message::user("hi")]).steer_when_busy();
/// let to_new = SendMessage::new_conversation(PresetId::new(), vec![Message::user("hi")])
///     .with_title("Questions");
/// # let _ = (to_existing, to_new);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SendMessage {
    /// The conversation; `None` creates one owned by the sender.
    pub conversation_id: Option<ConversationId>,
    /// The preset to run; `None` uses the conversation's default (or the
    /// preset of its latest run). A new conversation needs one.
    pub preset_id: Option<PresetId>,
    /// The message(s).
    pub input: Vec<Message>,
    /// What to do when a run is going.
    pub when_busy: WhenBusy,
    /// Title of a conversation this send creates.
    pub title: Option<String>,
    /// Metadata of a conversation this send creates.
    pub metadata: Metadata,
    /// Use this id for the new session.
    pub session_id: Option<SessionId>,
    /// Per-request changes to the run (sampling, tool choice, client
    /// tools), within the preset's limits.
    pub overrides: RunOverrides,
    /// The preset record, when the caller has read it already.
    preset: Option<Preset>,
    /// Events streamed right after the run's `RUN_STARTED` (set by the
    /// service itself, e.g. when a subagent's result starts the run).
    pub(super) notices: Vec<AgentEvent>,
}

impl SendMessage {
    /// A message to an existing conversation.
    #[must_use]
    pub fn to(conversation_id: ConversationId, input: Vec<Message>) -> Self {
        Self {
            conversation_id: Some(conversation_id),
            preset_id: None,
            input,
            when_busy: WhenBusy::Refuse,
            title: None,
            metadata: Metadata::new(),
            session_id: None,
            overrides: RunOverrides::default(),
            preset: None,
            notices: Vec::new(),
        }
    }

    /// A message that starts a new conversation with a preset the caller
    /// has just read (by name, say), so the service does not read it again.
    ///
    /// ```
    /// # use netherbrain_core::conversation::SendMessage;
    /// # fn f(preset: netherbrain_core::store::Preset) {
    /// let m = SendMessage::new_conversation_with(preset, vec![netherbrain_core::Message::user("hi")]);
    /// # let _ = m; }
    /// ```
    #[must_use]
    pub fn new_conversation_with(preset: Preset, input: Vec<Message>) -> Self {
        let id = preset.id;
        Self {
            preset: Some(preset),
            ..Self::new_conversation(id, input)
        }
    }

    /// A message that starts a new conversation with `preset` as its default.
    #[must_use]
    pub fn new_conversation(preset: PresetId, input: Vec<Message>) -> Self {
        Self {
            conversation_id: None,
            preset_id: Some(preset),
            ..Self::to(ConversationId::new(), input)
        }
    }

    /// Sets the preset (for this run; a new conversation keeps it as its
    /// default).
    #[must_use]
    pub fn with_preset(mut self, preset: Option<PresetId>) -> Self {
        self.preset_id = preset;
        self
    }

    /// Steers the running session instead of refusing.
    #[must_use]
    pub fn steer_when_busy(mut self) -> Self {
        self.when_busy = WhenBusy::Steer;
        self
    }

    /// Titles the conversation this send creates.
    #[must_use]
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets the metadata of the conversation this send creates.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the run's overrides (see [`RunOverrides`]).
    #[must_use]
    pub fn with_overrides(mut self, overrides: RunOverrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// Uses a caller-chosen id for the new session (so a surface can know
    /// it before the run's first event).
    #[must_use]
    pub fn with_session_id(mut self, id: SessionId) -> Self {
        self.session_id = Some(id);
        self
    }
}

/// What [`send`](ConversationService::send) did.
///
/// ```
/// # use netherbrain_core::conversation::Sent;
/// # fn f(sent: Sent) {
/// if sent.started() {
///     println!("new run {}", sent.handle().session_id);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sent {
    /// A new run started.
    Started(RunHandle),
    /// The conversation was running; its run was steered.
    Steered(RunHandle),
}

impl Sent {
    /// The run started or steered.
    #[must_use]
    pub fn handle(&self) -> &RunHandle {
        match self {
            Self::Started(h) | Self::Steered(h) => h,
        }
    }

    /// Whether a new run started.
    #[must_use]
    pub fn started(&self) -> bool {
        matches!(self, Self::Started(_))
    }
}

/// The run an [`interrupt`](ConversationService::interrupt) or
/// [`steer`](ConversationService::steer) is for.
///
/// ```
/// use netherbrain_core::conversation::RunTarget;
/// let t = RunTarget::Conversation(netherbrain_core::ConversationId::new());
/// # let _ = t;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunTarget {
    /// Whatever runs in this conversation.
    Conversation(ConversationId),
    /// This session.
    Session(SessionId),
}

/// Input says something when one of its messages has a non-text part or
/// non-blank text.
pub(super) fn check_input(input: &[Message]) -> Result<(), ServiceError> {
    let says_something = |m: &Message| {
        m.content.iter().any(|p| p.as_text().is_none()) || !m.text().trim().is_empty()
    };
    if input.iter().any(says_something) {
        Ok(())
    } else {
        Err(ServiceError::Invalid("the input must not be empty".into()))
    }
}

/// What [`ConversationService::launch`] starts.
pub(super) struct Launch<'a> {
    pub(super) conversation: &'a Conversation,
    /// The preset, when the caller has read it already.
    pub(super) preset: Option<Preset>,
    /// The preset asked for; else the conversation's default, else the
    /// parent's.
    pub(super) preset_id: Option<PresetId>,
    pub(super) parent: Option<Session>,
    pub(super) input: Vec<Message>,
    pub(super) resume: Vec<ToolDecision>,
    pub(super) session_id: Option<SessionId>,
    pub(super) overrides: RunOverrides,
    /// Events streamed right after `RUN_STARTED`.
    pub(super) notices: Vec<AgentEvent>,
}

impl ConversationService {
    /// Sends a message: starts a run in the conversation (or in a new one
    /// owned by `who`), or — while a run is going — steers it or refuses,
    /// as [`SendMessage::when_busy`] says.
    ///
    /// The new session's input is durable when this returns. The first run
    /// of a forked conversation continues from the forked session.
    ///
    /// # Errors
    ///
    /// `NotFound` for a conversation `who` may not see or an unknown preset;
    /// [`ServiceError::Invalid`] for empty input or a new conversation
    /// without a preset (or one the catalog cannot build);
    /// [`RuntimeError::Busy`], [`RuntimeError::Draining`],
    /// [`RuntimeError::NoPreset`] and the catalog's errors.
    pub async fn send(&self, who: &Principal, message: SendMessage) -> Result<Sent, ServiceError> {
        check_input(&message.input)?;
        let store = &self.inner.store;
        let Some(conversation_id) = message.conversation_id else {
            return self.send_new(who, message).await.map(Sent::Started);
        };
        let conversation = self.conversation(who, conversation_id).await?;
        let mut latest = store.latest_session(conversation.id).await?;
        if let Some(active) = latest.as_ref().filter(|s| s.status.is_active()) {
            // A run whose process died is released once its lease expired.
            match self.inner.runtime.release_if_abandoned(active).await {
                Ok(true) => latest = store.latest_session(conversation.id).await?,
                Ok(false) | Err(RuntimeError::RunningElsewhere(_)) => {
                    return self.when_busy(&conversation, active, &message).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let parent = match latest {
            Some(latest) => Some(latest),
            None => self.fork_parent(&conversation).await?,
        };
        let handle = self
            .launch(Launch {
                conversation: &conversation,
                preset: None,
                preset_id: message.preset_id,
                parent,
                input: message.input,
                resume: Vec::new(),
                session_id: message.session_id,
                overrides: message.overrides,
                notices: message.notices,
            })
            .await?;
        Ok(Sent::Started(handle))
    }

    async fn when_busy(
        &self,
        conversation: &Conversation,
        active: &Session,
        message: &SendMessage,
    ) -> Result<Sent, ServiceError> {
        let busy = || {
            ServiceError::from(RuntimeError::Busy {
                session_id: active.id,
            })
        };
        if message.when_busy != WhenBusy::Steer {
            return Err(busy());
        }
        let text: Vec<String> = message.input.iter().map(Message::text).collect();
        let text = text.join("\n");
        if text.trim().is_empty() {
            return Err(busy());
        }
        match self
            .inner
            .runtime
            .steer_conversation(conversation.id, text.clone())
        {
            Ok(session_id) => Ok(Sent::Steered(RunHandle::new(session_id, conversation.id))),
            // The run is in another process: the replica holding its lease
            // is asked.
            Err(RuntimeError::NoActiveSession(_)) => match self
                .inner
                .runtime
                .command_elsewhere(active, RunCommand::Steer { text })
                .await
            {
                Ok(()) => Ok(Sent::Steered(RunHandle::new(active.id, conversation.id))),
                Err(_) => Err(busy()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// The first run of a conversation without sessions: a new conversation
    /// with the preset as its default.
    async fn send_new(
        &self,
        who: &Principal,
        message: SendMessage,
    ) -> Result<RunHandle, ServiceError> {
        if self.inner.runtime.is_draining() {
            return Err(RuntimeError::Draining.into());
        }
        let preset_id = message
            .preset_id
            .ok_or_else(|| ServiceError::Conflict("a new conversation needs `preset_id`".into()))?;
        let preset = match message.preset {
            Some(preset) if preset.id == preset_id => preset,
            _ => self.inner.store.get_preset(preset_id).await?,
        };
        // Refuse before creating anything, so a run that cannot start leaves
        // no empty conversation behind.
        self.catalog().check(&preset.config)?;
        self.check_budget(who.user_id(), &preset).await?;
        message
            .overrides
            .validate()
            .map_err(|e| RuntimeError::InvalidInput(e.to_string()))?;
        let mut new = NewConversation::new(who.user_id())
            .with_default_preset(preset.id)
            .with_metadata(message.metadata);
        new.title = message.title;
        let conversation = self.create(who, new).await?;
        self.launch(Launch {
            conversation: &conversation,
            preset: Some(preset),
            preset_id: Some(preset_id),
            parent: None,
            input: message.input,
            resume: Vec::new(),
            session_id: message.session_id,
            overrides: message.overrides,
            notices: message.notices,
        })
        .await
    }

    /// The session a fork's first run continues from: the conversation's
    /// server-owned fork origin, if its conversation belongs to the same
    /// owner (or the owner is an admin).
    async fn fork_parent(
        &self,
        conversation: &Conversation,
    ) -> Result<Option<Session>, ServiceError> {
        let Some(origin) = conversation.forked_from else {
            return Ok(None);
        };
        let store = &self.inner.store;
        let parent = match store.get_session(origin.session_id).await {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let parent_owner = store.get_conversation(parent.conversation_id).await?.owner;
        let allowed = parent_owner == conversation.owner
            || store
                .get_user(conversation.owner)
                .await
                .is_ok_and(|u| Principal::of(&u).is_admin());
        if allowed {
            Ok(Some(parent))
        } else {
            tracing::warn!(
                conversation_id = %conversation.id,
                "ignoring a fork origin owned by another user"
            );
            Ok(None)
        }
    }

    /// Resolves the preset, builds its agent, reads the parent's history
    /// once and starts the run.
    pub(super) async fn launch(&self, launch: Launch<'_>) -> Result<RunHandle, ServiceError> {
        let store = &self.inner.store;
        let conversation = launch.conversation;
        let preset = match launch.preset {
            Some(preset) => preset,
            None => {
                let preset_id = launch
                    .preset_id
                    .or(conversation.default_preset)
                    .or_else(|| launch.parent.as_ref().and_then(|p| p.preset_id))
                    .ok_or(RuntimeError::NoPreset)?;
                store.get_preset(preset_id).await?
            }
        };
        self.check_budget(conversation.owner, &preset).await?;
        // Counted before any work; held by the run until it ends.
        let permit = self.inner.quota.acquire(conversation.owner)?;
        let catalog = self.catalog();
        let mut agent = catalog.agent(&preset.config).await?;
        if !launch.overrides.is_empty() {
            agent = agent
                .with_overrides(&launch.overrides)
                .map_err(|e| RuntimeError::InvalidInput(e.to_string()))?;
        }
        let project_dirs = self
            .project_dirs(conversation.workspace_id, conversation.owner)
            .await?;
        let history = match &launch.parent {
            Some(parent) => store.session_history(parent.id).await?,
            None => Vec::new(),
        };
        let recalled = if preset.config.memory.inject {
            let text = launch
                .input
                .iter()
                .filter(|m| m.role == crate::message::Role::User)
                .map(Message::text)
                .collect::<Vec<_>>()
                .join("\n");
            self.inner
                .memories
                .for_prompt(
                    conversation.owner,
                    conversation.workspace_id,
                    &text,
                    preset.config.memory,
                )
                .await
        } else {
            None
        };
        let mut start = StartRun::new(conversation.id, Arc::new(agent), launch.input)
            .with_memories(recalled)
            .with_preset(Some(preset.id))
            .with_resume(launch.resume)
            .with_project_dirs(project_dirs)
            .with_prepared(PreparedHistory::new(launch.parent, history))
            .with_notices(launch.notices);
        if let Some(permit) = permit {
            start = start.with_permit(permit);
        }
        if let Some(id) = launch.session_id {
            start = start.with_session_id(id);
        }
        Ok(self.inner.runtime.start(start).await?)
    }

    /// Answers the tool calls a session left pending (approvals, denials or
    /// client results, one per call) by starting a new session that
    /// continues from it, with its preset.
    ///
    /// # Errors
    ///
    /// `NotFound` for a session `who` may not see; `Invalid` without
    /// decisions; [`RuntimeError::InvalidResume`] when they do not match the
    /// pending calls; [`RuntimeError::Busy`].
    pub async fn resume(
        &self,
        who: &Principal,
        session_id: SessionId,
        decisions: Vec<ToolDecision>,
    ) -> Result<RunHandle, ServiceError> {
        let (session, conversation) = self.session(who, session_id).await?;
        if decisions.is_empty() {
            return Err(ServiceError::Invalid(
                "`decisions` must not be empty".into(),
            ));
        }
        let preset_id = session.preset_id;
        self.launch(Launch {
            conversation: &conversation,
            preset: None,
            preset_id,
            parent: Some(session),
            input: Vec::new(),
            resume: decisions,
            session_id: None,
            overrides: RunOverrides::default(),
            notices: Vec::new(),
        })
        .await
    }

    /// Interrupts a run: it stops at once and commits what it produced.
    /// Returns the interrupted session.
    ///
    /// # Errors
    ///
    /// `NotFound` for a conversation or session `who` may not see;
    /// [`RuntimeError::NotRunning`] / [`RuntimeError::NoActiveSession`].
    pub async fn interrupt(
        &self,
        who: &Principal,
        target: RunTarget,
    ) -> Result<SessionId, ServiceError> {
        let runtime = &self.inner.runtime;
        let (refused, session) = match target {
            RunTarget::Conversation(id) => {
                self.conversation(who, id).await?;
                match runtime.interrupt_conversation(id) {
                    Ok(session_id) => return Ok(session_id),
                    Err(e) => (e, self.inner.store.active_session(id).await?),
                }
            }
            RunTarget::Session(id) => {
                let (session, _) = self.session(who, id).await?;
                match runtime.interrupt(id) {
                    Ok(()) => return Ok(id),
                    Err(e) => (e, Some(session)),
                }
            }
        };
        // Not running here: the replica holding its lease is asked; a run
        // whose process died is interrupted by recovering it.
        match session {
            Some(session) if session.status.is_active() => runtime
                .command_elsewhere(&session, RunCommand::Interrupt)
                .await
                .map(|()| session.id)
                .map_err(Into::into),
            _ => Err(refused.into()),
        }
    }

    /// Queues text for a run; it reaches the model at the next round.
    /// Returns the steered session.
    ///
    /// # Errors
    ///
    /// As [`interrupt`](Self::interrupt), and `Invalid` for blank text.
    pub async fn steer(
        &self,
        who: &Principal,
        target: RunTarget,
        text: impl Into<String>,
    ) -> Result<SessionId, ServiceError> {
        let text = text.into();
        let steer_text = text.clone();
        let runtime = &self.inner.runtime;
        let (refused, session) = match target {
            RunTarget::Conversation(id) => {
                self.conversation(who, id).await?;
                match runtime.steer_conversation(id, text) {
                    Ok(session_id) => return Ok(session_id),
                    Err(e) => (e, self.inner.store.active_session(id).await?),
                }
            }
            RunTarget::Session(id) => {
                let (session, _) = self.session(who, id).await?;
                match runtime.steer(id, text) {
                    Ok(()) => return Ok(id),
                    Err(e) => (e, Some(session)),
                }
            }
        };
        match (&refused, session) {
            (RuntimeError::NotRunning(_) | RuntimeError::NoActiveSession(_), Some(session))
                if session.status.is_active() =>
            {
                // The replica holding its lease is asked (an abandoned run
                // is released and the steer refused).
                runtime
                    .command_elsewhere(&session, RunCommand::Steer { text: steer_text })
                    .await?;
                Ok(session.id)
            }
            _ => Err(refused.into()),
        }
    }

    /// A session's events after `after` (`0` for all): the live tail while
    /// it runs, ending with it; the stored log once it has finished.
    ///
    /// # Errors
    ///
    /// `NotFound` for a session `who` may not see.
    pub async fn events(
        &self,
        who: &Principal,
        session_id: SessionId,
        after: EventSeq,
    ) -> Result<BoxStream<'static, EventEnvelope>, ServiceError> {
        self.session(who, session_id).await?;
        Ok(self.inner.runtime.subscribe(session_id, after).await?)
    }

    /// The session of a conversation whose events a reader wants: the given
    /// one (which must belong to it), else the running one, else the latest.
    ///
    /// # Errors
    ///
    /// `NotFound` for a conversation `who` may not see, a session of
    /// another conversation, or a conversation without sessions.
    pub async fn events_session(
        &self,
        who: &Principal,
        conversation_id: ConversationId,
        session_id: Option<SessionId>,
    ) -> Result<SessionId, ServiceError> {
        let conversation = self.conversation(who, conversation_id).await?;
        if let Some(id) = session_id {
            return Ok(self.session_in(&conversation, id).await?.id);
        }
        if let Some(id) = self.inner.runtime.active_session(conversation_id) {
            return Ok(id);
        }
        self.inner
            .store
            .latest_session(conversation_id)
            .await?
            .map(|s| s.id)
            .ok_or_else(|| ServiceError::NotFound("the conversation has no session yet".into()))
    }
}
