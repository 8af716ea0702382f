//! The OpenAI-compatible endpoints, outside `/api`: presets are the
//! models.
//!
//! - `GET /v1/models`, `GET /v1/models/{model}`
//! - `POST /v1/chat/completions` (with or without `stream`)
//!
//! Authenticated like the rest of the API (`Authorization: Bearer <API
//! key>`), but every error — including `401` — is answered in OpenAI's
//! shape `{"error": {"message", "type", "param", "code"}}` so OpenAI
//! clients raise their usual exceptions. Each completion request is
//! stateless: it creates a fresh conversation owned by the caller (metadata
//! `{"source": "openai"}`) and runs the preset's agent, tools included,
//! on the server; the client sees the assistant's text, and calls of the
//! client tools it declared in `tools` (answered with `tool` messages in
//! the next request). `temperature`, `max_tokens`, `stop` and
//! `tool_choice` apply within the preset's limits. See
//! `docs/openai-compatible.md`.

use std::convert::Infallible;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use futures::StreamExt;
use futures::stream::BoxStream;
use netherbrain_core::conversation::SendMessage;
use netherbrain_core::runtime::Runtime;
use netherbrain_core::store::{Metadata, Session};
use netherbrain_core::{EventEnvelope, SessionId, SessionStatus};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::{AuthUser, authenticate};
use crate::error::ApiError;
use crate::openai_compat::{
    ChatCompletionRequest, ChunkShaper, CompletionMeta, CompletionUsage, ModelList, ModelObject,
    OpenAiError, RunEnd, TextFold, completion, run_end, to_input,
};
use crate::state::AppState;

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{model}", get(get_model))
        .route("/v1/chat/completions", post(chat_completions))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_auth))
}

/// Like the API's auth middleware, with errors in OpenAI's shape.
async fn require_auth(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, OpenAiError> {
    let user = authenticate(&state, req.headers()).await?;
    req.extensions_mut().insert(user);
    Ok(next.run(req).await)
}

/// A JSON body whose rejections are OpenAI errors (`400` for anything that
/// is not a valid request, `413` for an oversize body). The content type
/// is not checked.
#[derive(Debug)]
struct OpenAiJson<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OpenAiJson<T> {
    type Rejection = OpenAiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| OpenAiError::from(ApiError::from_rejection(r.status(), r.body_text())))?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| OpenAiError::invalid_request(format!("invalid request body: {e}")))
    }
}

/// Lists the presets as models.
async fn list_models(
    State(state): State<AppState>,
    _auth: AuthUser,
) -> Result<axum::Json<ModelList>, OpenAiError> {
    let presets = state.store().list_presets().await?;
    Ok(axum::Json(ModelList {
        object: "list",
        data: presets.into_iter().map(ModelObject::from).collect(),
    }))
}

/// One preset as a model.
async fn get_model(
    State(state): State<AppState>,
    _auth: AuthUser,
    axum::extract::Path(model): axum::extract::Path<String>,
) -> Result<axum::Json<ModelObject>, OpenAiError> {
    match state.store().get_preset_by_name(&model).await {
        Ok(preset) => Ok(axum::Json(preset.into())),
        Err(e) if e.is_not_found() => Err(OpenAiError::model_not_found(&model)),
        Err(e) => Err(e.into()),
    }
}

/// Interrupts the run when dropped while armed: the client went away
/// (the response future or the stream was dropped) before the run ended.
#[derive(Debug)]
struct InterruptOnDrop {
    runtime: Runtime,
    session_id: SessionId,
    armed: bool,
}

impl InterruptOnDrop {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if self.armed && self.runtime.interrupt(self.session_id).is_ok() {
            tracing::info!(session_id = %self.session_id, "client went away; run interrupted");
        }
    }
}

/// Runs a preset's agent on the client's messages.
async fn chat_completions(
    State(state): State<AppState>,
    auth: AuthUser,
    OpenAiJson(req): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, OpenAiError> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(OpenAiError::invalid_request("only `n = 1` is supported"));
    }
    let input = to_input(&req.messages)?;
    let overrides = req.overrides()?;
    let client_tools = req.client_tool_names();
    let preset = match state.store().get_preset_by_name(&req.model).await {
        Ok(preset) => preset,
        Err(e) if e.is_not_found() => return Err(OpenAiError::model_not_found(&req.model)),
        Err(e) => return Err(e.into()),
    };
    let mut metadata = Metadata::new();
    metadata.insert("source".into(), Value::from("openai"));
    if let Some(user) = req.user.as_deref().filter(|u| !u.is_empty()) {
        metadata.insert("openai_user".into(), Value::from(user));
    }
    let sent = state
        .service()
        .send(
            &auth.principal(),
            SendMessage::new_conversation_with(preset, input)
                .with_metadata(metadata)
                .with_overrides(overrides),
        )
        .await?;
    let handle = sent.handle().clone();
    let runtime = state.runtime().clone();
    let session_id = handle.session_id;
    let guard = InterruptOnDrop {
        runtime: runtime.clone(),
        session_id,
        armed: true,
    };
    let events = runtime.subscribe(session_id, 0).await?;
    let meta = CompletionMeta {
        id: format!("chatcmpl-{session_id}"),
        created: Utc::now().timestamp(),
        model: req.model.clone(),
    };
    if req.wants_stream() {
        let shaper = ChunkShaper::new(meta, req.include_usage(), client_tools);
        Ok(stream_response(state, auth, events, shaper, guard))
    } else {
        complete(runtime, events, &meta, &client_tools, guard).await
    }
}

