//! A typed client for the API (feature `client`).
//!
//! ```no_run
//! # async fn run() -> Result<(), netherbrain_http::client::ClientError> {
//! use netherbrain_http::client::Client;
//! let client = Client::new("http://127.0.0.1:9001", Some("nb_…".into()))?;
//! let me = client.me().await?;
//! println!("logged in as {}", me.username);
//! # Ok(()) }
//! ```
//!
//! Streaming a run, surviving dropped connections:
//!
//! ```no_run
//! # async fn run(preset: uuid::Uuid) -> Result<(), netherbrain_http::client::ClientError> {
//! use futures::StreamExt;
//! use netherbrain_http::client::Client;
//! use netherbrain_http::dto::{RunConversationRequest, RunInput};
//! let client = Client::new("http://127.0.0.1:9001", Some("nb_…".into()))?;
//! let started = client
//!     .run(&RunConversationRequest {
//!         conversation_id: None,
//!         preset_id: Some(preset),
//!         input: RunInput::Text("Hello".into()),
//!         stream: false,
//!     })
//!     .await?;
//! // Reconnects with `Last-Event-ID` until RUN_FINISHED / RUN_ERROR.
//! let mut events = client.stream_session_events(started.session_id, 0);
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("{} {}", event.seq, event.event.type_name());
//! }
//! # Ok(()) }
//! ```

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::stream::BoxStream;
use netherbrain_core::agent::ToolDecision;
use netherbrain_core::{AgentEvent, EventEnvelope, EventSeq, SessionId};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::dto::{
    ApiKeyList, ApiKeyView, ApprovePairingRequest, ChangePasswordRequest, ConversationDetail,
    ConversationList, ConversationListQuery, ConversationView, CreateApiKeyRequest,
    CreateConversationRequest, CreatePresetRequest, CreateUserRequest, CreateWorkspaceRequest,
    CreatedApiKey, ErrorBody, ForkConversationRequest, ForkResponse, HealthResponse,
    ImportPresetsResponse, LoginRequest, LoginResponse, ModelList, ModelProfileView,
    PairedIdentityView, PresetList, PresetView, ResetPasswordRequest, ResumeRequest,
    RunConversationRequest, RunInput, RunStarted, SearchResults, SessionActionResponse,
    SessionStatusView, SessionView, SteerRequest, ToolsetList, TurnList, UpdateConversationRequest,
    UpdatePresetRequest, UpdateUserRequest, UpdateWorkspaceRequest, UserList, UserView,
    WorkspaceList, WorkspaceView,
};

/// A stream of a session's events, in order, without gaps or duplicates.
pub type EventStream = BoxStream<'static, Result<EventEnvelope, ClientError>>;

/// Consecutive failed (re)connection attempts before an event stream gives
/// up with the last error.
pub const MAX_RECONNECT_ATTEMPTS: u32 = 8;
/// First reconnection delay; doubled per consecutive failure, at most 5 s.
const RECONNECT_BASE_DELAY: Duration = Duration::from_millis(100);

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code (`not_found`, `conflict`, …).
        code: String,
        /// Message.
        message: String,
        /// For `busy`: the running session.
        active_session_id: Option<Uuid>,
    },
    /// The request could not be sent or the response not read.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The response was not what the API documents.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// The base URL is not valid.
    #[error("invalid base url: {0}")]
    InvalidUrl(String),
}

