//! The rows a [`StateStore`](super::StateStore) keeps, and the inputs that
//! create and change them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::EventEnvelope;
use crate::ids::{ApiKeyId, ConversationId, MailboxId, PresetId, SessionId, UserId, WorkspaceId};
use crate::message::{Message, ToolCall};
use crate::preset::PresetConfig;
use crate::session::SessionStatus;
use crate::usage::UsageByModel;

/// JSON object metadata attached to workspaces and conversations.
pub type Metadata = Map<String, Value>;

/// What a user may do.
///
/// ```
/// use netherbrain_core::store::UserRole;
/// assert_eq!(serde_json::to_string(&UserRole::Admin).unwrap(), "\"admin\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UserRole {
    /// Manages users, presets and workspaces.
    Admin,
    /// Uses agents in their own conversations.
    #[default]
    User,
}

impl UserRole {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }

    /// Parses a snake_case name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "user" => Some(Self::User),
            _ => None,
        }
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Unique login name.
    pub username: String,
    /// Name to show.
    pub display_name: Option<String>,
    /// Role.
    pub role: UserRole,
    /// Argon2 PHC string; `None` for accounts that log in by token only.
    #[serde(skip_serializing)]
    pub password_hash: Option<String>,
    /// The password was set by someone else (an admin creating the account
    /// or resetting its password): it is temporary, and the user's login
    /// tokens can do nothing but change it until the user chooses a new
    /// one. Server-owned: only the password routes set or clear it.
    #[serde(default)]
    pub must_change_password: bool,
    /// Deactivated users cannot authenticate.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Input for [`UserStore::create_user`](super::UserStore::create_user).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewUser {
    /// Unique login name (1–64 chars of letters, digits, `-`, `_`, `.`).
    pub username: String,
    /// Name to show.
    pub display_name: Option<String>,
    /// Role.
    pub role: UserRole,
    /// Argon2 PHC string.
    pub password_hash: Option<String>,
    /// Whether the password is temporary (see [`User::must_change_password`]).
    pub must_change_password: bool,
}

impl NewUser {
    /// A user with the given name and role.
    #[must_use]
    pub fn new(username: impl Into<String>, role: UserRole) -> Self {
        Self {
            username: username.into(),
            role,
            ..Self::default()
        }
    }

    /// Sets the password hash.
    #[must_use]
    pub fn with_password_hash(mut self, hash: impl Into<String>) -> Self {
        self.password_hash = Some(hash.into());
        self
    }

    /// Marks the password as temporary: the user must choose a new one
    /// before doing anything else (see [`User::must_change_password`]).
    ///
    /// ```
    /// use netherbrain_core::store::{NewUser, UserRole};
    /// let new = NewUser::new("ada", UserRole::User)
    ///     .with_password_hash("$argon2id$…")
    ///     .with_temporary_password();
    /// assert!(new.must_change_password);
    /// ```
    #[must_use]
    pub fn with_temporary_password(mut self) -> Self {
        self.must_change_password = true;
        self
    }

    /// Sets the display name.
    #[must_use]
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserPatch {
    /// New display name (`Some(None)` clears it).
    pub display_name: Option<Option<String>>,
    /// New role.
    pub role: Option<UserRole>,
    /// Activate or deactivate.
    pub active: Option<bool>,
    /// New password hash.
    pub password_hash: Option<String>,
    /// Set or clear [`User::must_change_password`].
    pub must_change_password: Option<bool>,
}

impl UserPatch {
    /// Applies the patch to `user` (every backend's `update_user` does
    /// this; timestamps are the store's).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
    /// use netherbrain_core::store::{MemoryStore, NewUser, UserPatch, UserRole, UserStore};
    /// let mut user = MemoryStore::new().create_user(NewUser::new("ada", UserRole::User)).await?;
    /// let mut patch = UserPatch::default();
    /// patch.active = Some(false);
    /// patch.apply(&mut user);
    /// assert!(!user.active);
    /// # Ok(())
    /// # }
    /// ```
    pub fn apply(self, user: &mut User) {
        if let Some(display_name) = self.display_name {
            user.display_name = display_name;
        }
        if let Some(role) = self.role {
            user.role = role;
        }
        if let Some(active) = self.active {
            user.active = active;
        }
        if let Some(hash) = self.password_hash {
            user.password_hash = Some(hash);
        }
        if let Some(must) = self.must_change_password {
            user.must_change_password = must;
        }
    }
}

/// An API key. Only a hash and a visible prefix are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// Owner.
    pub user_id: UserId,
    /// Label.
    pub name: String,
    /// The first characters of the key, shown in listings and used to look
    /// the key up. Unique.
    pub prefix: String,
    /// Hash of the whole key.
    #[serde(skip_serializing)]
    pub hash: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// After this the key no longer authenticates.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key authenticates at `now`.
    #[must_use]
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|exp| exp > now)
    }
}

