//! `/api/presets/*`: named agent configurations (read: any user; write:
//! admins), with TOML import and export.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use netherbrain_core::store::{NewPreset, PresetPatch};
use netherbrain_core::{PresetConfig, PresetId};
use serde::{Deserialize, Serialize};

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

/// One preset in a TOML document:
///
/// ```toml
/// name = "coder"
/// description = "Writes code"
/// [config]
/// profile = "openai"
/// model = "gpt-4o-mini"
/// ```
///
/// Several presets: an array of tables `[[presets]]` of this shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetDoc {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    config: PresetConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetsDoc {
    presets: Vec<PresetDoc>,
}

/// Parses a preset document (one preset, or `[[presets]]`). Syntax errors
/// are `400`, documents of the wrong shape `422`.
fn parse_presets(text: &str) -> Result<Vec<PresetDoc>, ApiError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ApiError::bad_request(format!("invalid TOML: {e}")))?;
    let docs = if table.contains_key("presets") {
        table
            .try_into::<PresetsDoc>()
            .map(|d| d.presets)
            .map_err(|e| ApiError::invalid(format!("invalid preset document: {e}")))?
    } else {
        vec![
            table
                .try_into::<PresetDoc>()
                .map_err(|e| ApiError::invalid(format!("invalid preset document: {e}")))?,
        ]
    };
    if docs.is_empty() {
        return Err(ApiError::invalid("the document contains no presets"));
    }
    let mut names = std::collections::HashSet::new();
    for doc in &docs {
        netherbrain_core::store::validate::name("name", &doc.name)?;
        if !names.insert(doc.name.as_str()) {
            return Err(ApiError::invalid(format!(
                "preset `{}` appears twice in the document",
                doc.name
            )));
        }
    }
    Ok(docs)
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
    _admin: AdminUser,
    TomlText(text): TomlText,
) -> Result<Json<ImportPresetsResponse>, ApiError> {
    let docs = parse_presets(&text)?;
    let store = state.store();
    let mut items = Vec::with_capacity(docs.len());
    for doc in docs {
        let (action, preset) = match store.get_preset_by_name(&doc.name).await {
            Ok(existing) => {
                let mut patch = PresetPatch::default();
                patch.description = Some(doc.description);
                patch.config = Some(doc.config);
                (
                    ImportAction::Updated,
                    store.update_preset(existing.id, patch).await?,
                )
            }
            Err(e) if e.is_not_found() => {
                let mut new = NewPreset::new(doc.name, doc.config);
                new.description = doc.description;
                (ImportAction::Created, store.create_preset(new).await?)
            }
            Err(e) => return Err(e.into()),
        };
        items.push(ImportedPreset {
            action,
            preset: preset.into(),
        });
    }
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
    let doc = PresetDoc {
        name: preset.name,
        description: preset.description,
        config: preset.config,
    };
    let text = toml::to_string_pretty(&doc).map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/toml; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_or_many() {
        let one =
            parse_presets("name = \"a\"\n[config]\nprofile = \"openai\"\nmodel = \"m\"\n").unwrap();
        assert_eq!(one.len(), 1);
        let many = parse_presets(
            "[[presets]]\nname = \"a\"\n[presets.config]\nprofile = \"p\"\nmodel = \"m\"\n\
             [[presets]]\nname = \"b\"\n[presets.config]\nprofile = \"p\"\nmodel = \"m\"\n",
        )
        .unwrap();
        assert_eq!(many.len(), 2);
    }

    #[test]
    fn rejects_bad_documents() {
        assert_eq!(parse_presets("name = ").unwrap_err().status().as_u16(), 400);
        assert_eq!(
            parse_presets("name = \"a\"").unwrap_err().status().as_u16(),
            422
        );
        assert_eq!(
            parse_presets("presets = []").unwrap_err().status().as_u16(),
            422
        );
        let dup = "[[presets]]\nname = \"a\"\n[presets.config]\nprofile = \"p\"\nmodel = \"m\"\n\
                   [[presets]]\nname = \"a\"\n[presets.config]\nprofile = \"p\"\nmodel = \"m\"\n";
        assert_eq!(parse_presets(dup).unwrap_err().status().as_u16(), 422);
    }

    #[test]
    fn export_round_trips() {
        let doc = PresetDoc {
            name: "a".into(),
            description: None,
            config: PresetConfig::new("openai", "gpt").with_system_prompt("hi\nthere"),
        };
        let text = toml::to_string_pretty(&doc).unwrap();
        let back = parse_presets(&text).unwrap();
        assert_eq!(back[0].config, doc.config);
    }
}
