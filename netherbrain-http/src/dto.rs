//! Request and response bodies of the API (shared with the typed client).
//!
//! Responses never carry password hashes or key hashes; a key's secret
//! appears exactly once, in [`CreatedApiKey`].

use chrono::{DateTime, Utc};
use netherbrain_core::agent::ToolDecision;
use netherbrain_core::store::{
    ApiKey, Conversation, GatewayIdentity, MemoryRecord, Metadata, Preset, Session, User, UserRole,
    Workspace,
};
use netherbrain_core::{Message, PresetConfig, ToolCall, UsageByModel};
use serde::{Deserialize, Deserializer, Serialize};
#[cfg(feature = "server")]
use utoipa::ToSchema;
use uuid::Uuid;

/// Deserializes a present field (even `null`) as `Some(value)`, so a patch
/// can tell "absent" (`None`) from "clear" (`Some(None)`).
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

// ---- errors ----

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ErrorDetail {
    /// Machine-readable code (`not_found`, `conflict`, `conversation_busy`, `invalid`, …).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// For `conversation_busy`: the session that is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_session_id: Option<Uuid>,
}

// ---- health ----

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct HealthResponse {
    /// `ok`; `degraded` when the store or Redis is unreachable; `draining`
    /// once the server is shutting down.
    pub status: String,
    /// Whether a load balancer should send this server new work: `false`
    /// when the store is unreachable or the server is shutting down.
    #[serde(default = "ready_by_default")]
    pub ready: bool,
    /// `ok` or `unavailable`.
    pub store: String,
    /// `ok` or `unavailable`; absent without Redis (a single process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    /// Server version.
    pub version: String,
}

fn ready_by_default() -> bool {
    true
}

// ---- users ----

/// A user's role (schema name `UserRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "server", schema(as = UserRole))]
pub enum Role {
    /// Manages users, presets and workspaces.
    Admin,
    /// Uses agents in their own conversations.
    #[default]
    User,
}

impl From<Role> for UserRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => Self::Admin,
            Role::User => Self::User,
        }
    }
}

impl From<UserRole> for Role {
    fn from(role: UserRole) -> Self {
        match role {
            UserRole::Admin => Self::Admin,
            // Roles added to core later are shown as the least privileged.
            _ => Self::User,
        }
    }
}

/// A user account as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Name to show.
    pub display_name: Option<String>,
    /// Role.
    pub role: Role,
    /// Deactivated users cannot authenticate.
    pub active: bool,
    /// Whether the user can log in with a password.
    pub has_password: bool,
    /// The password was set by an admin (account creation or reset) and is
    /// temporary: until the user chooses a new one with
    /// `POST /api/auth/password`, their login tokens are refused everywhere
    /// else with `403` `password_change_required`.
    pub must_change_password: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.id.into(),
            username: user.username,
            display_name: user.display_name,
            role: user.role.into(),
            active: user.active,
            has_password: user.password_hash.is_some(),
            must_change_password: user.must_change_password,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// `POST /api/users/create`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct CreateUserRequest {
    /// Login name: 1–64 letters, digits, `-`, `_`, `.`, `@`.
    #[cfg_attr(
        feature = "server",
        schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@-]+$")
    )]
    pub username: String,
    /// Password (8–1024 characters); without one the user authenticates
    /// by API key only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(min_length = 8, max_length = 1024))]
    pub password: Option<String>,
    /// Name to show (at most 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(max_length = 128))]
    pub display_name: Option<String>,
    /// Role (default `user`).
    #[serde(default)]
    pub role: Role,
}

/// `POST /api/users/{id}/update`. Absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct UpdateUserRequest {
    /// New display name; `null` clears it.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, max_length = 128))]
    pub display_name: Option<Option<String>>,
    /// New role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// `POST /api/users/{id}/reset-password`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ResetPasswordRequest {
    /// New password (8–1024 characters).
    #[cfg_attr(feature = "server", schema(min_length = 8, max_length = 1024))]
    pub password: String,
}

/// A list of users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct UserList {
    /// Users by username.
    pub items: Vec<UserView>,
}

// ---- auth ----

/// `POST /api/auth/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct LoginRequest {
    /// Login name: 1–64 letters, digits, `-`, `_`, `.`, `@`.
    #[cfg_attr(
        feature = "server",
        schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@-]+$")
    )]
    pub username: String,
    /// Password (1–1024 characters).
    #[cfg_attr(feature = "server", schema(min_length = 1, max_length = 1024))]
    pub password: String,
}

/// A successful login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct LoginResponse {
    /// Bearer token (an API key named `login`); shown once.
    pub token: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// Who logged in.
    pub user: UserView,
}

/// `POST /api/auth/password`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ChangePasswordRequest {
    /// The current password; not needed when the account has none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
    /// The new password (8–1024 characters).
    #[cfg_attr(feature = "server", schema(min_length = 8, max_length = 1024))]
    pub new_password: String,
}

// ---- API keys ----

/// An API key as the API shows it (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ApiKeyView {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Label (`login` for login tokens).
    pub name: String,
    /// The visible part of the key (`nb_<prefix>_…`).
    pub prefix: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether the key authenticates now.
    pub usable: bool,
}

