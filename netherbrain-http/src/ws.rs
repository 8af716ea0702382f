//! `GET /api/ws`: a WebSocket that multiplexes several conversations.
//!
//! Authentication: the same `Authorization: Bearer` header as every route,
//! or `?token=<token>` for browsers (which cannot set headers on a
//! WebSocket). Each frame is one JSON object with a `type`.
//!
//! Client → server:
//!
//! | frame | effect |
//! | --- | --- |
//! | `{"type":"subscribe","conversation_id","after"?}` | follow the conversation: with `after`, its latest session is replayed after that event id; without, a running session is streamed from its start. Then every later run of the conversation — started from any client — is streamed from its first event. Answered `subscribed`. |
//! | `{"type":"chat","conversation_id"?,"input","preset_id"?}` | start a run (`input`: text or messages; no `conversation_id`: a new conversation, which needs `preset_id`). Answered `started`; the conversation is subscribed to (if it was not) and the run's events follow. |
//! | `{"type":"interrupt","conversation_id"}` | interrupt the running session; answered `interrupted`. |
//! | `{"type":"steer","conversation_id","text"}` | steer the running session; answered `steered`. |
//! | `{"type":"unsubscribe","conversation_id"}` | stop following; answered `unsubscribed`. |
//! | `{"type":"ping"}` | answered `{"type":"pong"}`. |
//!
//! Server → client: `{"type":"event","conversation_id","session_id","seq","event":{AG-UI event}}`,
//! `{"type":"started","conversation_id","session_id"}`, the acknowledgements
//! above, and `{"type":"error","code","message","conversation_id"?}`. A
//! malformed frame (not JSON, unknown type, missing fields), a conversation
//! of another user (`not_found`) or a refused action (`conversation_busy`,
//! `not_running`, …) gets an `error` frame; the socket stays open.
//!
//! New runs started elsewhere are found by polling the conversation's
//! last activity every 300 ms; runs started by `chat` on this socket are
//! followed at once. Events come from the runtime's log (no lossy queue):
//! a slow socket slows its own reader, never drops events.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use netherbrain_core::runtime::PresetRun;
use netherbrain_core::{AgentEvent, ConversationId, EventSeq, PresetId, SessionId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::auth::{AuthUser, authenticate, bearer_token};
use crate::dto::RunInput;
use crate::error::ApiError;
use crate::extract::Query;
use crate::routes::conversations::input_messages;
use crate::runs::{new_conversation_for_run, owned_conversation, pending_fork_parent, start_run};
use crate::state::AppState;

/// How often followed conversations are checked for runs started elsewhere.
const POLL: Duration = Duration::from_millis(300);
/// Frames buffered for the socket writer; producers wait when it is full.
const OUTBOX: usize = 256;
/// How often the server pings an open socket (keeps proxies from closing
/// idle connections).
const PING_INTERVAL: Duration = Duration::from_secs(30);

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/ws", get(upgrade))
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: Option<String>,
}

/// A server frame.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame {
    Event {
        conversation_id: Uuid,
        session_id: Uuid,
        seq: EventSeq,
        event: AgentEvent,
    },
    Started {
        conversation_id: Uuid,
        session_id: Uuid,
    },
    Subscribed {
        conversation_id: Uuid,
    },
    Unsubscribed {
        conversation_id: Uuid,
    },
    Interrupted {
        conversation_id: Uuid,
        session_id: Uuid,
    },
    Steered {
        conversation_id: Uuid,
        session_id: Uuid,
    },
    Pong,
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation_id: Option<Uuid>,
    },
}

impl ServerFrame {
    fn error(code: &str, message: impl Into<String>, conversation_id: Option<Uuid>) -> Self {
        Self::Error {
            code: code.to_owned(),
            message: message.into(),
            conversation_id,
        }
    }

    fn api_error(e: &ApiError, conversation_id: Option<Uuid>) -> Self {
        Self::error(e.code(), e.message(), conversation_id)
    }
}

