//! The conversation service: the use-cases every surface calls.
//!
//! The HTTP API, the WebSocket, the OpenAI-compatible endpoint, the CLI and
//! the chat gateway are thin adapters over one [`ConversationService`]:
//! they parse their input, call it with the acting [`Principal`] and map
//! its [`ServiceError`]. Ownership and admin checks happen here, once:
//! another user's conversation or session is `NotFound`, as if it did not
//! exist.
//!
//! | use-case | method |
//! | --- | --- |
//! | start a run (new or existing conversation; steer or refuse when busy) | [`send`](ConversationService::send) |
//! | answer pending tool calls | [`resume`](ConversationService::resume) |
//! | stop / steer a run | [`interrupt`](ConversationService::interrupt), [`steer`](ConversationService::steer) |
//! | branch from a finished session | [`fork`](ConversationService::fork) |
//! | paged history | [`turns`](ConversationService::turns) |
//! | name and summarise | [`summarize`](ConversationService::summarize) |
//! | every run's events, live and replayed | [`follow`](ConversationService::follow), [`events`](ConversationService::events) |
//! | conversations themselves | [`create`](ConversationService::create), [`update`](ConversationService::update), [`list`](ConversationService::list), [`search`](ConversationService::search), [`detail`](ConversationService::detail) |
//! | presets from a TOML document | [`import_presets`](ConversationService::import_presets) |
//! | a subagent for a tool call (the `delegate` tool) | [`delegate`](ConversationService::delegate) |
//! | tokens spent per day, and the daily budgets runs are checked against | [`daily_usage`](ConversationService::daily_usage) |
//! | the user's scheduled tasks | [`list_tasks`](ConversationService::list_tasks), [`create_task`](ConversationService::create_task), [`update_task`](ConversationService::update_task), [`delete_task`](ConversationService::delete_task), [`run_task`](ConversationService::run_task) |
//! | the user's long-term memories | [`list_memories`](ConversationService::list_memories), [`create_memory`](ConversationService::create_memory), [`update_memory`](ConversationService::update_memory), [`delete_memory`](ConversationService::delete_memory) |
//!
//! API keys are managed by [`crate::auth`].
//!
//! ```
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use netherbrain_core::agent::AgentCatalog;
//! use netherbrain_core::auth::Principal;
//! use netherbrain_core::conversation::{ConversationService, SendMessage};
//! use netherbrain_core::store::{MemoryStore, NewPreset, NewUser, UserRole};
//! use netherbrain_core::store::prelude::*;
//! use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
//! use netherbrain_core::{AgentEvent, Message, PresetConfig};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let ada = store.create_user(NewUser::new("ada", UserRole::User)).await.unwrap();
//! let preset = store
//!     .create_preset(NewPreset::new("helper", PresetConfig::new("local", "tiny")))
//!     .await
//!     .unwrap();
//! let provider = Arc::new(ScriptedProvider::new([ScriptedResponse::text("Hello!")]));
//! let catalog = AgentCatalog::new().with_provider("local", provider, vec!["tiny".into()]);
//! let service = ConversationService::new(store, Arc::new(catalog));
//!
//! let who = Principal::of(&ada);
//! let sent = service
//!     .send(&who, SendMessage::new_conversation(preset.id, vec![Message::user("Hi")]))
//!     .await
//!     .unwrap();
//! let run = sent.handle();
//! let events: Vec<_> = service.events(&who, run.session_id, 0).await.unwrap().collect().await;
//! assert!(matches!(events.last().unwrap().event, AgentEvent::RunFinished { .. }));
//! # });
//! ```

mod budget;
mod delegate;
mod error;
mod follow;
mod fork;
mod memories;
mod presets;
pub mod providers;
mod quota;
mod send;
mod summarize;
mod tasks;
mod turns;
mod workspaces;

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

pub use self::budget::{DayUsage, MAX_USAGE_DAYS, TokenBudgets, UsageReport};
pub use self::delegate::{
    DelegateLimits, Delegated, Delegation, SubagentResult, WeakConversationService,
};
pub use self::error::ServiceError;
pub use self::follow::{ConversationFeed, FeedNotice, FollowFrom, LOCAL_RECHECK, LocalFeed};
pub use self::fork::{ForkRequest, Forked};
pub use self::presets::{ImportAction, ImportedPreset, PresetDocument, parse_preset_documents};
pub use self::send::{RunTarget, SendMessage, Sent, WhenBusy};
pub use self::turns::{DEFAULT_TURNS_LIMIT, MAX_TURNS_LIMIT, Turn, TurnPage, TurnsQuery};

