//! `/api/conversations/*`: conversations, their runs and their streams.
//!
//! Every route checks ownership: another user's conversation answers `404`
//! (admins see all). Runs go through the session runtime and the agent
//! catalog; streamed responses are SSE (see [`crate::sse`]).
//!
//! **Fork decision**: `POST /api/conversations/{id}/fork` always creates the
//! new conversation (title `"<title> (fork)"`, same metadata, workspace and
//! default preset — or the forked session's preset when the source has no
//! default) and records the origin in its read-only `forked_from` field.
//! With `input` the first run starts at once from the forked session
//! (streamed like `run`, or `202`); without it, the first later run of the
//! new conversation (`run`, WebSocket `chat`) continues from that session.
//! The metadata key `forked_from` is reserved and refused in requests.
//!
//! The rules live in [`netherbrain_core::conversation::ConversationService`];
//! these handlers parse, call it and map its errors.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use netherbrain_core::conversation::{ForkRequest, RunTarget, SendMessage, TurnsQuery as Page};
use netherbrain_core::runtime::RunHandle;
use netherbrain_core::store::{
    ConversationPatch, ConversationQuery, ConversationStatus, Metadata, NewConversation,
};
use netherbrain_core::{ConversationId, PresetId, SessionId, WorkspaceId};

use crate::auth::AuthUser;
use crate::dto::{
    ActiveSessionView, ConversationDetail, ConversationList, ConversationListQuery,
    ConversationView, CreateConversationRequest, EventsQuery, ForkConversationRequest,
    ForkResponse, RunConversationRequest, RunStarted, SearchQuery, SearchResults,
    SessionActionResponse, SteerRequest, Turn, TurnList, TurnsQuery, UpdateConversationRequest,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::sse;
use crate::state::AppState;

/// Default number of search results.
const SEARCH_DEFAULT_LIMIT: u32 = 20;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/conversations/create", post(create))
        .route("/api/conversations/run", post(run))
        .route("/api/conversations/list", get(list))
        .route("/api/conversations/search", get(search))
        .route("/api/conversations/{id}", get(get_conversation))
        .route("/api/conversations/{id}/update", post(update))
        .route("/api/conversations/{id}/fork", post(fork))
        .route("/api/conversations/{id}/interrupt", post(interrupt))
        .route("/api/conversations/{id}/steer", post(steer))
        .route("/api/conversations/{id}/events", get(events))
        .route("/api/conversations/{id}/turns", get(turns))
        .route(
            "/api/conversations/{id}/summarize",
            post(summarize_conversation),
        )
}

/// The answer to a started run: its SSE stream, or `202` with the ids.
pub(crate) async fn started(
    state: &AppState,
    user: &AuthUser,
    handle: &RunHandle,
    stream: bool,
) -> Result<Response, ApiError> {
    if stream {
        let events = state.runtime().subscribe(handle.session_id, 0).await?;
        Ok(sse::response(
            state,
            user,
            handle.conversation_id,
            handle.session_id,
            events,
        ))
    } else {
        Ok((
            StatusCode::ACCEPTED,
            Json(RunStarted {
                conversation_id: handle.conversation_id.into(),
                session_id: handle.session_id.into(),
            }),
        )
            .into_response())
    }
}

fn parse_status(status: &str) -> Result<ConversationStatus, ApiError> {
    ConversationStatus::parse(status).ok_or_else(|| {
        ApiError::invalid(format!(
            "unknown status `{}`; expected `active` or `archived`",
            status.chars().take(32).collect::<String>()
        ))
    })
}

