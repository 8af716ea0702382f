//! [`StoreParts`]: a [`StateStore`](super::StateStore) put together from one
//! implementation per concern.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    ApiKey, CatalogStore, Conversation, ConversationPatch, ConversationQuery, ConversationStore,
    MailboxEntry, MailboxStore, NewApiKey, NewConversation, NewMailboxEntry, NewPreset, NewSession,
    NewUser, NewWorkspace, Page, Preset, PresetPatch, Session, SessionAppend, SessionFinish,
    SessionStore, StateStore, StoreHealth, StoreResult, User, UserPatch, UserStore, Workspace,
    WorkspacePatch,
};
use crate::event::EventEnvelope;
use crate::ids::{ApiKeyId, ConversationId, EventSeq, PresetId, SessionId, UserId, WorkspaceId};
use crate::message::Message;
use chrono::{DateTime, Utc};

use super::{
    ChatBinding, GatewayIdentity, GatewayStore, NewChatBinding, NewPairing, NewStoredProvider,
    PairingRequest, ProviderPatch, ProviderStore, StoredProvider,
};
use super::{MemoryPatch, MemoryQuery, MemoryRecord, MemoryRecords, NewMemory};
use super::{NewTask, ScheduledTask, TaskPatch, TaskRun, TaskStore};
use crate::ids::{MemoryId, TaskId};

/// A store composed of one part per concern, each an `Arc<dyn …>` of that
/// concern's trait; every call is delegated to its part.
///
/// Start from a whole store ([`new`](Self::new): every part is that store)
/// and replace the parts a wrapper changes, so a wrapper implements only
/// the traits it changes: a cache in front of the catalog, a store whose
/// sessions live elsewhere, a test double that fails on demand.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use netherbrain_core::store::prelude::*;
/// use netherbrain_core::store::{MemoryStore, StoreError, StoreParts, StoreResult};
///
/// /// A backend that is down.
/// #[derive(Debug)]
/// struct Down;
///
/// #[async_trait]
/// impl StoreHealth for Down {
///     async fn ping(&self) -> StoreResult<()> {
///         Err(StoreError::Unavailable("maintenance".into()))
///     }
/// }
///
/// let store: Arc<dyn StateStore> =
///     Arc::new(StoreParts::new(Arc::new(MemoryStore::new())).with_health(Arc::new(Down)));
/// assert!(store.ping().await.is_err());
/// assert_eq!(store.count_users().await.unwrap(), 0, "the other parts still answer");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StoreParts {
    users: Arc<dyn UserStore>,
    catalog: Arc<dyn CatalogStore>,
    conversations: Arc<dyn ConversationStore>,
    sessions: Arc<dyn SessionStore>,
    mailbox: Arc<dyn MailboxStore>,
    gateway: Arc<dyn GatewayStore>,
    providers: Arc<dyn ProviderStore>,
    memories: Arc<dyn MemoryRecords>,
    tasks: Arc<dyn TaskStore>,
    health: Arc<dyn StoreHealth>,
}

