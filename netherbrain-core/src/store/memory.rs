//! [`MemoryStore`]: a complete [`StateStore`](super::StateStore) kept in
//! process memory.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::validate;
use super::{
    ApiKey, CatalogStore, Conversation, ConversationCursor, ConversationPatch, ConversationQuery,
    ConversationStatus, ConversationStore, MailboxEntry, MailboxStore, NewApiKey, NewConversation,
    NewMailboxEntry, NewPreset, NewSession, NewUser, NewWorkspace, Page, Preset, PresetPatch,
    Session, SessionAppend, SessionFinish, SessionStore, StoreError, StoreHealth, StoreResult,
    User, UserPatch, UserStore, Workspace, WorkspacePatch,
};
use super::{
    ChatBinding, GatewayIdentity, GatewayStore, NewChatBinding, NewPairing, NewStoredProvider,
    PairingRequest, ProviderPatch, ProviderStore, StoredProvider,
};
use super::{MemoryPatch, MemoryQuery, MemoryRecord, MemoryRecords, NewMemory};
use super::{NewTask, ScheduledTask, TaskPatch, TaskRun, TaskStore};
use crate::event::EventEnvelope;
use crate::ids::{
    ApiKeyId, ConversationId, EventSeq, MailboxId, PresetId, SessionId, UserId, WorkspaceId,
};
use crate::ids::{MemoryId, TaskId};
use crate::message::Message;
use crate::session::SessionStatus;

/// A [`StateStore`](super::StateStore) that keeps everything in memory: for tests, examples
/// and embedders that need no persistence. Nothing survives the process.
///
/// All tables sit behind one mutex, so every call is one atomic
/// transaction; the lock is never held across an `.await`. Timestamps have
/// microsecond precision (like the SQL backends) and strictly increase
/// within one store, so orderings by time are deterministic.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::store::{MemoryStore, NewUser, UserRole, UserStore};
///
/// let store = MemoryStore::new();
/// let user = store.create_user(NewUser::new("ada", UserRole::Admin)).await?;
/// assert_eq!(store.get_user_by_username("ada").await?.id, user.id);
/// assert_eq!(store.count_users().await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    /// Last timestamp handed out, in microseconds since the epoch.
    clock_micros: i64,
    users: BTreeMap<UserId, User>,
    api_keys: BTreeMap<ApiKeyId, ApiKey>,
    presets: BTreeMap<PresetId, Preset>,
    workspaces: BTreeMap<WorkspaceId, Workspace>,
    conversations: HashMap<ConversationId, Conversation>,
    sessions: HashMap<SessionId, SessionRow>,
    /// Session ids per conversation, oldest first.
    conversation_sessions: HashMap<ConversationId, Vec<SessionId>>,
    /// In posting order.
    mailbox: Vec<MailboxEntry>,
    chat_bindings: BTreeMap<(String, String), ChatBinding>,
    identities: BTreeMap<(String, String), GatewayIdentity>,
    pairings: BTreeMap<String, PairingRequest>,
    providers: BTreeMap<String, StoredProvider>,
    memories: BTreeMap<MemoryId, MemoryRecord>,
    tasks: BTreeMap<TaskId, ScheduledTask>,
}

#[derive(Debug)]
struct SessionRow {
    session: Session,
    messages: Vec<Message>,
    events: Vec<EventEnvelope>,
}

