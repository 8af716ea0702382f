//! [`MemoryRecords`]: a user's long-term memories — short texts the agent
//! (or the user) keeps across conversations, each recording where it came
//! from, found again by full-text search (FTS5 on SQLite, `tsvector` on
//! Postgres) or, when embeddings are configured, by cosine similarity.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::ids::{ConversationId, MemoryId, SessionId, UserId, WorkspaceId};

/// One memory of a user.
///
/// ```
/// use netherbrain_core::store::MemoryRecord;
/// fn from_a_conversation(m: &MemoryRecord) -> bool {
///     m.source_conversation_id.is_some()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemoryRecord {
    /// Its id.
    pub id: MemoryId,
    /// The user it belongs to (server-owned: never from request data).
    pub user_id: UserId,
    /// The workspace it is limited to; `None`: every run of the user.
    pub workspace_id: Option<WorkspaceId>,
    /// What is remembered.
    pub content: String,
    /// The conversation it was remembered in, if any.
    pub source_conversation_id: Option<ConversationId>,
    /// The session (run) it was remembered in, if any.
    pub source_session_id: Option<SessionId>,
    /// Its embedding, when embeddings are configured.
    pub embedding: Option<Vec<f32>>,
    /// When it was remembered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl MemoryRecord {
    /// Whether a run in `workspace` sees this memory: one without a
    /// workspace is seen everywhere, one with a workspace only there.
    ///
    /// ```
    /// # use netherbrain_core::store::MemoryRecord;
    /// fn everywhere(m: &MemoryRecord) -> bool {
    ///     m.in_scope(None) || m.workspace_id.is_some()
    /// }
    /// ```
    #[must_use]
    pub fn in_scope(&self, workspace: Option<WorkspaceId>) -> bool {
        self.workspace_id.is_none() || self.workspace_id == workspace
    }
}

/// A memory to record.
///
/// ```
/// use netherbrain_core::store::NewMemory;
/// use netherbrain_core::UserId;
/// let m = NewMemory::new(UserId::new(), "prefers tea");
/// assert_eq!(m.workspace_id, None);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewMemory {
    /// The owner.
    pub user_id: UserId,
    /// The workspace it is limited to.
    pub workspace_id: Option<WorkspaceId>,
    /// What is remembered.
    pub content: String,
    /// Where it came from: the conversation.
    pub source_conversation_id: Option<ConversationId>,
    /// Where it came from: the session.
    pub source_session_id: Option<SessionId>,
    /// Its embedding.
    pub embedding: Option<Vec<f32>>,
}

impl NewMemory {
    /// A memory of `user_id` without workspace, source or embedding.
    ///
    /// ```
    /// # use netherbrain_core::{store::NewMemory, UserId};
    /// assert_eq!(NewMemory::new(UserId::new(), "x").content, "x");
    /// ```
    #[must_use]
    pub fn new(user_id: UserId, content: impl Into<String>) -> Self {
        Self {
            user_id,
            workspace_id: None,
            content: content.into(),
            source_conversation_id: None,
            source_session_id: None,
            embedding: None,
        }
    }

    /// Limits it to a workspace.
    ///
    /// ```
    /// # use netherbrain_core::{store::NewMemory, UserId, WorkspaceId};
    /// let w = WorkspaceId::new();
    /// assert_eq!(NewMemory::new(UserId::new(), "x").with_workspace(Some(w)).workspace_id, Some(w));
    /// ```
    #[must_use]
    pub fn with_workspace(mut self, workspace: Option<WorkspaceId>) -> Self {
        self.workspace_id = workspace;
        self
    }

    /// Records where it came from.
    ///
    /// ```
    /// # use netherbrain_core::{store::NewMemory, ConversationId, SessionId, UserId};
    /// let c = ConversationId::new();
    /// let m = NewMemory::new(UserId::new(), "x").with_source(Some(c), Some(SessionId::new()));
    /// assert_eq!(m.source_conversation_id, Some(c));
    /// ```
    #[must_use]
    pub fn with_source(
        mut self,
        conversation: Option<ConversationId>,
        session: Option<SessionId>,
    ) -> Self {
        self.source_conversation_id = conversation;
        self.source_session_id = session;
        self
    }

    /// Sets the embedding.
    ///
    /// ```
    /// # use netherbrain_core::{store::NewMemory, UserId};
    /// let m = NewMemory::new(UserId::new(), "x").with_embedding(Some(vec![1.0, 0.0]));
    /// assert_eq!(m.embedding.map(|e| e.len()), Some(2));
    /// ```
    #[must_use]
    pub fn with_embedding(mut self, embedding: Option<Vec<f32>>) -> Self {
        self.embedding = embedding;
        self
    }
}

