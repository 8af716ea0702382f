//! `/api/sessions/*`: one run — its state, its event stream, interrupt,
//! steer and resume after tool approval. Another user's session answers
//! `404` (admins see all).

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use netherbrain_core::SessionId;
use netherbrain_core::conversation::RunTarget;

use crate::auth::AuthUser;
use crate::dto::{
    EventsQuery, ResumeRequest, SessionActionResponse, SessionStatusView, SessionView, SteerRequest,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::routes::conversations::started;
use crate::sse;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/sessions/{id}", get(get_session))
        .route("/api/sessions/{id}/status", get(status))
        .route("/api/sessions/{id}/events", get(events))
        .route("/api/sessions/{id}/interrupt", post(interrupt))
        .route("/api/sessions/{id}/steer", post(steer))
        .route("/api/sessions/{id}/resume", post(resume))
}

/// Gets a session.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 404, description = "No such session", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn get_session(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<SessionId>,
) -> Result<Json<SessionView>, ApiError> {
    let (session, _) = state.service().session(&user.principal(), id).await?;
    Ok(Json(session.into()))
}

/// A session's status, whether it runs here, and its last event id.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/status",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "Status", body = SessionStatusView),
        (status = 404, description = "No such session", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn status(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<SessionId>,
) -> Result<Json<SessionStatusView>, ApiError> {
    let (session, _) = state.service().session(&user.principal(), id).await?;
    let last_event_seq = state.store().last_event_seq(id).await?;
    Ok(Json(SessionStatusView {
        id: id.into(),
        status: session.status.as_str().to_owned(),
        // Running here, or in a live process that holds its lease.
        running: state.runtime().is_running(id)
            || (session.status.is_active()
                && session
                    .lease
                    .as_ref()
                    .is_some_and(|l| !l.is_expired(chrono::Utc::now()))),
        last_event_seq,
    }))
}

/// Streams a session's events as SSE, resuming after `Last-Event-ID` /
/// `after`; ends after the run's terminal event.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/events",
    tag = "sessions",
    params(
        ("id" = Uuid, Path, description = "Session id"),
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]{1,18}$", description = "Resume after this event id (wins over `after`)"),
    ),
    responses(
        (status = 200, description = "Events (SSE: `id: <seq>`, `event: <AG-UI type>`, `data: <event JSON>`)", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad event id", body = crate::dto::ErrorBody),
        (status = 404, description = "No such session", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<SessionId>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = sse::resume_position(&headers, q.after.as_deref())?;
    let (session, _) = state.service().session(&user.principal(), id).await?;
    let events = state.runtime().subscribe(id, after).await?;
    Ok(sse::response(&state, &user, session.conversation_id, id, events))
}

/// Interrupts a running session.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/interrupt",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "Interrupted", body = SessionActionResponse),
        (status = 404, description = "No such session", body = crate::dto::ErrorBody),
        (status = 409, description = "`not_running`", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn interrupt(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<SessionId>,
) -> Result<Json<SessionActionResponse>, ApiError> {
    state
        .service()
        .interrupt(&user.principal(), RunTarget::Session(id))
        .await?;
    Ok(Json(SessionActionResponse {
        session_id: id.into(),
    }))
}

/// Queues steering text for a running session.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/steer",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = SteerRequest,
    responses(
        (status = 200, description = "Queued", body = SessionActionResponse),
        (status = 404, description = "No such session", body = crate::dto::ErrorBody),
        (status = 409, description = "`not_running`", body = crate::dto::ErrorBody),
        (status = 422, description = "Empty text", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn steer(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<SessionId>,
    Json(req): Json<SteerRequest>,
) -> Result<Json<SessionActionResponse>, ApiError> {
    state
        .service()
        .steer(&user.principal(), RunTarget::Session(id), req.text)
        .await?;
    Ok(Json(SessionActionResponse {
        session_id: id.into(),
    }))
}

/// Resumes a session that awaits tool results: approvals, denials or
/// client-supplied results for every pending call. Starts a new session in
/// the same conversation continuing from this one, with its preset.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/resume",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = ResumeRequest,
    responses(
        (status = 200, description = "The new run's events (SSE)", content_type = "text/event-stream", body = String),
        (status = 202, description = "Started", body = crate::dto::RunStarted),
        (status = 404, description = "No such session", body = crate::dto::ErrorBody),
        (status = 409, description = "`conversation_busy`", body = crate::dto::ErrorBody),
        (status = 422, description = "Decisions do not match the pending calls", body = crate::dto::ErrorBody),
        (status = 429, description = "`too_many_runs`: the user has the most runs going at once; `budget_exhausted`: a daily token budget is spent", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn resume(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<SessionId>,
    Json(req): Json<ResumeRequest>,
) -> Result<Response, ApiError> {
    let handle = state
        .service()
        .resume(&user.principal(), id, req.decisions)
        .await?;
    started(&state, &user, &handle, req.stream).await
}
