//! [`StateStore`]: everything the runtime persists, as small traits by
//! concern.
//!
//! | trait | holds |
//! | --- | --- |
//! | [`UserStore`] | users and their API keys |
//! | [`CatalogStore`] | presets and workspaces |
//! | [`ConversationStore`] | conversations: listing, metadata, search |
//! | [`SessionStore`] | sessions (runs) and their log: messages, events, history |
//! | [`MailboxStore`] | results background runs leave for a conversation |
//! | [`GatewayStore`] | the chat gateway's bindings, pairings and delivery marks |
//! | [`ProviderStore`] | provider profiles added from Settings (API keys sealed) |
//! | [`MemoryRecords`] | users' long-term memories |
//! | [`TaskStore`] | users' scheduled tasks and the claim of each slot |
//! | [`StoreHealth`] | `ping` |
//!
//! [`StateStore`] is their union, implemented for every type that
//! implements all ten, so callers keep one handle, `Arc<dyn StateStore>`;
//! `use netherbrain_core::store::prelude::*` brings the methods into scope.
//! [`StoreParts`] composes a store from one implementation per concern, so
//! a wrapper that changes one concern implements only that trait.
//!
//! [`MemoryStore`] is a complete in-memory implementation;
//! `netherbrain-store` provides SQLite and Postgres. Every backend checks
//! its input with the [`validate`] function for the record before writing.
//! With the `testing` feature, [`conformance`] holds the test suite every
//! backend must pass.
//!
//! # Example
//!
//! A user starts a conversation; one run stores its input, streams an
//! event and commits:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
//! use netherbrain_core::store::prelude::*;
//! use netherbrain_core::store::{
//!     MemoryStore, NewConversation, NewSession, NewUser, SessionAppend, SessionFinish,
//!     StoreError, UserRole,
//! };
//! use netherbrain_core::{AgentEvent, EventEnvelope, Message, SessionStatus};
//!
//! let store = MemoryStore::new();
//! let user = store.create_user(NewUser::new("ada", UserRole::User)).await?;
//! let conversation = store
//!     .create_conversation(NewConversation::new(user.id).with_title("Questions"))
//!     .await?;
//!
//! // The input is durable once `create_session` returns.
//! let session = store
//!     .create_session(NewSession::new(conversation.id, vec![Message::user("2 + 2?")]))
//!     .await?;
//! // Only one run per conversation at a time.
//! let second = store.create_session(NewSession::new(conversation.id, vec![])).await;
//! assert_eq!(second.unwrap_err(), StoreError::Busy { active: session.id });
//!
//! let event = AgentEvent::TextMessageContent { message_id: "m1".into(), delta: "4".into() };
//! store
//!     .append(
//!         session.id,
//!         SessionAppend::new(
//!             vec![Message::assistant("4")],
//!             vec![EventEnvelope::new(session.id, 1, event)],
//!         ),
//!     )
//!     .await?;
//! store.finish_session(session.id, SessionFinish::new(SessionStatus::Committed)).await?;
//!
//! let history = store.session_history(session.id).await?;
//! assert_eq!(history.iter().map(Message::text).collect::<Vec<_>>(), ["2 + 2?", "4"]);
//! assert_eq!(store.last_event_seq(session.id).await?, 1);
//! # Ok(())
//! # }
//! ```

#[cfg(any(feature = "testing", doc))]
pub mod conformance;
mod cursor;
mod error;
mod gateway;
mod memories;
mod memory;
mod parts;
mod providers;
mod records;
mod tasks;
mod usage;
pub mod validate;

use std::fmt::Debug;

use async_trait::async_trait;

pub use cursor::ConversationCursor;
pub use error::{StoreError, StoreResult};
pub use gateway::{
    ChatBinding, GatewayIdentity, GatewayStore, NewChatBinding, NewPairing, PairingRequest,
};
pub use memories::{
    MemoryPatch, MemoryQuery, MemoryRecord, MemoryRecords, NewMemory, check_memory_room, cosine,
    memory_full_message, rank_memories,
};
pub use memory::MemoryStore;
pub use parts::StoreParts;
pub use providers::{
    NewStoredProvider, ProviderPatch, ProviderStore, SealedSecret, StoredProvider,
};

