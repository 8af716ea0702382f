//! Wiring shared by the commands: opening the store, the admin account,
//! the agent catalog, and in-process calls to the HTTP API.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use axum::body::Body;
use axum::http::{Method, Request, header};
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::provider::ProviderProfile;
use netherbrain_core::store::{StateStore, StoreError, User, UserRole};
use netherbrain_http::{AppState, BOOTSTRAP_ADMIN_USERNAME, ServerConfig, bootstrap_admin};
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

use crate::config::Settings;

/// Opens (and, for SQLite, migrates) the configured database.
pub(crate) async fn open_store(settings: &Settings) -> Result<Arc<dyn StateStore>> {
    netherbrain_store::connect(&settings.database_url)
        .await
        .map_err(|e| {
            anyhow!(
                "cannot open database {}: {e}",
                crate::config::redact_url(&settings.database_url)
            )
        })
}

/// The notice printed when bootstrap generated the admin token.
pub(crate) fn admin_token_notice(token: &str) -> String {
    format!(
        "Created the `{BOOTSTRAP_ADMIN_USERNAME}` account. Its API token is shown only this once; store it now:\n\n    {token}\n\nSend it as `Authorization: Bearer <token>`. Create more with `netherbrain keys create`.\n"
    )
}

/// Creates the admin account on an empty database. A generated token is
/// printed on stderr (commands other than `agent` keep stdout for their
/// own output).
pub(crate) async fn bootstrap_quietly(store: &dyn StateStore, settings: &Settings) -> Result<()> {
    if let Some(token) = bootstrap_admin(store, settings.auth_token.as_deref()).await? {
        eprint!("{}", admin_token_notice(&token));
    }
    Ok(())
}

/// The admin the local commands act as: `admin`, else the first active
/// admin.
pub(crate) async fn admin_user(store: &dyn StateStore) -> Result<User> {
    match store.get_user_by_username(BOOTSTRAP_ADMIN_USERNAME).await {
        Ok(user) if user.active && user.role == UserRole::Admin => return Ok(user),
        Ok(_) | Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.active && u.role == UserRole::Admin)
        .ok_or_else(|| anyhow!("the database has no active admin account"))
}

/// A user named by username or id; the admin when `None`.
pub(crate) async fn resolve_user(store: &dyn StateStore, user: Option<&str>) -> Result<User> {
    let Some(user) = user else {
        return admin_user(store).await;
    };
    if let Ok(id) = user.parse::<uuid::Uuid>() {
        return store
            .get_user(id.into())
            .await
            .map_err(|e| not_found(e, &format!("no user with id {user}")));
    }
    store
        .get_user_by_username(user)
        .await
        .map_err(|e| not_found(e, &format!("no user named `{user}`")))
}

fn not_found(e: StoreError, message: &str) -> anyhow::Error {
    if e.is_not_found() {
        anyhow!("{message}")
    } else {
        e.into()
    }
}

/// Builds the agent catalog, skipping (with a warning) profiles that
/// cannot be built, e.g. because their API key variable is not set.
pub(crate) fn build_catalog(profiles: &[ProviderProfile]) -> AgentCatalog {
    let usable: Vec<ProviderProfile> = profiles
        .iter()
        .filter(|p| match p.build() {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("skipping provider profile `{}`: {e}", p.name);
                false
            }
        })
        .cloned()
        .collect();
    // Every profile left builds, so this cannot fail; stay defensive.
    AgentCatalog::from_profiles(&usable).unwrap_or_else(|e| {
        tracing::warn!("cannot build the provider catalog: {e}");
        AgentCatalog::new()
    })
}

/// The HTTP API, called in-process as the admin (through a random operator
/// token that never leaves this process). Used where the API holds logic
/// the CLI must not duplicate (key generation, preset import).
#[derive(Debug)]
pub(crate) struct LocalApi {
    router: axum::Router,
    token: String,
}

impl LocalApi {
    /// The API over `store`. The store must have an admin account.
    pub(crate) fn new(store: Arc<dyn StateStore>) -> Self {
        let token = format!(
            "cli-{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let state = AppState::builder(store)
            .config(ServerConfig::default().with_auth_token(Some(token.clone())))
            .build();
        Self {
            router: netherbrain_http::router(state),
            token,
        }
    }

    /// Sends a request; returns the JSON body, or the API's error message.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<T> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let req = req.body(body).context("building a request")?;
        let response = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .context("reading a response")?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{message}");
        }
        serde_json::from_slice(&bytes).context("decoding a response")
    }
}
