//! `/api/tasks/*`: the caller's scheduled tasks (admins may act for any
//! user with `user_id`). Ownership is checked by the conversation service;
//! another user's task is `404`.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use netherbrain_core::tasks::{TaskChange, TaskSpec};
use netherbrain_core::{ConversationId, PresetId, TaskId, UserId};

use crate::auth::AuthUser;
use crate::dto::{
    CreateTaskRequest, TaskList, TaskOwnerQuery, TaskRunStarted, TaskView, UpdateTaskRequest,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/tasks/list", get(list))
        .route("/api/tasks/create", post(create))
        .route("/api/tasks/{id}", get(show))
        .route("/api/tasks/{id}/update", post(update))
        .route("/api/tasks/{id}/delete", post(delete))
        .route("/api/tasks/{id}/run", post(run))
}

fn owner(query: &TaskOwnerQuery) -> Option<UserId> {
    query.user_id.map(UserId::from_uuid)
}

/// Lists scheduled tasks, by name.
#[utoipa::path(
    get,
    path = "/api/tasks/list",
    tag = "tasks",
    params(TaskOwnerQuery),
    responses(
        (status = 200, description = "Tasks", body = TaskList),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No user `user_id`", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<TaskOwnerQuery>,
) -> Result<Json<TaskList>, ApiError> {
    let items = state
        .service()
        .list_tasks(&auth.principal(), owner(&query))
        .await?;
    Ok(Json(TaskList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a scheduled task; its first run is the schedule's first slot
/// from now.
#[utoipa::path(
    post,
    path = "/api/tasks/create",
    tag = "tasks",
    params(TaskOwnerQuery),
    request_body = CreateTaskRequest,
    responses(
        (status = 200, description = "Created", body = TaskView),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No such user, preset or conversation of the user", body = crate::dto::ErrorBody),
        (status = 409, description = "The name is taken, or the user has the most tasks allowed", body = crate::dto::ErrorBody),
        (status = 422, description = "A cron expression that does not parse, an unknown time zone, an interval below the server's minimum", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<TaskOwnerQuery>,
    Json(req): Json<CreateTaskRequest>,
) -> Result<Json<TaskView>, ApiError> {
    let spec = TaskSpec::new(
        req.name,
        req.schedule.into(),
        PresetId::from_uuid(req.preset_id),
        req.prompt,
    )
    .with_conversation(req.conversation_id.map(ConversationId::from_uuid))
    .with_catch_up(req.catch_up)
    .with_enabled(req.enabled);
    let task = state
        .service()
        .create_task(&auth.principal(), owner(&query), spec)
        .await?;
    Ok(Json(task.into()))
}

/// One scheduled task, with its next slot and what its last one did.
#[utoipa::path(
    get,
    path = "/api/tasks/{id}",
    tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id"), TaskOwnerQuery),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No such task of this user", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<TaskId>,
    Query(query): Query<TaskOwnerQuery>,
) -> Result<Json<TaskView>, ApiError> {
    let task = state
        .service()
        .task(&auth.principal(), owner(&query), id)
        .await?;
    Ok(Json(task.into()))
}

/// Changes a scheduled task. A new schedule, or resuming a paused task,
/// moves its next slot to the schedule's first from now.
#[utoipa::path(
    post,
    path = "/api/tasks/{id}/update",
    tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id"), TaskOwnerQuery),
    request_body = UpdateTaskRequest,
    responses(
        (status = 200, description = "Changed", body = TaskView),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No such task of this user, or no such preset or conversation", body = crate::dto::ErrorBody),
        (status = 409, description = "The name is taken", body = crate::dto::ErrorBody),
        (status = 422, description = "A cron expression that does not parse, an unknown time zone, an interval below the server's minimum", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<TaskId>,
    Query(query): Query<TaskOwnerQuery>,
    Json(req): Json<UpdateTaskRequest>,
) -> Result<Json<TaskView>, ApiError> {
    let mut change = TaskChange::default();
    change.name = req.name;
    change.schedule = req.schedule.map(Into::into);
    change.preset_id = req.preset_id.map(PresetId::from_uuid);
    change.prompt = req.prompt;
    change.conversation_id = req
        .conversation_id
        .map(|c| c.map(ConversationId::from_uuid));
    change.catch_up = req.catch_up;
    change.enabled = req.enabled;
    let task = state
        .service()
        .update_task(&auth.principal(), owner(&query), id, change)
        .await?;
    Ok(Json(task.into()))
}

/// Deletes a scheduled task.
#[utoipa::path(
    post,
    path = "/api/tasks/{id}/delete",
    tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id"), TaskOwnerQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No such task of this user", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<TaskId>,
    Query(query): Query<TaskOwnerQuery>,
) -> Result<axum::http::StatusCode, ApiError> {
    state
        .service()
        .delete_task(&auth.principal(), owner(&query), id)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Runs a scheduled task now, outside its schedule (its next slot stays).
#[utoipa::path(
    post,
    path = "/api/tasks/{id}/run",
    tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id"), TaskOwnerQuery),
    responses(
        (status = 200, description = "The run started", body = TaskRunStarted),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No such task of this user, or its conversation or preset is gone", body = crate::dto::ErrorBody),
        (status = 409, description = "Its conversation is busy, or its preset's provider is not configured", body = crate::dto::ErrorBody),
        (status = 429, description = "`too_many_runs`: the user has the most runs going at once; `budget_exhausted`: a daily token budget is spent", body = crate::dto::ErrorBody),
        (status = 503, description = "The server is shutting down", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn run(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<TaskId>,
    Query(query): Query<TaskOwnerQuery>,
) -> Result<Json<TaskRunStarted>, ApiError> {
    let handle = state
        .service()
        .run_task(&auth.principal(), owner(&query), id)
        .await?;
    Ok(Json(TaskRunStarted {
        task_id: id.into(),
        conversation_id: handle.conversation_id.into(),
        session_id: handle.session_id.into(),
    }))
}
