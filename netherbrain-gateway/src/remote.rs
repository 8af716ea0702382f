//! [`RemoteRuntime`]: [`RuntimeApi`] over the typed HTTP client, for a
//! gateway in its own process (`netherbrain gateway --runtime-url`).
//!
//! Every call acts as the API key's user (the runtime checks ownership on
//! its side). Event streams reconnect with `Last-Event-ID` inside the
//! client; [`follow`](RuntimeApi::follow) lists the conversation's turns
//! once a second to find runs started elsewhere, and ends with an error
//! item when the runtime is unreachable (the bridge retries with backoff).

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use netherbrain_core::agent::ToolDecision;
use netherbrain_core::{ConversationId, EventSeq, Message, PresetId, SessionId, UserId};
use netherbrain_http::client::{Client, ClientError};
use netherbrain_http::dto::{CreateConversationRequest, RunConversationRequest, RunInput};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::api::{ApiError, EventFeed, PresetInfo, RuntimeApi, SendOutcome, SessionInfo};

/// How often [`RemoteRuntime::follow`] looks for new runs.
const POLL: Duration = Duration::from_secs(1);

/// The runtime over HTTP.
#[derive(Debug, Clone)]
pub struct RemoteRuntime {
    client: Client,
}

impl RemoteRuntime {
    /// Over a client (with the API key set).
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Every session of a conversation, oldest first.
    async fn sessions(&self, conversation: Uuid) -> Result<Vec<(Uuid, bool)>, ApiError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .client
                .conversation_turns(conversation, Some(100), cursor.as_deref())
                .await
                .map_err(api_error)?;
            all.extend(
                page.items
                    .iter()
                    .map(|t| (t.session.id, is_active(&t.session.status))),
            );
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }
}

fn is_active(status: &str) -> bool {
    matches!(status, "created" | "running")
}

/// Maps a client error: unreachable or 5xx is retryable.
fn api_error(e: ClientError) -> ApiError {
    match e.status() {
        Some(404) => ApiError::NotFound(e.to_string()),
        Some(s) if s >= 500 => ApiError::Unavailable(e.to_string()),
        Some(_) => ApiError::Refused(e.to_string()),
        None => ApiError::Unavailable(e.to_string()),
    }
}

#[async_trait]
impl RuntimeApi for RemoteRuntime {
    async fn create_conversation(
        &self,
        _user: UserId,
        title: &str,
    ) -> Result<ConversationId, ApiError> {
        let req = CreateConversationRequest {
            title: Some(title.to_owned()),
            ..Default::default()
        };
        let view = self
            .client
            .create_conversation(&req)
            .await
            .map_err(api_error)?;
        Ok(ConversationId::from(view.id))
    }

    async fn send(
        &self,
        _user: UserId,
        conversation: ConversationId,
        preset: Option<PresetId>,
        input: Vec<Message>,
    ) -> Result<SendOutcome, ApiError> {
        let text: Vec<String> = input.iter().map(Message::text).collect();
        let req = RunConversationRequest {
            conversation_id: Some(conversation.into()),
            preset_id: preset.map(Uuid::from),
            input: RunInput::Messages(input),
            stream: false,
        };
        match self.client.run(&req).await {
            Ok(started) => Ok(SendOutcome::Started(SessionId::from(started.session_id))),
            Err(e) if e.code() == Some("conversation_busy") => {
                match self
                    .client
                    .steer_conversation(conversation.into(), &text.join("\n"))
                    .await
                {
                    Ok(done) => Ok(SendOutcome::Steered(SessionId::from(done.session_id))),
                    Err(e) if e.status() == Some(409) => Ok(SendOutcome::Busy),
                    Err(e) => Err(api_error(e)),
                }
            }
            Err(e) => Err(api_error(e)),
        }
    }

    async fn interrupt(
        &self,
        _user: UserId,
        conversation: ConversationId,
    ) -> Result<bool, ApiError> {
        match self
            .client
            .interrupt_conversation(conversation.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(409) => Ok(false),
            Err(e) => Err(api_error(e)),
        }
    }

    async fn resume(
        &self,
        _user: UserId,
        session: SessionId,
        decisions: Vec<ToolDecision>,
    ) -> Result<SessionId, ApiError> {
        let started = self
            .client
            .resume_session(session.into(), decisions)
            .await
            .map_err(api_error)?;
        Ok(SessionId::from(started.session_id))
    }

    async fn latest_session(
        &self,
        _user: UserId,
        conversation: ConversationId,
    ) -> Result<Option<SessionInfo>, ApiError> {
        let sessions = self.sessions(conversation.into()).await?;
        Ok(sessions.last().map(|&(id, active)| SessionInfo {
            id: SessionId::from(id),
            active,
        }))
    }

    async fn presets(&self, _user: UserId) -> Result<Vec<PresetInfo>, ApiError> {
        let presets = self.client.list_presets().await.map_err(api_error)?;
        Ok(presets
            .into_iter()
            .map(|p| PresetInfo {
                id: PresetId::from(p.id),
                name: p.name,
            })
            .collect())
    }

    async fn follow(
        &self,
        _user: UserId,
        conversation: ConversationId,
        after: Option<(SessionId, EventSeq)>,
    ) -> Result<EventFeed, ApiError> {
        // Fails now if the conversation is unknown or the runtime is down.
        self.sessions(conversation.into()).await?;
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        tokio::spawn(async move {
            let mut cursor = after.map(|(s, seq)| (Uuid::from(s), seq));
            loop {
                let sessions = match this.sessions(conversation.into()).await {
                    Ok(sessions) => sessions,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                // What is left to stream: the cursor's session from its
                // seq (if unfinished business), then every later one.
                let start = match cursor {
                    Some((id, _)) => sessions.iter().position(|(s, _)| *s == id),
                    None => None,
                };
                let todo: Vec<(Uuid, EventSeq)> = match (cursor, start) {
                    (Some((id, seq)), Some(i)) => std::iter::once((id, seq))
                        .chain(sessions[i + 1..].iter().map(|(s, _)| (*s, 0)))
                        .collect(),
                    _ => sessions.iter().map(|(s, _)| (*s, 0)).collect(),
                };
                for (session, from) in todo {
                    let mut events = this.client.stream_session_events(session, from);
                    let mut last = from;
                    while let Some(item) = events.next().await {
                        match item {
                            Ok(envelope) => {
                                last = envelope.seq;
                                if tx.send(Ok(envelope)).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(Err(api_error(e))).await;
                                return;
                            }
                        }
                    }
                    cursor = Some((session, last));
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        });
        Ok(tokio_stream_from(rx))
    }
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<netherbrain_core::EventEnvelope, ApiError>>,
) -> EventFeed {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