impl MemoryStore {
    /// An empty store.
    ///
    /// ```
    /// let store = netherbrain_core::store::MemoryStore::new();
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the tables. A panic while the lock was held cannot leave them
    /// half-changed (every method validates before it mutates), so a
    /// poisoned lock is recovered.
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Tables {
    /// Now, at microsecond precision, strictly after the last timestamp.
    fn now(&mut self) -> DateTime<Utc> {
        let micros = Utc::now().timestamp_micros().max(self.clock_micros + 1);
        self.clock_micros = micros;
        DateTime::from_timestamp_micros(micros).unwrap_or_default()
    }

    fn user(&self, id: UserId) -> StoreResult<&User> {
        self.users
            .get(&id)
            .ok_or_else(|| StoreError::not_found("user", id))
    }

    fn preset(&self, id: PresetId) -> StoreResult<&Preset> {
        self.presets
            .get(&id)
            .ok_or_else(|| StoreError::not_found("preset", id))
    }

    fn workspace(&self, id: WorkspaceId) -> StoreResult<&Workspace> {
        self.workspaces
            .get(&id)
            .ok_or_else(|| StoreError::not_found("workspace", id))
    }

    fn conversation(&self, id: ConversationId) -> StoreResult<&Conversation> {
        self.conversations
            .get(&id)
            .ok_or_else(|| StoreError::not_found("conversation", id))
    }

    fn session(&self, id: SessionId) -> StoreResult<&SessionRow> {
        self.sessions
            .get(&id)
            .ok_or_else(|| StoreError::not_found("session", id))
    }

    fn active_session(&self, conversation_id: ConversationId) -> Option<&Session> {
        self.conversation_sessions
            .get(&conversation_id)?
            .iter()
            .filter_map(|id| self.sessions.get(id))
            .map(|row| &row.session)
            .find(|s| s.status.is_active())
    }

    fn touch_conversation(&mut self, id: ConversationId, at: DateTime<Utc>) {
        if let Some(conversation) = self.conversations.get_mut(&id) {
            conversation.last_activity_at = at;
        }
    }

    /// Words a search looks at: those of each session message of the
    /// conversation.
    fn message_words(&self, conversation_id: ConversationId) -> Vec<String> {
        self.conversation_sessions
            .get(&conversation_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sessions.get(id))
            .flat_map(|row| row.messages.iter().flat_map(|m| words(&m.text())))
            .collect()
    }
}

/// Lower-cased runs of letters and digits, as the SQL backends' full-text
/// indexes split text.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether a search term begins one of `words` (search matches prefixes).
fn begins_any(words: &[String], term: &str) -> bool {
    words.iter().any(|w| w.starts_with(term))
}

#[async_trait]
impl StoreHealth for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        validate::new_user(&user)?;
        let mut t = self.lock();
        if t.users.values().any(|u| u.username == user.username) {
            return Err(StoreError::Conflict(format!(
                "username `{}` is taken",
                user.username
            )));
        }
        let now = t.now();
        let row = User {
            id: UserId::new(),
            username: user.username,
            display_name: user.display_name,
            role: user.role,
            password_hash: user.password_hash,
            must_change_password: user.must_change_password,
            active: true,
            created_at: now,
            updated_at: now,
        };
        t.users.insert(row.id, row.clone());
        Ok(row)
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        self.lock().user(id).cloned()
    }

    async fn get_user_by_username(&self, username: &str) -> StoreResult<User> {
        self.lock()
            .users
            .values()
            .find(|u| u.username == username)
            .cloned()
            .ok_or_else(|| StoreError::not_found("user", username))
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let mut users: Vec<User> = self.lock().users.values().cloned().collect();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(users)
    }

    async fn update_user(&self, id: UserId, patch: UserPatch) -> StoreResult<User> {
        validate::user_patch(&patch)?;
        let mut t = self.lock();
        t.user(id)?;
        let now = t.now();
        let user = t
            .users
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("user", id))?;
        patch.apply(user);
        user.updated_at = now;
        Ok(user.clone())
    }

    async fn count_users(&self) -> StoreResult<u64> {
        Ok(self.lock().users.len() as u64)
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        validate::new_api_key(&key)?;
        let mut t = self.lock();
        t.user(key.user_id)?;
        if t.api_keys.values().any(|k| k.prefix == key.prefix) {
            return Err(StoreError::Conflict(
                "an API key with this prefix exists".into(),
            ));
        }
        let row = ApiKey {
            id: ApiKeyId::new(),
            user_id: key.user_id,
            name: key.name,
            prefix: key.prefix,
            hash: key.hash,
            created_at: t.now(),
            expires_at: key.expires_at,
            revoked_at: None,
        };
        t.api_keys.insert(row.id, row.clone());
        Ok(row)
    }

    async fn get_api_key_by_prefix(&self, prefix: &str) -> StoreResult<ApiKey> {
        self.lock()
            .api_keys
            .values()
            .find(|k| k.prefix == prefix)
            .cloned()
            .ok_or_else(|| StoreError::not_found("api key", prefix))
    }

    async fn list_api_keys(&self, user_id: UserId) -> StoreResult<Vec<ApiKey>> {
        let mut keys: Vec<ApiKey> = self
            .lock()
            .api_keys
            .values()
            .filter(|k| k.user_id == user_id)
            .cloned()
            .collect();
        keys.sort_by_key(|k| Reverse((k.created_at, k.id)));
        Ok(keys)
    }

    async fn revoke_api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey> {
        let mut t = self.lock();
        let now = t.now();
        let key = t
            .api_keys
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("api key", id))?;
        if key.revoked_at.is_some() {
            return Err(StoreError::Conflict("API key is already revoked".into()));
        }
        key.revoked_at = Some(now);
        Ok(key.clone())
    }
}

#[async_trait]
impl CatalogStore for MemoryStore {
    async fn create_preset(&self, preset: NewPreset) -> StoreResult<Preset> {
        validate::new_preset(&preset)?;
        let mut t = self.lock();
        if t.presets.values().any(|p| p.name == preset.name) {
            return Err(StoreError::Conflict(format!(
                "preset `{}` exists",
                preset.name
            )));
        }
        let now = t.now();
        let row = Preset {
            id: PresetId::new(),
            name: preset.name,
            description: preset.description,
            config: preset.config,
            created_at: now,
            updated_at: now,
        };
        t.presets.insert(row.id, row.clone());
        Ok(row)
    }

    async fn get_preset(&self, id: PresetId) -> StoreResult<Preset> {
        self.lock().preset(id).cloned()
    }