impl ClientError {
    /// The HTTP status of an [`ClientError::Api`] error.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code of an [`ClientError::Api`] error.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client of one server, with an optional bearer token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:9001`).
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidUrl`] unless the URL is http(s).
    pub fn new(base_url: impl Into<String>, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_http_client(reqwest::Client::new(), base_url, token)
    }

    /// Like [`Client::new`] with a configured `reqwest::Client`.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidUrl`] unless the URL is http(s).
    pub fn with_http_client(
        http: reqwest::Client,
        base_url: impl Into<String>,
        token: Option<String>,
    ) -> Result<Self, ClientError> {
        let base = base_url.into().trim_end_matches('/').to_owned();
        let parsed =
            reqwest::Url::parse(&base).map_err(|e| ClientError::InvalidUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::InvalidUrl(format!(
                "unsupported scheme `{}`",
                parsed.scheme()
            )));
        }
        Ok(Self { http, base, token })
    }

    /// The same server with another token.
    #[must_use]
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    async fn send(req: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = resp.bytes().await?;
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => ClientError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
                active_session_id: body.error.active_session_id,
            },
            Err(_) => ClientError::Api {
                status: status.as_u16(),
                code: status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_ascii_lowercase()
                    .replace(' ', "_"),
                message: String::from_utf8_lossy(&bytes).chars().take(512).collect(),
                active_session_id: None,
            },
        })
    }

    async fn json<T: DeserializeOwned>(req: RequestBuilder) -> Result<T, ClientError> {
        let resp = Self::send(req).await?;
        let bytes = resp.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::json(self.request(Method::GET, path)).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        Self::json(self.request(Method::POST, path).json(body)).await
    }

    async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::json(self.request(Method::POST, path)).await
    }

    async fn post_no_content(&self, path: &str) -> Result<(), ClientError> {
        let resp = Self::send(self.request(Method::POST, path)).await?;
        if resp.status() == StatusCode::NO_CONTENT || resp.status().is_success() {
            Ok(())
        } else {
            Err(ClientError::Decode(format!("status {}", resp.status())))
        }
    }

    // ---- health, meta ----

    /// `GET /api/health`. A degraded server (503) is returned as
    /// [`ClientError::Api`].
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn health(&self) -> Result<HealthResponse, ClientError> {
        self.get("/api/health").await
    }

    /// `GET /api/openapi.json`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/api/openapi.json").await
    }

    /// `GET /metrics` (Prometheus text).
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn metrics(&self) -> Result<String, ClientError> {
        Ok(Self::send(self.request(Method::GET, "/metrics"))
            .await?
            .text()
            .await?)
    }

    // ---- auth ----

    /// `POST /api/auth/login`. Use [`Client::with_token`] with the returned
    /// token.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `401` for bad credentials, `429` when throttled.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<LoginResponse, ClientError> {
        self.post(
            "/api/auth/login",
            &LoginRequest {
                username: username.to_owned(),
                password: password.to_owned(),
            },
        )
        .await
    }

    /// `GET /api/auth/me`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn me(&self) -> Result<UserView, ClientError> {
        self.get("/api/auth/me").await
    }

    /// `POST /api/auth/password`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn change_password(
        &self,
        current_password: Option<&str>,
        new_password: &str,
    ) -> Result<UserView, ClientError> {
        self.post(
            "/api/auth/password",
            &ChangePasswordRequest {
                current_password: current_password.map(str::to_owned),
                new_password: new_password.to_owned(),
            },
        )
        .await
    }

    /// `POST /api/auth/logout`: revokes the token in use.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn logout(&self) -> Result<ApiKeyView, ClientError> {
        self.post_empty("/api/auth/logout").await
    }

    // ---- users ----

    /// `POST /api/users/create`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn create_user(&self, req: &CreateUserRequest) -> Result<UserView, ClientError> {
        self.post("/api/users/create", req).await
    }

    /// `GET /api/users/list`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn list_users(&self) -> Result<Vec<UserView>, ClientError> {
        Ok(self.get::<UserList>("/api/users/list").await?.items)
    }

    /// `GET /api/users/{id}`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn get_user(&self, id: Uuid) -> Result<UserView, ClientError> {
        self.get(&format!("/api/users/{id}")).await
    }

    /// `POST /api/users/{id}/update`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn update_user(
        &self,
        id: Uuid,
        req: &UpdateUserRequest,
    ) -> Result<UserView, ClientError> {
        self.post(&format!("/api/users/{id}/update"), req).await
    }

    /// `POST /api/users/{id}/deactivate`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn deactivate_user(&self, id: Uuid) -> Result<UserView, ClientError> {
        self.post_empty(&format!("/api/users/{id}/deactivate"))
            .await
    }

    /// `POST /api/users/{id}/activate`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn activate_user(&self, id: Uuid) -> Result<UserView, ClientError> {
        self.post_empty(&format!("/api/users/{id}/activate")).await
    }

    /// `POST /api/users/{id}/reset-password`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn reset_password(&self, id: Uuid, password: &str) -> Result<UserView, ClientError> {
        self.post(
            &format!("/api/users/{id}/reset-password"),
            &ResetPasswordRequest {
                password: password.to_owned(),
            },
        )
        .await
    }

    // ---- keys ----

    /// `POST /api/keys/create`. The secret is only in this response.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn create_key(
        &self,
        req: &CreateApiKeyRequest,
    ) -> Result<CreatedApiKey, ClientError> {
        self.post("/api/keys/create", req).await
    }

    /// `GET /api/keys/list` (another user's with `user_id`, admins only).
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn list_keys(&self, user_id: Option<Uuid>) -> Result<Vec<ApiKeyView>, ClientError> {
        let path = match user_id {
            Some(id) => format!("/api/keys/list?user_id={id}"),
            None => "/api/keys/list".to_owned(),
        };
        Ok(self.get::<ApiKeyList>(&path).await?.items)
    }

    /// `POST /api/keys/{id}/revoke`.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `404` for a key of another user.
    pub async fn revoke_key(&self, id: Uuid) -> Result<ApiKeyView, ClientError> {
        self.post_empty(&format!("/api/keys/{id}/revoke")).await
    }

    // ---- gateway ----

    /// `POST /api/gateway/pairings/approve` (admins only): pairs the chat
    /// user who was given `req.code`.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `404` for an unknown or expired code.
    pub async fn approve_pairing(
        &self,
        req: &ApprovePairingRequest,
    ) -> Result<PairedIdentityView, ClientError> {
        self.post("/api/gateway/pairings/approve", req).await
    }

    // ---- presets ----

    /// `POST /api/presets/create`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn create_preset(
        &self,
        req: &CreatePresetRequest,
    ) -> Result<PresetView, ClientError> {
        self.post("/api/presets/create", req).await
    }

    /// `GET /api/presets/list`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn list_presets(&self) -> Result<Vec<PresetView>, ClientError> {
        Ok(self.get::<PresetList>("/api/presets/list").await?.items)
    }

    /// `GET /api/presets/{id}`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn get_preset(&self, id: Uuid) -> Result<PresetView, ClientError> {
        self.get(&format!("/api/presets/{id}")).await
    }

    /// `POST /api/presets/{id}/update`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn update_preset(
        &self,
        id: Uuid,
        req: &UpdatePresetRequest,
    ) -> Result<PresetView, ClientError> {
        self.post(&format!("/api/presets/{id}/update"), req).await
    }

    /// `POST /api/presets/{id}/delete`.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `409` while referenced.
    pub async fn delete_preset(&self, id: Uuid) -> Result<(), ClientError> {
        self.post_no_content(&format!("/api/presets/{id}/delete"))
            .await
    }

    /// `POST /api/presets/import` with a TOML document.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn import_presets(&self, toml: &str) -> Result<ImportPresetsResponse, ClientError> {
        Self::json(
            self.request(Method::POST, "/api/presets/import")
                .header(CONTENT_TYPE, HeaderValue::from_static("application/toml"))
                .body(toml.to_owned()),
        )
        .await
    }

    /// `GET /api/presets/{id}/export`: the preset as TOML.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn export_preset(&self, id: Uuid) -> Result<String, ClientError> {
        Ok(
            Self::send(self.request(Method::GET, &format!("/api/presets/{id}/export")))
                .await?
                .text()
                .await?,
        )
    }

    // ---- workspaces ----

    /// `POST /api/workspaces/create`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn create_workspace(
        &self,
        req: &CreateWorkspaceRequest,
    ) -> Result<WorkspaceView, ClientError> {
        self.post("/api/workspaces/create", req).await
    }

    /// `GET /api/workspaces/list`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn list_workspaces(&self) -> Result<Vec<WorkspaceView>, ClientError> {
        Ok(self
            .get::<WorkspaceList>("/api/workspaces/list")
            .await?
            .items)
    }

    /// `GET /api/workspaces/{id}`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn get_workspace(&self, id: Uuid) -> Result<WorkspaceView, ClientError> {
        self.get(&format!("/api/workspaces/{id}")).await
    }

    /// `POST /api/workspaces/{id}/update`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn update_workspace(
        &self,
        id: Uuid,
        req: &UpdateWorkspaceRequest,
    ) -> Result<WorkspaceView, ClientError> {
        self.post(&format!("/api/workspaces/{id}/update"), req)
            .await
    }

    /// `POST /api/workspaces/{id}/delete`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn delete_workspace(&self, id: Uuid) -> Result<(), ClientError> {
        self.post_no_content(&format!("/api/workspaces/{id}/delete"))
            .await
    }

    // ---- conversations ----

    /// `POST /api/conversations/create`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn create_conversation(
        &self,
        req: &CreateConversationRequest,
    ) -> Result<ConversationView, ClientError> {
        self.post("/api/conversations/create", req).await
    }

    /// `POST /api/conversations/run` with `stream: false`: starts a run and
    /// returns its ids (attach with [`Client::stream_session_events`]).
    /// `req.stream` is ignored.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `409` `conversation_busy` (with
    /// `active_session_id`), `422`, `503`.
    pub async fn run(&self, req: &RunConversationRequest) -> Result<RunStarted, ClientError> {
        let mut req = req.clone();
        req.stream = false;
        self.post("/api/conversations/run", &req).await
    }

    /// `POST /api/conversations/run` with `stream: true`: the run's events,
    /// reconnecting with `Last-Event-ID` when the connection drops, until
    /// the terminal event. `req.stream` is ignored.
    ///
    /// # Errors
    ///
    /// Errors starting the run come as the stream's first (and last) item.
    #[must_use]
    pub fn run_stream(&self, req: &RunConversationRequest) -> EventStream {
        let mut req = req.clone();
        req.stream = true;
        let first = self
            .request(Method::POST, "/api/conversations/run")
            .json(&req);
        ResumingStream::start(self.clone(), None, 0, Some(first))
    }

    /// Sends `text` to a conversation (a new one with `preset_id` when
    /// `conversation_id` is `None`) and collects the run's events.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn chat(
        &self,
        conversation_id: Option<Uuid>,
        preset_id: Option<Uuid>,
        text: &str,
    ) -> Result<Vec<EventEnvelope>, ClientError> {
        let req = RunConversationRequest {
            conversation_id,
            preset_id,
            input: RunInput::Text(text.to_owned()),
            stream: true,
        };
        let mut stream = self.run_stream(&req);
        let mut events = Vec::new();
        while let Some(event) = stream.next().await {
            events.push(event?);
        }
        Ok(events)
    }

    /// `GET /api/conversations/list`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn list_conversations(
        &self,
        query: &ConversationListQuery,
    ) -> Result<ConversationList, ClientError> {
        Self::json(
            self.request(Method::GET, "/api/conversations/list")
                .query(query),
        )
        .await
    }

    /// `GET /api/conversations/search`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn search_conversations(
        &self,
        q: &str,
        limit: Option<u32>,
    ) -> Result<Vec<ConversationView>, ClientError> {
        let mut req = self
            .request(Method::GET, "/api/conversations/search")
            .query(&[("q", q)]);
        if let Some(limit) = limit {
            req = req.query(&[("limit", limit)]);
        }
        Ok(Self::json::<SearchResults>(req).await?.items)
    }

    /// `GET /api/conversations/{id}`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn get_conversation(&self, id: Uuid) -> Result<ConversationDetail, ClientError> {
        self.get(&format!("/api/conversations/{id}")).await
    }

    /// `POST /api/conversations/{id}/update`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn update_conversation(
        &self,
        id: Uuid,
        req: &UpdateConversationRequest,
    ) -> Result<ConversationView, ClientError> {
        self.post(&format!("/api/conversations/{id}/update"), req)
            .await
    }

    /// `POST /api/conversations/{id}/fork` without streaming (`req.stream`
    /// is ignored): the new conversation, and the first run's session when
    /// `input` was given.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn fork_conversation(
        &self,
        id: Uuid,
        req: &ForkConversationRequest,
    ) -> Result<ForkResponse, ClientError> {
        let mut req = req.clone();
        req.stream = false;
        self.post(&format!("/api/conversations/{id}/fork"), &req)
            .await
    }

    /// `POST /api/conversations/{id}/interrupt`.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `409` `not_running`.
    pub async fn interrupt_conversation(
        &self,
        id: Uuid,
    ) -> Result<SessionActionResponse, ClientError> {
        self.post_empty(&format!("/api/conversations/{id}/interrupt"))
            .await
    }

    /// `POST /api/conversations/{id}/steer`.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `409` `not_running`.
    pub async fn steer_conversation(
        &self,
        id: Uuid,
        text: &str,
    ) -> Result<SessionActionResponse, ClientError> {
        self.post(
            &format!("/api/conversations/{id}/steer"),
            &SteerRequest {
                text: text.to_owned(),
            },
        )
        .await
    }

    /// `GET /api/conversations/{id}/turns`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn conversation_turns(
        &self,
        id: Uuid,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<TurnList, ClientError> {
        let mut req = self.request(Method::GET, &format!("/api/conversations/{id}/turns"));
        if let Some(limit) = limit {
            req = req.query(&[("limit", limit)]);
        }
        if let Some(cursor) = cursor {
            req = req.query(&[("cursor", cursor)]);
        }
        Self::json(req).await
    }

    /// `POST /api/conversations/{id}/summarize`.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `422` without a preset or messages.
    pub async fn summarize_conversation(&self, id: Uuid) -> Result<ConversationView, ClientError> {
        self.post_empty(&format!("/api/conversations/{id}/summarize"))
            .await
    }

    // ---- sessions ----

    /// `GET /api/sessions/{id}`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn get_session(&self, id: Uuid) -> Result<SessionView, ClientError> {
        self.get(&format!("/api/sessions/{id}")).await
    }

    /// `GET /api/sessions/{id}/status`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn session_status(&self, id: Uuid) -> Result<SessionStatusView, ClientError> {
        self.get(&format!("/api/sessions/{id}/status")).await
    }

    /// `POST /api/sessions/{id}/interrupt`.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `409` `not_running`.
    pub async fn interrupt_session(&self, id: Uuid) -> Result<SessionActionResponse, ClientError> {
        self.post_empty(&format!("/api/sessions/{id}/interrupt"))
            .await
    }

    /// `POST /api/sessions/{id}/steer`.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `409` `not_running`.
    pub async fn steer_session(
        &self,
        id: Uuid,
        text: &str,
    ) -> Result<SessionActionResponse, ClientError> {
        self.post(
            &format!("/api/sessions/{id}/steer"),
            &SteerRequest {
                text: text.to_owned(),
            },
        )
        .await
    }

    /// `POST /api/sessions/{id}/resume` without streaming: decisions for
    /// every pending tool call; returns the new run's ids.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; `422` when the decisions do not match.
    pub async fn resume_session(
        &self,
        id: Uuid,
        decisions: Vec<ToolDecision>,
    ) -> Result<RunStarted, ClientError> {
        self.post(
            &format!("/api/sessions/{id}/resume"),
            &ResumeRequest {
                decisions,
                stream: false,
            },
        )
        .await
    }

    /// A session's events after `after` (`0`: all) from
    /// `GET /api/sessions/{id}/events`, ending after the terminal event
    /// (`RUN_FINISHED` / `RUN_ERROR`).
    ///
    /// When the connection drops it reconnects with `Last-Event-ID` (up to
    /// [`MAX_RECONNECT_ATTEMPTS`] consecutive failures, with backoff) and
    /// skips anything already yielded, so the stream has no gaps and no
    /// duplicates. API errors (`404`, `400`) end it at once. An envelope's
    /// `at` is the time the client received the event.
    #[must_use]
    pub fn stream_session_events(&self, session_id: Uuid, after: EventSeq) -> EventStream {
        ResumingStream::start(self.clone(), Some(session_id), after, None)
    }

    // ---- discovery ----

    /// `GET /api/toolsets`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn list_toolsets(&self) -> Result<Vec<String>, ClientError> {
        Ok(self.get::<ToolsetList>("/api/toolsets").await?.items)
    }

    /// `GET /api/models`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn list_models(&self) -> Result<Vec<ModelProfileView>, ClientError> {
        Ok(self.get::<ModelList>("/api/models").await?.items)
    }
}