impl From<ApiKey> for ApiKeyView {
    fn from(key: ApiKey) -> Self {
        let usable = key.is_usable(Utc::now());
        Self {
            id: key.id.into(),
            user_id: key.user_id.into(),
            name: key.name,
            prefix: key.prefix,
            created_at: key.created_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            usable,
        }
    }
}

/// `POST /api/keys/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct CreateApiKeyRequest {
    /// Label.
    #[cfg_attr(
        feature = "server",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: String,
    /// Expiry (must be in the future); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Owner (admins only; default: the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
}

/// A new API key with its secret, which is never shown again.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct CreatedApiKey {
    /// The key.
    pub key: ApiKeyView,
    /// The bearer token.
    pub secret: String,
}

/// Whose keys (`GET /api/keys/list`, `POST /api/keys/{id}/revoke`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "server", into_params(parameter_in = Query))]
pub struct KeyOwnerQuery {
    /// Another user's keys (admins only; default: the caller's).
    #[serde(default)]
    pub user_id: Option<Uuid>,
}

/// A list of API keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ApiKeyList {
    /// Keys, newest first.
    pub items: Vec<ApiKeyView>,
}

// ---- memories ----

/// A long-term memory as the API shows it (its embedding, if any, is not
/// shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct MemoryView {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// The workspace it is limited to; none: every run of the user.
    pub workspace_id: Option<Uuid>,
    /// What is remembered.
    pub content: String,
    /// The conversation it was remembered in, if any.
    pub source_conversation_id: Option<Uuid>,
    /// The session (run) it was remembered in, if any.
    pub source_session_id: Option<Uuid>,
    /// Whether it has an embedding (recall by similarity).
    pub has_embedding: bool,
    /// When it was remembered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<MemoryRecord> for MemoryView {
    fn from(m: MemoryRecord) -> Self {
        Self {
            id: m.id.into(),
            user_id: m.user_id.into(),
            workspace_id: m.workspace_id.map(Into::into),
            content: m.content,
            source_conversation_id: m.source_conversation_id.map(Into::into),
            source_session_id: m.source_session_id.map(Into::into),
            has_embedding: m.embedding.is_some(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Whose memories (admins only: another user's; default the caller's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "server", into_params(parameter_in = Query))]
pub struct MemoryOwnerQuery {
    /// Another user's memories (admins only; default: the caller's).
    #[serde(default)]
    pub user_id: Option<Uuid>,
}

/// A list of memories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct MemoryList {
    /// Memories, newest first.
    pub items: Vec<MemoryView>,
}

/// Every memory of a user, as a JSON document to keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct MemoryExport {
    /// Whose memories.
    pub user_id: Uuid,
    /// When the export was made.
    pub exported_at: DateTime<Utc>,
    /// Memories, newest first.
    pub memories: Vec<MemoryView>,
}

/// `POST /api/memories/create` and `POST /api/memories/{id}/update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemoryContentRequest {
    /// What to remember (not blank; at most the server's limit, 2000
    /// characters by default).
    #[cfg_attr(feature = "server", schema(min_length = 1, max_length = 16384))]
    pub content: String,
}

// ---- presets ----

/// A preset: a named agent configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct PresetView {
    /// Id.
    pub id: Uuid,
    /// Unique name; the model name on `/v1/models`.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The configuration (core `PresetConfig`: profile, model,
    /// system_prompt, settings, toolsets, approval, limits).
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::wire::PresetConfig))]
    pub config: PresetConfig,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Preset> for PresetView {
    fn from(p: Preset) -> Self {
        Self {
            id: p.id.into(),
            name: p.name,
            description: p.description,
            config: p.config,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// `POST /api/presets/create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct CreatePresetRequest {
    /// Unique name.
    #[cfg_attr(
        feature = "server",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(max_length = 16384))]
    pub description: Option<String>,
    /// The configuration (core `PresetConfig`).
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::wire::PresetConfig))]
    pub config: PresetConfig,
}

/// `POST /api/presets/{id}/update`. Absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct UpdatePresetRequest {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "server",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: Option<String>,
    /// New description; `null` clears it.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, max_length = 16384))]
    pub description: Option<Option<String>>,
    /// New configuration (replaces the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<crate::openapi::wire::PresetConfig>))]
    pub config: Option<PresetConfig>,
}

/// A list of presets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct PresetList {
    /// Presets by name.
    pub items: Vec<PresetView>,
}

/// What an import did to one preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportAction {
    /// No preset had the name; it was created.
    Created,
    /// The preset with the name was replaced.
    Updated,
}

/// One imported preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ImportedPreset {
    /// Created or updated.
    pub action: ImportAction,
    /// The preset as stored.
    pub preset: PresetView,
}

/// `POST /api/presets/import`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ImportPresetsResponse {
    /// The presets, in document order.
    pub items: Vec<ImportedPreset>,
}

// ---- workspaces ----

