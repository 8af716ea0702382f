//! A store that can be switched to fail, for error-mapping tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::Mutex;

use async_trait::async_trait;
use netherbrain_core::store::*;
use netherbrain_core::{
    ApiKeyId, ConversationId, EventEnvelope, EventSeq, Message, PresetId, SessionId, UserId,
    WorkspaceId,
};

/// Delegates to a `MemoryStore` unless a failure is set.
#[derive(Debug, Default)]
pub struct FlakyStore {
    inner: MemoryStore,
    failure: Mutex<Option<StoreError>>,
}

impl FlakyStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call fails with `error` from now on (`None`: works again).
    pub fn fail_with(&self, error: Option<StoreError>) {
        *self.failure.lock().unwrap() = error;
    }

    fn check(&self) -> StoreResult<()> {
        match self.failure.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl StateStore for FlakyStore {
    async fn ping(&self) -> StoreResult<()> {
        self.check()?;
        self.inner.ping().await
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        self.check()?;
        self.inner.create_user(user).await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        self.check()?;
        self.inner.get_user(id).await
    }

    async fn get_user_by_username(&self, username: &str) -> StoreResult<User> {
        self.check()?;
        self.inner.get_user_by_username(username).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.check()?;
        self.inner.list_users().await
    }

    async fn update_user(&self, id: UserId, patch: UserPatch) -> StoreResult<User> {
        self.check()?;
        self.inner.update_user(id, patch).await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.check()?;
        self.inner.count_users().await
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        self.check()?;
        self.inner.create_api_key(key).await
    }

    async fn get_api_key_by_prefix(&self, prefix: &str) -> StoreResult<ApiKey> {
        self.check()?;
        self.inner.get_api_key_by_prefix(prefix).await
    }

    async fn list_api_keys(&self, user_id: UserId) -> StoreResult<Vec<ApiKey>> {
        self.check()?;
        self.inner.list_api_keys(user_id).await
    }

    async fn revoke_api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey> {
        self.check()?;
        self.inner.revoke_api_key(id).await
    }

    async fn create_preset(&self, preset: NewPreset) -> StoreResult<Preset> {
        self.check()?;
        self.inner.create_preset(preset).await
    }

    async fn get_preset(&self, id: PresetId) -> StoreResult<Preset> {
        self.check()?;
        self.inner.get_preset(id).await
    }

    async fn get_preset_by_name(&self, name: &str) -> StoreResult<Preset> {
        self.check()?;
        self.inner.get_preset_by_name(name).await
    }

    async fn list_presets(&self) -> StoreResult<Vec<Preset>> {
        self.check()?;
        self.inner.list_presets().await
    }

    async fn update_preset(&self, id: PresetId, patch: PresetPatch) -> StoreResult<Preset> {
        self.check()?;
        self.inner.update_preset(id, patch).await
    }

    async fn delete_preset(&self, id: PresetId) -> StoreResult<()> {
        self.check()?;
        self.inner.delete_preset(id).await
    }

    async fn create_workspace(&self, workspace: NewWorkspace) -> StoreResult<Workspace> {
        self.check()?;
        self.inner.create_workspace(workspace).await
    }

    async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        self.check()?;
        self.inner.get_workspace(id).await
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.check()?;
        self.inner.list_workspaces().await
    }

    async fn update_workspace(
        &self,
        id: WorkspaceId,
        patch: WorkspacePatch,
    ) -> StoreResult<Workspace> {
        self.check()?;
        self.inner.update_workspace(id, patch).await
    }

    async fn delete_workspace(&self, id: WorkspaceId) -> StoreResult<()> {
        self.check()?;
        self.inner.delete_workspace(id).await
    }

    async fn create_conversation(
        &self,
        conversation: NewConversation,
    ) -> StoreResult<Conversation> {
        self.check()?;
        self.inner.create_conversation(conversation).await
    }

    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Conversation> {
        self.check()?;
        self.inner.get_conversation(id).await
    }

    async fn list_conversations(
        &self,
        query: ConversationQuery,
    ) -> StoreResult<Page<Conversation>> {
        self.check()?;
        self.inner.list_conversations(query).await
    }

    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> StoreResult<Conversation> {
        self.check()?;
        self.inner.update_conversation(id, patch).await
    }

    async fn search_conversations(
        &self,
        owner: Option<UserId>,
        query: &str,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        self.check()?;
        self.inner.search_conversations(owner, query, limit).await
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<Session> {
        self.check()?;
        self.inner.create_session(session).await
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Session> {
        self.check()?;
        self.inner.get_session(id).await
    }

    async fn list_sessions(&self, conversation_id: ConversationId) -> StoreResult<Vec<Session>> {
        self.check()?;
        self.inner.list_sessions(conversation_id).await
    }

    async fn active_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        self.check()?;
        self.inner.active_session(conversation_id).await
    }

    async fn finish_session(&self, id: SessionId, finish: SessionFinish) -> StoreResult<Session> {
        self.check()?;
        self.inner.finish_session(id, finish).await
    }

    async fn recover_sessions(&self) -> StoreResult<Vec<SessionId>> {
        self.check()?;
        self.inner.recover_sessions().await
    }

    async fn append(&self, session_id: SessionId, append: SessionAppend) -> StoreResult<()> {
        self.check()?;
        self.inner.append(session_id, append).await
    }

    async fn session_messages(&self, session_id: SessionId) -> StoreResult<Vec<Message>> {
        self.check()?;
        self.inner.session_messages(session_id).await
    }

    async fn list_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
        limit: u32,
    ) -> StoreResult<Vec<EventEnvelope>> {
        self.check()?;
        self.inner.list_events(session_id, after, limit).await
    }

    async fn last_event_seq(&self, session_id: SessionId) -> StoreResult<EventSeq> {
        self.check()?;
        self.inner.last_event_seq(session_id).await
    }

    async fn post_mailbox(&self, entry: NewMailboxEntry) -> StoreResult<MailboxEntry> {
        self.check()?;
        self.inner.post_mailbox(entry).await
    }

    async fn take_mailbox(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Vec<MailboxEntry>> {
        self.check()?;
        self.inner.take_mailbox(conversation_id).await
    }
}