type SseStream = BoxStream<
    'static,
    Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>,
>;

/// The state behind [`EventStream`]: connect (or reconnect after the last
/// id), parse, dedupe, stop after the terminal event.
struct ResumingStream {
    client: Client,
    session_id: Option<Uuid>,
    last: EventSeq,
    first: Option<RequestBuilder>,
    current: Option<SseStream>,
    failures: u32,
    done: bool,
}

enum Step {
    Yield(Result<EventEnvelope, ClientError>),
    End,
    Continue,
}

impl ResumingStream {
    fn start(
        client: Client,
        session_id: Option<Uuid>,
        after: EventSeq,
        first: Option<RequestBuilder>,
    ) -> EventStream {
        let state = Self {
            client,
            session_id,
            last: after,
            first,
            current: None,
            failures: 0,
            done: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                if s.done {
                    return None;
                }
                match s.step().await {
                    Step::Yield(item) => return Some((item, s)),
                    Step::End => return None,
                    Step::Continue => {}
                }
            }
        })
        .boxed()
    }

    /// Counts a failure; after too many, ends with `error`.
    async fn failed(&mut self, error: ClientError) -> Step {
        self.current = None;
        self.failures += 1;
        if self.failures > MAX_RECONNECT_ATTEMPTS || self.session_id.is_none() {
            self.done = true;
            return Step::Yield(Err(error));
        }
        let delay = RECONNECT_BASE_DELAY
            .saturating_mul(1 << (self.failures - 1).min(6))
            .min(Duration::from_secs(5));
        tokio::time::sleep(delay).await;
        Step::Continue
    }

    async fn connect(&mut self) -> Step {
        let req = match self.first.take() {
            Some(first) => first,
            None => {
                let Some(sid) = self.session_id else {
                    self.done = true;
                    return Step::Yield(Err(ClientError::Decode("no session to stream".into())));
                };
                self.client
                    .request(Method::GET, &format!("/api/sessions/{sid}/events"))
                    .header("last-event-id", self.last.to_string())
            }
        };
        match Client::send(req.header("accept", "text/event-stream")).await {
            Ok(resp) => {
                if self.session_id.is_none() {
                    self.session_id = resp
                        .headers()
                        .get("x-session-id")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                }
                self.current = Some(resp.bytes_stream().eventsource().boxed());
                Step::Continue
            }
            Err(e @ ClientError::Api { .. }) => {
                self.done = true;
                Step::Yield(Err(e))
            }
            Err(e) => self.failed(e).await,
        }
    }

    async fn step(&mut self) -> Step {
        let Some(current) = self.current.as_mut() else {
            return self.connect().await;
        };
        match current.next().await {
            Some(Ok(event)) => self.on_event(&event),
            Some(Err(e)) => {
                self.failed(ClientError::Decode(format!("event stream: {e}")))
                    .await
            }
            None => self.on_end().await,
        }
    }

    fn on_event(&mut self, event: &eventsource_stream::Event) -> Step {
        let Ok(seq) = event.id.trim().parse::<EventSeq>() else {
            return Step::Continue;
        };
        if seq <= self.last {
            return Step::Continue;
        }
        let parsed = serde_json::from_str::<AgentEvent>(&event.data);
        let Some(session_id) = self.session_id else {
            self.done = true;
            return Step::Yield(Err(ClientError::Decode(
                "the response did not name its session (`x-session-id`)".into(),
            )));
        };
        match parsed {
            Ok(agent_event) => {
                self.last = seq;
                self.failures = 0;
                if agent_event.is_terminal() {
                    self.done = true;
                }
                Step::Yield(Ok(EventEnvelope::new(
                    SessionId::from(session_id),
                    seq,
                    agent_event,
                )))
            }
            Err(e) => {
                self.last = seq;
                Step::Yield(Err(ClientError::Decode(format!("event {seq}: {e}"))))
            }
        }
    }

    /// The server closed the stream before the terminal event: reconnect
    /// unless the session has ended and nothing is left after our id.
    async fn on_end(&mut self) -> Step {
        self.current = None;
        let Some(sid) = self.session_id else {
            return Step::End;
        };
        match self.client.session_status(sid).await {
            Ok(status) if !status.running && status.last_event_seq <= self.last => Step::End,
            Ok(_) => {
                self.failed(ClientError::Decode("event stream closed early".into()))
                    .await
            }
            Err(e @ ClientError::Api { .. }) => {
                self.done = true;
                Step::Yield(Err(e))
            }
            Err(e) => self.failed(e).await,
        }
    }
}