use crate::agent::AgentCatalog;
use crate::auth::Principal;
use crate::ids::{ConversationId, SessionId};
use crate::memory::{Memories, MemoryConfig};
use crate::runtime::Runtime;
use crate::store::{
    Conversation, ConversationPatch, ConversationQuery, NewConversation, Page, Session, StateStore,
    StoreError,
};
use crate::tasks::{TaskConfig, Tasks};
use crate::usage::UsageByModel;
use crate::workspace::WorkspaceRoots;

/// The use-cases of conversations; see the [module docs](self).
///
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct ConversationService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn StateStore>,
    runtime: Runtime,
    /// Replaced whole when the operator reloads providers; a run keeps the
    /// catalog it started with.
    catalog: RwLock<Arc<AgentCatalog>>,
    feed: Arc<dyn ConversationFeed>,
    workspace_roots: WorkspaceRoots,
    quota: quota::RunQuota,
    /// Subagents going per parent run.
    children: delegate::Children,
    memories: Memories,
    tasks: Tasks,
    budgets: TokenBudgets,
}

impl fmt::Debug for ConversationService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConversationService")
            .field("store", &self.inner.store)
            .field("catalog", &self.catalog())
            .field("feed", &self.inner.feed)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ConversationService`].
///
/// ```
/// use std::sync::Arc;
/// use netherbrain_core::agent::AgentCatalog;
/// use netherbrain_core::conversation::{ConversationService, LocalFeed};
/// use netherbrain_core::runtime::Runtime;
/// use netherbrain_core::store::MemoryStore;
/// let store = Arc::new(MemoryStore::new());
/// let service = ConversationService::builder(store.clone())
///     .runtime(Runtime::new(store))
///     .catalog(Arc::new(AgentCatalog::new()))
///     .feed(Arc::new(LocalFeed::new()))
///     .build();
/// # let _ = service;
/// ```
#[derive(Debug)]
#[must_use]
pub struct ServiceBuilder {
    store: Arc<dyn StateStore>,
    runtime: Option<Runtime>,
    catalog: Arc<AgentCatalog>,
    feed: Option<Arc<dyn ConversationFeed>>,
    workspace_roots: WorkspaceRoots,
    max_runs_per_user: Option<usize>,
    memories: Option<Memories>,
    tasks: Option<Tasks>,
    budgets: TokenBudgets,
}

impl ServiceBuilder {
    /// Allows each user at most `limit` runs going at once in their
    /// conversations (whoever starts them); more are refused with
    /// [`ServiceError::TooManyRuns`]. Default: no limit.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use netherbrain_core::conversation::ConversationService;
    /// # let store = Arc::new(netherbrain_core::store::MemoryStore::new());
    /// let service = ConversationService::builder(store).max_runs_per_user(Some(4)).build();
    /// # let _ = service;
    /// ```
    pub fn max_runs_per_user(mut self, limit: Option<usize>) -> Self {
        self.max_runs_per_user = limit;
        self
    }

    /// Runs agents on this runtime (it must use the same store); by default
    /// a new one over the store.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The providers and tool sets presets can use (default: empty).
    pub fn catalog(mut self, catalog: Arc<AgentCatalog>) -> Self {
        self.catalog = catalog;
        self
    }