impl StoreParts {
    /// Every part delegates to `store`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new()));
    /// # let _ = parts;
    /// ```
    #[must_use]
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self {
            users: store.clone(),
            catalog: store.clone(),
            conversations: store.clone(),
            sessions: store.clone(),
            mailbox: store.clone(),
            gateway: store.clone(),
            providers: store.clone(),
            memories: store.clone(),
            tasks: store.clone(),
            health: store,
        }
    }

    /// Replaces the health check.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let other = Arc::new(MemoryStore::new());
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new())).with_health(other);
    /// # let _ = parts;
    /// ```
    #[must_use]
    pub fn with_health(mut self, health: Arc<dyn StoreHealth>) -> Self {
        self.health = health;
        self
    }

    /// Replaces the users and API keys.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let users = Arc::new(MemoryStore::new());
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new())).with_users(users);
    /// # let _ = parts;
    /// ```
    #[must_use]
    pub fn with_users(mut self, users: Arc<dyn UserStore>) -> Self {
        self.users = users;
        self
    }

    /// Replaces the catalog (presets and workspaces).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let catalog = Arc::new(MemoryStore::new());
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new())).with_catalog(catalog);
    /// # let _ = parts;
    /// ```
    #[must_use]
    pub fn with_catalog(mut self, catalog: Arc<dyn CatalogStore>) -> Self {
        self.catalog = catalog;
        self
    }

    /// Replaces the conversations.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let conversations = Arc::new(MemoryStore::new());
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new())).with_conversations(conversations);
    /// # let _ = parts;
    /// ```
    #[must_use]
    pub fn with_conversations(mut self, conversations: Arc<dyn ConversationStore>) -> Self {
        self.conversations = conversations;
        self
    }

    /// Replaces the sessions and their log.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let sessions = Arc::new(MemoryStore::new());
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new())).with_sessions(sessions);
    /// # let _ = parts;
    /// ```
    #[must_use]
    pub fn with_sessions(mut self, sessions: Arc<dyn SessionStore>) -> Self {
        self.sessions = sessions;
        self
    }

    /// Replaces the mailbox.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let mailbox = Arc::new(MemoryStore::new());
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new())).with_mailbox(mailbox);
    /// # let _ = parts;
    /// ```
    #[must_use]
    pub fn with_mailbox(mut self, mailbox: Arc<dyn MailboxStore>) -> Self {
        self.mailbox = mailbox;
        self
    }

    /// Replaces the gateway's records.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let gateway = Arc::new(MemoryStore::new());
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new())).with_gateway(gateway);
    /// # let _ = parts;
    /// ```
    #[must_use]
    pub fn with_gateway(mut self, gateway: Arc<dyn GatewayStore>) -> Self {
        self.gateway = gateway;
        self
    }

    /// Replaces the stored provider profiles.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let providers = Arc::new(MemoryStore::new());
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new())).with_providers(providers);
    /// # let _ = parts;
    /// ```
    #[must_use]
    pub fn with_providers(mut self, providers: Arc<dyn ProviderStore>) -> Self {
        self.providers = providers;
        self
    }

    /// Replaces the users' long-term memories.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let memories = Arc::new(MemoryStore::new());
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new())).with_memories(memories);
    /// # let _ = parts;
    /// ```
    #[must_use]
    pub fn with_memories(mut self, memories: Arc<dyn MemoryRecords>) -> Self {
        self.memories = memories;
        self
    }

    /// Replaces the users' scheduled tasks.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::store::{MemoryStore, StoreParts};
    /// let tasks = Arc::new(MemoryStore::new());
    /// let parts = StoreParts::new(Arc::new(MemoryStore::new())).with_tasks(tasks);
    /// # let _ = parts;
    /// ```
    pub fn with_tasks(mut self, tasks: Arc<dyn TaskStore>) -> Self {
        self.tasks = tasks;
        self
    }
}

#[async_trait]
impl StoreHealth for StoreParts {
    async fn ping(&self) -> StoreResult<()> {
        self.health.ping().await
    }
}

#[async_trait]
impl UserStore for StoreParts {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        self.users.create_user(user).await
    }
    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        self.users.get_user(id).await
    }
    async fn get_user_by_username(&self, username: &str) -> StoreResult<User> {
        self.users.get_user_by_username(username).await
    }
    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.users.list_users().await
    }
    async fn update_user(&self, id: UserId, patch: UserPatch) -> StoreResult<User> {
        self.users.update_user(id, patch).await
    }
    async fn count_users(&self) -> StoreResult<u64> {
        self.users.count_users().await
    }
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        self.users.create_api_key(key).await
    }
    async fn get_api_key_by_prefix(&self, prefix: &str) -> StoreResult<ApiKey> {
        self.users.get_api_key_by_prefix(prefix).await
    }
    async fn list_api_keys(&self, user_id: UserId) -> StoreResult<Vec<ApiKey>> {
        self.users.list_api_keys(user_id).await
    }
    async fn revoke_api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey> {
        self.users.revoke_api_key(id).await
    }
}

