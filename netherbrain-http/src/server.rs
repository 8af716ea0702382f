//! The router and the server loop.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::Response;
use netherbrain_core::store::{StoreError, UserRole};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::require_auth;
use crate::routes::{
    auth, conversations, discovery, gateway, health, keys, memories, meta, openai, presets,
    providers, sessions, tasks, usage, users, workspaces,
};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address without auth configured (see
    /// [`auth_configured`]).
    #[error(
        "refusing to listen on non-loopback address {addr} without auth: \
         set NETHER_AUTH_TOKEN to a secret of at least 16 characters, \
         or give an admin account a password (POST /api/auth/password while bound to 127.0.0.1)"
    )]
    InsecureBind {
        /// The address.
        addr: SocketAddr,
    },
    /// Binding or serving failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The store could not say whether auth is configured.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The whole API as an axum router.
///
/// Public: `GET /api/health`, `POST /api/auth/login`,
/// `GET /api/openapi.json`, `GET /metrics` (unless
/// `metrics_require_auth`). Everything else under `/api` goes through the
/// auth middleware. Every response carries `x-request-id` (the caller's, or
/// a generated UUID); unknown routes are JSON `404`s, wrong methods JSON
/// `405`s, oversize bodies JSON `413`s.
pub fn router(state: AppState) -> Router {
    let public = Router::new()
        .merge(health::routes())
        .merge(auth::public_routes())
        .merge(meta::routes())
        // Authenticates itself: bearer header or `?token=` (browsers).
        .merge(crate::ws::routes());
    // New resource modules (conversations, sessions, streams) merge here.
    let protected = Router::new()
        .merge(auth::routes())
        .merge(users::routes())
        .merge(keys::routes())
        .merge(memories::routes())
        .merge(tasks::routes())
        .merge(usage::routes())
        .merge(presets::routes())
        .merge(providers::routes())
        .merge(workspaces::routes())
        .merge(conversations::routes())
        .merge(sessions::routes())
        .merge(discovery::routes())
        .merge(gateway::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_auth));

    let body_limit = state.config().body_limit;
    Router::new()
        .merge(public)
        .merge(protected)
        .merge(openai::routes(&state))
        .fallback(crate::webui::fallback)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            track_requests,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(make_span))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

fn make_span(req: &Request) -> tracing::Span {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // The path only: query strings are not logged.
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
    )
}

async fn track_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    state.metrics().record_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Whether the server may face a network: an operator token of at least
/// [`MIN_OPERATOR_TOKEN_LEN`](crate::MIN_OPERATOR_TOKEN_LEN) characters is
/// configured, or an active admin account has a password set. The admin
/// that the first start creates has only a generated key printed on stdout,
/// which does not count: on a fresh data directory a non-loopback bind is
/// refused until one of the two is set. Auth is always enforced on
/// non-public routes; this only decides whether a non-loopback bind is
/// allowed.
///
/// # Errors
///
/// Store failures.
pub async fn auth_configured(state: &AppState) -> Result<bool, StoreError> {
    auth_configured_in(state.store().as_ref(), state.config().auth_token.as_deref()).await
}

/// [`auth_configured`] before there is an [`AppState`]: over `store` with
/// the operator token `auth_token`.
///
/// # Errors
///
/// Store failures.
pub async fn auth_configured_in(
    store: &dyn netherbrain_core::store::StateStore,
    auth_token: Option<&str>,
) -> Result<bool, StoreError> {
    if auth_token.is_some_and(|t| t.chars().count() >= crate::MIN_OPERATOR_TOKEN_LEN) {
        return Ok(true);
    }
    Ok(store
        .list_users()
        .await?
        .iter()
        .any(|u| u.active && u.role == UserRole::Admin && u.password_hash.is_some()))
}

/// `Ok` for loopback addresses, and for others when [`auth_configured`].
///
/// # Errors
///
/// [`ServeError::InsecureBind`], or a store failure.
pub async fn check_bind_allowed(addr: SocketAddr, state: &AppState) -> Result<(), ServeError> {
    if addr.ip().is_loopback() || auth_configured(state).await? {
        Ok(())
    } else {
        Err(ServeError::InsecureBind { addr })
    }
}

/// Binds `ServerConfig::bind` after [`check_bind_allowed`].
///
/// # Errors
///
/// [`ServeError`].
pub async fn bind(state: &AppState) -> Result<TcpListener, ServeError> {
    let addr = state.config().bind;
    check_bind_allowed(addr, state).await?;
    Ok(TcpListener::bind(addr).await?)
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The start-up warnings of a non-loopback bind.
fn warn_public_bind(addr: SocketAddr, state: &AppState) {
    let config = state.config();
    if config.trusted_proxies.is_empty() {
        tracing::warn!(
            %addr,
            "listening off loopback without TLS: netherbrain speaks plain HTTP, so tokens and \
             passwords cross the network in clear text unless a TLS-terminating reverse proxy \
             is in front (docs/deployment.md); set NETHER_TRUSTED_PROXIES to that proxy's address"
        );
    } else {
        tracing::warn!(
            %addr,
            proxies = ?config.trusted_proxies,
            "listening off loopback over plain HTTP: TLS must be terminated by the trusted proxy; \
             anyone reaching this port directly sends tokens in clear text"
        );
    }
    if config.metrics_public {
        tracing::warn!("GET /metrics is open to anyone who reaches this port (metrics_public)");
    }
}

/// Serves the [`router`] on `listener` until `shutdown` completes, then
/// waits up to `ServerConfig::shutdown_timeout` for open requests.
///
/// The listener's address is checked with [`check_bind_allowed`] first.
///
/// # Errors
///
/// [`ServeError`].
pub async fn serve<F>(listener: TcpListener, state: AppState, shutdown: F) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr()?;
    check_bind_allowed(addr, &state).await?;
    if !addr.ip().is_loopback() {
        state.mark_public();
        warn_public_bind(addr, &state);
    }
    let grace = state.config().shutdown_timeout;
    let upkeep = state.metrics().spawn_upkeep(std::time::Duration::from_secs(5));
    let _upkeep = AbortOnDrop(upkeep);
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Streams write many small frames: without TCP_NODELAY, Nagle's
    // algorithm and delayed ACKs hold them back for up to ~40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::trace!(%err, "could not set TCP_NODELAY");
        }
    });
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    });
    let server = server.into_future();
    tokio::pin!(server);
    tracing::info!(%addr, "listening");
    tokio::select! {
        result = &mut server => return Ok(result?),
        signalled = signalled_rx => {
            if signalled.is_err() {
                // The server ended without a signal; take its result.
                return Ok(server.await?);
            }
        }
    }
    tracing::info!(?grace, "shutting down; waiting for open requests");
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            tracing::warn!("shutdown timeout reached; dropping open connections");
            Ok(())
        }
    }
}
