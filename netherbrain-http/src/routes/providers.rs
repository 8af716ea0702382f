//! `/api/providers/*`: provider profiles managed from Settings (admins).
//! Config file profiles are listed read-only; Settings profiles are stored
//! with their API key encrypted and never returned. Every change rebuilds
//! the catalog at once (core's `ProviderSettings`).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use netherbrain_core::conversation::providers::{
    NewProvider, ProviderSettings, ProviderTest, ProviderUpdate,
};

use crate::auth::AdminUser;
use crate::dto::{
    CreateProviderRequest, ProviderList, ProviderTestResult, ProviderView, UpdateProviderRequest,
};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/providers/list", get(list))
        .route("/api/providers/create", post(create))
        .route("/api/providers/{name}/update", post(update))
        .route("/api/providers/{name}/delete", post(delete))
        .route("/api/providers/{name}/test", post(test))
}

fn settings(state: &AppState) -> Result<&ProviderSettings, ApiError> {
    state.providers().ok_or_else(|| {
        ApiError::unavailable("provider profiles cannot be managed on this server")
    })
}

/// Lists provider profiles: the config file's (read-only), then those
/// added from Settings.
#[utoipa::path(
    get,
    path = "/api/providers/list",
    tag = "providers",
    responses(
        (status = 200, description = "Profiles", body = ProviderList),
        (status = 403, description = "Not an admin", body = crate::dto::ErrorBody),
        (status = 503, description = "Provider settings are off on this server", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    admin: AdminUser,
) -> Result<Json<ProviderList>, ApiError> {
    let items = settings(&state)?.list(&admin.0.principal()).await?;
    Ok(Json(ProviderList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// Adds a provider profile; runs can use it at once. With no other
/// provider and no preset, a `default` preset is created for it.
#[utoipa::path(
    post,
    path = "/api/providers/create",
    tag = "providers",
    request_body = CreateProviderRequest,
    responses(
        (status = 200, description = "Created", body = ProviderView),
        (status = 403, description = "Not an admin", body = crate::dto::ErrorBody),
        (status = 409, description = "The name is taken (also by a config file profile)", body = crate::dto::ErrorBody),
        (status = 422, description = "Invalid profile", body = crate::dto::ErrorBody),
        (status = 503, description = "Provider settings are off, or API keys cannot be stored", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    admin: AdminUser,
    Json(req): Json<CreateProviderRequest>,
) -> Result<Json<ProviderView>, ApiError> {
    let mut new = NewProvider::new(req.name, req.kind.into());
    new.base_url = req.base_url;
    new.default_model = req.models.first().cloned();
    new.models = req.models;
    new.api_key = req.api_key;
    let created = settings(&state)?
        .create(&admin.0.principal(), new)
        .await?;
    Ok(Json(created.into()))
}

/// Changes a Settings profile. `api_key`: absent keeps it, `""` removes
/// it. Config file profiles are read-only (`409`).
#[utoipa::path(
    post,
    path = "/api/providers/{name}/update",
    tag = "providers",
    params(("name" = String, Path, description = "Profile name")),
    request_body = UpdateProviderRequest,
    responses(
        (status = 200, description = "Changed", body = ProviderView),
        (status = 403, description = "Not an admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No such Settings profile", body = crate::dto::ErrorBody),
        (status = 409, description = "A config file profile (read-only)", body = crate::dto::ErrorBody),
        (status = 422, description = "Invalid profile", body = crate::dto::ErrorBody),
        (status = 503, description = "Provider settings are off, or API keys cannot be stored", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(name): Path<String>,
    Json(req): Json<UpdateProviderRequest>,
) -> Result<Json<ProviderView>, ApiError> {
    let mut update = ProviderUpdate::default();
    update.kind = req.kind.map(Into::into);
    update.base_url = req.base_url;
    if let Some(models) = req.models {
        update.default_model = Some(models.first().cloned());
        update.models = Some(models);
    }
    update.api_key = req.api_key;
    let updated = settings(&state)?
        .update(&admin.0.principal(), &name, update)
        .await?;
    Ok(Json(updated.into()))
}

/// Deletes a Settings profile; `409` for a config file profile or while
/// presets use it.
#[utoipa::path(
    post,
    path = "/api/providers/{name}/delete",
    tag = "providers",
    params(("name" = String, Path, description = "Profile name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not an admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No such Settings profile", body = crate::dto::ErrorBody),
        (status = 409, description = "A config file profile, or presets use it", body = crate::dto::ErrorBody),
        (status = 503, description = "Provider settings are off on this server", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(name): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    settings(&state)?
        .delete(&admin.0.principal(), &name)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Asks the profile's endpoint for its models list (`GET …/models`)
/// through the provider adapter; a failing endpoint is `ok: false` with a
/// one-line reason (the upstream body is not relayed).
#[utoipa::path(
    post,
    path = "/api/providers/{name}/test",
    tag = "providers",
    params(("name" = String, Path, description = "Profile name")),
    responses(
        (status = 200, description = "What the endpoint answered", body = ProviderTestResult),
        (status = 403, description = "Not an admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No such profile", body = crate::dto::ErrorBody),
        (status = 503, description = "Provider settings are off on this server", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn test(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(name): Path<String>,
) -> Result<Json<ProviderTestResult>, ApiError> {
    let outcome = settings(&state)?.test(&admin.0.principal(), &name).await?;
    Ok(Json(match outcome {
        ProviderTest::Models(models) => ProviderTestResult {
            ok: true,
            models,
            error: None,
        },
        ProviderTest::Failed(error) => ProviderTestResult {
            ok: false,
            models: Vec::new(),
            error: Some(error),
        },
        _ => ProviderTestResult {
            ok: false,
            models: Vec::new(),
            error: Some("the test gave no answer".into()),
        },
    }))
}