pub use records::*;
pub use tasks::{NewTask, ScheduledTask, TaskPatch, TaskRun, TaskStore, tasks_full_message};
pub use usage::{SessionUsage, UsageQuery};

use chrono::{DateTime, Utc};

use crate::event::{AgentEvent, EventEnvelope, RunResult};
use crate::ids::{ApiKeyId, ConversationId, EventSeq, PresetId, SessionId, UserId, WorkspaceId};
use crate::message::Message;
use crate::session::SessionStatus;
use validate::MAX_SESSION_CHAIN;

// ---- the traits, one per concern ----

/// Whether the backend answers: the health check.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::store::{MemoryStore, StoreHealth};
/// MemoryStore::new().ping().await?;
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait StoreHealth: Send + Sync + Debug {
    /// Checks the backend is reachable.
    async fn ping(&self) -> StoreResult<()>;
}

/// Users and their API keys.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::store::{MemoryStore, NewApiKey, NewUser, UserRole, UserStore};
///
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
/// store.create_api_key(NewApiKey::new(ada.id, "laptop", "nb_ab12", "hash")).await?;
/// assert_eq!(store.get_api_key_by_prefix("nb_ab12").await?.user_id, ada.id);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait UserStore: Send + Sync + Debug {
    /// Creates a user. Duplicate usernames conflict.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;
    /// Gets a user by id.
    async fn get_user(&self, id: UserId) -> StoreResult<User>;
    /// Gets a user by username.
    async fn get_user_by_username(&self, username: &str) -> StoreResult<User>;
    /// Lists all users, ordered by username.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Changes a user.
    async fn update_user(&self, id: UserId, patch: UserPatch) -> StoreResult<User>;
    /// Number of users (to decide whether to bootstrap an admin).
    async fn count_users(&self) -> StoreResult<u64>;

    /// Stores a new API key. Duplicate prefixes conflict.
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey>;
    /// Finds a key by its visible prefix (revoked and expired keys too).
    async fn get_api_key_by_prefix(&self, prefix: &str) -> StoreResult<ApiKey>;
    /// A user's keys, newest first.
    async fn list_api_keys(&self, user_id: UserId) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key; revoking twice is a conflict.
    async fn revoke_api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey>;
}

/// The catalog: presets and workspaces.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::PresetConfig;
/// use netherbrain_core::store::{CatalogStore, MemoryStore, NewPreset, NewWorkspace};
///
/// let store = MemoryStore::new();
/// store.create_preset(NewPreset::new("coder", PresetConfig::new("openai", "gpt-4o"))).await?;
/// store.create_workspace(NewWorkspace::new("home")).await?;
/// assert_eq!(store.get_preset_by_name("coder").await?.config.model, "gpt-4o");
/// assert_eq!(store.list_workspaces().await?.len(), 1);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait CatalogStore: Send + Sync + Debug {
    /// Creates a preset. Duplicate names conflict.
    async fn create_preset(&self, preset: NewPreset) -> StoreResult<Preset>;
    /// Gets a preset by id.
    async fn get_preset(&self, id: PresetId) -> StoreResult<Preset>;
    /// Gets a preset by name.
    async fn get_preset_by_name(&self, name: &str) -> StoreResult<Preset>;
    /// Lists presets by name.
    async fn list_presets(&self) -> StoreResult<Vec<Preset>>;
    /// Changes a preset.
    async fn update_preset(&self, id: PresetId, patch: PresetPatch) -> StoreResult<Preset>;
    /// Deletes a preset; a conflict while a conversation names it as default.
    async fn delete_preset(&self, id: PresetId) -> StoreResult<()>;

    /// Creates a workspace. Duplicate names conflict.
    async fn create_workspace(&self, workspace: NewWorkspace) -> StoreResult<Workspace>;
    /// Gets a workspace.
    async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace>;
    /// Lists workspaces by name.
    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>>;
    /// Changes a workspace (metadata is merged).
    async fn update_workspace(
        &self,
        id: WorkspaceId,
        patch: WorkspacePatch,
    ) -> StoreResult<Workspace>;
    /// Deletes a workspace; a conflict while conversations belong to it.
    async fn delete_workspace(&self, id: WorkspaceId) -> StoreResult<()>;
}