#[async_trait]
impl CatalogStore for StoreParts {
    async fn create_preset(&self, preset: NewPreset) -> StoreResult<Preset> {
        self.catalog.create_preset(preset).await
    }
    async fn get_preset(&self, id: PresetId) -> StoreResult<Preset> {
        self.catalog.get_preset(id).await
    }
    async fn get_preset_by_name(&self, name: &str) -> StoreResult<Preset> {
        self.catalog.get_preset_by_name(name).await
    }
    async fn list_presets(&self) -> StoreResult<Vec<Preset>> {
        self.catalog.list_presets().await
    }
    async fn update_preset(&self, id: PresetId, patch: PresetPatch) -> StoreResult<Preset> {
        self.catalog.update_preset(id, patch).await
    }
    async fn delete_preset(&self, id: PresetId) -> StoreResult<()> {
        self.catalog.delete_preset(id).await
    }
    async fn create_workspace(&self, workspace: NewWorkspace) -> StoreResult<Workspace> {
        self.catalog.create_workspace(workspace).await
    }
    async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        self.catalog.get_workspace(id).await
    }
    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.catalog.list_workspaces().await
    }
    async fn update_workspace(
        &self,
        id: WorkspaceId,
        patch: WorkspacePatch,
    ) -> StoreResult<Workspace> {
        self.catalog.update_workspace(id, patch).await
    }
    async fn delete_workspace(&self, id: WorkspaceId) -> StoreResult<()> {
        self.catalog.delete_workspace(id).await
    }
}

#[async_trait]
impl ConversationStore for StoreParts {
    async fn create_conversation(
        &self,
        conversation: NewConversation,
    ) -> StoreResult<Conversation> {
        self.conversations.create_conversation(conversation).await
    }
    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Conversation> {
        self.conversations.get_conversation(id).await
    }
    async fn list_conversations(
        &self,
        query: ConversationQuery,
    ) -> StoreResult<Page<Conversation>> {
        self.conversations.list_conversations(query).await
    }
    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> StoreResult<Conversation> {
        self.conversations.update_conversation(id, patch).await
    }
    async fn search_conversations(
        &self,
        owner: Option<UserId>,
        query: &str,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        self.conversations
            .search_conversations(owner, query, limit)
            .await
    }
}

#[async_trait]
impl SessionStore for StoreParts {
    async fn create_session(&self, session: NewSession) -> StoreResult<Session> {
        self.sessions.create_session(session).await
    }
    async fn get_session(&self, id: SessionId) -> StoreResult<Session> {
        self.sessions.get_session(id).await
    }
    async fn list_sessions(&self, conversation_id: ConversationId) -> StoreResult<Vec<Session>> {
        self.sessions.list_sessions(conversation_id).await
    }
    async fn latest_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        self.sessions.latest_session(conversation_id).await
    }

    async fn active_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        self.sessions.active_session(conversation_id).await
    }
    async fn finish_session(&self, id: SessionId, finish: SessionFinish) -> StoreResult<Session> {
        self.sessions.finish_session(id, finish).await
    }
    async fn expired_sessions(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        self.sessions.expired_sessions(now).await
    }
    async fn renew_leases(
        &self,
        owner: &str,
        sessions: &[SessionId],
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        self.sessions.renew_leases(owner, sessions, until).await
    }
    async fn recover_sessions(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        self.sessions.recover_sessions(now).await
    }
    async fn append(&self, session_id: SessionId, append: SessionAppend) -> StoreResult<()> {
        self.sessions.append(session_id, append).await
    }
    async fn session_messages(&self, session_id: SessionId) -> StoreResult<Vec<Message>> {
        self.sessions.session_messages(session_id).await
    }
    async fn list_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
        limit: u32,
    ) -> StoreResult<Vec<EventEnvelope>> {
        self.sessions.list_events(session_id, after, limit).await
    }
    async fn last_event_seq(&self, session_id: SessionId) -> StoreResult<EventSeq> {
        self.sessions.last_event_seq(session_id).await
    }
    async fn session_usage(
        &self,
        query: super::UsageQuery,
    ) -> StoreResult<Vec<super::SessionUsage>> {
        self.sessions.session_usage(query).await
    }
    // Delegated too, so the part's own (one-query) history is used.
    async fn session_history(&self, session_id: SessionId) -> StoreResult<Vec<Message>> {
        self.sessions.session_history(session_id).await
    }
}