/// Input for [`UserStore::create_api_key`](super::UserStore::create_api_key).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewApiKey {
    /// Owner.
    pub user_id: UserId,
    /// Label.
    pub name: String,
    /// Visible prefix (unique).
    pub prefix: String,
    /// Hash of the whole key.
    pub hash: String,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewApiKey {
    /// A key without expiry.
    #[must_use]
    pub fn new(
        user_id: UserId,
        name: impl Into<String>,
        prefix: impl Into<String>,
        hash: impl Into<String>,
    ) -> Self {
        Self {
            user_id,
            name: name.into(),
            prefix: prefix.into(),
            hash: hash.into(),
            expires_at: None,
        }
    }

    /// Sets the expiry.
    #[must_use]
    pub fn with_expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// A named agent configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Preset {
    /// Id.
    pub id: PresetId,
    /// Unique name; exposed as the model name on `/v1/models`.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The configuration.
    pub config: PresetConfig,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Input for [`CatalogStore::create_preset`](super::CatalogStore::create_preset).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewPreset {
    /// Unique name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The configuration.
    pub config: PresetConfig,
}

impl NewPreset {
    /// A preset without description.
    #[must_use]
    pub fn new(name: impl Into<String>, config: PresetConfig) -> Self {
        Self {
            name: name.into(),
            description: None,
            config,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// Changes to a preset; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct PresetPatch {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New configuration.
    pub config: Option<PresetConfig>,
}

impl PresetPatch {
    /// Applies the patch to `preset` (every backend's `update_preset` does
    /// this; timestamps are the store's).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
    /// use netherbrain_core::PresetConfig;
    /// use netherbrain_core::store::{CatalogStore, MemoryStore, NewPreset, PresetPatch};
    /// let store = MemoryStore::new();
    /// let mut preset = store.create_preset(NewPreset::new("a", PresetConfig::new("p", "m"))).await?;
    /// let mut patch = PresetPatch::default();
    /// patch.name = Some("b".into());
    /// patch.apply(&mut preset);
    /// assert_eq!(preset.name, "b");
    /// # Ok(())
    /// # }
    /// ```
    pub fn apply(self, preset: &mut Preset) {
        if let Some(name) = self.name {
            preset.name = name;
        }
        if let Some(description) = self.description {
            preset.description = description;
        }
        if let Some(config) = self.config {
            preset.config = config;
        }
    }
}

/// Groups conversations and owns the project directories tools are
/// confined to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Workspace {
    /// Id.
    pub id: WorkspaceId,
    /// Unique name.
    pub name: String,
    /// The user who may attach it to conversations (besides admins);
    /// `None`: admins only.
    #[serde(default)]
    pub owner: Option<UserId>,
    /// Directories file and shell tools may touch.
    pub project_dirs: Vec<String>,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Input for [`CatalogStore::create_workspace`](super::CatalogStore::create_workspace).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct NewWorkspace {
    /// Unique name.
    pub name: String,
    /// The user who may attach it to conversations (besides admins).
    pub owner: Option<UserId>,
    /// Project directories.
    pub project_dirs: Vec<String>,
    /// Metadata.
    pub metadata: Metadata,
}

impl NewWorkspace {
    /// A workspace with no directories and no metadata.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Sets the project directories.
    #[must_use]
    pub fn with_project_dirs(mut self, dirs: Vec<String>) -> Self {
        self.project_dirs = dirs;
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the owner.
    #[must_use]
    pub fn with_owner(mut self, owner: UserId) -> Self {
        self.owner = Some(owner);
        self
    }
}

/// Changes to a workspace; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct WorkspacePatch {
    /// New name.
    pub name: Option<String>,
    /// New project directories.
    pub project_dirs: Option<Vec<String>>,
    /// Keys to merge into the metadata; a `null` value removes the key.
    pub metadata: Option<Metadata>,
    /// New owner (`Some(None)`: admins only).
    pub owner: Option<Option<UserId>>,
}

impl WorkspacePatch {
    /// Applies the patch to `workspace`, merging the metadata and checking
    /// the result ([`validate::patch_metadata`](super::validate::patch_metadata));
    /// on error the caller discards `workspace`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
    /// use netherbrain_core::store::{CatalogStore, MemoryStore, NewWorkspace, WorkspacePatch};
    /// let mut workspace = MemoryStore::new().create_workspace(NewWorkspace::new("w")).await?;
    /// let mut patch = WorkspacePatch::default();
    /// patch.project_dirs = Some(vec!["/srv".into()]);
    /// patch.apply(&mut workspace)?;
    /// assert_eq!(workspace.project_dirs, ["/srv"]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when the merged
    /// metadata is invalid.
    pub fn apply(self, workspace: &mut Workspace) -> super::StoreResult<()> {
        if let Some(name) = self.name {
            workspace.name = name;
        }
        if let Some(dirs) = self.project_dirs {
            workspace.project_dirs = dirs;
        }
        if let Some(owner) = self.owner {
            workspace.owner = owner;
        }
        if let Some(metadata) = &self.metadata {
            super::validate::patch_metadata(&mut workspace.metadata, metadata)?;
        }
        Ok(())
    }
}

/// Whether a conversation is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConversationStatus {
    /// In use.
    #[default]
    Active,
    /// Hidden from default listings.
    Archived,
}

impl ConversationStatus {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }

    /// Parses a snake_case name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

/// A thread owned by one user: a chain of sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Conversation {
    /// Id.
    pub id: ConversationId,
    /// Owner.
    pub owner: UserId,
    /// Workspace, if any.
    pub workspace_id: Option<WorkspaceId>,
    /// Title.
    pub title: Option<String>,
    /// Summary.
    pub summary: Option<String>,
    /// Preset used when a run names none.
    pub default_preset: Option<PresetId>,
    /// Free-form metadata (a JSON object).
    pub metadata: Metadata,
    /// Status.
    pub status: ConversationStatus,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Last time a session started or finished.
    pub last_activity_at: DateTime<Utc>,
    /// Where a fork branched off; set by the server when it forks, never
    /// from request data, and never changed afterwards.
    #[serde(default)]
    pub forked_from: Option<ForkOrigin>,
    /// The run that delegated this conversation to a subagent (the
    /// `delegate` tool); set by the server when it creates the child, never
    /// from request data, and never changed afterwards.
    #[serde(default)]
    pub delegated_from: Option<DelegatedFrom>,
}

/// The parent run a subagent's conversation was started by.
///
/// ```
/// use netherbrain_core::store::DelegatedFrom;
/// use netherbrain_core::{ConversationId, SessionId};
/// let origin = DelegatedFrom::new(ConversationId::new(), SessionId::new());
/// # let _ = origin;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DelegatedFrom {
    /// The parent conversation.
    pub conversation_id: ConversationId,
    /// The parent session (the run whose tool call started the child).
    pub session_id: SessionId,
}