/// A workspace: groups conversations, owns project directories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct WorkspaceView {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// The user who may attach it to conversations besides admins.
    #[serde(default)]
    pub owner: Option<Uuid>,
    /// Canonical directories (inside the allowed roots) file and shell
    /// tools are confined to.
    pub project_dirs: Vec<String>,
    /// Free-form metadata (a JSON object).
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::json::Metadata))]
    pub metadata: Metadata,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Workspace> for WorkspaceView {
    fn from(w: Workspace) -> Self {
        Self {
            id: w.id.into(),
            name: w.name,
            owner: w.owner.map(Into::into),
            project_dirs: w.project_dirs,
            metadata: w.metadata,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// `POST /api/workspaces/create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct CreateWorkspaceRequest {
    /// Unique name.
    #[cfg_attr(
        feature = "server",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: String,
    /// Absolute paths without `..` components, inside the allowed roots.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(value_type = Vec<ProjectDir>, max_items = 64))]
    pub project_dirs: Vec<String>,
    /// A JSON object.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::json::Metadata))]
    pub metadata: Metadata,
    /// The user who may attach it besides admins (default: the creator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Uuid>,
}

/// `POST /api/workspaces/{id}/update`. Absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct UpdateWorkspaceRequest {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "server",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: Option<String>,
    /// New project directories (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<Vec<ProjectDir>>, max_items = 64))]
    pub project_dirs: Option<Vec<String>>,
    /// Keys merged into the metadata; a `null` value removes the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<crate::openapi::json::Metadata>))]
    pub metadata: Option<Metadata>,
    /// New owner; `null` leaves the workspace to admins.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "double_option"
    )]
    #[cfg_attr(feature = "server", schema(value_type = Option<Uuid>))]
    pub owner: Option<Option<Uuid>>,
}

/// A list of workspaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct WorkspaceList {
    /// Workspaces by name.
    pub items: Vec<WorkspaceView>,
}

// ---- conversations ----

/// A conversation: a thread owned by one user, a chain of sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ConversationView {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner: Uuid,
    /// Workspace, if any.
    pub workspace_id: Option<Uuid>,
    /// Title.
    pub title: Option<String>,
    /// Summary.
    pub summary: Option<String>,
    /// Preset used when a run names none.
    pub default_preset: Option<Uuid>,
    /// Free-form metadata (a JSON object). The key `forked_from` is
    /// reserved: requests setting it are refused.
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::json::ConversationMetadata))]
    pub metadata: Metadata,
    /// `active` or `archived`.
    pub status: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Last time a session started or finished.
    pub last_activity_at: DateTime<Utc>,
    /// For a fork: the conversation and session it branched from (set by
    /// the server when forking; read-only).
    #[serde(default)]
    pub forked_from: Option<ForkOriginView>,
    /// For a subagent's conversation (started by the `delegate` tool): the
    /// parent conversation and the run that delegated it (set by the
    /// server; read-only).
    #[serde(default)]
    pub delegated_from: Option<DelegatedFromView>,
}

/// The run that started a subagent's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct DelegatedFromView {
    /// The parent conversation.
    pub conversation_id: Uuid,
    /// The parent session whose tool call started the subagent.
    pub session_id: Uuid,
}

/// Where a fork branched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ForkOriginView {
    /// The forked conversation.
    pub conversation_id: Uuid,
    /// The forked session.
    pub session_id: Uuid,
}

impl From<Conversation> for ConversationView {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id.into(),
            owner: c.owner.into(),
            workspace_id: c.workspace_id.map(Into::into),
            title: c.title,
            summary: c.summary,
            default_preset: c.default_preset.map(Into::into),
            metadata: c.metadata,
            status: c.status.as_str().to_owned(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_activity_at: c.last_activity_at,
            forked_from: c.forked_from.map(|o| ForkOriginView {
                conversation_id: o.conversation_id.into(),
                session_id: o.session_id.into(),
            }),
            delegated_from: c.delegated_from.map(|o| DelegatedFromView {
                conversation_id: o.conversation_id.into(),
                session_id: o.session_id.into(),
            }),
        }
    }
}

/// The running session of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ActiveSessionView {
    /// The session.
    pub id: Uuid,
    /// Its status (`created` or `running`).
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::wire::SessionStatus))]
    pub status: String,
}

/// `GET /api/conversations/{id}`: the conversation, its running session
/// and the tokens spent by all its sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ConversationDetail {
    /// The conversation.
    #[serde(flatten)]
    pub conversation: ConversationView,
    /// The running session, or `null`.
    pub active_session: Option<ActiveSessionView>,
    /// Usage per model, summed over the conversation's sessions.
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::wire::UsageByModel))]
    pub usage: UsageByModel,
}

/// The schema of a conversation status a client may set or filter by.
#[cfg(feature = "server")]
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
#[expect(dead_code, reason = "only its schema is used")]
pub(crate) enum ConversationStatusName {
    /// Listed by default.
    Active,
    /// Hidden from the default list.
    Archived,
}

/// The schema of a project directory: an absolute path of at most 1024
/// characters, no component `..`, no NUL.
#[cfg(feature = "server")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProjectDir;