#[async_trait]
impl MailboxStore for StoreParts {
    async fn post_mailbox(&self, entry: NewMailboxEntry) -> StoreResult<MailboxEntry> {
        self.mailbox.post_mailbox(entry).await
    }
    async fn take_mailbox(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Vec<MailboxEntry>> {
        self.mailbox.take_mailbox(conversation_id).await
    }
}

#[async_trait]
impl GatewayStore for StoreParts {
    async fn chat_binding(&self, channel: &str, chat_id: &str) -> StoreResult<Option<ChatBinding>> {
        self.gateway.chat_binding(channel, chat_id).await
    }
    async fn bind_chat(&self, binding: NewChatBinding) -> StoreResult<ChatBinding> {
        self.gateway.bind_chat(binding).await
    }
    async fn mark_delivered(
        &self,
        channel: &str,
        chat_id: &str,
        session_id: SessionId,
        seq: EventSeq,
    ) -> StoreResult<()> {
        self.gateway
            .mark_delivered(channel, chat_id, session_id, seq)
            .await
    }
    async fn list_chat_bindings(&self, channel: &str) -> StoreResult<Vec<ChatBinding>> {
        self.gateway.list_chat_bindings(channel).await
    }
    async fn gateway_identity(
        &self,
        channel: &str,
        sender_id: &str,
    ) -> StoreResult<Option<GatewayIdentity>> {
        self.gateway.gateway_identity(channel, sender_id).await
    }
    async fn create_pairing(&self, pairing: NewPairing) -> StoreResult<PairingRequest> {
        self.gateway.create_pairing(pairing).await
    }
    async fn pending_pairings(&self, now: DateTime<Utc>) -> StoreResult<Vec<PairingRequest>> {
        self.gateway.pending_pairings(now).await
    }
    async fn approve_pairing(
        &self,
        code: &str,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<GatewayIdentity> {
        self.gateway.approve_pairing(code, user_id, now).await
    }
}

#[async_trait]
impl ProviderStore for StoreParts {
    async fn create_provider(&self, provider: NewStoredProvider) -> StoreResult<StoredProvider> {
        self.providers.create_provider(provider).await
    }
    async fn get_provider(&self, name: &str) -> StoreResult<StoredProvider> {
        self.providers.get_provider(name).await
    }
    async fn list_providers(&self) -> StoreResult<Vec<StoredProvider>> {
        self.providers.list_providers().await
    }
    async fn update_provider(
        &self,
        name: &str,
        patch: ProviderPatch,
    ) -> StoreResult<StoredProvider> {
        self.providers.update_provider(name, patch).await
    }
    async fn delete_provider(&self, name: &str) -> StoreResult<()> {
        self.providers.delete_provider(name).await
    }
}

#[async_trait]
impl MemoryRecords for StoreParts {
    async fn create_memory(
        &self,
        memory: NewMemory,
        max_per_user: u32,
    ) -> StoreResult<MemoryRecord> {
        self.memories.create_memory(memory, max_per_user).await
    }
    async fn get_memory(&self, id: MemoryId) -> StoreResult<MemoryRecord> {
        self.memories.get_memory(id).await
    }
    async fn list_memories(&self, user_id: UserId) -> StoreResult<Vec<MemoryRecord>> {
        self.memories.list_memories(user_id).await
    }
    async fn count_memories(&self, user_id: UserId) -> StoreResult<u64> {
        self.memories.count_memories(user_id).await
    }
    async fn update_memory(&self, id: MemoryId, patch: MemoryPatch) -> StoreResult<MemoryRecord> {
        self.memories.update_memory(id, patch).await
    }
    async fn delete_memory(&self, id: MemoryId) -> StoreResult<()> {
        self.memories.delete_memory(id).await
    }
    async fn search_memories(&self, query: MemoryQuery) -> StoreResult<Vec<MemoryRecord>> {
        self.memories.search_memories(query).await
    }
}

#[async_trait]
impl TaskStore for StoreParts {
    async fn create_task(&self, task: NewTask, max_per_user: u32) -> StoreResult<ScheduledTask> {
        self.tasks.create_task(task, max_per_user).await
    }
    async fn get_task(&self, id: TaskId) -> StoreResult<ScheduledTask> {
        self.tasks.get_task(id).await
    }
    async fn list_tasks(&self, owner: UserId) -> StoreResult<Vec<ScheduledTask>> {
        self.tasks.list_tasks(owner).await
    }
    async fn update_task(&self, id: TaskId, patch: TaskPatch) -> StoreResult<ScheduledTask> {
        self.tasks.update_task(id, patch).await
    }
    async fn delete_task(&self, id: TaskId) -> StoreResult<()> {
        self.tasks.delete_task(id).await
    }
    async fn due_tasks(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<ScheduledTask>> {
        self.tasks.due_tasks(now, limit).await
    }
    async fn claim_task(
        &self,
        id: TaskId,
        slot: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.tasks.claim_task(id, slot, next).await
    }
    async fn record_task_run(&self, id: TaskId, run: TaskRun) -> StoreResult<ScheduledTask> {
        self.tasks.record_task_run(id, run).await
    }
}