#[derive(Debug, Deserialize)]
struct SubscribeFrame {
    conversation_id: Uuid,
    #[serde(default)]
    after: Option<EventSeq>,
}

#[derive(Debug, Deserialize)]
struct ChatFrame {
    #[serde(default)]
    conversation_id: Option<Uuid>,
    input: RunInput,
    #[serde(default)]
    preset_id: Option<Uuid>,
}

#[derive(Debug, Deserialize)]
struct ConversationFrame {
    conversation_id: Uuid,
}

#[derive(Debug, Deserialize)]
struct SteerFrame {
    conversation_id: Uuid,
    text: String,
}

/// Upgrades after authenticating with the bearer header or `?token=`.
async fn upgrade(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let mut parts = parts;
    let Query(query) = Query::<TokenQuery>::from_request_parts(&mut parts, &state).await?;
    let user = match (bearer_token(&parts.headers), query.token) {
        (Some(_), _) => authenticate(&state, &parts.headers).await?,
        (None, Some(token)) => {
            let mut headers = HeaderMap::new();
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ApiError::unauthorized("invalid, expired or revoked token"))?;
            headers.insert(header::AUTHORIZATION, value);
            authenticate(&state, &headers).await?
        }
        (None, None) => {
            return Err(ApiError::unauthorized(
                "missing `Authorization: Bearer <token>` header or `?token=`",
            ));
        }
    };
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &state)
        .await
        .map_err(|r| {
            ApiError::bad_request(format!("expected a WebSocket upgrade: {}", r.body_text()))
        })?;
    Ok(ws
        .max_message_size(state.config().body_limit)
        .on_upgrade(move |socket| connection(state, user, socket))
        .into_response())
}

/// A followed conversation: its task, and a way to hand it a run started
/// on this socket.
struct Subscription {
    task: JoinHandle<()>,
    direct: mpsc::UnboundedSender<SessionId>,
}

async fn connection(state: AppState, user: AuthUser, socket: WebSocket) {
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<ServerFrame>(OUTBOX);
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            let message = tokio::select! {
                frame = rx.recv() => {
                    let Some(frame) = frame else { break };
                    match serde_json::to_string(&frame) {
                        Ok(text) => WsMessage::Text(text.into()),
                        Err(e) => {
                            tracing::error!(error = %e, "could not serialize a frame");
                            continue;
                        }
                    }
                }
                _ = ping.tick() => WsMessage::Ping(Vec::new().into()),
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut subs: HashMap<ConversationId, Subscription> = HashMap::new();
    while let Some(message) = incoming.next().await {
        let reply = match message {
            Ok(WsMessage::Text(text)) => handle(&state, &user, &tx, &mut subs, text.as_str()).await,
            Ok(WsMessage::Binary(_)) => Some(ServerFrame::error(
                "bad_request",
                "binary frames are not supported; send JSON text",
                None,
            )),
            Ok(WsMessage::Close(_)) | Err(_) => break,
            Ok(_) => None,
        };
        if let Some(frame) = reply
            && tx.send(frame).await.is_err()
        {
            break;
        }
        subs.retain(|_, s| !s.task.is_finished());
    }
    for sub in subs.into_values() {
        sub.task.abort();
    }
    drop(tx);
    let _ = writer.await;
}

/// Handles one client frame; returns the direct reply, if any.
async fn handle(
    state: &AppState,
    user: &AuthUser,
    tx: &mpsc::Sender<ServerFrame>,
    subs: &mut HashMap<ConversationId, Subscription>,
    text: &str,
) -> Option<ServerFrame> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Some(ServerFrame::error(
                "invalid_json",
                format!("not JSON: {e}"),
                None,
            ));
        }
    };
    let Some(kind) = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
    else {
        return Some(ServerFrame::error(
            "invalid_frame",
            "a frame is a JSON object with a string `type`",
            None,
        ));
    };
    let cid = value
        .get("conversation_id")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<Uuid>().ok());
    let result = match kind.as_str() {
        "subscribe" => match parse::<SubscribeFrame>(value) {
            Ok(f) => subscribe(state, user, tx, subs, f).await,
            Err(e) => Err(e),
        },
        "chat" => match parse::<ChatFrame>(value) {
            Ok(f) => chat(state, user, tx, subs, f).await,
            Err(e) => Err(e),
        },
        "interrupt" => match parse::<ConversationFrame>(value) {
            Ok(f) => interrupt(state, user, f).await,
            Err(e) => Err(e),
        },
        "steer" => match parse::<SteerFrame>(value) {
            Ok(f) => steer(state, user, f).await,
            Err(e) => Err(e),
        },
        "unsubscribe" => match parse::<ConversationFrame>(value) {
            Ok(f) => {
                if let Some(sub) = subs.remove(&ConversationId::from(f.conversation_id)) {
                    sub.task.abort();
                }
                Ok(Some(ServerFrame::Unsubscribed {
                    conversation_id: f.conversation_id,
                }))
            }
            Err(e) => Err(e),
        },
        "ping" => Ok(Some(ServerFrame::Pong)),
        other => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "unknown_type",
            format!(
                "unknown frame type `{}`; expected subscribe, chat, interrupt, steer, unsubscribe or ping",
                other.chars().take(32).collect::<String>()
            ),
        )),
    };
    match result {
        Ok(reply) => reply,
        Err(e) => Some(ServerFrame::api_error(&e, cid)),
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_frame",
            format!("invalid frame: {e}"),
        )
    })
}