#[cfg(feature = "server")]
impl utoipa::PartialSchema for ProjectDir {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An absolute path of at most 1024 characters without a `..` component",
            ))
            .min_length(Some(1))
            .max_length(Some(1024))
            .pattern(Some(
                r"^(/(|\.|[^./\u0000][^/\u0000]*|\.[^./\u0000][^/\u0000]*|\.\.[^/\u0000]+))+$",
            ))
            .into()
    }
}

#[cfg(feature = "server")]
impl ToSchema for ProjectDir {}

/// `POST /api/conversations/create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct CreateConversationRequest {
    /// Title (at most 512 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(max_length = 512))]
    pub title: Option<String>,
    /// Workspace (must exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
    /// Preset used when a run names none (must exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_preset: Option<Uuid>,
    /// A JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<crate::openapi::json::ConversationMetadata>))]
    pub metadata: Option<Metadata>,
}

/// `POST /api/conversations/{id}/update`. Absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct UpdateConversationRequest {
    /// New title; `null` clears it.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, max_length = 512))]
    pub title: Option<Option<String>>,
    /// New summary; `null` clears it.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, max_length = 16384))]
    pub summary: Option<Option<String>>,
    /// New default preset; `null` clears it.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "server", schema(value_type = Option<Uuid>))]
    pub default_preset: Option<Option<Uuid>>,
    /// Keys shallow-merged into the metadata; a `null` value removes the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<crate::openapi::json::ConversationMetadata>))]
    pub metadata: Option<Metadata>,
    /// `active` or `archived`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<ConversationStatusName>))]
    pub status: Option<String>,
}

/// A page of conversations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ConversationList {
    /// Conversations, newest activity first.
    pub items: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Filters of `GET /api/conversations/list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "server", into_params(parameter_in = Query))]
pub struct ConversationListQuery {
    /// `active` or `archived` (default: every status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", param(value_type = Option<ConversationStatusName>))]
    pub status: Option<String>,
    /// Only this workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
    /// A JSON object the metadata must contain (e.g. `{"source":"telegram"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Page size, 1–200 (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "server",
        param(
            pattern = r"^[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )
    )]
    pub cursor: Option<String>,
}

/// `GET /api/conversations/search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "server", into_params(parameter_in = Query))]
pub struct SearchQuery {
    /// Words that must all match (title, summary, message text); not blank,
    /// at most 512 characters.
    #[cfg_attr(
        feature = "server",
        param(
            min_length = 1,
            max_length = 512,
            pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
        )
    )]
    pub q: String,
    /// At most this many results, 1–200 (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
}

/// Search results, best match first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct SearchResults {
    /// Matching conversations.
    pub items: Vec<ConversationView>,
}

/// The input of a run: plain user text, or messages (core `Message`:
/// `{"role": "user", "content": [{"type": "text", "text": "…"}]}`).
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, netherbrain_core::schemars::JsonSchema,
)]
#[schemars(crate = "netherbrain_core::schemars")]
#[serde(untagged)]
pub enum RunInput {
    /// One user message.
    Text(String),
    /// Messages, in order (at least one).
    Messages(#[schemars(length(min = 1))] Vec<Message>),
}

impl RunInput {
    /// The messages this input stands for.
    #[must_use]
    pub fn into_messages(self) -> Vec<Message> {
        match self {
            Self::Text(text) => vec![Message::user(text)],
            Self::Messages(messages) => messages,
        }
    }
}

impl From<&str> for RunInput {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

fn default_true() -> bool {
    true
}

/// `POST /api/conversations/run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct RunConversationRequest {
    /// The conversation; omitted: a new one owned by the caller (with
    /// `preset_id` as its default preset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<Uuid>,
    /// The preset; default: the conversation's default preset, else the
    /// preset of its latest session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_id: Option<Uuid>,
    /// What the user says: a string, or an array of messages.
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::wire::RunInput))]
    pub input: RunInput,
    /// `true` (default): answer with the run's events as
    /// `text/event-stream`; `false`: answer `202` with the ids.
    #[serde(default = "default_true")]
    pub stream: bool,
}

/// A started run (`202` of a non-streaming run, fork or resume). Streaming
/// responses carry the same ids in the `x-conversation-id` and
/// `x-session-id` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct RunStarted {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The new session; stream it from `/api/sessions/{id}/events`.
    pub session_id: Uuid,
}

/// `POST /api/conversations/{id}/fork`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ForkConversationRequest {
    /// The session to branch from (committed, interrupted or awaiting tool
    /// results; of this conversation).
    pub session_id: Uuid,
    /// When given (a string or an array of messages), the fork's first
    /// run starts now with this input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<crate::openapi::wire::RunInput>))]
    pub input: Option<RunInput>,
    /// Preset for that run (default: the fork's default preset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_id: Option<Uuid>,
    /// With `input`: stream the run (default) or answer `202`.
    #[serde(default = "default_true")]
    pub stream: bool,
}

/// The new conversation of a fork, and the run started in it if `input`
/// was given with `stream: false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ForkResponse {
    /// The new conversation.
    pub conversation: ConversationView,
    /// The session of the first run, when one was started.
    pub session_id: Option<Uuid>,
}

