//! Request and response bodies of the API (shared with the typed client).
//!
//! Responses never carry password hashes or key hashes; a key's secret
//! appears exactly once, in [`CreatedApiKey`].

use chrono::{DateTime, Utc};
use netherbrain_core::PresetConfig;
use netherbrain_core::store::{ApiKey, Metadata, Preset, User, UserRole, Workspace};
use serde::{Deserialize, Deserializer, Serialize};
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code (`not_found`, `conflict`, `busy`, `invalid`, …).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// For `busy`: the session that is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_session_id: Option<Uuid>,
}

// ---- health ----

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok` or `unavailable`.
    pub store: String,
    /// Server version.
    pub version: String,
}

// ---- users ----

/// A user's role (schema name `UserRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = UserRole)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// `POST /api/users/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    /// Login name: 1–64 letters, digits, `-`, `_`, `.`, `@`.
    pub username: String,
    /// Password (at least 8 characters); without one the user authenticates
    /// by API key only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Name to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Role (default `user`).
    #[serde(default)]
    pub role: Role,
}

/// `POST /api/users/{id}/update`. Absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpdateUserRequest {
    /// New display name; `null` clears it.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// New role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// `POST /api/users/{id}/reset-password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    /// New password (at least 8 characters).
    pub password: String,
}

/// A list of users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    /// Users by username.
    pub items: Vec<UserView>,
}

// ---- auth ----

/// `POST /api/auth/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token (an API key named `login`); shown once.
    pub token: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// Who logged in.
    pub user: UserView,
}

/// `POST /api/auth/password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// The current password; not needed when the account has none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
    /// The new password (at least 8 characters).
    pub new_password: String,
}

// ---- API keys ----

/// An API key as the API shows it (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateApiKeyRequest {
    /// Label.
    pub name: String,
    /// Expiry (must be in the future); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Owner (admins only; default: the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
}

/// A new API key with its secret, which is never shown again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key.
    pub key: ApiKeyView,
    /// The bearer token.
    pub secret: String,
}

/// Whose keys (`GET /api/keys/list`, `POST /api/keys/{id}/revoke`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyOwnerQuery {
    /// Another user's keys (admins only; default: the caller's).
    #[serde(default)]
    pub user_id: Option<Uuid>,
}

/// A list of API keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    /// Keys, newest first.
    pub items: Vec<ApiKeyView>,
}

// ---- presets ----

/// A preset: a named agent configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PresetView {
    /// Id.
    pub id: Uuid,
    /// Unique name; the model name on `/v1/models`.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The configuration (core `PresetConfig`: profile, model,
    /// system_prompt, settings, toolsets, approval, limits).
    #[schema(value_type = Object)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatePresetRequest {
    /// Unique name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The configuration (core `PresetConfig`).
    #[schema(value_type = Object)]
    pub config: PresetConfig,
}

/// `POST /api/presets/{id}/update`. Absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdatePresetRequest {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New description; `null` clears it.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New configuration (replaces the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<PresetConfig>,
}

/// A list of presets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PresetList {
    /// Presets by name.
    pub items: Vec<PresetView>,
}

/// What an import did to one preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportAction {
    /// No preset had the name; it was created.
    Created,
    /// The preset with the name was replaced.
    Updated,
}

/// One imported preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImportedPreset {
    /// Created or updated.
    pub action: ImportAction,
    /// The preset as stored.
    pub preset: PresetView,
}

/// `POST /api/presets/import`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImportPresetsResponse {
    /// The presets, in document order.
    pub items: Vec<ImportedPreset>,
}

// ---- workspaces ----

/// A workspace: groups conversations, owns project directories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceView {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Absolute directories file and shell tools are confined to.
    pub project_dirs: Vec<String>,
    /// Free-form metadata (a JSON object).
    #[schema(value_type = Object)]
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
            project_dirs: w.project_dirs,
            metadata: w.metadata,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// `POST /api/workspaces/create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateWorkspaceRequest {
    /// Unique name.
    pub name: String,
    /// Absolute paths without `..` components.
    #[serde(default)]
    pub project_dirs: Vec<String>,
    /// A JSON object.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Metadata,
}

/// `POST /api/workspaces/{id}/update`. Absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateWorkspaceRequest {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New project directories (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_dirs: Option<Vec<String>>,
    /// Keys merged into the metadata; a `null` value removes the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

/// A list of workspaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceList {
    /// Workspaces by name.
    pub items: Vec<WorkspaceView>,
}
