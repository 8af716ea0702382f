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

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::dto::{
    ApiKeyList, ApiKeyView, ChangePasswordRequest, CreateApiKeyRequest, CreatePresetRequest,
    CreateUserRequest, CreateWorkspaceRequest, CreatedApiKey, ErrorBody, HealthResponse,
    ImportPresetsResponse, LoginRequest, LoginResponse, PresetList, PresetView,
    ResetPasswordRequest, UpdatePresetRequest, UpdateUserRequest, UpdateWorkspaceRequest, UserList,
    UserView, WorkspaceList, WorkspaceView,
};

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
}