/// `POST …/steer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct SteerRequest {
    /// Text injected as a user message at the next model-round boundary;
    /// not blank.
    #[cfg_attr(
        feature = "server",
        schema(
            min_length = 1,
            max_length = 16384,
            pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
        )
    )]
    pub text: String,
}

/// Which session an interrupt or steer reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct SessionActionResponse {
    /// The running session acted on.
    pub session_id: Uuid,
}

/// `GET …/events` positions: `after` (or the `Last-Event-ID` header, which
/// wins) resumes after that event id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "server", into_params(parameter_in = Query))]
pub struct EventsQuery {
    /// Resume after this event id (default 0: from the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", param(pattern = "^[0-9]{1,18}$"))]
    pub after: Option<String>,
    /// Conversation events only: this session instead of the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
}

/// `GET /api/conversations/{id}/turns` paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "server", into_params(parameter_in = Query))]
pub struct TurnsQuery {
    /// Sessions per page, 1–100 (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page: a session id of this conversation
    /// (empty: the first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "server",
        param(
            pattern = r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
        )
    )]
    pub cursor: Option<String>,
}

/// A session as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct SessionView {
    /// Id.
    pub id: Uuid,
    /// Conversation.
    pub conversation_id: Uuid,
    /// The session whose history this one continues.
    pub parent_session_id: Option<Uuid>,
    /// `created`, `running`, `committed`, `awaiting_tool_results`,
    /// `interrupted` or `failed`.
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::wire::SessionStatus))]
    pub status: String,
    /// Preset run.
    pub preset_id: Option<Uuid>,
    /// The input messages.
    #[cfg_attr(feature = "server", schema(value_type = Vec<crate::openapi::wire::Message>))]
    pub input: Vec<Message>,
    /// The last assistant text.
    pub final_message: Option<String>,
    /// Calls waiting for approval or client-supplied results.
    #[cfg_attr(feature = "server", schema(value_type = Vec<crate::openapi::wire::ToolCall>))]
    pub deferred_tool_calls: Vec<ToolCall>,
    /// Tokens per model.
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::wire::UsageByModel))]
    pub usage: UsageByModel,
    /// Why it failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.into(),
            conversation_id: s.conversation_id.into(),
            parent_session_id: s.parent_session_id.map(Into::into),
            status: s.status.as_str().to_owned(),
            preset_id: s.preset_id.map(Into::into),
            input: s.input,
            final_message: s.final_message,
            deferred_tool_calls: s.deferred_tool_calls,
            usage: s.usage,
            error: s.error,
            created_at: s.created_at,
            updated_at: s.updated_at,
            finished_at: s.finished_at,
        }
    }
}

/// `GET /api/sessions/{id}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct SessionStatusView {
    /// The session.
    pub id: Uuid,
    /// Its status.
    #[cfg_attr(feature = "server", schema(value_type = crate::openapi::wire::SessionStatus))]
    pub status: String,
    /// Whether it runs in this server now.
    pub running: bool,
    /// The id of its last event (0 if none yet).
    pub last_event_seq: u64,
}

/// One turn of a conversation: a session and its own messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct Turn {
    /// The session.
    pub session: SessionView,
    /// Its messages (input first).
    #[cfg_attr(feature = "server", schema(value_type = Vec<crate::openapi::wire::Message>))]
    pub messages: Vec<Message>,
}

/// A page of turns, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct TurnList {
    /// Turns.
    pub items: Vec<Turn>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /api/sessions/{id}/resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ResumeRequest {
    /// One decision per pending call: `{"decision": "approve", "call_id"}`,
    /// `{"decision": "deny", "call_id", "reason"?}` or
    /// `{"decision": "result", "call_id", "content", "is_error"?}`.
    #[cfg_attr(feature = "server", schema(value_type = Vec<crate::openapi::wire::ToolDecision>, min_items = 1))]
    pub decisions: Vec<ToolDecision>,
    /// Stream the new run (default) or answer `202`.
    #[serde(default = "default_true")]
    pub stream: bool,
}

// ---- discovery ----

/// `GET /api/toolsets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ToolsetList {
    /// Tool set names presets can enable, sorted.
    pub items: Vec<String>,
}

/// A provider profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ModelProfileView {
    /// Profile name (a preset's `profile`).
    pub name: String,
    /// `openai`, `anthropic`, or `null` for a custom provider.
    pub kind: Option<String>,
    /// Models it advertises.
    pub models: Vec<String>,
}

/// `GET /api/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ModelList {
    /// Profiles by name.
    pub items: Vec<ModelProfileView>,
}

// ---- redacted Debug for the bodies that carry secrets ----

/// `Debug` printing the plain fields and `<redacted>` for the secret ones.
macro_rules! redacted_debug {
    ($ty:ident { $($plain:ident),* ; $($secret:ident),* }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($plain), &self.$plain))*
                    $(.field(stringify!($secret), &"<redacted>"))*
                    .finish()
            }
        }
    };
}

redacted_debug!(CreateUserRequest { username, display_name, role ; password });
redacted_debug!(ResetPasswordRequest {  ; password });
redacted_debug!(LoginRequest { username ; password });
redacted_debug!(LoginResponse { expires_at, user ; token });
redacted_debug!(ChangePasswordRequest {  ; current_password, new_password });
redacted_debug!(CreatedApiKey { key ; secret });