impl DelegatedFrom {
    /// An origin.
    #[must_use]
    pub fn new(conversation_id: ConversationId, session_id: SessionId) -> Self {
        Self {
            conversation_id,
            session_id,
        }
    }
}

/// The session a forked conversation branched from. Its first run continues
/// from that session's history.
///
/// ```
/// use netherbrain_core::store::ForkOrigin;
/// use netherbrain_core::{ConversationId, SessionId};
/// let origin = ForkOrigin::new(ConversationId::new(), SessionId::new());
/// # let _ = origin;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ForkOrigin {
    /// The conversation forked.
    pub conversation_id: ConversationId,
    /// The session forked.
    pub session_id: SessionId,
}

impl ForkOrigin {
    /// An origin.
    #[must_use]
    pub fn new(conversation_id: ConversationId, session_id: SessionId) -> Self {
        Self {
            conversation_id,
            session_id,
        }
    }
}

/// Input for [`ConversationStore::create_conversation`](super::ConversationStore::create_conversation).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewConversation {
    /// Id to use (so callers can know it before the row exists).
    pub id: ConversationId,
    /// Owner.
    pub owner: UserId,
    /// Workspace.
    pub workspace_id: Option<WorkspaceId>,
    /// Title.
    pub title: Option<String>,
    /// Default preset.
    pub default_preset: Option<PresetId>,
    /// Metadata.
    pub metadata: Metadata,
    /// Fork origin (server-owned; see [`Conversation::forked_from`]).
    pub forked_from: Option<ForkOrigin>,
    /// Delegating run (server-owned; see [`Conversation::delegated_from`]).
    pub delegated_from: Option<DelegatedFrom>,
}

