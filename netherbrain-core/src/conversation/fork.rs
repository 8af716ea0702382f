//! Forking: a new conversation branching from a finished session.

use super::send::{Launch, check_input};
use super::{ConversationService, ServiceError};
use crate::auth::Principal;
use crate::ids::{ConversationId, PresetId, SessionId};
use crate::message::Message;
use crate::runtime::RunHandle;
use crate::session::SessionStatus;
use crate::store::{Conversation, ForkOrigin, NewConversation};

/// What to fork.
///
/// ```
/// use netherbrain_core::conversation::ForkRequest;
/// use netherbrain_core::{Message, SessionId};
/// let later = ForkRequest::new(SessionId::new());
/// let now = ForkRequest::new(SessionId::new()).with_input(vec![Message::user("what if…")]);
/// # let _ = (later, now);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ForkRequest {
    /// The finished session to branch from (of the forked conversation).
    pub session_id: SessionId,
    /// Input for a first run that starts at once; `None` leaves the fork
    /// waiting for its first message.
    pub input: Option<Vec<Message>>,
    /// The preset of that first run.
    pub preset_id: Option<PresetId>,
}

impl ForkRequest {
    /// A fork of `session_id` without a run.
    #[must_use]
    pub fn new(session_id: SessionId) -> Self {
        Self {
            session_id,
            input: None,
            preset_id: None,
        }
    }

    /// Starts the fork's first run with this input.
    #[must_use]
    pub fn with_input(mut self, input: Vec<Message>) -> Self {
        self.input = Some(input);
        self
    }

    /// The preset of the first run.
    #[must_use]
    pub fn with_preset(mut self, preset: Option<PresetId>) -> Self {
        self.preset_id = preset;
        self
    }
}

/// A new fork.
///
/// ```
/// # use netherbrain_core::conversation::Forked;
/// # fn f(forked: Forked) {
/// println!("{}", forked.conversation.id);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Forked {
    /// The new conversation (its `forked_from` names the origin).
    pub conversation: Conversation,
    /// Its first run, when the request had input.
    pub run: Option<RunHandle>,
}

impl ConversationService {
    /// Forks a conversation from one of its finished sessions.
    ///
    /// The new conversation is owned by `who`, titled `"<title> (fork)"`,
    /// with the same metadata, workspace and default preset (or the forked
    /// session's preset when the source has none), and records the origin
    /// in its server-owned [`forked_from`](Conversation::forked_from). With
    /// input its first run starts at once from the forked session; without,
    /// its first later run continues from there.
    ///
    /// # Errors
    ///
    /// `NotFound` for a conversation `who` may not see, a session of another
    /// conversation or an unknown preset; [`ServiceError::Conflict`] for a
    /// session still running; [`ServiceError::Invalid`] for a failed
    /// session, empty input, or input for a session that waits for tool
    /// results; and what [`send`](Self::send) refuses.
    pub async fn fork(
        &self,
        who: &Principal,
        conversation_id: ConversationId,
        request: ForkRequest,
    ) -> Result<Forked, ServiceError> {
        let source = self.conversation(who, conversation_id).await?;
        let session = self.session_in(&source, request.session_id).await?;
        match session.status {
            SessionStatus::Committed
            | SessionStatus::Interrupted
            | SessionStatus::AwaitingToolResults => {}
            s if s.is_active() => {
                return Err(ServiceError::Conflict(
                    "the session has not finished; fork it once it has".into(),
                ));
            }
            _ => {
                return Err(ServiceError::Conflict(
                    "a failed session cannot be forked".into(),
                ));
            }
        }
        if let Some(input) = &request.input {
            check_input(input)?;
            if session.status == SessionStatus::AwaitingToolResults {
                return Err(ServiceError::Conflict(
                    "the session waits for tool results; fork without `input`, or resume it first"
                        .into(),
                ));
            }
        }
        let preset = match request.preset_id {
            Some(id) => Some(self.inner.store.get_preset(id).await?),
            None => None,
        };

        let mut new = NewConversation::new(who.user_id())
            .with_metadata(source.metadata.clone())
            .with_forked_from(ForkOrigin::new(source.id, session.id));
        if let Some(title) = &source.title {
            new = new.with_title(format!("{title} (fork)"));
        }
        if let Some(ws) = source.workspace_id {
            new = new.with_workspace(ws);
        }
        if let Some(default) = source.default_preset.or(session.preset_id) {
            new = new.with_default_preset(default);
        }
        let conversation = self.inner.store.create_conversation(new).await?;
        self.inner.feed.publish(super::FeedNotice::Updated {
            conversation_id: conversation.id,
        });

        let Some(input) = request.input else {
            return Ok(Forked {
                conversation,
                run: None,
            });
        };
        let run = self
            .launch(Launch {
                conversation: &conversation,
                preset_id: preset.as_ref().map(|p| p.id),
                preset,
                parent: Some(session),
                input,
                resume: Vec::new(),
                session_id: None,
                overrides: crate::agent::RunOverrides::default(),
                notices: Vec::new(),
            })
            .await?;
        Ok(Forked {
            conversation,
            run: Some(run),
        })
    }
}