    async fn get_preset_by_name(&self, name: &str) -> StoreResult<Preset> {
        self.lock()
            .presets
            .values()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| StoreError::not_found("preset", name))
    }

    async fn list_presets(&self) -> StoreResult<Vec<Preset>> {
        let mut presets: Vec<Preset> = self.lock().presets.values().cloned().collect();
        presets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(presets)
    }

    async fn update_preset(&self, id: PresetId, patch: PresetPatch) -> StoreResult<Preset> {
        validate::preset_patch(&patch)?;
        let mut t = self.lock();
        t.preset(id)?;
        if let Some(name) = &patch.name
            && t.presets.values().any(|p| p.id != id && &p.name == name)
        {
            return Err(StoreError::Conflict(format!("preset `{name}` exists")));
        }
        let now = t.now();
        let preset = t
            .presets
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("preset", id))?;
        patch.apply(preset);
        preset.updated_at = now;
        Ok(preset.clone())
    }

    async fn delete_preset(&self, id: PresetId) -> StoreResult<()> {
        let mut t = self.lock();
        t.preset(id)?;
        if t.conversations
            .values()
            .any(|c| c.default_preset == Some(id))
        {
            return Err(StoreError::Conflict(
                "preset is the default of a conversation".into(),
            ));
        }
        if t.tasks.values().any(|task| task.preset_id == id) {
            return Err(StoreError::Conflict(
                "preset is used by a scheduled task".into(),
            ));
        }
        t.presets.remove(&id);
        Ok(())
    }

    async fn create_workspace(&self, workspace: NewWorkspace) -> StoreResult<Workspace> {
        validate::new_workspace(&workspace)?;
        let mut t = self.lock();
        if t.workspaces.values().any(|w| w.name == workspace.name) {
            return Err(StoreError::Conflict(format!(
                "workspace `{}` exists",
                workspace.name
            )));
        }
        let now = t.now();
        let row = Workspace {
            id: WorkspaceId::new(),
            name: workspace.name,
            owner: workspace.owner,
            project_dirs: workspace.project_dirs,
            metadata: workspace.metadata,
            created_at: now,
            updated_at: now,
        };
        t.workspaces.insert(row.id, row.clone());
        Ok(row)
    }

    async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        self.lock().workspace(id).cloned()
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        let mut workspaces: Vec<Workspace> = self.lock().workspaces.values().cloned().collect();
        workspaces.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(workspaces)
    }

    async fn update_workspace(
        &self,
        id: WorkspaceId,
        patch: WorkspacePatch,
    ) -> StoreResult<Workspace> {
        validate::workspace_patch(&patch)?;
        let mut t = self.lock();
        let mut updated = t.workspace(id)?.clone();
        if let Some(name) = &patch.name
            && t.workspaces.values().any(|w| w.id != id && &w.name == name)
        {
            return Err(StoreError::Conflict(format!("workspace `{name}` exists")));
        }
        patch.apply(&mut updated)?;
        updated.updated_at = t.now();
        t.workspaces.insert(id, updated.clone());
        Ok(updated)
    }

    async fn delete_workspace(&self, id: WorkspaceId) -> StoreResult<()> {
        let mut t = self.lock();
        t.workspace(id)?;
        if t.conversations.values().any(|c| c.workspace_id == Some(id)) {
            return Err(StoreError::Conflict(
                "conversations belong to the workspace".into(),
            ));
        }
        t.workspaces.remove(&id);
        Ok(())
    }
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn create_conversation(
        &self,
        conversation: NewConversation,
    ) -> StoreResult<Conversation> {
        validate::new_conversation(&conversation)?;
        let mut t = self.lock();
        t.user(conversation.owner)?;
        if let Some(workspace) = conversation.workspace_id {
            t.workspace(workspace)?;
        }
        if let Some(preset) = conversation.default_preset {
            t.preset(preset)?;
        }
        if t.conversations.contains_key(&conversation.id) {
            return Err(StoreError::Conflict(format!(
                "conversation {} exists",
                conversation.id
            )));
        }
        let now = t.now();
        let row = Conversation {
            id: conversation.id,
            owner: conversation.owner,
            workspace_id: conversation.workspace_id,
            title: conversation.title,
            summary: None,
            default_preset: conversation.default_preset,
            metadata: conversation.metadata,
            status: ConversationStatus::Active,
            created_at: now,
            updated_at: now,
            last_activity_at: now,
            forked_from: conversation.forked_from,
            delegated_from: conversation.delegated_from,
        };
        t.conversations.insert(row.id, row.clone());
        Ok(row)
    }

    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Conversation> {
        self.lock().conversation(id).cloned()
    }

    async fn list_conversations(
        &self,
        query: ConversationQuery,
    ) -> StoreResult<Page<Conversation>> {
        let cursor = validate::conversation_query(&query)?;
        let needle = query.metadata.map(serde_json::Value::Object);
        let t = self.lock();
        let mut items: Vec<&Conversation> = t
            .conversations
            .values()
            .filter(|c| query.owner.is_none_or(|o| c.owner == o))
            .filter(|c| query.status.is_none_or(|s| c.status == s))
            .filter(|c| query.workspace_id.is_none_or(|w| c.workspace_id == Some(w)))
            .filter(|c| {
                needle.as_ref().is_none_or(|n| {
                    validate::json_contains(&serde_json::Value::Object(c.metadata.clone()), n)
                })
            })
            .filter(|c| {
                cursor.is_none_or(|cur| (c.last_activity_at, c.id) < (cur.last_activity_at, cur.id))
            })
            .collect();
        items.sort_by_key(|c| Reverse((c.last_activity_at, c.id)));
        let limit = query.limit as usize;
        let next_cursor = (items.len() > limit).then(|| {
            let last = items[limit - 1];
            ConversationCursor {
                last_activity_at: last.last_activity_at,
                id: last.id,
            }
            .encode()
        });
        let items = items.into_iter().take(limit).cloned().collect();
        Ok(Page::new(items, next_cursor))
    }

    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> StoreResult<Conversation> {
        validate::conversation_patch(&patch)?;
        let mut t = self.lock();
        let mut updated = t.conversation(id)?.clone();
        if let Some(Some(preset)) = patch.default_preset {
            t.preset(preset)?;
        }
        patch.apply(&mut updated)?;
        updated.updated_at = t.now();
        t.conversations.insert(id, updated.clone());
        Ok(updated)
    }

    async fn search_conversations(
        &self,
        owner: Option<UserId>,
        query: &str,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        let terms = validate::search_query(query, limit)?;
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.lock();
        let mut hits: Vec<(usize, usize, &Conversation)> = Vec::new();
        for conversation in t.conversations.values() {
            if owner.is_some_and(|o| conversation.owner != o) {
                continue;
            }
            let title = words(conversation.title.as_deref().unwrap_or(""));
            let summary = words(conversation.summary.as_deref().unwrap_or(""));
            let mut messages: Option<Vec<String>> = None;
            let (mut in_title, mut in_summary, mut all) = (0, 0, true);
            for term in &terms {
                let t_hit = begins_any(&title, term);
                let s_hit = begins_any(&summary, term);
                in_title += usize::from(t_hit);
                in_summary += usize::from(s_hit);
                if !t_hit && !s_hit {
                    let texts = messages.get_or_insert_with(|| t.message_words(conversation.id));
                    if !begins_any(texts, term) {
                        all = false;
                        break;
                    }
                }
            }
            if all {
                hits.push((in_title, in_summary, conversation));
            }
        }
        hits.sort_by(|a, b| {
            (b.0, b.1, b.2.last_activity_at, b.2.id).cmp(&(a.0, a.1, a.2.last_activity_at, a.2.id))
        });
        Ok(hits
            .into_iter()
            .take(limit as usize)
            .map(|(_, _, c)| c.clone())
            .collect())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, session: NewSession) -> StoreResult<Session> {
        let mut t = self.lock();
        t.conversation(session.conversation_id)?;
        if t.sessions.contains_key(&session.id) {
            return Err(StoreError::Conflict(format!(
                "session {} exists",
                session.id
            )));
        }
        if let Some(parent) = session.parent_session_id {
            t.session(parent)?;
        }
        if let Some(preset) = session.preset_id {
            t.preset(preset)?;
        }
        if let Some(active) = t.active_session(session.conversation_id) {
            return Err(StoreError::Busy { active: active.id });
        }
        let now = t.now();
        let row = Session {
            id: session.id,
            conversation_id: session.conversation_id,
            parent_session_id: session.parent_session_id,
            status: SessionStatus::Running,
            preset_id: session.preset_id,
            input: session.input.clone(),
            final_message: None,
            deferred_tool_calls: Vec::new(),
            usage: crate::usage::UsageByModel::default(),
            error: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            lease: session.lease,
        };
        t.sessions.insert(
            row.id,
            SessionRow {
                session: row.clone(),
                messages: session.input,
                events: Vec::new(),
            },
        );
        t.conversation_sessions
            .entry(row.conversation_id)
            .or_default()
            .push(row.id);
        t.touch_conversation(row.conversation_id, now);
        Ok(row)
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Session> {
        Ok(self.lock().session(id)?.session.clone())
    }

    async fn list_sessions(&self, conversation_id: ConversationId) -> StoreResult<Vec<Session>> {
        let t = self.lock();
        t.conversation(conversation_id)?;
        Ok(t.conversation_sessions
            .get(&conversation_id)
            .into_iter()
            .flatten()
            .filter_map(|id| t.sessions.get(id))
            .map(|row| row.session.clone())
            .collect())
    }

    async fn latest_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        let t = self.lock();
        Ok(t.conversation_sessions
            .get(&conversation_id)
            .and_then(|ids| ids.last())
            .and_then(|id| t.sessions.get(id))
            .map(|row| row.session.clone()))
    }

    async fn active_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        let t = self.lock();
        t.conversation(conversation_id)?;
        Ok(t.active_session(conversation_id).cloned())
    }

    async fn finish_session(&self, id: SessionId, finish: SessionFinish) -> StoreResult<Session> {
        validate::session_finish(id, &finish)?;
        let mut t = self.lock();
        let status = t.session(id)?.session.status;
        if status != SessionStatus::Running {
            return Err(StoreError::Conflict(format!(
                "session {id} is `{status}`, not running"
            )));
        }
        let now = t.now();
        let row = t
            .sessions
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("session", id))?;
        validate::event_order(row.events.last().map_or(0, |e| e.seq), &finish.tail)?;
        row.messages.extend(finish.tail.messages);
        row.events.extend(finish.tail.events);
        let session = &mut row.session;
        session.status = finish.status;
        session.final_message = finish.final_message;
        session.deferred_tool_calls = finish.deferred_tool_calls;
        session.usage = finish.usage;
        session.error = finish.error;
        session.updated_at = now;
        session.finished_at = Some(now);
        session.lease = None;
        let session = session.clone();
        t.touch_conversation(session.conversation_id, now);
        Ok(session)
    }

    async fn renew_leases(
        &self,
        owner: &str,
        sessions: &[SessionId],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        let mut t = self.lock();
        let mut renewed = Vec::new();
        for id in sessions {
            if let Some(row) = t.sessions.get_mut(id)
                && row.session.status.is_active()
                && let Some(lease) = row.session.lease.as_mut()
                && lease.owner == owner
            {
                lease.expires_at = until;
                renewed.push(*id);
            }
        }
        Ok(renewed)
    }

    async fn expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<SessionId>> {
        let t = self.lock();
        let mut expired: Vec<&Session> = t
            .sessions
            .values()
            .map(|row| &row.session)
            .filter(|s| s.status.is_active() && s.lease.as_ref().is_none_or(|l| l.is_expired(now)))
            .collect();
        expired.sort_by_key(|s| (s.created_at, s.id));
        Ok(expired.into_iter().map(|s| s.id).collect())
    }

    async fn recover_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<SessionId>> {
        let mut t = self.lock();
        let at = t.now();
        let mut recovered: Vec<&mut SessionRow> = t
            .sessions
            .values_mut()
            .filter(|row| {
                row.session.status.is_active()
                    && row.session.lease.as_ref().is_none_or(|l| l.is_expired(now))
            })
            .collect();
        recovered.sort_by_key(|row| (row.session.created_at, row.session.id));
        Ok(recovered
            .into_iter()
            .map(|row| {
                let last = row.events.last().map_or(0, |e| e.seq);
                let session = &mut row.session;
                row.events.push(super::recovered_event(
                    session.id,
                    session.conversation_id,
                    last,
                ));
                session.status = SessionStatus::Interrupted;
                session.updated_at = at;
                session.finished_at = Some(at);
                session.lease = None;
                session.id
            })
            .collect())
    }

    async fn append(&self, session_id: SessionId, append: SessionAppend) -> StoreResult<()> {
        validate::session_append(session_id, &append)?;
        let mut t = self.lock();
        let row = t
            .sessions
            .get_mut(&session_id)
            .ok_or_else(|| StoreError::not_found("session", session_id))?;
        if row.session.status != SessionStatus::Running {
            return Err(StoreError::Conflict(format!(
                "session {session_id} is `{}`, not running",
                row.session.status
            )));
        }
        validate::event_order(row.events.last().map_or(0, |e| e.seq), &append)?;
        row.messages.extend(append.messages);
        row.events.extend(append.events);
        Ok(())
    }

    async fn session_messages(&self, session_id: SessionId) -> StoreResult<Vec<Message>> {
        Ok(self.lock().session(session_id)?.messages.clone())
    }

    async fn list_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
        limit: u32,
    ) -> StoreResult<Vec<EventEnvelope>> {
        let t = self.lock();
        let events = &t.session(session_id)?.events;
        let start = events.partition_point(|e| e.seq <= after);
        Ok(events[start..]
            .iter()
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn session_usage(
        &self,
        query: super::UsageQuery,
    ) -> StoreResult<Vec<super::SessionUsage>> {
        let t = self.lock();
        let mut rows: Vec<super::SessionUsage> = t
            .sessions
            .values()
            .map(|row| &row.session)
            .filter(|s| s.created_at >= query.since)
            .filter(|s| query.preset_id.is_none_or(|p| s.preset_id == Some(p)))
            .filter(|s| {
                query.owner.is_none_or(|owner| {
                    t.conversations
                        .get(&s.conversation_id)
                        .is_some_and(|c| c.owner == owner)
                })
            })
            .map(|s| super::SessionUsage {
                session_id: s.id,
                preset_id: s.preset_id,
                created_at: s.created_at,
                usage: s.usage.clone(),
            })
            .collect();
        rows.sort_by_key(|u| (u.created_at, u.session_id));
        Ok(rows)
    }

    async fn last_event_seq(&self, session_id: SessionId) -> StoreResult<EventSeq> {
        Ok(self
            .lock()
            .session(session_id)?
            .events
            .last()
            .map_or(0, |e| e.seq))
    }

    async fn session_history(&self, session_id: SessionId) -> StoreResult<Vec<Message>> {
        let t = self.lock();
        let mut chain = Vec::new();
        let mut next = Some(session_id);
        while let Some(id) = next {
            if chain.len() > t.sessions.len() {
                return Err(StoreError::Backend(
                    "session parent chain has a cycle".into(),
                ));
            }
            let row = t.session(id)?;
            chain.push(row);
            next = row.session.parent_session_id;
        }
        Ok(chain
            .into_iter()
            .rev()
            .flat_map(|row| row.messages.iter().cloned())
            .collect())
    }
}

#[async_trait]
impl MailboxStore for MemoryStore {
    async fn post_mailbox(&self, entry: NewMailboxEntry) -> StoreResult<MailboxEntry> {
        let mut t = self.lock();
        t.conversation(entry.conversation_id)?;
        if let Some(source) = entry.source_session_id {
            t.session(source)?;
        }
        let row = MailboxEntry {
            id: MailboxId::new(),
            conversation_id: entry.conversation_id,
            source_session_id: entry.source_session_id,
            content: entry.content,
            created_at: t.now(),
            delivered_at: None,
        };
        t.mailbox.push(row.clone());
        Ok(row)
    }

    async fn take_mailbox(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Vec<MailboxEntry>> {
        let mut t = self.lock();
        t.conversation(conversation_id)?;
        let now = t.now();
        Ok(t.mailbox
            .iter_mut()
            .filter(|e| e.conversation_id == conversation_id && e.delivered_at.is_none())
            .map(|e| {
                e.delivered_at = Some(now);
                e.clone()
            })
            .collect())
    }
}

#[async_trait]
impl GatewayStore for MemoryStore {
    async fn chat_binding(&self, channel: &str, chat_id: &str) -> StoreResult<Option<ChatBinding>> {
        let t = self.lock();
        Ok(t.chat_bindings
            .get(&(channel.to_owned(), chat_id.to_owned()))
            .cloned())
    }

    async fn bind_chat(&self, binding: NewChatBinding) -> StoreResult<ChatBinding> {
        validate::new_chat_binding(&binding)?;
        let mut t = self.lock();
        t.user(binding.user_id)?;
        t.conversation(binding.conversation_id)?;
        if let Some(preset) = binding.preset_id {
            t.preset(preset)?;
        }
        let now = t.now();
        let key = (binding.channel.clone(), binding.chat_id.clone());
        let kept = t
            .chat_bindings
            .get(&key)
            .filter(|old| old.conversation_id == binding.conversation_id)
            .map(|old| (old.delivered_session_id, old.delivered_seq));
        let (delivered_session_id, delivered_seq) = kept.unwrap_or((None, 0));
        let row = ChatBinding {
            channel: binding.channel,
            chat_id: binding.chat_id,
            user_id: binding.user_id,
            conversation_id: binding.conversation_id,
            preset_id: binding.preset_id,
            delivered_session_id,
            delivered_seq,
            updated_at: now,
        };
        t.chat_bindings.insert(key, row.clone());
        Ok(row)
    }

    async fn mark_delivered(
        &self,
        channel: &str,
        chat_id: &str,
        session_id: SessionId,
        seq: EventSeq,
    ) -> StoreResult<()> {
        let mut t = self.lock();
        let now = t.now();
        let key = (channel.to_owned(), chat_id.to_owned());
        let row = t
            .chat_bindings
            .get_mut(&key)
            .ok_or_else(|| StoreError::not_found("chat binding", format!("{channel}:{chat_id}")))?;
        row.delivered_session_id = Some(session_id);
        row.delivered_seq = seq;
        row.updated_at = now;
        Ok(())
    }

    async fn list_chat_bindings(&self, channel: &str) -> StoreResult<Vec<ChatBinding>> {
        let t = self.lock();
        Ok(t.chat_bindings
            .values()
            .filter(|b| b.channel == channel)
            .cloned()
            .collect())
    }

    async fn gateway_identity(
        &self,
        channel: &str,
        sender_id: &str,
    ) -> StoreResult<Option<GatewayIdentity>> {
        let t = self.lock();
        Ok(t.identities
            .get(&(channel.to_owned(), sender_id.to_owned()))
            .cloned())
    }

    async fn create_pairing(&self, pairing: NewPairing) -> StoreResult<PairingRequest> {
        validate::new_pairing(&pairing)?;
        let mut t = self.lock();
        if t.pairings.contains_key(&pairing.code) {
            return Err(StoreError::Conflict("pairing code is taken".into()));
        }
        let now = t.now();
        t.pairings
            .retain(|_, p| !(p.channel == pairing.channel && p.sender_id == pairing.sender_id));
        let row = PairingRequest {
            code: pairing.code,
            channel: pairing.channel,
            sender_id: pairing.sender_id,
            display_name: pairing.display_name,
            chat_id: pairing.chat_id,
            created_at: now,
            expires_at: pairing.expires_at,
        };
        t.pairings.insert(row.code.clone(), row.clone());
        Ok(row)
    }

    async fn pending_pairings(&self, now: DateTime<Utc>) -> StoreResult<Vec<PairingRequest>> {
        let t = self.lock();
        let mut pending: Vec<PairingRequest> = t
            .pairings
            .values()
            .filter(|p| p.expires_at > now)
            .cloned()
            .collect();
        pending.sort_by(|a, b| (a.created_at, &a.code).cmp(&(b.created_at, &b.code)));
        Ok(pending)
    }

    async fn approve_pairing(
        &self,
        code: &str,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<GatewayIdentity> {
        let mut t = self.lock();
        t.user(user_id)?;
        let request = t
            .pairings
            .get(code)
            .filter(|p| p.expires_at > now)
            .cloned()
            .ok_or_else(|| StoreError::not_found("pairing code", code))?;
        t.pairings.remove(code);
        let created_at = t.now();
        let identity = GatewayIdentity {
            channel: request.channel.clone(),
            sender_id: request.sender_id.clone(),
            user_id,
            created_at,
        };
        t.identities
            .insert((request.channel, request.sender_id), identity.clone());
        Ok(identity)
    }
}

#[async_trait]
impl ProviderStore for MemoryStore {
    async fn create_provider(&self, provider: NewStoredProvider) -> StoreResult<StoredProvider> {
        validate::new_provider(&provider)?;
        let mut t = self.lock();
        if t.providers.contains_key(&provider.name) {
            return Err(StoreError::Conflict(format!(
                "provider `{}` exists",
                provider.name
            )));
        }
        let now = t.now();
        let row = StoredProvider {
            name: provider.name,
            kind: provider.kind,
            base_url: provider.base_url,
            models: provider.models,
            default_model: provider.default_model,
            headers: provider.headers,
            api_key: provider.api_key,
            created_at: now,
            updated_at: now,
        };
        t.providers.insert(row.name.clone(), row.clone());
        Ok(row)
    }

    async fn get_provider(&self, name: &str) -> StoreResult<StoredProvider> {
        self.lock()
            .providers
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::not_found("provider", name))
    }

    async fn list_providers(&self) -> StoreResult<Vec<StoredProvider>> {
        Ok(self.lock().providers.values().cloned().collect())
    }

    async fn update_provider(
        &self,
        name: &str,
        patch: ProviderPatch,
    ) -> StoreResult<StoredProvider> {
        let mut t = self.lock();
        let mut updated = t
            .providers
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::not_found("provider", name))?;
        patch.apply(&mut updated)?;
        updated.updated_at = t.now();
        t.providers.insert(updated.name.clone(), updated.clone());
        Ok(updated)
    }

    async fn delete_provider(&self, name: &str) -> StoreResult<()> {
        self.lock()
            .providers
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| StoreError::not_found("provider", name))
    }
}

