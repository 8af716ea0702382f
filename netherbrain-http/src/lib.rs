//! # netherbrain-http
//!
//! The Netherbrain HTTP server (axum) and, behind the `client` feature, a
//! typed client for it.
//!
//! ## Features
//!
//! - `server` (default): the axum server — routes, auth, SSE and WebSocket
//!   streaming, the OpenAPI document (`openapi()`), metrics.
//! - `client`: the typed client (`client::Client`, reqwest). It needs
//!   only [`dto`], so a remote program (a gateway in its own process, a
//!   tool) depends on
//!   `netherbrain-http = { default-features = false, features = ["client"] }`
//!   and pulls no axum, utoipa, argon2 or metrics exporter; the only tower
//!   and tower-http it resolves are reqwest's own (`scripts/test` and the
//!   dependency rule test check both).
//! - Neither: just the request and response bodies in [`dto`].
//!
//! The rest of these docs describe the server.
//!
//! The API is RPC-style under `/api`: `GET` for reads, `POST` for every
//! write. Every route except `GET /api/health`, `POST /api/auth/login` and
//! `GET /api/openapi.json` requires `Authorization: Bearer <token>`, where
//! the token is an API key (login tokens are API keys too) or the operator
//! token configured with [`ServerConfig::with_auth_token`]. Errors are JSON
//! `{"error": {"code": "...", "message": "..."}}` (see [`ApiError`]).
//!
//! Outside `/api`, `GET /v1/models` and `POST /v1/chat/completions` speak
//! the OpenAI Chat Completions API with presets as the models, so any
//! OpenAI client can run Netherbrain agents; they take the same bearer
//! tokens and answer errors in OpenAI's shape (see
//! `docs/openai-compatible.md`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use netherbrain_http::{AppState, ServerConfig, bootstrap_admin, serve};
//! # async fn run(store: Arc<dyn netherbrain_core::store::StateStore>) -> Result<(), Box<dyn std::error::Error>> {
//! if let Some(token) = bootstrap_admin(store.as_ref(), None).await? {
//!     println!("admin token (shown once): {token}");
//! }
//! let state = AppState::new(store, ServerConfig::default());
//! let listener = netherbrain_http::bind(&state).await?;
//! serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! Handlers only parse, call the conversation service of
//! `netherbrain-core` ([`AppState::service`]) and map errors; the
//! use-cases, ownership checks and business rules live there.
//!
//! ## Conversations, runs and streams
//!
//! - `POST /api/conversations/run` starts a run of a preset (in a
//!   conversation, or a new one) and answers with its events as SSE, or
//!   `202 {conversation_id, session_id}` with `stream: false`. A busy
//!   conversation is `409 conversation_busy` naming `active_session_id`.
//! - SSE events are `id: <seq>`, `event: <AG-UI type>`, `data: <event
//!   JSON>`; `Last-Event-ID` (or `?after=`) resumes exactly after an id. The
//!   stream reads the runtime's per-run log, never a lossy queue, and ends
//!   after the run's terminal event; idle streams get a comment every 15 s.
//! - `GET /api/ws` multiplexes conversations over one WebSocket (see the
//!   `ws` module docs in the source, or the `conversations` tag of the
//!   OpenAPI document).
//! - The typed client's `Client::stream_session_events` (feature
//!   `client`) reconnects with `Last-Event-ID` until the terminal event.
//!
//! ## Authentication
//!
//! - **API keys** look like `nb_<prefix>_<secret>`: an 8-character
//!   lowercase prefix (stored in clear, unique, used for lookup) and a
//!   40-character alphanumeric secret from the OS CSPRNG. The store keeps
//!   only the SHA-256 of the whole key (hex), compared in constant time.
//! - **Login tokens** (`POST /api/auth/login`) are API keys named `login`
//!   with an expiry (`ServerConfig::login_token_ttl`, 30 days); they show up
//!   in `GET /api/keys/list` and are revoked by `POST /api/auth/logout`.
//!   Passwords are Argon2id PHC strings; failed logins are throttled per
//!   username and client IP.
//! - **Bootstrap**: [`bootstrap_admin`] creates the `admin` account on an
//!   empty store, with a key that is the operator token (`NETHER_AUTH_TOKEN`)
//!   or a generated one returned once for printing.
//! - **Operator token**: when configured it authenticates as the bootstrap
//!   admin on every start, independent of the keys in the database.
//! - Binding a non-loopback address needs [`auth_configured`].

#![warn(missing_docs)]

/// Gates every item it holds on the `server` feature.
macro_rules! server_side {
    ($($item:item)*) => { $( #[cfg(feature = "server")] $item )* };
}

// The server side. Gated as a whole so that `default-features = false,
// features = ["client"]` builds without axum, tower-http, utoipa, argon2 or
// the metrics exporter.
server_side! {
    mod auth;
    mod config;
    mod error;
    mod extract;
    pub mod metrics;
    mod openai_compat;
    mod openapi;
    mod routes;
    mod schema;
    mod server;
    mod sse;
    mod state;
    mod ws;

    pub use auth::{AdminUser, AuthUser};
    pub use netherbrain_core::auth::{
        BOOTSTRAP_ADMIN_USERNAME, MIN_OPERATOR_TOKEN_LEN, bootstrap_admin,
    };
    pub use config::{LoginRateLimit, PasswordHashParams, ServerConfig};
    pub use error::ApiError;
    pub use extract::{Json, Path, Query};
    pub use metrics::{Metrics, MetricsError};
    pub use openapi::{ApiDoc, openapi, openapi_json};
    pub use server::{
        ServeError, auth_configured, auth_configured_in, bind, check_bind_allowed, router, serve};
    pub use state::{AppState, AppStateBuilder};
}

// Shared by both sides.
#[cfg(feature = "client")]
pub mod client;
pub mod dto;