// ---- gateway ----

/// `POST /api/gateway/pairings/approve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ApprovePairingRequest {
    /// The one-time code the chat user was given.
    #[cfg_attr(feature = "server", schema(min_length = 1, max_length = 64))]
    pub code: String,
    /// The Netherbrain user the chat user acts as (default: the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
}

/// A chat platform user paired with a Netherbrain user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct PairedIdentityView {
    /// The channel (`telegram`, `discord`, …).
    pub channel: String,
    /// The platform's user id.
    pub sender_id: String,
    /// The Netherbrain user they act as.
    pub user_id: Uuid,
    /// When they were paired.
    pub created_at: DateTime<Utc>,
}

impl From<GatewayIdentity> for PairedIdentityView {
    fn from(identity: GatewayIdentity) -> Self {
        Self {
            channel: identity.channel,
            sender_id: identity.sender_id,
            user_id: identity.user_id.into(),
            created_at: identity.created_at,
        }
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn secret_bodies_print_no_secret() {
        let login = LoginRequest {
            username: "ada".into(),
            password: "hunter2-secret".into(),
        };
        let change = ChangePasswordRequest {
            current_password: Some("old-secret".into()),
            new_password: "new-secret".into(),
        };
        let text = format!("{login:?} {change:?}");
        assert!(text.contains("ada"), "{text}");
        assert!(!text.contains("secret\""), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("old-") && !text.contains("new-"));
    }
}

// ---- provider profiles (Settings) ----

/// The wire protocol of a provider profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProviderKindView {
    /// OpenAI Chat Completions and compatible servers (Ollama, vLLM, …).
    Openai,
    /// Anthropic Messages API.
    Anthropic,
}

impl From<netherbrain_core::provider::ProviderKind> for ProviderKindView {
    fn from(kind: netherbrain_core::provider::ProviderKind) -> Self {
        match kind {
            netherbrain_core::provider::ProviderKind::Anthropic => Self::Anthropic,
            _ => Self::Openai,
        }
    }
}

impl From<ProviderKindView> for netherbrain_core::provider::ProviderKind {
    fn from(kind: ProviderKindView) -> Self {
        match kind {
            ProviderKindView::Openai => Self::Openai,
            ProviderKindView::Anthropic => Self::Anthropic,
        }
    }
}

/// Where a provider profile comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProviderSourceView {
    /// The config file: read-only over the API.
    Config,
    /// Added from Settings, stored in the database.
    Settings,
}

/// A provider profile as admins see it. The API key is never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ProviderView {
    /// The name presets refer to (`profile`).
    pub name: String,
    /// `config` (read-only) or `settings`.
    pub source: ProviderSourceView,
    /// The wire protocol.
    pub kind: ProviderKindView,
    /// The API root; the kind's default when `null`.
    pub base_url: Option<String>,
    /// Models offered; the first is the default.
    pub models: Vec<String>,
    /// The model a new preset starts with.
    pub default_model: Option<String>,
    /// Names of extra headers (values are not shown).
    pub header_names: Vec<String>,
    /// Whether an API key is set.
    pub has_api_key: bool,
    /// Whether it can be changed here (`false` for config profiles).
    pub editable: bool,
    /// Why the profile is not usable now, if it is not.
    pub problem: Option<String>,
    /// When stored (`null` for config profiles).
    pub created_at: Option<DateTime<Utc>>,
    /// When last changed (`null` for config profiles).
    pub updated_at: Option<DateTime<Utc>>,
}

#[cfg(feature = "server")]
impl From<netherbrain_core::conversation::providers::ProviderEntry> for ProviderView {
    fn from(p: netherbrain_core::conversation::providers::ProviderEntry) -> Self {
        use netherbrain_core::conversation::providers::ProviderSource;
        let source = match p.source {
            ProviderSource::Config => ProviderSourceView::Config,
            _ => ProviderSourceView::Settings,
        };
        Self {
            name: p.name,
            editable: source == ProviderSourceView::Settings,
            source,
            kind: p.kind.into(),
            base_url: p.base_url,
            models: p.models,
            default_model: p.default_model,
            header_names: p.header_names,
            has_api_key: p.has_api_key,
            problem: p.problem,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// `GET /api/providers/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ProviderList {
    /// Config file profiles first, then Settings profiles, by name.
    pub items: Vec<ProviderView>,
}

/// `POST /api/providers/create`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct CreateProviderRequest {
    /// Unique name (also among config file profiles).
    #[cfg_attr(
        feature = "server",
        schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$")
    )]
    pub name: String,
    /// The wire protocol.
    pub kind: ProviderKindView,
    /// The API root (`http://` or `https://`); the kind's default when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "server",
        schema(
            max_length = 2048,
            pattern = r"^[hH][tT][tT][pP][sS]?://[^\s/?\u0000-\u001f\u007f-\u009f][^\s\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub base_url: Option<String>,
    /// Models offered; the first is the default (for a new preset).
    /// Repeated names are kept once.
    #[serde(default)]
    #[cfg_attr(
        feature = "server",
        schema(max_items = 256, value_type = Vec<ModelName>)
    )]
    pub models: Vec<String>,
    /// The API key (encrypted at rest, never returned); empty or absent
    /// for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(max_length = 2048, pattern = r"^[!-~]*$"))]
    pub api_key: Option<String>,
}