/// A change to a memory. Changing the content without a new embedding
/// drops the old one (it no longer describes the text).
///
/// ```
/// use netherbrain_core::store::MemoryPatch;
/// let p = MemoryPatch::content("prefers green tea");
/// assert!(p.embedding.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct MemoryPatch {
    /// New content.
    pub content: Option<String>,
    /// New embedding (`Some(None)` removes it).
    pub embedding: Option<Option<Vec<f32>>>,
}

impl MemoryPatch {
    /// A patch of the content.
    ///
    /// ```
    /// # use netherbrain_core::store::MemoryPatch;
    /// assert_eq!(MemoryPatch::content("x").content.as_deref(), Some("x"));
    /// ```
    #[must_use]
    pub fn content(content: impl Into<String>) -> Self {
        Self {
            content: Some(content.into()),
            embedding: None,
        }
    }

    /// Sets the embedding too.
    ///
    /// ```
    /// # use netherbrain_core::store::MemoryPatch;
    /// let p = MemoryPatch::content("x").with_embedding(Some(vec![0.5]));
    /// assert_eq!(p.embedding, Some(Some(vec![0.5])));
    /// ```
    #[must_use]
    pub fn with_embedding(mut self, embedding: Option<Vec<f32>>) -> Self {
        self.embedding = Some(embedding);
        self
    }

    /// Applies the patch to a stored memory (every backend merges this
    /// way); `now` becomes `updated_at`.
    ///
    /// ```
    /// # use netherbrain_core::store::{MemoryPatch, MemoryRecord};
    /// fn edit(m: &mut MemoryRecord) {
    ///     MemoryPatch::content("new text").apply(m, chrono::Utc::now());
    ///     assert!(m.embedding.is_none());
    /// }
    /// ```
    pub fn apply(self, memory: &mut MemoryRecord, now: DateTime<Utc>) {
        if let Some(content) = self.content {
            if content != memory.content && self.embedding.is_none() {
                memory.embedding = None;
            }
            memory.content = content;
        }
        if let Some(embedding) = self.embedding {
            memory.embedding = embedding;
        }
        memory.updated_at = now;
    }
}

/// A full-text search of one user's memories, as a run in `workspace_id`
/// sees them.
///
/// ```
/// use netherbrain_core::store::MemoryQuery;
/// use netherbrain_core::UserId;
/// let q = MemoryQuery::new(UserId::new(), "tea", 5);
/// assert_eq!(q.limit, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryQuery {
    /// Whose memories.
    pub user_id: UserId,
    /// The run's workspace: memories of other workspaces are left out.
    pub workspace_id: Option<WorkspaceId>,
    /// The words to look for.
    pub text: String,
    /// Most memories returned (1–200).
    pub limit: u32,
}

impl MemoryQuery {
    /// A query outside any workspace.
    ///
    /// ```
    /// # use netherbrain_core::{store::MemoryQuery, UserId};
    /// assert_eq!(MemoryQuery::new(UserId::new(), "x", 1).workspace_id, None);
    /// ```
    #[must_use]
    pub fn new(user_id: UserId, text: impl Into<String>, limit: u32) -> Self {
        Self {
            user_id,
            workspace_id: None,
            text: text.into(),
            limit,
        }
    }

    /// Sets the workspace.
    ///
    /// ```
    /// # use netherbrain_core::{store::MemoryQuery, UserId, WorkspaceId};
    /// let w = WorkspaceId::new();
    /// assert_eq!(MemoryQuery::new(UserId::new(), "x", 1).in_workspace(Some(w)).workspace_id, Some(w));
    /// ```
    #[must_use]
    pub fn in_workspace(mut self, workspace: Option<WorkspaceId>) -> Self {
        self.workspace_id = workspace;
        self
    }
}

