//! [`RuntimeApi`]: the few runtime calls the bridge makes, implemented
//! in-process over the [`ConversationService`] ([`LocalRuntime`]) and
//! remotely over the typed HTTP client (`RemoteRuntime`, feature `remote`).

use async_trait::async_trait;
use futures::stream::BoxStream;
use netherbrain_core::agent::ToolDecision;
use netherbrain_core::auth::Principal;
use netherbrain_core::conversation::{
    ConversationService, FollowFrom, RunTarget, SendMessage, Sent, ServiceError,
};
use netherbrain_core::runtime::RuntimeError;
use netherbrain_core::store::{NewConversation, StoreError};
use netherbrain_core::{
    ConversationId, EventEnvelope, EventSeq, Message, PresetId, SessionId, UserId,
};

/// What went wrong calling the runtime.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The runtime cannot be reached (or is draining); retry later.
    #[error("runtime unavailable: {0}")]
    Unavailable(String),
    /// The thing asked for does not exist (or is not the user's).
    #[error("not found: {0}")]
    NotFound(String),
    /// The runtime refused the request.
    #[error("{0}")]
    Refused(String),
}

impl ApiError {
    /// Whether trying again later may succeed.
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(m) => Self::NotFound(m),
            ServiceError::Unavailable(m) => Self::Unavailable(m),
            ServiceError::Store(StoreError::NotFound { .. }) => Self::NotFound(e.to_string()),
            ServiceError::Store(StoreError::Unavailable(m)) => Self::Unavailable(m),
            ServiceError::Runtime(RuntimeError::Draining) => Self::Unavailable(e.to_string()),
            other => Self::Refused(other.to_string()),
        }
    }
}

/// What [`RuntimeApi::send`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// A new run started.
    Started(SessionId),
    /// A run was going: the message steers it.
    Steered(SessionId),
    /// A run is going that cannot be steered from here.
    Busy,
}

/// A conversation's latest session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Its id.
    pub id: SessionId,
    /// Whether it is still running.
    pub active: bool,
}

/// A preset by name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresetInfo {
    /// Its id.
    pub id: PresetId,
    /// Its name.
    pub name: String,
}

/// A stream of a conversation's events, in order; items are errors when
/// the runtime connection failed (the bridge reconnects).
pub type EventFeed = BoxStream<'static, Result<EventEnvelope, ApiError>>;

/// The runtime as the bridge sees it. `user` is the Netherbrain user a chat
/// acts as; implementations check ownership on the runtime's side.
#[async_trait]
pub trait RuntimeApi: Send + Sync + std::fmt::Debug {
    /// Creates an empty conversation for `user`.
    async fn create_conversation(
        &self,
        user: UserId,
        title: &str,
    ) -> Result<ConversationId, ApiError>;

    /// Sends a user message: a new run, or a steer when one is going.
    async fn send(
        &self,
        user: UserId,
        conversation: ConversationId,
        preset: Option<PresetId>,
        input: Vec<Message>,
    ) -> Result<SendOutcome, ApiError>;

    /// Interrupts the running session; `Ok(false)` when nothing runs.
    async fn interrupt(&self, user: UserId, conversation: ConversationId)
    -> Result<bool, ApiError>;

    /// Resumes a session that waits for tool decisions.
    async fn resume(
        &self,
        user: UserId,
        session: SessionId,
        decisions: Vec<ToolDecision>,
    ) -> Result<SessionId, ApiError>;

    /// The conversation's latest session.
    async fn latest_session(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<Option<SessionInfo>, ApiError>;

    /// The presets a chat can switch to.
    async fn presets(&self, user: UserId) -> Result<Vec<PresetInfo>, ApiError>;

    /// Every event of the conversation from a point on, including runs
    /// started later (by the chat or elsewhere): after `(session, seq)` when
    /// given, else from the conversation's first session.
    async fn follow(
        &self,
        user: UserId,
        conversation: ConversationId,
        after: Option<(SessionId, EventSeq)>,
    ) -> Result<EventFeed, ApiError>;
}

/// [`RuntimeApi`] inside the runtime process, over the conversation
/// service with the chat user's [`Principal`] (read from the store).
#[derive(Debug, Clone)]
pub struct LocalRuntime {
    service: ConversationService,
}

impl LocalRuntime {
    /// Over a service.
    #[must_use]
    pub fn new(service: ConversationService) -> Self {
        Self { service }
    }