/// The end of a run whose event stream closed without a terminal event.
fn end_from_session(session: &Session) -> RunEnd {
    match session.status {
        SessionStatus::Committed | SessionStatus::Interrupted => RunEnd::Finished {
            finish_reason: "stop",
            usage: CompletionUsage::from(&session.usage),
            tool_calls: Vec::new(),
        },
        _ => RunEnd::Failed(OpenAiError::from_run_error(
            None,
            session
                .error
                .as_deref()
                .unwrap_or("the run did not complete"),
        )),
    }
}

async fn run_end_after_close(runtime: &Runtime, session_id: SessionId) -> RunEnd {
    match runtime.wait(session_id).await {
        Ok(session) => end_from_session(&session),
        Err(e) => RunEnd::Failed(e.into()),
    }
}

/// Non-streaming: waits for the run, then answers once.
async fn complete(
    runtime: Runtime,
    mut events: BoxStream<'static, EventEnvelope>,
    meta: &CompletionMeta,
    client_tools: &std::collections::BTreeSet<String>,
    mut guard: InterruptOnDrop,
) -> Result<Response, OpenAiError> {
    let mut text = TextFold::default();
    let mut end = None;
    while let Some(envelope) = events.next().await {
        text.delta(&envelope.event);
        if let Some(e) = run_end(&envelope.event, client_tools) {
            end = Some(e);
            break;
        }
    }
    guard.disarm();
    let end = match end {
        Some(end) => end,
        None => run_end_after_close(&runtime, guard.session_id).await,
    };
    match end {
        RunEnd::Finished {
            finish_reason,
            usage,
            tool_calls,
        } => Ok(axum::Json(completion(
            meta,
            &text.text,
            finish_reason,
            usage,
            &tool_calls,
        ))
        .into_response()),
        RunEnd::Failed(error) => Err(error),
    }
}

struct StreamState {
    runtime: Runtime,
    events: BoxStream<'static, EventEnvelope>,
    shaper: ChunkShaper,
    guard: InterruptOnDrop,
    /// Resolves once the caller's token stops authenticating them.
    revoked: futures::future::BoxFuture<'static, ()>,
    pending: std::collections::VecDeque<String>,
    done: bool,
}

/// Streaming: the role chunk, content chunks as the text arrives, the
/// final chunk (and the usage chunk), then `[DONE]`. A token revoked
/// while the answer streams (key revoked, user deactivated, role changed)
/// ends the stream with a `token_revoked` error chunk and interrupts the
/// run, as the API's SSE and WebSocket streams do.
fn stream_response(
    state: AppState,
    auth: AuthUser,
    events: BoxStream<'static, EventEnvelope>,
    shaper: ChunkShaper,
    guard: InterruptOnDrop,
) -> Response {
    let mut pending = std::collections::VecDeque::new();
    pending.push_back(shaper.start());
    let state = StreamState {
        runtime: state.runtime().clone(),
        revoked: Box::pin(crate::auth::revoked(state, auth)),
        events,
        shaper,
        guard,
        pending,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(data) = s.pending.pop_front() {
                return Some((Ok::<_, Infallible>(Event::default().data(data)), s));
            }
            if s.done {
                return None;
            }
            let mut out = Vec::new();
            let next = tokio::select! {
                next = s.events.next() => next,
                () = &mut s.revoked => {
                    // The guard stays armed: dropping it interrupts the run.
                    s.shaper.end(RunEnd::Failed(OpenAiError::token_revoked()), &mut out);
                    s.pending.extend(out);
                    s.done = true;
                    continue;
                }
            };
            match next {
                Some(envelope) => {
                    if s.shaper.event(&envelope.event, &mut out) {
                        s.guard.disarm();
                        s.done = true;
                    }
                }
                None => {
                    s.guard.disarm();
                    let end = run_end_after_close(&s.runtime, s.guard.session_id).await;
                    s.shaper.end(end, &mut out);
                    s.done = true;
                }
            }
            s.pending.extend(out);
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