/// Conversations: creating, reading, listing, changing and searching them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::store::prelude::*;
/// use netherbrain_core::store::{ConversationQuery, MemoryStore, NewConversation, NewUser, UserRole};
///
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
/// store.create_conversation(NewConversation::new(ada.id).with_title("Rust lifetimes")).await?;
/// let page = store.list_conversations(ConversationQuery::for_owner(ada.id)).await?;
/// assert_eq!(page.items.len(), 1);
/// assert_eq!(store.search_conversations(Some(ada.id), "lifetimes", 10).await?.len(), 1);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait ConversationStore: Send + Sync + Debug {
    /// Creates a conversation. The owner, workspace and preset must exist.
    async fn create_conversation(&self, conversation: NewConversation)
    -> StoreResult<Conversation>;
    /// Gets a conversation.
    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Conversation>;
    /// Lists conversations, newest activity first (ties: higher id first),
    /// one page at a time, paged by a keyset [`ConversationCursor`]. A
    /// malformed cursor or a `limit` outside 1–200 is
    /// [`StoreError::Invalid`]; `status: None` lists every status.
    async fn list_conversations(&self, query: ConversationQuery)
    -> StoreResult<Page<Conversation>>;
    /// Changes a conversation (metadata is shallow-merged).
    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> StoreResult<Conversation>;
    /// Full-text search over title, summary and message text, best match
    /// first; `owner` restricts to one user's conversations. Every word of
    /// the query must match a word's beginning (case-insensitively); title
    /// matches rank before matches in message text only. An empty or
    /// over-long query and a `limit` outside 1–200 are
    /// [`StoreError::Invalid`].
    async fn search_conversations(
        &self,
        owner: Option<UserId>,
        query: &str,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>>;
}