    async fn principal(&self, user: UserId) -> Result<Principal, ApiError> {
        let user = self
            .service
            .store()
            .get_user(user)
            .await
            .map_err(|e| ApiError::from(ServiceError::from(e)))?;
        if !user.active {
            return Err(ApiError::Refused("the user is deactivated".into()));
        }
        Ok(Principal::of(&user))
    }
}

#[async_trait]
impl RuntimeApi for LocalRuntime {
    async fn create_conversation(
        &self,
        user: UserId,
        title: &str,
    ) -> Result<ConversationId, ApiError> {
        let who = self.principal(user).await?;
        let conversation = self
            .service
            .create(&who, NewConversation::new(user).with_title(title))
            .await?;
        Ok(conversation.id)
    }

    async fn send(
        &self,
        user: UserId,
        conversation: ConversationId,
        preset: Option<PresetId>,
        input: Vec<Message>,
    ) -> Result<SendOutcome, ApiError> {
        let who = self.principal(user).await?;
        let message = SendMessage::to(conversation, input)
            .with_preset(preset)
            .steer_when_busy();
        match self.service.send(&who, message).await {
            Ok(Sent::Started(handle)) => Ok(SendOutcome::Started(handle.session_id)),
            Ok(Sent::Steered(handle)) => Ok(SendOutcome::Steered(handle.session_id)),
            Ok(_) => Ok(SendOutcome::Busy),
            Err(ServiceError::Runtime(RuntimeError::Busy { .. })) => Ok(SendOutcome::Busy),
            Err(e) => Err(e.into()),
        }
    }

    async fn interrupt(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<bool, ApiError> {
        let who = self.principal(user).await?;
        match self
            .service
            .interrupt(&who, RunTarget::Conversation(conversation))
            .await
        {
            Ok(_) => Ok(true),
            Err(ServiceError::Runtime(
                RuntimeError::NoActiveSession(_) | RuntimeError::NotRunning(_),
            )) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn resume(
        &self,
        user: UserId,
        session: SessionId,
        decisions: Vec<ToolDecision>,
    ) -> Result<SessionId, ApiError> {
        let who = self.principal(user).await?;
        Ok(self
            .service
            .resume(&who, session, decisions)
            .await?
            .session_id)
    }

    async fn latest_session(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<Option<SessionInfo>, ApiError> {
        let who = self.principal(user).await?;
        self.service.conversation(&who, conversation).await?;
        let latest = self
            .service
            .store()
            .latest_session(conversation)
            .await
            .map_err(ServiceError::from)?;
        Ok(latest.map(|s| SessionInfo {
            id: s.id,
            active: s.status.is_active(),
        }))
    }

    async fn presets(&self, _user: UserId) -> Result<Vec<PresetInfo>, ApiError> {
        let presets = self
            .service
            .store()
            .list_presets()
            .await
            .map_err(ServiceError::from)?;
        Ok(presets
            .into_iter()
            .map(|p| PresetInfo {
                id: p.id,
                name: p.name,
            })
            .collect())
    }

    async fn follow(
        &self,
        user: UserId,
        conversation: ConversationId,
        after: Option<(SessionId, EventSeq)>,
    ) -> Result<EventFeed, ApiError> {
        use futures::StreamExt;
        let who = self.principal(user).await?;
        let from = match after {
            Some((session_id, after)) => FollowFrom::After { session_id, after },
            None => FollowFrom::Start,
        };
        let stream = self.service.follow(&who, conversation, from).await?;
        Ok(stream.map(Ok).boxed())
    }
}