/// The words of a text as search matches them: lowercase runs of letters
/// and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Ranks the memories a backend's full-text index found for `terms` (the
/// words of [`validate::memory_query`](super::validate::memory_query)): a memory scores one point per
/// term that begins one of its words; those scoring nothing are dropped;
/// best first, ties newest first; at most `limit`. Every backend ranks
/// with this function, so all return the same order.
///
/// ```
/// use netherbrain_core::store::{rank_memories, MemoryRecord};
/// fn best(candidates: Vec<MemoryRecord>) -> Option<MemoryRecord> {
///     let terms = vec!["green".to_owned(), "tea".to_owned()];
///     rank_memories(&terms, candidates, 1).pop()
/// }
/// ```
#[must_use]
pub fn rank_memories(
    terms: &[String],
    candidates: Vec<MemoryRecord>,
    limit: u32,
) -> Vec<MemoryRecord> {
    let mut scored: Vec<(usize, MemoryRecord)> = candidates
        .into_iter()
        .filter_map(|m| {
            let words = words(&m.content);
            let score = terms
                .iter()
                .filter(|t| words.iter().any(|w| w.starts_with(t.as_str())))
                .count();
            (score > 0).then_some((score, m))
        })
        .collect();
    scored.sort_by(|(a, ma), (b, mb)| {
        b.cmp(a)
            .then(mb.created_at.cmp(&ma.created_at))
            .then(mb.id.cmp(&ma.id))
    });
    scored
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(|(_, m)| m)
        .collect()
}

/// Cosine similarity of two vectors (0 when either is zero or their
/// lengths differ).
///
/// ```
/// use netherbrain_core::store::cosine;
/// assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
/// assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
/// assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
/// ```
#[must_use]
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    #[allow(clippy::cast_possible_truncation)]
    let similarity = (dot / (na.sqrt() * nb.sqrt())) as f32;
    similarity
}

/// A user's long-term memories.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::store::prelude::*;
/// use netherbrain_core::store::{MemoryQuery, MemoryStore, NewMemory, NewUser, UserRole};
///
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
/// store.create_memory(NewMemory::new(ada.id, "Ada prefers green tea"), 100).await?;
/// let found = store.search_memories(MemoryQuery::new(ada.id, "which tea?", 5)).await?;
/// assert_eq!(found[0].content, "Ada prefers green tea");
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait MemoryRecords: Send + Sync + std::fmt::Debug {
    /// Records a memory, unless its user has `max_per_user` already: then a
    /// [`StoreError::Conflict`](super::StoreError::Conflict) saying the
    /// memory is full (checked atomically with the insert). The user (and
    /// the workspace, if any) must exist.
    async fn create_memory(
        &self,
        memory: NewMemory,
        max_per_user: u32,
    ) -> StoreResult<MemoryRecord>;
    /// Gets a memory.
    async fn get_memory(&self, id: MemoryId) -> StoreResult<MemoryRecord>;
    /// A user's memories, newest first.
    async fn list_memories(&self, user_id: UserId) -> StoreResult<Vec<MemoryRecord>>;
    /// How many memories a user has.
    async fn count_memories(&self, user_id: UserId) -> StoreResult<u64>;
    /// Changes a memory ([`MemoryPatch::apply`]).
    async fn update_memory(&self, id: MemoryId, patch: MemoryPatch) -> StoreResult<MemoryRecord>;
    /// Deletes a memory.
    async fn delete_memory(&self, id: MemoryId) -> StoreResult<()>;
    /// Full-text search of one user's memories in scope of the query's
    /// workspace ([`MemoryRecord::in_scope`]): any word of the query may
    /// match the beginning of a word; ranked by [`rank_memories`]. A blank
    /// or over-long query or a bad limit is
    /// [`StoreError::Invalid`](super::StoreError::Invalid).
    async fn search_memories(&self, query: MemoryQuery) -> StoreResult<Vec<MemoryRecord>>;
}

/// The message of the conflict a full memory gives.
///
/// ```
/// assert!(netherbrain_core::store::memory_full_message(3).contains("3"));
/// ```
#[must_use]
pub fn memory_full_message(max_per_user: u32) -> String {
    format!(
        "memory is full: at most {max_per_user} memories per user; forget some before remembering more"
    )
}

/// Checks for the store backends that `count` memories leave room for one
/// more.
///
/// # Errors
///
/// [`StoreError::Conflict`](super::StoreError::Conflict) with
/// [`memory_full_message`].
///
/// ```
/// use netherbrain_core::store::check_memory_room;
/// assert!(check_memory_room(2, 3).is_ok());
/// assert!(check_memory_room(3, 3).is_err());
/// ```
pub fn check_memory_room(count: u64, max_per_user: u32) -> StoreResult<()> {
    if count >= u64::from(max_per_user) {
        return Err(super::StoreError::Conflict(memory_full_message(
            max_per_user,
        )));
    }
    Ok(())
}