/// Sessions (runs) and their log: messages, events and the history a run
/// sees.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::store::prelude::*;
/// use netherbrain_core::store::{MemoryStore, NewConversation, NewSession, NewUser, SessionFinish, UserRole};
/// use netherbrain_core::{Message, SessionStatus};
///
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
/// let c = store.create_conversation(NewConversation::new(ada.id)).await?;
/// let first = store.create_session(NewSession::new(c.id, vec![Message::user("hi")])).await?;
/// store.finish_session(first.id, SessionFinish::new(SessionStatus::Committed)).await?;
/// let next = store
///     .create_session(NewSession::new(c.id, vec![Message::user("again")]).with_parent(Some(first.id)))
///     .await?;
/// assert_eq!(store.session_history(next.id).await?.len(), 2);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait SessionStore: Send + Sync + Debug {
    /// Creates a `running` session and stores its input as its first
    /// messages, atomically, and bumps the conversation's
    /// `last_activity_at`. [`StoreError::Busy`] if the conversation already
    /// has a `created` or `running` session; `NotFound` for an unknown
    /// conversation, parent or preset; a conflict for a taken id.
    async fn create_session(&self, session: NewSession) -> StoreResult<Session>;
    /// Gets a session.
    async fn get_session(&self, id: SessionId) -> StoreResult<Session>;
    /// A conversation's sessions, oldest first.
    async fn list_sessions(&self, conversation_id: ConversationId) -> StoreResult<Vec<Session>>;
    /// The conversation's newest session (the last of
    /// [`list_sessions`](Self::list_sessions)), if it has any; one query on
    /// the SQL backends. An unknown conversation has none.
    async fn latest_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        match self.list_sessions(conversation_id).await {
            Ok(mut sessions) => Ok(sessions.pop()),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
    /// The conversation's running session, if any.
    async fn active_session(&self, conversation_id: ConversationId)
    -> StoreResult<Option<Session>>;
    /// Moves a running session to a terminal status, storing the outcome and
    /// `finished_at`. A conflict if it is not running any more;
    /// [`StoreError::Invalid`] if `finish.status` is not terminal.
    async fn finish_session(&self, id: SessionId, finish: SessionFinish) -> StoreResult<Session>;
    /// Extends the leases `owner` holds on these sessions to `until`, for
    /// those still `created` or `running` under that owner; returns the
    /// sessions renewed (one recovered or taken over meanwhile is left out).
    async fn renew_leases(
        &self,
        owner: &str,
        sessions: &[SessionId],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>>;
    /// Recovers sessions left behind by a dead process: every session still
    /// `created` or `running` whose lease expired by `now` (or that has
    /// none) becomes interrupted, with `finished_at`, and gets a terminal
    /// event ([`recovered_event`]) after its last one, in one transaction.
    /// Returns their ids, oldest first. What they produced is kept.
    async fn recover_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<SessionId>>;
    /// The sessions [`recover_sessions`](Self::recover_sessions) would
    /// recover at `now`, oldest first, without changing them: a replica
    /// copies what the cluster still holds of their events into their logs
    /// first.
    async fn expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<SessionId>>;

    /// Appends messages and events to a running session in one
    /// transaction: all or nothing. A conflict if the session is not
    /// running or the events' sequence numbers are not strictly increasing
    /// and above the stored ones; [`StoreError::Invalid`] if an event's
    /// `session_id` is another session's or its sequence number is above
    /// [`validate::MAX_EVENT_SEQ`].
    async fn append(&self, session_id: SessionId, append: SessionAppend) -> StoreResult<()>;
    /// The session's own messages (input first), in order.
    async fn session_messages(&self, session_id: SessionId) -> StoreResult<Vec<Message>>;
    /// Events with sequence numbers above `after`, at most `limit`, in order
    /// (`after = 0` starts at the first event).
    async fn list_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
        limit: u32,
    ) -> StoreResult<Vec<EventEnvelope>>;
    /// The highest stored event sequence number of a session (0 if none).
    async fn last_event_seq(&self, session_id: SessionId) -> StoreResult<EventSeq>;
    /// What the sessions the query selects spent, oldest first: token
    /// budgets and the usage API add these up per day.
    async fn session_usage(&self, query: UsageQuery) -> StoreResult<Vec<SessionUsage>>;

    /// The history a session sees: the messages of its ancestors (following
    /// `parent_session_id`, oldest first) followed by its own.
    ///
    /// The default walks the chain with [`get_session`](Self::get_session)
    /// and [`session_messages`](Self::session_messages) (2 calls per
    /// ancestor); backends that can answer in one query override it.
    async fn session_history(&self, session_id: SessionId) -> StoreResult<Vec<Message>> {
        let mut chain = Vec::new();
        let mut next = Some(session_id);
        while let Some(id) = next {
            if chain.len() > MAX_SESSION_CHAIN {
                return Err(StoreError::Backend("session parent chain too long".into()));
            }
            let session = self.get_session(id).await?;
            next = session.parent_session_id;
            chain.push(id);
        }
        let mut history = Vec::new();
        for id in chain.into_iter().rev() {
            history.extend(self.session_messages(id).await?);
        }
        Ok(history)
    }
}