/// `POST /api/providers/{name}/update`: absent fields are kept.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct UpdateProviderRequest {
    /// A new wire protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ProviderKindView>,
    /// A new API root; `null` returns to the kind's default.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "server",
        schema(value_type = Option<String>, max_length = 2048, pattern = r"^[hH][tT][tT][pP][sS]?://[^\s/?\u0000-\u001f\u007f-\u009f][^\s\u0000-\u001f\u007f-\u009f]*$")
    )]
    pub base_url: Option<Option<String>>,
    /// New models (replacing the list); the first is the default.
    /// Repeated names are kept once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "server",
        schema(max_items = 256, value_type = Option<Vec<ModelName>>)
    )]
    pub models: Option<Vec<String>>,
    /// Absent keeps the stored key, `""` removes it, anything else
    /// replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(max_length = 2048, pattern = r"^[!-~]*$"))]
    pub api_key: Option<String>,
}

/// The schema of a model name a provider profile offers: 1–128
/// characters, no control characters, no leading or trailing space.
#[cfg(feature = "server")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModelName;

#[cfg(feature = "server")]
impl utoipa::PartialSchema for ModelName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A model name: 1-128 characters, no control characters, no leading or trailing space"))
            .min_length(Some(1))
            .max_length(Some(128))
            .pattern(Some(
                r"^[^\s\u0000-\u001f\u007f-\u009f]([^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f])?$",
            ))
            .into()
    }
}

#[cfg(feature = "server")]
impl ToSchema for ModelName {}

/// `POST /api/providers/{name}/test`: what the endpoint's models list
/// gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct ProviderTestResult {
    /// Whether the endpoint answered with a models list.
    pub ok: bool,
    /// The model ids it offers (empty when `ok` is `false`).
    pub models: Vec<String>,
    /// Why it could not be asked (a one-line reason), when `ok` is `false`.
    pub error: Option<String>,
}

redacted_debug!(CreateProviderRequest { name, kind, base_url, models ; api_key });
redacted_debug!(UpdateProviderRequest { kind, base_url, models ; api_key });

// ---- scheduled tasks ----

/// When a task runs, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskScheduleView {
    /// At the times a five-field cron expression (or `@hourly`, `@daily`,
    /// `@weekly`, `@monthly`, `@yearly`) matches, in a time zone.
    Cron {
        /// The expression, e.g. `0 7 * * 1-5`.
        #[cfg_attr(feature = "server", schema(min_length = 1, max_length = 256))]
        expression: String,
        /// An IANA time zone name (default `UTC`).
        #[serde(default = "utc_zone")]
        #[cfg_attr(feature = "server", schema(min_length = 1, max_length = 64))]
        timezone: String,
    },
    /// Every so many seconds (at least the server's minimum interval, 60 s
    /// by default).
    Every {
        /// The interval.
        #[cfg_attr(feature = "server", schema(minimum = 1, maximum = 31_622_400))]
        seconds: u64,
    },
}

fn utc_zone() -> String {
    "UTC".to_owned()
}

impl From<netherbrain_core::tasks::TaskSchedule> for TaskScheduleView {
    fn from(s: netherbrain_core::tasks::TaskSchedule) -> Self {
        use netherbrain_core::tasks::TaskSchedule;
        match s {
            TaskSchedule::Cron {
                expression,
                timezone,
            } => Self::Cron {
                expression,
                timezone,
            },
            TaskSchedule::Every { seconds } => Self::Every { seconds },
            // A schedule kind this version cannot show.
            other => Self::Cron {
                expression: other.to_string(),
                timezone: utc_zone(),
            },
        }
    }
}

impl From<TaskScheduleView> for netherbrain_core::tasks::TaskSchedule {
    fn from(s: TaskScheduleView) -> Self {
        match s {
            TaskScheduleView::Cron {
                expression,
                timezone,
            } => Self::cron(expression, timezone),
            TaskScheduleView::Every { seconds } => Self::every(seconds),
        }
    }
}

