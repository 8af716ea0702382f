//! `/api/memories/*`: the caller's long-term memories (admins may act for
//! any user with `user_id`). Ownership is checked by the conversation
//! service; another user's memory is `404`.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::Utc;
use netherbrain_core::{MemoryId, UserId};

use crate::auth::AuthUser;
use crate::dto::{MemoryContentRequest, MemoryExport, MemoryList, MemoryOwnerQuery, MemoryView};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/memories/list", get(list))
        .route("/api/memories/export", get(export))
        .route("/api/memories/create", post(create))
        .route("/api/memories/{id}/update", post(update))
        .route("/api/memories/{id}/delete", post(delete))
}

/// Lists memories, newest first.
#[utoipa::path(
    get,
    path = "/api/memories/list",
    tag = "memories",
    params(MemoryOwnerQuery),
    responses(
        (status = 200, description = "Memories", body = MemoryList),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No user `user_id`", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<MemoryOwnerQuery>,
) -> Result<Json<MemoryList>, ApiError> {
    let items = state
        .service()
        .list_memories(&auth.principal(), query.user_id.map(UserId::from_uuid))
        .await?;
    Ok(Json(MemoryList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// Exports every memory as one JSON document.
#[utoipa::path(
    get,
    path = "/api/memories/export",
    tag = "memories",
    params(MemoryOwnerQuery),
    responses(
        (status = 200, description = "All memories of the user", body = MemoryExport),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No user `user_id`", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn export(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<MemoryOwnerQuery>,
) -> Result<Json<MemoryExport>, ApiError> {
    let principal = auth.principal();
    let owner = query
        .user_id
        .map_or_else(|| principal.user_id(), UserId::from_uuid);
    let memories = state
        .service()
        .list_memories(&principal, query.user_id.map(UserId::from_uuid))
        .await?;
    Ok(Json(MemoryExport {
        user_id: owner.into(),
        exported_at: Utc::now(),
        memories: memories.into_iter().map(Into::into).collect(),
    }))
}

/// Records a memory.
#[utoipa::path(
    post,
    path = "/api/memories/create",
    tag = "memories",
    params(MemoryOwnerQuery),
    request_body = MemoryContentRequest,
    responses(
        (status = 200, description = "Remembered", body = MemoryView),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No user `user_id`", body = crate::dto::ErrorBody),
        (status = 409, description = "The memory is full (the per-user limit)", body = crate::dto::ErrorBody),
        (status = 422, description = "Empty or over-long content", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<MemoryOwnerQuery>,
    Json(req): Json<MemoryContentRequest>,
) -> Result<Json<MemoryView>, ApiError> {
    let memory = state
        .service()
        .create_memory(
            &auth.principal(),
            query.user_id.map(UserId::from_uuid),
            &req.content,
        )
        .await?;
    Ok(Json(memory.into()))
}

/// Changes a memory's content.
#[utoipa::path(
    post,
    path = "/api/memories/{id}/update",
    tag = "memories",
    params(("id" = Uuid, Path, description = "Memory id"), MemoryOwnerQuery),
    request_body = MemoryContentRequest,
    responses(
        (status = 200, description = "Changed", body = MemoryView),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No such memory of this user", body = crate::dto::ErrorBody),
        (status = 422, description = "Empty or over-long content", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<MemoryId>,
    Query(query): Query<MemoryOwnerQuery>,
    Json(req): Json<MemoryContentRequest>,
) -> Result<Json<MemoryView>, ApiError> {
    let memory = state
        .service()
        .update_memory(
            &auth.principal(),
            query.user_id.map(UserId::from_uuid),
            id,
            &req.content,
        )
        .await?;
    Ok(Json(memory.into()))
}

/// Deletes a memory.
#[utoipa::path(
    post,
    path = "/api/memories/{id}/delete",
    tag = "memories",
    params(("id" = Uuid, Path, description = "Memory id"), MemoryOwnerQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No such memory of this user", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<MemoryId>,
    Query(query): Query<MemoryOwnerQuery>,
) -> Result<axum::http::StatusCode, ApiError> {
    state
        .service()
        .delete_memory(&auth.principal(), query.user_id.map(UserId::from_uuid), id)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