    /// How followers hear of new runs (default: a [`LocalFeed`]).
    pub fn feed(mut self, feed: Arc<dyn ConversationFeed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Where workspaces' project directories may lie (default: nowhere,
    /// so workspaces have no project directories).
    pub fn workspace_roots(mut self, roots: WorkspaceRoots) -> Self {
        self.workspace_roots = roots;
        self
    }

    /// The users' long-term memories (their limits and embeddings; it must
    /// use the same store); by default [`MemoryConfig::default`] without
    /// embeddings.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use netherbrain_core::conversation::ConversationService;
    /// use netherbrain_core::memory::{Memories, MemoryConfig};
    /// let store = Arc::new(netherbrain_core::store::MemoryStore::new());
    /// let memories = Memories::new(store.clone(), MemoryConfig::default().with_limits(10, 200));
    /// let service = ConversationService::builder(store).memories(memories).build();
    /// assert_eq!(service.memories().config().max_per_user, 10);
    /// ```
    pub fn memories(mut self, memories: Memories) -> Self {
        self.memories = Some(memories);
        self
    }

    /// The users' scheduled tasks (their limits and clock; it must use the
    /// same store); by default [`TaskConfig::default`] on the system clock.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use netherbrain_core::conversation::ConversationService;
    /// use netherbrain_core::tasks::{TaskConfig, Tasks};
    /// let store = Arc::new(netherbrain_core::store::MemoryStore::new());
    /// let tasks = Tasks::new(store.clone(), TaskConfig::default().with_max_per_user(5));
    /// let service = ConversationService::builder(store).tasks(tasks).build();
    /// assert_eq!(service.tasks().config().max_per_user, 5);
    /// ```
    pub fn tasks(mut self, tasks: Tasks) -> Self {
        self.tasks = Some(tasks);
        self
    }

    /// The operator's daily token caps (default: none).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use netherbrain_core::conversation::{ConversationService, TokenBudgets};
    /// let store = Arc::new(netherbrain_core::store::MemoryStore::new());
    /// let budgets = TokenBudgets::default().with_user_daily_tokens(Some(100_000));
    /// let service = ConversationService::builder(store).token_budgets(budgets).build();
    /// assert_eq!(service.token_budgets().user_daily_tokens, Some(100_000));
    /// ```
    pub fn token_budgets(mut self, budgets: TokenBudgets) -> Self {
        self.budgets = budgets;
        self
    }

    /// Builds the service and connects the feed to the runtime, so every run
    /// the runtime starts is announced. Without [`feed`](Self::feed), the
    /// runtime's [cluster](crate::cluster::Cluster::feed) feed, else a
    /// [`LocalFeed`].
    pub fn build(self) -> ConversationService {
        let runtime = self
            .runtime
            .unwrap_or_else(|| Runtime::new(self.store.clone()));
        // A runtime in a cluster hears of the other replicas' runs through
        // the cluster's feed, when it has one.
        let feed = self
            .feed
            .or_else(|| runtime.cluster().and_then(|c| c.feed()))
            .unwrap_or_else(|| Arc::new(LocalFeed::new()));
        let memories = self
            .memories
            .unwrap_or_else(|| Memories::new(self.store.clone(), MemoryConfig::default()));
        let tasks = self
            .tasks
            .unwrap_or_else(|| Tasks::new(self.store.clone(), TaskConfig::default()));
        runtime.observe(Arc::new(follow::FeedObserver::new(feed.clone())));
        ConversationService {
            inner: Arc::new(Inner {
                store: self.store,
                runtime,
                catalog: RwLock::new(self.catalog),
                feed,
                workspace_roots: self.workspace_roots,
                quota: quota::RunQuota::new(self.max_runs_per_user),
                children: delegate::Children::default(),
                memories,
                tasks,
                budgets: self.budgets,
            }),
        }
    }
}

/// A conversation with what is going on in it.
///
/// ```
/// # use netherbrain_core::conversation::ConversationDetail;
/// # fn f(d: ConversationDetail) {
/// let running = d.active_session.is_some();
/// # let _ = running; }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConversationDetail {
    /// The conversation.
    pub conversation: Conversation,
    /// Its running (or waiting to run) session, if any.
    pub active_session: Option<Session>,
    /// Tokens spent by all its sessions, per model.
    pub usage: UsageByModel,
}

impl ConversationService {
    /// A service over `store` with a new runtime and a [`LocalFeed`].
    #[must_use]
    pub fn new(store: Arc<dyn StateStore>, catalog: Arc<AgentCatalog>) -> Self {
        Self::builder(store).catalog(catalog).build()
    }