/// Creates a conversation owned by the caller.
#[utoipa::path(
    post,
    path = "/api/conversations/create",
    tag = "conversations",
    request_body = CreateConversationRequest,
    responses(
        (status = 200, description = "Created", body = ConversationView),
        (status = 404, description = "Unknown workspace or preset", body = crate::dto::ErrorBody),
        (status = 422, description = "Invalid metadata or title", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateConversationRequest>,
) -> Result<Json<ConversationView>, ApiError> {
    let mut new = NewConversation::new(user.id());
    new.title = req.title;
    new.workspace_id = req.workspace_id.map(WorkspaceId::from);
    new.default_preset = req.default_preset.map(PresetId::from);
    if let Some(metadata) = req.metadata {
        new.metadata = metadata;
    }
    let conversation = state.service().create(&user.principal(), new).await?;
    Ok(Json(conversation.into()))
}

/// Runs the agent: in a conversation, or in a new one owned by the caller.
///
/// With `stream: true` (default) the response is the run's event stream
/// (`text/event-stream`, ids in `x-conversation-id` / `x-session-id`);
/// otherwise `202` with the ids to attach to.
#[utoipa::path(
    post,
    path = "/api/conversations/run",
    tag = "conversations",
    request_body = RunConversationRequest,
    responses(
        (status = 200, description = "The run's events (SSE: `id: <seq>`, `event: <AG-UI type>`, `data: <event JSON>`)", content_type = "text/event-stream", body = String),
        (status = 202, description = "Started", body = RunStarted),
        (status = 404, description = "Unknown conversation or preset", body = crate::dto::ErrorBody),
        (status = 409, description = "`conversation_busy`: a run is active (`active_session_id`)", body = crate::dto::ErrorBody),
        (status = 422, description = "Empty input, no preset, or a preset the catalog cannot build", body = crate::dto::ErrorBody),
        (status = 429, description = "`too_many_runs`: the user has the most runs going at once; `budget_exhausted`: a daily token budget is spent", body = crate::dto::ErrorBody),
        (status = 503, description = "Shutting down", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn run(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<RunConversationRequest>,
) -> Result<Response, ApiError> {
    let input = req.input.into_messages();
    let preset = req.preset_id.map(PresetId::from);
    let message = match req.conversation_id {
        Some(id) => SendMessage::to(ConversationId::from(id), input).with_preset(preset),
        None => {
            let mut m = SendMessage::to(ConversationId::new(), input).with_preset(preset);
            m.conversation_id = None;
            m
        }
    };
    let sent = state.service().send(&user.principal(), message).await?;
    started(&state, &user, sent.handle(), req.stream).await
}

/// Lists the caller's conversations, newest activity first.
#[utoipa::path(
    get,
    path = "/api/conversations/list",
    tag = "conversations",
    params(ConversationListQuery),
    responses(
        (status = 200, description = "A page", body = ConversationList),
        (status = 400, description = "Bad filter", body = crate::dto::ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ConversationListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let mut query = ConversationQuery::for_owner(user.id()).with_cursor(q.cursor);
    if let Some(limit) = q.limit {
        query = query.with_limit(limit);
    }
    if let Some(status) = q.status.as_deref() {
        query = query.with_status(
            parse_status(status).map_err(|e| ApiError::bad_request(e.message().to_owned()))?,
        );
    }
    if let Some(ws) = q.workspace_id {
        query = query.with_workspace(WorkspaceId::from(ws));
    }
    if let Some(metadata) = q.metadata.as_deref() {
        let filter: Metadata = serde_json::from_str(metadata).map_err(|_| {
            ApiError::bad_request("`metadata` must be a JSON object, e.g. {\"source\":\"web\"}")
        })?;
        query = query.with_metadata(filter);
    }
    let page = state.service().list(&user.principal(), query).await?;
    Ok(Json(ConversationList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Searches the caller's conversations (title, summary, message text).
#[utoipa::path(
    get,
    path = "/api/conversations/search",
    tag = "conversations",
    params(SearchQuery),
    responses(
        (status = 200, description = "Best match first", body = SearchResults),
        (status = 422, description = "Empty query or bad limit", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn search(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    let found = state
        .service()
        .search(
            &user.principal(),
            &q.q,
            q.limit.unwrap_or(SEARCH_DEFAULT_LIMIT),
        )
        .await?;
    Ok(Json(SearchResults {
        items: found.into_iter().map(Into::into).collect(),
    }))
}

/// Gets a conversation with its running session and total usage.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}",
    tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationDetail),
        (status = 404, description = "No such conversation", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn get_conversation(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let detail = state.service().detail(&user.principal(), id).await?;
    Ok(Json(ConversationDetail {
        conversation: detail.conversation.into(),
        active_session: detail.active_session.map(|s| ActiveSessionView {
            id: s.id.into(),
            status: s.status.as_str().to_owned(),
        }),
        usage: detail.usage,
    }))
}

/// Changes a conversation; `metadata` keys are shallow-merged (`null`
/// removes one).
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/update",
    tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = UpdateConversationRequest,
    responses(
        (status = 200, description = "Changed", body = ConversationView),
        (status = 404, description = "No such conversation or preset", body = crate::dto::ErrorBody),
        (status = 422, description = "Invalid field", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Json(req): Json<UpdateConversationRequest>,
) -> Result<Json<ConversationView>, ApiError> {
    let mut patch = ConversationPatch::default();
    patch.title = req.title;
    patch.summary = req.summary;
    patch.default_preset = req.default_preset.map(|p| p.map(PresetId::from));
    patch.metadata = req.metadata;
    patch.status = req.status.as_deref().map(parse_status).transpose()?;
    let conversation = state.service().update(&user.principal(), id, patch).await?;
    Ok(Json(conversation.into()))
}

/// Forks a conversation from one of its finished sessions; see the module
/// docs for what is copied and when the first run starts.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/fork",
    tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = ForkConversationRequest,
    responses(
        (status = 200, description = "Without `input`: the new conversation. With `input` and `stream: true`: the first run's events (SSE, ids in `x-conversation-id` / `x-session-id`)", content(
            (ForkResponse = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 202, description = "With `input` and `stream: false`: the new conversation and its run's session", body = ForkResponse),
        (status = 404, description = "No such conversation, session or preset", body = crate::dto::ErrorBody),
        (status = 409, description = "The session has not finished, failed, or waits for tool results (fork without `input`)", body = crate::dto::ErrorBody),
        (status = 422, description = "Bad input", body = crate::dto::ErrorBody),
        (status = 429, description = "`too_many_runs`: the user has the most runs going at once; `budget_exhausted`: a daily token budget is spent", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn fork(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Json(req): Json<ForkConversationRequest>,
) -> Result<Response, ApiError> {
    let mut fork = ForkRequest::new(SessionId::from(req.session_id))
        .with_preset(req.preset_id.map(PresetId::from));
    fork.input = req.input.map(crate::dto::RunInput::into_messages);
    let forked = state.service().fork(&user.principal(), id, fork).await?;
    match forked.run {
        None => Ok(Json(ForkResponse {
            conversation: forked.conversation.into(),
            session_id: None,
        })
        .into_response()),
        Some(handle) if req.stream => started(&state, &user, &handle, true).await,
        Some(handle) => Ok((
            StatusCode::ACCEPTED,
            Json(ForkResponse {
                conversation: forked.conversation.into(),
                session_id: Some(handle.session_id.into()),
            }),
        )
            .into_response()),
    }
}

/// Interrupts the conversation's running session.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/interrupt",
    tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "Interrupted", body = SessionActionResponse),
        (status = 404, description = "No such conversation", body = crate::dto::ErrorBody),
        (status = 409, description = "`not_running`: nothing runs", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn interrupt(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
) -> Result<Json<SessionActionResponse>, ApiError> {
    let session_id = state
        .service()
        .interrupt(&user.principal(), RunTarget::Conversation(id))
        .await?;
    Ok(Json(SessionActionResponse {
        session_id: session_id.into(),
    }))
}

/// Steers the conversation's running session.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/steer",
    tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = SteerRequest,
    responses(
        (status = 200, description = "Queued", body = SessionActionResponse),
        (status = 404, description = "No such conversation", body = crate::dto::ErrorBody),
        (status = 409, description = "`not_running`: nothing runs", body = crate::dto::ErrorBody),
        (status = 422, description = "Empty text", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn steer(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Json(req): Json<SteerRequest>,
) -> Result<Json<SessionActionResponse>, ApiError> {
    let session_id = state
        .service()
        .steer(&user.principal(), RunTarget::Conversation(id), req.text)
        .await?;
    Ok(Json(SessionActionResponse {
        session_id: session_id.into(),
    }))
}

/// Streams the events of the conversation's latest (or a given) session
/// as SSE, resuming after `Last-Event-ID` / `after`.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}/events",
    tag = "conversations",
    params(
        ("id" = Uuid, Path, description = "Conversation id"),
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]{1,18}$", description = "Resume after this event id (wins over `after`)"),
    ),
    responses(
        (status = 200, description = "Events (SSE)", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad event id", body = crate::dto::ErrorBody),
        (status = 404, description = "No such conversation or session, or no session yet", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = sse::resume_position(&headers, q.after.as_deref())?;
    let who = user.principal();
    let session_id = state
        .service()
        .events_session(&who, id, q.session_id.map(SessionId::from))
        .await?;
    let events = state.service().events(&who, session_id, after).await?;
    Ok(sse::response(&state, &user, id, session_id, events))
}

/// The conversation's history: sessions oldest first, each with its own
/// messages, a page at a time.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}/turns",
    tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id"), TurnsQuery),
    responses(
        (status = 200, description = "A page of turns", body = TurnList),
        (status = 400, description = "Bad cursor or limit", body = crate::dto::ErrorBody),
        (status = 404, description = "No such conversation", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn turns(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Query(q): Query<TurnsQuery>,
) -> Result<Json<TurnList>, ApiError> {
    let mut page = Page::default().with_cursor(q.cursor);
    page.limit = q.limit;
    let page = state.service().turns(&user.principal(), id, page).await?;
    Ok(Json(TurnList {
        items: page
            .items
            .into_iter()
            .map(|t| Turn {
                session: t.session.into(),
                messages: t.messages,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Names and summarises the conversation with its preset's model (one
/// non-streaming call) and stores the title and summary.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/summarize",
    tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation with its new title and summary", body = ConversationView),
        (status = 404, description = "No such conversation", body = crate::dto::ErrorBody),
        (status = 409, description = "No preset, no messages yet, or the preset's provider profile is not configured", body = crate::dto::ErrorBody),
        (status = 503, description = "The model call failed", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn summarize_conversation(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = state.service().summarize(&user.principal(), id).await?;
    Ok(Json(conversation.into()))
}
