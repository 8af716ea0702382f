//! # netherbrain-http
//!
//! The Netherbrain HTTP server (axum) and, behind the `client` feature, a
//! typed client for it.
//!
//! The API is RPC-style under `/api`: `GET` for reads, `POST` for every
//! write. Every route except `GET /api/health`, `POST /api/auth/login` and
//! `GET /api/openapi.json` requires `Authorization: Bearer <token>`, where
//! the token is an API key (login tokens are API keys too) or the operator
//! token configured with [`ServerConfig::with_auth_token`]. Errors are JSON
//! `{"error": {"code": "...", "message": "..."}}` (see [`ApiError`]).
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
//! Handlers only parse, call the store (later: the core runtime) and map
//! errors; the business rules live in `netherbrain-core`.

#![warn(missing_docs)]

mod auth;
mod bootstrap;
#[cfg(feature = "client")]
pub mod client;
mod config;
pub mod dto;
mod error;
mod extract;
pub mod metrics;
mod openapi;
mod routes;
mod server;
mod state;

pub use auth::{AdminUser, AuthUser};
pub use bootstrap::{
    BOOTSTRAP_ADMIN_USERNAME, BootstrapError, MIN_OPERATOR_TOKEN_LEN, bootstrap_admin,
};
pub use config::{LoginRateLimit, PasswordHashParams, ServerConfig};
pub use error::ApiError;
pub use extract::{Json, Path, Query};
pub use metrics::{Metrics, MetricsError};
pub use openapi::{ApiDoc, openapi, openapi_json};
pub use server::{ServeError, auth_configured, bind, check_bind_allowed, router, serve};
pub use state::{AppState, AppStateBuilder};