impl NewConversation {
    /// A conversation with a fresh id and nothing else set.
    #[must_use]
    pub fn new(owner: UserId) -> Self {
        Self {
            id: ConversationId::new(),
            owner,
            workspace_id: None,
            title: None,
            default_preset: None,
            metadata: Metadata::new(),
            forked_from: None,
            delegated_from: None,
        }
    }

    /// Records the delegating run. Only the server sets this, when the
    /// `delegate` tool starts a subagent.
    ///
    /// ```
    /// use netherbrain_core::store::{DelegatedFrom, NewConversation};
    /// use netherbrain_core::{ConversationId, SessionId, UserId};
    /// let origin = DelegatedFrom::new(ConversationId::new(), SessionId::new());
    /// let new = NewConversation::new(UserId::new()).with_delegated_from(origin);
    /// assert_eq!(new.delegated_from, Some(origin));
    /// ```
    #[must_use]
    pub fn with_delegated_from(mut self, origin: DelegatedFrom) -> Self {
        self.delegated_from = Some(origin);
        self
    }

    /// Records the fork origin. Only the server sets this, when it forks.
    #[must_use]
    pub fn with_forked_from(mut self, origin: ForkOrigin) -> Self {
        self.forked_from = Some(origin);
        self
    }

    /// Sets the title.
    #[must_use]
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets the workspace.
    #[must_use]
    pub fn with_workspace(mut self, workspace: WorkspaceId) -> Self {
        self.workspace_id = Some(workspace);
        self
    }

    /// Sets the default preset.
    #[must_use]
    pub fn with_default_preset(mut self, preset: PresetId) -> Self {
        self.default_preset = Some(preset);
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// Changes to a conversation; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ConversationPatch {
    /// New title (`Some(None)` clears it).
    pub title: Option<Option<String>>,
    /// New summary (`Some(None)` clears it).
    pub summary: Option<Option<String>>,
    /// New default preset (`Some(None)` clears it).
    pub default_preset: Option<Option<PresetId>>,
    /// Keys shallow-merged into the metadata; a `null` value removes the key.
    pub metadata: Option<Metadata>,
    /// New status.
    pub status: Option<ConversationStatus>,
}

impl ConversationPatch {
    /// Applies the patch to `conversation`, merging the metadata and
    /// checking the result ([`validate::patch_metadata`](super::validate::patch_metadata));
    /// on error the caller discards `conversation`. Whether a new default
    /// preset exists is the store's to check.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
    /// use netherbrain_core::store::prelude::*;
    /// use netherbrain_core::store::{ConversationPatch, MemoryStore, NewConversation, NewUser, UserRole};
    /// let store = MemoryStore::new();
    /// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
    /// let mut conversation = store.create_conversation(NewConversation::new(ada.id)).await?;
    /// let mut patch = ConversationPatch::default();
    /// patch.title = Some(Some("Plans".into()));
    /// patch.apply(&mut conversation)?;
    /// assert_eq!(conversation.title.as_deref(), Some("Plans"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when the merged
    /// metadata is invalid.
    pub fn apply(self, conversation: &mut Conversation) -> super::StoreResult<()> {
        if let Some(title) = self.title {
            conversation.title = title;
        }
        if let Some(summary) = self.summary {
            conversation.summary = summary;
        }
        if let Some(preset) = self.default_preset {
            conversation.default_preset = preset;
        }
        if let Some(metadata) = &self.metadata {
            super::validate::patch_metadata(&mut conversation.metadata, metadata)?;
        }
        if let Some(status) = self.status {
            conversation.status = status;
        }
        Ok(())
    }
}

/// Which conversations to list. Results are ordered by last activity,
/// newest first.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConversationQuery {
    /// Only this owner's (`None`: everyone's).
    pub owner: Option<UserId>,
    /// Only this status.
    pub status: Option<ConversationStatus>,
    /// Only this workspace.
    pub workspace_id: Option<WorkspaceId>,
    /// Only conversations whose metadata contains this object (JSON
    /// containment: every key present with an equal, or containing, value).
    pub metadata: Option<Metadata>,
    /// Page size (1–200).
    pub limit: u32,
    /// Continue after this cursor (from [`Page::next_cursor`]).
    pub cursor: Option<String>,
}