/// Results background runs leave for a conversation.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::store::prelude::*;
/// use netherbrain_core::store::{MemoryStore, NewConversation, NewMailboxEntry, NewUser, UserRole};
///
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
/// let c = store.create_conversation(NewConversation::new(ada.id)).await?;
/// store.post_mailbox(NewMailboxEntry::new(c.id, None, serde_json::json!({"done": true}))).await?;
/// assert_eq!(store.take_mailbox(c.id).await?.len(), 1);
/// assert!(store.take_mailbox(c.id).await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait MailboxStore: Send + Sync + Debug {
    /// Leaves a result for a conversation.
    async fn post_mailbox(&self, entry: NewMailboxEntry) -> StoreResult<MailboxEntry>;
    /// Takes (marks delivered and returns) the conversation's undelivered
    /// entries, oldest first.
    async fn take_mailbox(&self, conversation_id: ConversationId)
    -> StoreResult<Vec<MailboxEntry>>;
}

/// Everything the runtime persists: the union of the concern traits, so
/// callers hold one handle (`Arc<dyn StateStore>`).
///
/// Implemented for every type that implements all of them; a backend
/// implements the concern traits, never this one. Calling a method through
/// the handle needs its trait in scope: `use netherbrain_core::store::prelude::*`.
///
/// Contract (proven for every backend by [`conformance`]):
/// - unknown ids return [`StoreError::NotFound`]; duplicate unique names and
///   deleting referenced rows return [`StoreError::Conflict`]; invalid input
///   (see [`validate`]) returns [`StoreError::Invalid`] and changes nothing;
/// - every multi-row change is one transaction;
/// - at most one `running` session per conversation, enforced atomically:
///   a second [`create_session`](SessionStore::create_session) returns
///   [`StoreError::Busy`] naming the active one;
/// - a session's input is durable when `create_session` returns;
/// - event sequence numbers are unique and increasing per session;
/// - timestamps the store sets have microsecond precision, and a row read
///   back equals the row the creating call returned;
/// - every backend validates input by calling the [`validate`] function
///   for the record before it writes, so all reject the same input.
///
/// ```
/// use std::sync::Arc;
/// use netherbrain_core::store::{MemoryStore, StateStore};
///
/// let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
/// # let _ = store;
/// ```
pub trait StateStore:
    StoreHealth
    + UserStore
    + CatalogStore
    + ConversationStore
    + SessionStore
    + MailboxStore
    + GatewayStore
    + ProviderStore
    + MemoryRecords
    + TaskStore
{
}

impl<T> StateStore for T where
    T: StoreHealth
        + UserStore
        + CatalogStore
        + ConversationStore
        + SessionStore
        + MailboxStore
        + GatewayStore
        + ProviderStore
        + MemoryRecords
        + TaskStore
{
}

/// The store traits, for calling store methods:
/// `use netherbrain_core::store::prelude::*`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::store::prelude::*;
/// use netherbrain_core::store::MemoryStore;
///
/// assert_eq!(MemoryStore::new().count_users().await?, 0);
/// # Ok(())
/// # }
/// ```
pub mod prelude {
    pub use super::{
        CatalogStore, ConversationStore, GatewayStore, MailboxStore, MemoryRecords, ProviderStore,
        SessionStore, StateStore, StoreHealth, TaskStore, UserStore,
    };
}

/// The terminal event recovery appends to a session a dead process left
/// running: `RUN_FINISHED` with status `interrupted`, numbered after the
/// session's last event, so a stream resumed after the crash ends clearly.
///
/// ```
/// use netherbrain_core::store::recovered_event;
/// use netherbrain_core::{AgentEvent, ConversationId, SessionId, SessionStatus};
/// let e = recovered_event(SessionId::new(), ConversationId::new(), 9);
/// assert_eq!(e.seq, 10);
/// assert!(matches!(e.event, AgentEvent::RunFinished { ref result, .. } if result.status == SessionStatus::Interrupted));
/// ```
#[must_use]
pub fn recovered_event(
    session_id: SessionId,
    conversation_id: ConversationId,
    last_seq: EventSeq,
) -> EventEnvelope {
    EventEnvelope::new(
        session_id,
        last_seq + 1,
        AgentEvent::RunFinished {
            thread_id: conversation_id,
            run_id: session_id,
            result: RunResult::new(SessionStatus::Interrupted),
        },
    )
}