#[async_trait]
impl MemoryRecords for MemoryStore {
    async fn create_memory(
        &self,
        memory: NewMemory,
        max_per_user: u32,
    ) -> StoreResult<MemoryRecord> {
        validate::new_memory(&memory)?;
        let mut t = self.lock();
        t.user(memory.user_id)?;
        if let Some(workspace) = memory.workspace_id {
            t.workspace(workspace)?;
        }
        let count = t
            .memories
            .values()
            .filter(|m| m.user_id == memory.user_id)
            .count();
        super::check_memory_room(u64::try_from(count).unwrap_or(u64::MAX), max_per_user)?;
        let now = t.now();
        let row = MemoryRecord {
            id: MemoryId::new(),
            user_id: memory.user_id,
            workspace_id: memory.workspace_id,
            content: memory.content,
            source_conversation_id: memory.source_conversation_id,
            source_session_id: memory.source_session_id,
            embedding: memory.embedding,
            created_at: now,
            updated_at: now,
        };
        t.memories.insert(row.id, row.clone());
        Ok(row)
    }

    async fn get_memory(&self, id: MemoryId) -> StoreResult<MemoryRecord> {
        self.lock()
            .memories
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("memory", id))
    }

    async fn list_memories(&self, user_id: UserId) -> StoreResult<Vec<MemoryRecord>> {
        let t = self.lock();
        let mut list: Vec<MemoryRecord> = t
            .memories
            .values()
            .filter(|m| m.user_id == user_id)
            .cloned()
            .collect();
        list.sort_by_key(|m| Reverse((m.created_at, m.id)));
        Ok(list)
    }

    async fn count_memories(&self, user_id: UserId) -> StoreResult<u64> {
        let t = self.lock();
        let n = t.memories.values().filter(|m| m.user_id == user_id).count();
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    async fn update_memory(&self, id: MemoryId, patch: MemoryPatch) -> StoreResult<MemoryRecord> {
        validate::memory_patch(&patch)?;
        let mut t = self.lock();
        let now = t.now();
        let row = t
            .memories
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("memory", id))?;
        patch.apply(row, now);
        Ok(row.clone())
    }

    async fn delete_memory(&self, id: MemoryId) -> StoreResult<()> {
        self.lock()
            .memories
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| StoreError::not_found("memory", id))
    }

    async fn search_memories(&self, query: MemoryQuery) -> StoreResult<Vec<MemoryRecord>> {
        let terms = validate::memory_query(&query)?;
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let candidates: Vec<MemoryRecord> = {
            let t = self.lock();
            t.memories
                .values()
                .filter(|m| m.user_id == query.user_id && m.in_scope(query.workspace_id))
                .cloned()
                .collect()
        };
        Ok(super::rank_memories(&terms, candidates, query.limit))
    }
}