impl ConversationQuery {
    /// The first page (50) of one owner's conversations.
    #[must_use]
    pub fn for_owner(owner: UserId) -> Self {
        Self {
            owner: Some(owner),
            ..Self::default()
        }
    }

    /// Sets the page size.
    #[must_use]
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Continues after a cursor.
    #[must_use]
    pub fn with_cursor(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }

    /// Filters by status.
    #[must_use]
    pub fn with_status(mut self, status: ConversationStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Filters by metadata containment.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Filters by workspace.
    #[must_use]
    pub fn with_workspace(mut self, workspace: WorkspaceId) -> Self {
        self.workspace_id = Some(workspace);
        self
    }
}

impl Default for ConversationQuery {
    fn default() -> Self {
        Self {
            owner: None,
            status: None,
            workspace_id: None,
            metadata: None,
            limit: 50,
            cursor: None,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass this to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page.
    #[must_use]
    pub fn new(items: Vec<T>, next_cursor: Option<String>) -> Self {
        Self { items, next_cursor }
    }
}

/// One run of the agent in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// Id.
    pub id: SessionId,
    /// Conversation.
    pub conversation_id: ConversationId,
    /// The session whose history this one continues (possibly in another
    /// conversation, for forks).
    pub parent_session_id: Option<SessionId>,
    /// Status.
    pub status: SessionStatus,
    /// Preset the run used.
    pub preset_id: Option<PresetId>,
    /// The new input of this run.
    pub input: Vec<Message>,
    /// Text of the last assistant message.
    pub final_message: Option<String>,
    /// Calls waiting for approval or results.
    pub deferred_tool_calls: Vec<ToolCall>,
    /// Tokens spent, per model.
    pub usage: UsageByModel,
    /// Why it failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// When it reached a terminal status.
    pub finished_at: Option<DateTime<Utc>>,
    /// Which process runs it and until when, while it runs; `None` for a
    /// session created without one (by an older version, or a store used
    /// directly).
    #[serde(default)]
    pub lease: Option<SessionLease>,
}

/// Who runs a session and until when. The owner (a process, see
/// [`Runtime`](crate::runtime::Runtime)) renews it while the run goes; a
/// session whose lease has expired is taken to be left behind by a dead
/// process and is recovered as interrupted.
///
/// ```
/// use netherbrain_core::store::SessionLease;
/// let lease = SessionLease::new("host-1/4242/9f1c", chrono::Utc::now());
/// assert_eq!(lease.owner, "host-1/4242/9f1c");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionLease {
    /// The owning process.
    pub owner: String,
    /// When the lease runs out unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl SessionLease {
    /// A lease.
    #[must_use]
    pub fn new(owner: impl Into<String>, expires_at: DateTime<Utc>) -> Self {
        Self {
            owner: owner.into(),
            expires_at,
        }
    }

    /// Whether it has run out at `now`.
    ///
    /// ```
    /// use netherbrain_core::store::SessionLease;
    /// let now = chrono::Utc::now();
    /// assert!(SessionLease::new("p", now).is_expired(now));
    /// assert!(!SessionLease::new("p", now + chrono::Duration::seconds(5)).is_expired(now));
    /// ```
    #[must_use]
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }
}

/// Input for [`SessionStore::create_session`](super::SessionStore::create_session).
/// The session starts `running`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewSession {
    /// Id to use.
    pub id: SessionId,
    /// Conversation (must exist).
    pub conversation_id: ConversationId,
    /// Parent session (must exist).
    pub parent_session_id: Option<SessionId>,
    /// Preset.
    pub preset_id: Option<PresetId>,
    /// New input. Stored durably, as the session's first messages, before
    /// `create_session` returns.
    pub input: Vec<Message>,
    /// The running process's lease.
    pub lease: Option<SessionLease>,
}

