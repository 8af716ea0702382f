//! `/api/conversations/*`: conversations, their runs and their streams.
//!
//! Every route checks ownership: another user's conversation answers `404`
//! (admins see all). Runs go through the session runtime and the agent
//! catalog; streamed responses are SSE (see [`crate::sse`]).
//!
//! **Fork decision**: `POST /api/conversations/{id}/fork` always creates the
//! new conversation (title `"<title> (fork)"`, same metadata, workspace and
//! default preset — or the forked session's preset when the source has no
//! default) and records `forked_from: {conversation_id, session_id}` in its
//! metadata. With `input` the first run starts at once from the forked
//! session (streamed like `run`, or `202`); without it, the first later run
//! of the new conversation (`run`, WebSocket `chat`) continues from that
//! session — as long as the new conversation has no session yet.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use netherbrain_core::runtime::{PresetRun, RunHandle};
use netherbrain_core::store::{
    ConversationPatch, ConversationQuery, ConversationStatus, Metadata, NewConversation, StoreError,
};
use netherbrain_core::{
    ConversationId, Message, PresetId, SessionId, SessionStatus, UsageByModel, WorkspaceId,
};
use serde_json::json;

use crate::auth::AuthUser;
use crate::dto::{
    ActiveSessionView, ConversationDetail, ConversationList, ConversationListQuery,
    ConversationView, CreateConversationRequest, EventsQuery, ForkConversationRequest,
    ForkResponse, RunConversationRequest, RunInput, RunStarted, SearchQuery, SearchResults,
    SessionActionResponse, SteerRequest, Turn, TurnList, TurnsQuery, UpdateConversationRequest,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::runs::{
    FORKED_FROM, new_conversation_for_run, owned_conversation, pending_fork_parent, start_run,
};
use crate::state::AppState;
use crate::{sse, summarize};

/// Default and largest page of turns.
const TURNS_DEFAULT_LIMIT: u32 = 20;
const TURNS_MAX_LIMIT: u32 = 100;
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

/// Input as messages; `422` when there is nothing to say.
pub(crate) fn input_messages(input: RunInput) -> Result<Vec<Message>, ApiError> {
    let messages = input.into_messages();
    // A message says something if it has a non-text part or non-blank text.
    let says_something = |m: &Message| {
        m.content.iter().any(|p| p.as_text().is_none()) || !m.text().trim().is_empty()
    };
    let empty = !messages.iter().any(says_something);
    if empty {
        return Err(ApiError::invalid("the input must not be empty"));
    }
    Ok(messages)
}

/// The answer to a started run: its SSE stream, or `202` with the ids.
pub(crate) async fn started(
    state: &AppState,
    handle: &RunHandle,
    stream: bool,
) -> Result<Response, ApiError> {
    if stream {
        sse::session_stream(state, handle.conversation_id, handle.session_id, 0).await
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
    if let Some(title) = req.title {
        new = new.with_title(title);
    }
    if let Some(ws) = req.workspace_id {
        new = new.with_workspace(WorkspaceId::from(ws));
    }
    if let Some(preset) = req.default_preset {
        new = new.with_default_preset(PresetId::from(preset));
    }
    if let Some(metadata) = req.metadata {
        new = new.with_metadata(metadata);
    }
    Ok(Json(state.store().create_conversation(new).await?.into()))
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
        (status = 503, description = "Shutting down", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn run(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<RunConversationRequest>,
) -> Result<Response, ApiError> {
    let input = input_messages(req.input)?;
    let preset_id = req.preset_id.map(PresetId::from);
    let conversation = match req.conversation_id {
        Some(id) => owned_conversation(&state, &user, ConversationId::from(id)).await?,
        None => new_conversation_for_run(&state, &user, preset_id).await?,
    };
    let parent = pending_fork_parent(&state, &conversation).await?;
    let handle = start_run(
        &state,
        PresetRun::new(conversation.id, input)
            .with_preset(preset_id)
            .with_parent(parent),
    )
    .await?;
    started(&state, &handle, req.stream).await
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
    let page = state.store().list_conversations(query).await?;
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
        .store()
        .search_conversations(
            Some(user.id()),
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
    let conversation = owned_conversation(&state, &user, id).await?;
    let sessions = state.store().list_sessions(id).await?;
    let mut usage = UsageByModel::default();
    for session in &sessions {
        usage.merge(&session.usage);
    }
    let active_session = sessions
        .iter()
        .rev()
        .find(|s| s.status.is_active())
        .map(|s| ActiveSessionView {
            id: s.id.into(),
            status: s.status.as_str().to_owned(),
        });
    Ok(Json(ConversationDetail {
        conversation: conversation.into(),
        active_session,
        usage,
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
    owned_conversation(&state, &user, id).await?;
    let mut patch = ConversationPatch::default();
    patch.title = req.title;
    patch.summary = req.summary;
    patch.default_preset = req.default_preset.map(|p| p.map(PresetId::from));
    patch.metadata = req.metadata;
    patch.status = req.status.as_deref().map(parse_status).transpose()?;
    Ok(Json(
        state.store().update_conversation(id, patch).await?.into(),
    ))
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
        (status = 200, description = "The new conversation (and the run's session for `stream: false`), or with `input` and `stream: true` the run's events (SSE)", body = ForkResponse),
        (status = 404, description = "No such conversation, session or preset", body = crate::dto::ErrorBody),
        (status = 409, description = "The session has not finished", body = crate::dto::ErrorBody),
        (status = 422, description = "The session failed, or bad input", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn fork(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Json(req): Json<ForkConversationRequest>,
) -> Result<Response, ApiError> {
    let source = owned_conversation(&state, &user, id).await?;
    let session_id = SessionId::from(req.session_id);
    let session = match state.store().get_session(session_id).await {
        Ok(s) if s.conversation_id == source.id => s,
        Ok(_) => return Err(StoreError::not_found("session", session_id.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    match session.status {
        SessionStatus::Committed
        | SessionStatus::Interrupted
        | SessionStatus::AwaitingToolResults => {}
        s if s.is_active() => {
            return Err(ApiError::conflict(
                "the session has not finished; fork it once it has",
            ));
        }
        _ => return Err(ApiError::invalid("a failed session cannot be forked")),
    }
    let input = req.input.map(input_messages).transpose()?;
    if input.is_some() && session.status == SessionStatus::AwaitingToolResults {
        return Err(ApiError::invalid(
            "the session waits for tool results; fork without `input`, or resume it first",
        ));
    }
    let preset_id = req.preset_id.map(PresetId::from);
    if let Some(preset) = preset_id {
        state.store().get_preset(preset).await?;
    }

    let mut metadata = source.metadata.clone();
    metadata.insert(
        FORKED_FROM.to_owned(),
        json!({"conversation_id": source.id, "session_id": session.id}),
    );
    let mut new = NewConversation::new(user.id()).with_metadata(metadata);
    if let Some(title) = &source.title {
        new = new.with_title(format!("{title} (fork)"));
    }
    if let Some(ws) = source.workspace_id {
        new = new.with_workspace(ws);
    }
    if let Some(preset) = source.default_preset.or(session.preset_id) {
        new = new.with_default_preset(preset);
    }
    let conversation = state.store().create_conversation(new).await?;

    let Some(input) = input else {
        return Ok(Json(ForkResponse {
            conversation: conversation.into(),
            session_id: None,
        })
        .into_response());
    };
    let handle = start_run(
        &state,
        PresetRun::new(conversation.id, input)
            .with_preset(preset_id)
            .with_parent(Some(session.id)),
    )
    .await?;
    if req.stream {
        return started(&state, &handle, true).await;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(ForkResponse {
            conversation: conversation.into(),
            session_id: Some(handle.session_id.into()),
        }),
    )
        .into_response())
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
    owned_conversation(&state, &user, id).await?;
    let session_id = state.runtime().interrupt_conversation(id)?;
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
    owned_conversation(&state, &user, id).await?;
    let session_id = state.runtime().steer_conversation(id, req.text)?;
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
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (wins over `after`)"),
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
    let conversation = owned_conversation(&state, &user, id).await?;
    let after = sse::resume_position(&headers, q.after.as_deref())?;
    let session_id = match q.session_id.map(SessionId::from) {
        Some(sid) => match state.store().get_session(sid).await {
            Ok(s) if s.conversation_id == conversation.id => sid,
            Ok(_) => return Err(StoreError::not_found("session", sid.to_string()).into()),
            Err(e) => return Err(e.into()),
        },
        None => match state.runtime().active_session(id) {
            Some(sid) => sid,
            None => state
                .store()
                .list_sessions(id)
                .await?
                .last()
                .map(|s| s.id)
                .ok_or_else(|| ApiError::not_found("the conversation has no session yet"))?,
        },
    };
    sse::session_stream(&state, id, session_id, after).await
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
    owned_conversation(&state, &user, id).await?;
    let limit = q.limit.unwrap_or(TURNS_DEFAULT_LIMIT);
    if !(1..=TURNS_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {TURNS_MAX_LIMIT}"
        )));
    }
    let sessions = state.store().list_sessions(id).await?;
    let start = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(cursor) => {
            let after: SessionId = cursor
                .parse()
                .map_err(|_| ApiError::bad_request("invalid page cursor"))?;
            sessions
                .iter()
                .position(|s| s.id == after)
                .ok_or_else(|| ApiError::bad_request("invalid page cursor"))?
                + 1
        }
    };
    let end = start.saturating_add(limit as usize).min(sessions.len());
    let next_cursor = (end < sessions.len()).then(|| sessions[end - 1].id.to_string());
    let mut items = Vec::with_capacity(end.saturating_sub(start));
    for session in sessions.into_iter().take(end).skip(start) {
        let messages = state.store().session_messages(session.id).await?;
        items.push(Turn {
            session: session.into(),
            messages,
        });
    }
    Ok(Json(TurnList { items, next_cursor }))
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
        (status = 422, description = "No preset, or no messages yet", body = crate::dto::ErrorBody),
        (status = 503, description = "The model call failed", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn summarize_conversation(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = owned_conversation(&state, &user, id).await?;
    let sessions = state.store().list_sessions(id).await?;
    let preset_id = conversation
        .default_preset
        .or_else(|| sessions.iter().rev().find_map(|s| s.preset_id))
        .ok_or_else(|| ApiError::invalid("the conversation has no preset to summarize with"))?;
    let preset = state.store().get_preset(preset_id).await?;
    let history = match sessions.last() {
        Some(latest) => state.store().session_history(latest.id).await?,
        None => Vec::new(),
    };
    let named = summarize::summarize(state.catalog(), &preset.config, &history).await?;
    let mut patch = ConversationPatch::default();
    patch.title = Some(Some(named.title));
    patch.summary = Some(Some(named.summary));
    Ok(Json(
        state.store().update_conversation(id, patch).await?.into(),
    ))
}