/// `t` at the stores' precision (microseconds).
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

impl Tables {
    fn task_name_taken(
        &self,
        owner: UserId,
        name: &str,
        except: Option<TaskId>,
    ) -> StoreResult<()> {
        if self
            .tasks
            .values()
            .any(|t| t.owner == owner && t.name == name && Some(t.id) != except)
        {
            return Err(StoreError::Conflict(format!(
                "a task named `{name}` exists"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl TaskStore for MemoryStore {
    async fn create_task(&self, task: NewTask, max_per_user: u32) -> StoreResult<ScheduledTask> {
        validate::new_task(&task)?;
        let mut t = self.lock();
        t.user(task.owner)?;
        t.preset(task.preset_id)?;
        let count = t.tasks.values().filter(|x| x.owner == task.owner).count();
        if u64::try_from(count).unwrap_or(u64::MAX) >= u64::from(max_per_user) {
            return Err(StoreError::Conflict(super::tasks_full_message(
                max_per_user,
            )));
        }
        t.task_name_taken(task.owner, &task.name, None)?;
        let now = t.now();
        let row = ScheduledTask {
            id: TaskId::new(),
            owner: task.owner,
            name: task.name,
            schedule: task.schedule,
            preset_id: task.preset_id,
            prompt: task.prompt,
            conversation_id: task.conversation_id,
            catch_up: task.catch_up,
            enabled: task.enabled,
            next_run_at: micros(task.next_run_at),
            last_run_at: None,
            last_session_id: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        t.tasks.insert(row.id, row.clone());
        Ok(row)
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<ScheduledTask> {
        self.lock()
            .tasks
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("task", id))
    }

    async fn list_tasks(&self, owner: UserId) -> StoreResult<Vec<ScheduledTask>> {
        let t = self.lock();
        let mut list: Vec<ScheduledTask> = t
            .tasks
            .values()
            .filter(|x| x.owner == owner)
            .cloned()
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(list)
    }

    async fn update_task(&self, id: TaskId, patch: TaskPatch) -> StoreResult<ScheduledTask> {
        validate::task_patch(&patch)?;
        let mut t = self.lock();
        let owner = t
            .tasks
            .get(&id)
            .ok_or_else(|| StoreError::not_found("task", id))?
            .owner;
        if let Some(preset) = patch.preset_id {
            t.preset(preset)?;
        }
        if let Some(name) = &patch.name {
            t.task_name_taken(owner, name, Some(id))?;
        }
        let now = t.now();
        let row = t
            .tasks
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("task", id))?;
        patch.apply(row, now);
        row.next_run_at = micros(row.next_run_at);
        Ok(row.clone())
    }

    async fn delete_task(&self, id: TaskId) -> StoreResult<()> {
        self.lock()
            .tasks
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| StoreError::not_found("task", id))
    }

    async fn due_tasks(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<ScheduledTask>> {
        validate::page_size(limit)?;
        let t = self.lock();
        let mut due: Vec<ScheduledTask> = t
            .tasks
            .values()
            .filter(|x| x.enabled && x.next_run_at <= now)
            .cloned()
            .collect();
        due.sort_by_key(|x| (x.next_run_at, x.id));
        due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(due)
    }

    async fn claim_task(
        &self,
        id: TaskId,
        slot: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut t = self.lock();
        let now = t.now();
        let Some(row) = t.tasks.get_mut(&id) else {
            return Ok(false);
        };
        if !row.enabled || row.next_run_at != micros(slot) {
            return Ok(false);
        }
        row.next_run_at = micros(next);
        row.updated_at = now;
        Ok(true)
    }

    async fn record_task_run(&self, id: TaskId, run: TaskRun) -> StoreResult<ScheduledTask> {
        if let Some(error) = &run.error {
            validate::text("error", Some(error), validate::MAX_TEXT_LEN)?;
        }
        let mut t = self.lock();
        let now = t.now();
        let row = t
            .tasks
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("task", id))?;
        if run.session_id.is_some() {
            row.last_run_at = Some(micros(run.at));
            row.last_session_id = run.session_id;
        }
        row.last_error = run.error;
        row.updated_at = now;
        Ok(row.clone())
    }
}
