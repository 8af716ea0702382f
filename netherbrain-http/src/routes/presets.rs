//! `/api/presets/*`: named agent configurations (read: any user; write:
//! admins), with TOML import and export.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use netherbrain_core::PresetId;
use netherbrain_core::conversation::{self, PresetDocument};
use netherbrain_core::store::{NewPreset, PresetPatch};

use crate::auth::{AdminUser, AuthUser};
use crate::dto::{
    CreatePresetRequest, ImportAction, ImportPresetsResponse, ImportedPreset, PresetList,
    PresetView, UpdatePresetRequest,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, TomlText};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/presets/create", post(create))
        .route("/api/presets/list", get(list))
        .route("/api/presets/import", post(import))
        .route("/api/presets/{id}", get(get_preset))
        .route("/api/presets/{id}/update", post(update))
        .route("/api/presets/{id}/delete", post(delete))
        .route("/api/presets/{id}/export", get(export))
}

/// Creates a preset.
#[utoipa::path(
    post,
    path = "/api/presets/create",
    tag = "presets",
    request_body = CreatePresetRequest,
    responses(
        (status = 200, description = "Created", body = PresetView),
        (status = 403, description = "Not an admin", body = crate::dto::ErrorBody),
        (status = 409, description = "Name taken", body = crate::dto::ErrorBody),
        (status = 422, description = "Invalid preset", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(req): Json<CreatePresetRequest>,
) -> Result<Json<PresetView>, ApiError> {
    let mut new = NewPreset::new(req.name, req.config);
    new.description = req.description;
    Ok(Json(state.store().create_preset(new).await?.into()))
}

/// Lists presets by name.
#[utoipa::path(
    get,
    path = "/api/presets/list",
    tag = "presets",
    responses((status = 200, description = "Presets", body = PresetList))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _auth: AuthUser,
) -> Result<Json<PresetList>, ApiError> {
    let presets = state.store().list_presets().await?;
    Ok(Json(PresetList {
        items: presets.into_iter().map(Into::into).collect(),
    }))
}

/// Gets a preset.
#[utoipa::path(
    get,
    path = "/api/presets/{id}",
    tag = "presets",
    params(("id" = Uuid, Path, description = "Preset id")),
    responses(
        (status = 200, description = "The preset", body = PresetView),
        (status = 404, description = "No such preset", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn get_preset(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(id): Path<PresetId>,
) -> Result<Json<PresetView>, ApiError> {
    Ok(Json(state.store().get_preset(id).await?.into()))
}

/// Changes a preset.
#[utoipa::path(
    post,
    path = "/api/presets/{id}/update",
    tag = "presets",
    params(("id" = Uuid, Path, description = "Preset id")),
    request_body = UpdatePresetRequest,
    responses(
        (status = 200, description = "Changed", body = PresetView),
        (status = 404, description = "No such preset", body = crate::dto::ErrorBody),
        (status = 409, description = "Name taken", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<PresetId>,
    Json(req): Json<UpdatePresetRequest>,
) -> Result<Json<PresetView>, ApiError> {
    let mut patch = PresetPatch::default();
    patch.name = req.name;
    patch.description = req.description;
    patch.config = req.config;
    Ok(Json(state.store().update_preset(id, patch).await?.into()))
}

/// Deletes a preset; `409` while a conversation uses it as its default.
#[utoipa::path(
    post,
    path = "/api/presets/{id}/delete",
    tag = "presets",
    params(("id" = Uuid, Path, description = "Preset id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such preset", body = crate::dto::ErrorBody),
        (status = 409, description = "Still referenced", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<PresetId>,
) -> Result<axum::http::StatusCode, ApiError> {
    state.store().delete_preset(id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Imports presets from TOML (one preset, or an array `[[presets]]`),
/// creating or replacing each by name. The whole document is checked before
/// anything is written.
#[utoipa::path(
    post,
    path = "/api/presets/import",
    tag = "presets",
    request_body(content = String, content_type = "application/toml",
        description = "One preset (`name`, `description`, `[config]`) or `[[presets]]`"),
    responses(
        (status = 200, description = "Imported", body = ImportPresetsResponse),
        (status = 400, description = "Not TOML", body = crate::dto::ErrorBody),
        (status = 415, description = "Wrong content type", body = crate::dto::ErrorBody),
        (status = 422, description = "Not a preset document", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn import(
    State(state): State<AppState>,
    admin: AdminUser,
    TomlText(text): TomlText,
) -> Result<Json<ImportPresetsResponse>, ApiError> {
    let documents = conversation::parse_preset_documents(&text)?;
    let imported = state
        .service()
        .import_presets(&admin.0.principal(), documents)
        .await?;
    let items = imported
        .into_iter()
        .map(|i| ImportedPreset {
            action: match i.action {
                conversation::ImportAction::Updated => ImportAction::Updated,
                _ => ImportAction::Created,
            },
            preset: i.preset.into(),
        })
        .collect();
    Ok(Json(ImportPresetsResponse { items }))
}

/// Exports a preset as a TOML document that `import` accepts.
#[utoipa::path(
    get,
    path = "/api/presets/{id}/export",
    tag = "presets",
    params(("id" = Uuid, Path, description = "Preset id")),
    responses(
        (status = 200, description = "The preset as TOML", body = String, content_type = "application/toml"),
        (status = 404, description = "No such preset", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn export(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(id): Path<PresetId>,
) -> Result<Response, ApiError> {
    let preset = state.store().get_preset(id).await?;
    let text = PresetDocument::from(preset).to_toml()?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/toml; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}
