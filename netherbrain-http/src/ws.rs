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
//! `not_running`, …) gets an `error` frame; the socket stays open. A socket
//! follows at most `ServerConfig::max_ws_subscriptions` conversations (64 by
//! default); one more gets `too_many_subscriptions`. When the
//! socket's token stops authenticating its user (key revoked, user
//! deactivated, role changed; checked every
//! `ServerConfig::revalidate_interval`) an `unauthorized` error frame is
//! sent and the socket closed.
//!
//! A subscription is the conversation service's
//! [`follow`](netherbrain_core::conversation::ConversationService::follow)
//! feed: runs started anywhere (HTTP, another socket, the CLI, a gateway)
//! stream as they start. A run started by `chat` on this socket is
//! announced with `started` before its first event. Events come from the
//! runtime's log (no lossy queue): a slow socket slows its own reader,
//! never drops events.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use netherbrain_core::conversation::{FollowFrom, RunTarget, SendMessage};
use netherbrain_core::{AgentEvent, ConversationId, EventEnvelope, EventSeq, PresetId, SessionId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::auth::{AuthUser, authenticate, bearer_token};
use crate::dto::RunInput;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
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

/// Sessions started by `chat` on this socket whose `started` frame is still
/// to be sent (before their first event).
type Announce = Arc<Mutex<HashSet<SessionId>>>;

/// A followed conversation: the task forwarding its feed.
struct Subscription {
    task: JoinHandle<()>,
    announce: Announce,
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
    let revoked = crate::auth::revoked(state.clone(), user.clone());
    tokio::pin!(revoked);
    loop {
        let message = tokio::select! {
            message = incoming.next() => match message {
                Some(message) => message,
                None => break,
            },
            () = &mut revoked => {
                let _ = tx
                    .send(ServerFrame::error(
                        "unauthorized",
                        "the token of this socket was revoked or its account changed; reconnect",
                        None,
                    ))
                    .await;
                break;
            }
        };
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
    let from = match frame.after {
        Some(after) => FollowFrom::Latest { after },
        None => FollowFrom::Live,
    };
    check_room(state, subs, Some(id))?;
    let events = state.service().follow(&user.principal(), id, from).await?;
    if let Some(old) = subs.remove(&id) {
        old.task.abort();
    }
    // Announce before any event of the replay.
    tx.send(ServerFrame::Subscribed {
        conversation_id: frame.conversation_id,
    })
    .await
    .map_err(|_| ApiError::unavailable("socket closed"))?;
    subs.insert(id, forward(id, events, tx, Announce::default()));
    Ok(None)
}

/// Forwards a conversation's feed to the socket until aborted or the socket
/// closes; sessions in `announce` get their `started` frame first.
fn forward(
    conversation_id: ConversationId,
    mut events: BoxStream<'static, EventEnvelope>,
    tx: &mpsc::Sender<ServerFrame>,
    announce: Announce,
) -> Subscription {
    let tx = tx.clone();
    let pending = announce.clone();
    let task = tokio::spawn(async move {
        while let Some(envelope) = events.next().await {
            let first_of_ours = pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&envelope.session_id);
            if first_of_ours {
                let started = ServerFrame::Started {
                    conversation_id: conversation_id.into(),
                    session_id: envelope.session_id.into(),
                };
                if tx.send(started).await.is_err() {
                    return;
                }
            }
            let frame = ServerFrame::Event {
                conversation_id: conversation_id.into(),
                session_id: envelope.session_id.into(),
                seq: envelope.seq,
                event: envelope.event,
            };
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    Subscription { task, announce }
}

/// `429 too_many_subscriptions` when following one more conversation
/// (`id`, or a new one) would pass `ServerConfig::max_ws_subscriptions`.
fn check_room(
    state: &AppState,
    subs: &HashMap<ConversationId, Subscription>,
    id: Option<ConversationId>,
) -> Result<(), ApiError> {
    let limit = state.config().max_ws_subscriptions;
    let live = subs.values().filter(|s| !s.task.is_finished()).count();
    let already = id.is_some_and(|id| subs.contains_key(&id));
    if !already && live >= limit {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_subscriptions",
            format!("a socket follows at most {limit} conversations; unsubscribe from one first"),
        ));
    }
    Ok(())
}

async fn chat(
    state: &AppState,
    user: &AuthUser,
    tx: &mpsc::Sender<ServerFrame>,
    subs: &mut HashMap<ConversationId, Subscription>,
    frame: ChatFrame,
) -> Result<Option<ServerFrame>, ApiError> {
    let who = user.principal();
    let session_id = SessionId::new();
    let input = frame.input.into_messages();
    let preset = frame.preset_id.map(PresetId::from);
    let conversation = frame.conversation_id.map(ConversationId::from);
    let mut message = SendMessage::to(ConversationId::new(), input)
        .with_preset(preset)
        .with_session_id(session_id);
    message.conversation_id = conversation;
    // A followed conversation announces the run itself, before its events.
    let announce = conversation
        .and_then(|id| subs.get(&id))
        .filter(|s| !s.task.is_finished())
        .map(|s| s.announce.clone());
    if announce.is_none() {
        check_room(state, subs, conversation)?;
    }
    if let Some(announce) = &announce {
        lock(announce).insert(session_id);
    }
    let sent = match state.service().send(&who, message).await {
        Ok(sent) => sent,
        Err(e) => {
            if let Some(announce) = &announce {
                lock(announce).remove(&session_id);
            }
            return Err(e.into());
        }
    };
    if announce.is_none() {
        let id = sent.handle().conversation_id;
        let events = state
            .service()
            .follow(&who, id, FollowFrom::After { session_id, after: 0 })
            .await?;
        let pending = Announce::default();
        lock(&pending).insert(session_id);
        subs.insert(id, forward(id, events, tx, pending));
    }
    Ok(None)
}

fn lock(announce: &Announce) -> std::sync::MutexGuard<'_, HashSet<SessionId>> {
    announce.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn interrupt(
    state: &AppState,
    user: &AuthUser,
    frame: ConversationFrame,
) -> Result<Option<ServerFrame>, ApiError> {
    let id = ConversationId::from(frame.conversation_id);
    let session_id = state
        .service()
        .interrupt(&user.principal(), RunTarget::Conversation(id))
        .await?;
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
    let session_id = state
        .service()
        .steer(&user.principal(), RunTarget::Conversation(id), frame.text)
        .await?;
    Ok(Some(ServerFrame::Steered {
        conversation_id: frame.conversation_id,
        session_id: session_id.into(),
    }))
}