impl NewSession {
    /// A session with a fresh id.
    #[must_use]
    pub fn new(conversation_id: ConversationId, input: Vec<Message>) -> Self {
        Self {
            id: SessionId::new(),
            conversation_id,
            parent_session_id: None,
            preset_id: None,
            input,
            lease: None,
        }
    }

    /// Sets the lease of the process that runs it.
    #[must_use]
    pub fn with_lease(mut self, lease: SessionLease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Sets the parent.
    #[must_use]
    pub fn with_parent(mut self, parent: Option<SessionId>) -> Self {
        self.parent_session_id = parent;
        self
    }

    /// Sets the preset.
    #[must_use]
    pub fn with_preset(mut self, preset: Option<PresetId>) -> Self {
        self.preset_id = preset;
        self
    }

    /// Sets the id.
    #[must_use]
    pub fn with_id(mut self, id: SessionId) -> Self {
        self.id = id;
        self
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionFinish {
    /// Terminal status.
    pub status: SessionStatus,
    /// Text of the last assistant message.
    pub final_message: Option<String>,
    /// Calls waiting for approval or results.
    pub deferred_tool_calls: Vec<ToolCall>,
    /// Tokens spent.
    pub usage: UsageByModel,
    /// Why it failed.
    pub error: Option<String>,
    /// The run's last messages and events, appended in the same transaction
    /// as the status change (checked like an append), so a run's final
    /// answer, its terminal event and its end commit together.
    pub tail: SessionAppend,
}

impl SessionFinish {
    /// A finish with the given status and nothing else.
    #[must_use]
    pub fn new(status: SessionStatus) -> Self {
        Self {
            status,
            final_message: None,
            deferred_tool_calls: Vec::new(),
            usage: UsageByModel::default(),
            error: None,
            tail: SessionAppend::default(),
        }
    }

    /// Appends these messages and events with the finish.
    ///
    /// ```
    /// use netherbrain_core::store::{SessionAppend, SessionFinish};
    /// use netherbrain_core::{Message, SessionStatus};
    /// let finish = SessionFinish::new(SessionStatus::Committed)
    ///     .with_tail(SessionAppend::new(vec![Message::assistant("done")], vec![]));
    /// assert_eq!(finish.tail.messages.len(), 1);
    /// ```
    #[must_use]
    pub fn with_tail(mut self, tail: SessionAppend) -> Self {
        self.tail = tail;
        self
    }
}

/// Messages and events appended to a session in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SessionAppend {
    /// Messages, appended after the session's existing ones.
    pub messages: Vec<Message>,
    /// Events with their sequence numbers; each must be greater than every
    /// stored one of the session.
    pub events: Vec<EventEnvelope>,
}

impl SessionAppend {
    /// An append of messages and events.
    #[must_use]
    pub fn new(messages: Vec<Message>, events: Vec<EventEnvelope>) -> Self {
        Self { messages, events }
    }

    /// Whether there is nothing to append.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.events.is_empty()
    }
}

/// A result a background subagent left for a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MailboxEntry {
    /// Id.
    pub id: MailboxId,
    /// Recipient conversation.
    pub conversation_id: ConversationId,
    /// The session that produced it.
    pub source_session_id: Option<SessionId>,
    /// The result.
    pub content: Value,
    /// Posted.
    pub created_at: DateTime<Utc>,
    /// Taken by [`MailboxStore::take_mailbox`](super::MailboxStore::take_mailbox).
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Input for [`MailboxStore::post_mailbox`](super::MailboxStore::post_mailbox).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewMailboxEntry {
    /// Recipient conversation.
    pub conversation_id: ConversationId,
    /// Producing session.
    pub source_session_id: Option<SessionId>,
    /// The result.
    pub content: Value,
}

impl NewMailboxEntry {
    /// An entry.
    #[must_use]
    pub fn new(
        conversation_id: ConversationId,
        source_session_id: Option<SessionId>,
        content: Value,
    ) -> Self {
        Self {
            conversation_id,
            source_session_id,
            content,
        }
    }
}