/// A scheduled task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct TaskView {
    /// Id.
    pub id: Uuid,
    /// The user it runs as.
    pub user_id: Uuid,
    /// Its name, unique per user.
    pub name: String,
    /// When it runs.
    pub schedule: TaskScheduleView,
    /// The preset each run uses.
    pub preset_id: Uuid,
    /// The message each run starts with.
    pub prompt: String,
    /// The conversation each run goes to; `null`: a new one each time.
    pub conversation_id: Option<Uuid>,
    /// Whether a slot missed while no server ran is run once at start.
    pub catch_up: bool,
    /// Whether it runs.
    pub enabled: bool,
    /// Its next slot.
    pub next_run_at: DateTime<Utc>,
    /// When it last ran.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The session its last run started.
    pub last_session_id: Option<Uuid>,
    /// Why its last slot did not run, if it did not.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<netherbrain_core::store::ScheduledTask> for TaskView {
    fn from(t: netherbrain_core::store::ScheduledTask) -> Self {
        Self {
            id: t.id.into(),
            user_id: t.owner.into(),
            name: t.name,
            schedule: t.schedule.into(),
            preset_id: t.preset_id.into(),
            prompt: t.prompt,
            conversation_id: t.conversation_id.map(Into::into),
            catch_up: t.catch_up,
            enabled: t.enabled,
            next_run_at: t.next_run_at,
            last_run_at: t.last_run_at,
            last_session_id: t.last_session_id.map(Into::into),
            last_error: t.last_error,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A list of tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct TaskList {
    /// Tasks, by name.
    pub items: Vec<TaskView>,
}

fn enabled_by_default() -> bool {
    true
}

/// `POST /api/tasks/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// Its name, unique per user.
    #[cfg_attr(
        feature = "server",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: String,
    /// When it runs.
    pub schedule: TaskScheduleView,
    /// The preset each run uses.
    pub preset_id: Uuid,
    /// The message each run starts with.
    #[cfg_attr(
        feature = "server",
        schema(
            min_length = 1,
            max_length = 16384,
            pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
        )
    )]
    pub prompt: String,
    /// The caller's conversation each run goes to; absent: a new one each
    /// time.
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
    /// Run a slot missed while no server ran once at start (default
    /// `false`).
    #[serde(default)]
    pub catch_up: bool,
    /// Whether it runs (default `true`).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

/// `POST /api/tasks/{id}/update`. Absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskRequest {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "server",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: Option<String>,
    /// New schedule; the next slot is computed from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<TaskScheduleView>,
    /// New preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_id: Option<Uuid>,
    /// New prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "server",
        schema(
            min_length = 1,
            max_length = 16384,
            pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
        )
    )]
    pub prompt: Option<String>,
    /// New target conversation; `null`: a new one each time.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "server", schema(value_type = Option<Uuid>))]
    pub conversation_id: Option<Option<Uuid>>,
    /// New catch-up setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<bool>,
    /// Resumes (`true`) or pauses (`false`) it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Whose tasks (admins only: another user's; default the caller's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "server", into_params(parameter_in = Query))]
pub struct TaskOwnerQuery {
    /// Another user's tasks (admins only; default: the caller's).
    #[serde(default)]
    pub user_id: Option<Uuid>,
}

/// `POST /api/tasks/{id}/run`: the run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct TaskRunStarted {
    /// The task.
    pub task_id: Uuid,
    /// The conversation the run is in.
    pub conversation_id: Uuid,
    /// The run's session (stream its events from
    /// `/api/sessions/{id}/events`).
    pub session_id: Uuid,
}

// ---- usage ----

/// `GET /api/usage/daily`: whose and how many days.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "server", into_params(parameter_in = Query))]
pub struct UsageQueryParams {
    /// Another user's usage (admins only; default: the caller's).
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// How many days, today included (1–90, default 7).
    #[serde(default)]
    #[cfg_attr(feature = "server", param(minimum = 1, maximum = 90))]
    pub days: Option<u32>,
}

/// Tokens of one preset on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct PresetUsageView {
    /// The preset; `null` for runs whose preset was deleted.
    pub preset_id: Option<Uuid>,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

/// One day of usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct DayUsageView {
    /// The day (UTC), `YYYY-MM-DD`.
    pub date: String,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input plus output: what budgets count.
    pub total_tokens: u64,
    /// Model requests.
    pub requests: u64,
    /// Per preset.
    pub presets: Vec<PresetUsageView>,
}

/// A user's tokens per day and their daily budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(ToSchema))]
pub struct UsageReportView {
    /// Whose.
    pub user_id: Uuid,
    /// The days, oldest first.
    pub days: Vec<DayUsageView>,
    /// The per-user daily cap; `null`: none.
    pub daily_token_budget: Option<u64>,
    /// Tokens spent today.
    pub used_today: u64,
    /// When today's count ends (midnight UTC).
    pub resets_at: DateTime<Utc>,
}

impl From<netherbrain_core::conversation::UsageReport> for UsageReportView {
    fn from(r: netherbrain_core::conversation::UsageReport) -> Self {
        Self {
            user_id: r.user_id.into(),
            days: r
                .days
                .into_iter()
                .map(|d| DayUsageView {
                    date: d.date.format("%Y-%m-%d").to_string(),
                    input_tokens: d.total.input_tokens,
                    output_tokens: d.total.output_tokens,
                    total_tokens: d.total.total_tokens(),
                    requests: d.total.requests,
                    presets: d
                        .by_preset
                        .into_iter()
                        .map(|(preset, u)| PresetUsageView {
                            preset_id: preset.map(Into::into),
                            input_tokens: u.input_tokens,
                            output_tokens: u.output_tokens,
                        })
                        .collect(),
                })
                .collect(),
            daily_token_budget: r.user_daily_tokens,
            used_today: r.used_today,
            resets_at: r.resets_at,
        }
    }
}
