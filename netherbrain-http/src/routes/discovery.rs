//! `GET /api/toolsets` and `GET /api/models`: what presets can use here.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::auth::AuthUser;
use crate::dto::{ModelList, ModelProfileView, ToolsetList};
use crate::extract::Json;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/toolsets", get(toolsets))
        .route("/api/models", get(models))
}

/// Tool sets presets can enable.
#[utoipa::path(
    get,
    path = "/api/toolsets",
    tag = "discovery",
    responses((status = 200, description = "Tool set names", body = ToolsetList))
)]
pub(crate) async fn toolsets(State(state): State<AppState>, _user: AuthUser) -> Json<ToolsetList> {
    Json(ToolsetList {
        items: state.catalog().toolset_names(),
    })
}

/// Provider profiles with their kind and models.
#[utoipa::path(
    get,
    path = "/api/models",
    tag = "discovery",
    responses((status = 200, description = "Profiles by name", body = ModelList))
)]
pub(crate) async fn models(State(state): State<AppState>, _user: AuthUser) -> Json<ModelList> {
    Json(ModelList {
        items: state
            .catalog()
            .profiles()
            .into_iter()
            .map(|p| ModelProfileView {
                name: p.name,
                kind: p.kind.map(str::to_owned),
                models: p.models,
            })
            .collect(),
    })
}