async fn subscribe(
    state: &AppState,
    user: &AuthUser,
    tx: &mpsc::Sender<ServerFrame>,
    subs: &mut HashMap<ConversationId, Subscription>,
    frame: SubscribeFrame,
) -> Result<Option<ServerFrame>, ApiError> {
    let id = ConversationId::from(frame.conversation_id);
    owned_conversation(state, user, id).await?;
    if let Some(old) = subs.remove(&id) {
        old.task.abort();
    }
    let sessions = state.store().list_sessions(id).await?;
    let latest = sessions.last().map(|s| (s.id, s.status.is_active()));
    let initial = match (frame.after, latest) {
        (Some(after), Some((sid, _))) => Some((sid, after)),
        (None, Some((sid, true))) => Some((sid, 0)),
        _ => None,
    };
    let seen: HashSet<SessionId> = sessions.iter().map(|s| s.id).collect();
    // Announce before any event of the replay.
    tx.send(ServerFrame::Subscribed {
        conversation_id: frame.conversation_id,
    })
    .await
    .map_err(|_| ApiError::unavailable("socket closed"))?;
    subs.insert(id, spawn_follower(state, id, tx, seen, initial));
    Ok(None)
}

fn spawn_follower(
    state: &AppState,
    id: ConversationId,
    tx: &mpsc::Sender<ServerFrame>,
    seen: HashSet<SessionId>,
    initial: Option<(SessionId, EventSeq)>,
) -> Subscription {
    let (direct, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(follow(state.clone(), id, tx.clone(), rx, seen, initial));
    Subscription { task, direct }
}

/// Streams the conversation's runs to the socket until aborted or the
/// socket closes.
async fn follow(
    state: AppState,
    id: ConversationId,
    tx: mpsc::Sender<ServerFrame>,
    mut direct: mpsc::UnboundedReceiver<SessionId>,
    mut seen: HashSet<SessionId>,
    initial: Option<(SessionId, EventSeq)>,
) {
    if let Some((sid, after)) = initial {
        seen.insert(sid);
        if !forward(&state, id, sid, after, &tx).await {
            return;
        }
    }
    // `None`: the first tick lists the sessions once (`seen` dedupes).
    let mut last_activity = None;
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            sid = direct.recv() => {
                let Some(sid) = sid else { return };
                if seen.insert(sid) && !forward(&state, id, sid, 0, &tx).await {
                    return;
                }
            }
            _ = ticker.tick() => {
                let Ok(conversation) = state.store().get_conversation(id).await else { continue };
                if last_activity == Some(conversation.last_activity_at) {
                    continue;
                }
                last_activity = Some(conversation.last_activity_at);
                let Ok(sessions) = state.store().list_sessions(id).await else { continue };
                for session in sessions {
                    if seen.insert(session.id) && !forward(&state, id, session.id, 0, &tx).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Sends a session's events after `after`; `false` once the socket is gone.
async fn forward(
    state: &AppState,
    conversation_id: ConversationId,
    session_id: SessionId,
    after: EventSeq,
    tx: &mpsc::Sender<ServerFrame>,
) -> bool {
    let mut events = match state.runtime().subscribe(session_id, after).await {
        Ok(events) => events,
        Err(e) => {
            let e = ApiError::from(e);
            return tx
                .send(ServerFrame::api_error(&e, Some(conversation_id.into())))
                .await
                .is_ok();
        }
    };
    while let Some(envelope) = events.next().await {
        let frame = ServerFrame::Event {
            conversation_id: conversation_id.into(),
            session_id: session_id.into(),
            seq: envelope.seq,
            event: envelope.event,
        };
        if tx.send(frame).await.is_err() {
            return false;
        }
    }
    true
}

async fn chat(
    state: &AppState,
    user: &AuthUser,
    tx: &mpsc::Sender<ServerFrame>,
    subs: &mut HashMap<ConversationId, Subscription>,
    frame: ChatFrame,
) -> Result<Option<ServerFrame>, ApiError> {
    let input = input_messages(frame.input)?;
    let preset_id = frame.preset_id.map(PresetId::from);
    let conversation = match frame.conversation_id {
        Some(id) => owned_conversation(state, user, ConversationId::from(id)).await?,
        None => new_conversation_for_run(state, user, preset_id).await?,
    };
    let parent = pending_fork_parent(state, &conversation).await?;
    let handle = start_run(
        state,
        PresetRun::new(conversation.id, input)
            .with_preset(preset_id)
            .with_parent(parent),
    )
    .await?;
    tx.send(ServerFrame::Started {
        conversation_id: handle.conversation_id.into(),
        session_id: handle.session_id.into(),
    })
    .await
    .map_err(|_| ApiError::unavailable("socket closed"))?;
    let followed = subs
        .get(&conversation.id)
        .is_some_and(|s| !s.task.is_finished() && s.direct.send(handle.session_id).is_ok());
    if !followed {
        let seen = state
            .store()
            .list_sessions(conversation.id)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        subs.insert(
            conversation.id,
            spawn_follower(
                state,
                conversation.id,
                tx,
                seen,
                Some((handle.session_id, 0)),
            ),
        );
    }
    Ok(None)
}

async fn interrupt(
    state: &AppState,
    user: &AuthUser,
    frame: ConversationFrame,
) -> Result<Option<ServerFrame>, ApiError> {
    let id = ConversationId::from(frame.conversation_id);
    owned_conversation(state, user, id).await?;
    let session_id = state.runtime().interrupt_conversation(id)?;
    Ok(Some(ServerFrame::Interrupted {
        conversation_id: frame.conversation_id,
        session_id: session_id.into(),
    }))
}

async fn steer(
    state: &AppState,
    user: &AuthUser,
    frame: SteerFrame,
) -> Result<Option<ServerFrame>, ApiError> {
    let id = ConversationId::from(frame.conversation_id);
    owned_conversation(state, user, id).await?;
    let session_id = state.runtime().steer_conversation(id, frame.text)?;
    Ok(Some(ServerFrame::Steered {
        conversation_id: frame.conversation_id,
        session_id: session_id.into(),
    }))
}