    /// A builder, to choose the runtime and the feed.
    pub fn builder(store: Arc<dyn StateStore>) -> ServiceBuilder {
        ServiceBuilder {
            store,
            runtime: None,
            catalog: Arc::new(AgentCatalog::new()),
            feed: None,
            workspace_roots: WorkspaceRoots::default(),
            max_runs_per_user: None,
            memories: None,
            tasks: None,
            budgets: TokenBudgets::default(),
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    /// The session runtime.
    #[must_use]
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The providers and tool sets presets can use (the current catalog;
    /// see [`replace_catalog`](Self::replace_catalog)).
    #[must_use]
    pub fn catalog(&self) -> Arc<AgentCatalog> {
        self.inner
            .catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the catalog, e.g. after the operator changed the provider
    /// profiles: runs started from now on use the new one, runs going on
    /// keep the catalog they started with.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use netherbrain_core::agent::AgentCatalog;
    /// # use netherbrain_core::conversation::ConversationService;
    /// # use netherbrain_core::testing::ScriptedProvider;
    /// # let store = Arc::new(netherbrain_core::store::MemoryStore::new());
    /// let service = ConversationService::new(store, Arc::new(AgentCatalog::new()));
    /// assert!(service.catalog().profiles().is_empty());
    /// let provider = Arc::new(ScriptedProvider::new([]));
    /// let catalog = AgentCatalog::new().with_provider("local", provider, vec!["tiny".into()]);
    /// service.replace_catalog(Arc::new(catalog));
    /// assert_eq!(service.catalog().profiles().len(), 1);
    /// ```
    pub fn replace_catalog(&self, catalog: Arc<AgentCatalog>) {
        *self
            .inner
            .catalog
            .write()
            .unwrap_or_else(PoisonError::into_inner) = catalog;
    }

    /// Where workspaces' project directories may lie.
    #[must_use]
    pub fn workspace_roots(&self) -> &WorkspaceRoots {
        &self.inner.workspace_roots
    }

    /// The feed followers hear of new runs through.
    #[must_use]
    pub fn feed(&self) -> &Arc<dyn ConversationFeed> {
        &self.inner.feed
    }

    // ---- access ----

    /// The conversation, if `who` may see it (its owner or an admin).
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown conversation and for another user's.
    pub async fn conversation(
        &self,
        who: &Principal,
        id: ConversationId,
    ) -> Result<Conversation, ServiceError> {
        let conversation = self.inner.store.get_conversation(id).await?;
        if who.can_access(conversation.owner) {
            Ok(conversation)
        } else {
            Err(StoreError::not_found("conversation", id).into())
        }
    }

    /// The session and its conversation, if `who` may see them.
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown session and for another user's.
    pub async fn session(
        &self,
        who: &Principal,
        id: SessionId,
    ) -> Result<(Session, Conversation), ServiceError> {
        let not_found = || ServiceError::from(StoreError::not_found("session", id));
        let session = self.inner.store.get_session(id).await?;
        let conversation = match self
            .inner
            .store
            .get_conversation(session.conversation_id)
            .await
        {
            Ok(c) => c,
            Err(StoreError::NotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        if who.can_access(conversation.owner) {
            Ok((session, conversation))
        } else {
            Err(not_found())
        }
    }

    /// A session of this conversation (`NotFound` for one of another).
    async fn session_in(
        &self,
        conversation: &Conversation,
        id: SessionId,
    ) -> Result<Session, ServiceError> {
        match self.inner.store.get_session(id).await {
            Ok(s) if s.conversation_id == conversation.id => Ok(s),
            Ok(_) => Err(StoreError::not_found("session", id).into()),
            Err(e) => Err(e.into()),
        }
    }

    // ---- conversations ----

    /// Creates a conversation owned by `who` (whatever `new.owner` says; a
    /// fork origin cannot be set this way).
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown workspace or preset, `Forbidden` for a
    /// workspace `who` does not own (unless an admin), `Invalid` for bad
    /// fields or a reserved metadata key.
    pub async fn create(
        &self,
        who: &Principal,
        mut new: NewConversation,
    ) -> Result<Conversation, ServiceError> {
        new.owner = who.user_id();
        new.forked_from = None;
        new.delegated_from = None;
        if let Some(ws) = new.workspace_id {
            self.check_attach(who, ws).await?;
        }
        let conversation = self.inner.store.create_conversation(new).await?;
        self.inner.feed.publish(FeedNotice::Updated {
            conversation_id: conversation.id,
        });
        Ok(conversation)
    }

    /// Changes a conversation `who` may see.
    ///
    /// # Errors
    ///
    /// As [`conversation`](Self::conversation), and `Invalid` for bad
    /// fields.
    pub async fn update(
        &self,
        who: &Principal,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> Result<Conversation, ServiceError> {
        self.conversation(who, id).await?;
        let conversation = self.inner.store.update_conversation(id, patch).await?;
        self.inner.feed.publish(FeedNotice::Updated {
            conversation_id: id,
        });
        Ok(conversation)
    }

    /// A page of `who`'s own conversations (the query's owner is replaced).
    ///
    /// # Errors
    ///
    /// `Invalid` for a bad cursor or limit.
    pub async fn list(
        &self,
        who: &Principal,
        mut query: ConversationQuery,
    ) -> Result<Page<Conversation>, ServiceError> {
        query.owner = Some(who.user_id());
        Ok(self.inner.store.list_conversations(query).await?)
    }

    /// Full-text search over `who`'s own conversations.
    ///
    /// # Errors
    ///
    /// `Invalid` for an empty query or a bad limit.
    pub async fn search(
        &self,
        who: &Principal,
        query: &str,
        limit: u32,
    ) -> Result<Vec<Conversation>, ServiceError> {
        Ok(self
            .inner
            .store
            .search_conversations(Some(who.user_id()), query, limit)
            .await?)
    }

    /// The conversation with its active session and total usage.
    ///
    /// # Errors
    ///
    /// As [`conversation`](Self::conversation).
    pub async fn detail(
        &self,
        who: &Principal,
        id: ConversationId,
    ) -> Result<ConversationDetail, ServiceError> {
        let conversation = self.conversation(who, id).await?;
        let sessions = self.inner.store.list_sessions(id).await?;
        let mut usage = UsageByModel::default();
        for session in &sessions {
            usage.merge(&session.usage);
        }
        let active_session = sessions.into_iter().rev().find(|s| s.status.is_active());
        Ok(ConversationDetail {
            conversation,
            active_session,
            usage,
        })
    }
}
