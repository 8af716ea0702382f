//! `/api/auth/*`: login, who am I, password change, logout.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::Utc;
use netherbrain_core::store::UserPatch;

use crate::auth::limiter::Refusal;
use crate::auth::{AuthUser, ClientIp, password};
use crate::dto::{ChangePasswordRequest, LoginRequest, LoginResponse, UserView};
use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;


/// Routes that need no token.
pub(crate) fn public_routes() -> Router<AppState> {
    Router::new().route("/api/auth/login", post(login))
}

/// Routes for authenticated callers.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/me", get(me))
        .route("/api/auth/password", post(change_password))
        .route("/api/auth/logout", post(logout))
}

fn bad_credentials() -> ApiError {
    ApiError::unauthorized("invalid username or password")
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::RateLimited(retry) => ApiError::rate_limited(retry.as_secs().max(1)),
        Refusal::Busy => ApiError::unavailable("too many logins in progress; retry shortly"),
    }
}

/// Verifies `password` against `phc` (a dummy hash when `None`) in one of
/// the bounded verification slots.
async fn verify(
    state: &AppState,
    password: String,
    phc: Option<String>,
) -> Result<bool, ApiError> {
    let limiter = state.login_limiter();
    let slot = limiter.verification_slot().await.map_err(refused)?;
    let ok = password::verify(state.config().password_hash, password, phc).await;
    drop(slot);
    let (total, peak) = limiter.verification_stats();
    state.metrics().set_login_verifications(total, peak);
    ok
}

/// Exchanges a username and password for a bearer token (an API key named
/// `login` that expires). Failed attempts are throttled per username and
/// client IP (see `LoginRateLimit`).
///
/// When `user.must_change_password` is true the password was set by an
/// admin and is temporary: the token then works only for
/// `GET /api/auth/me`, `POST /api/auth/password` and
/// `POST /api/auth/logout`; every other route answers `403` with the code
/// `password_change_required` until the new password is set.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong username or password", body = crate::dto::ErrorBody),
        (status = 422, description = "Username or password of an impossible length", body = crate::dto::ErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = crate::dto::ErrorBody),
        (status = 503, description = "Every password verification slot stayed busy", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    password::check_login_lengths(&req.username, &req.password)?;
    state
        .login_limiter()
        .attempt(&req.username, ip)
        .map_err(refused)?;
    let user = match state.store().get_user_by_username(&req.username).await {
        Ok(user) => Some(user),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = verify(&state, req.password, hash).await?;
    let user = match user {
        Some(user) if ok && user.active => user,
        _ => {
            tracing::info!(username = %req.username, ?ip, "failed login");
            return Err(bad_credentials());
        }
    };
    let ttl =
        chrono::Duration::from_std(state.config().login_token_ttl).map_err(ApiError::internal)?;
    let expires_at = Utc::now() + ttl;
    let issued = netherbrain_core::auth::issue_api_key(
        state.store().as_ref(),
        &netherbrain_core::auth::Principal::of(&user),
        netherbrain_core::auth::IssueKey::new(netherbrain_core::auth::LOGIN_KEY_NAME)
            .expires_at(Some(expires_at)),
    )
    .await?;
    let token = issued.into_secret();
    Ok(Json(LoginResponse {
        token,
        expires_at,
        user: user.into(),
    }))
}

/// The authenticated user.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = UserView),
        (status = 401, description = "No usable token", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn me(auth: AuthUser) -> Json<UserView> {
    Json(auth.user.into())
}

/// Changes the caller's password. `current_password` is required when the
/// account has a password. Every other login token of the user is revoked.
/// This is how a temporary password (`must_change_password`) is replaced:
/// afterwards the token of this request works everywhere again.
#[utoipa::path(
    post,
    path = "/api/auth/password",
    tag = "auth",
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed", body = UserView),
        (status = 401, description = "Wrong current password", body = crate::dto::ErrorBody),
        (status = 422, description = "New password too short, or the same as the temporary one", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(req): Json<ChangePasswordRequest>,
) -> Result<Json<UserView>, ApiError> {
    password::check_policy(&req.new_password)?;
    let params = state.config().password_hash;
    if let Some(current_hash) = auth.user.password_hash.clone() {
        let current = req.current_password.unwrap_or_default();
        let same = current == req.new_password;
        if !verify(&state, current, Some(current_hash)).await? {
            return Err(ApiError::unauthorized("current password is wrong"));
        }
        if same && auth.user.must_change_password {
            return Err(ApiError::invalid(
                "the new password must differ from the temporary one",
            ));
        }
    }
    let hash = password::hash(params, req.new_password).await?;
    let mut patch = UserPatch::default();
    patch.password_hash = Some(hash);
    patch.must_change_password = Some(false);
    let user = state.store().update_user(auth.id(), patch).await?;
    // Everyone else logged in with the old password is logged out; the
    // token of this request stays.
    netherbrain_core::auth::revoke_login_keys(state.store().as_ref(), user.id, auth.key_id)
        .await?;
    Ok(Json(user.into()))
}

/// Revokes the token used for this request. The operator token cannot be
/// revoked (`409`).
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    responses(
        (status = 200, description = "The token is revoked", body = crate::dto::ApiKeyView),
        (status = 409, description = "The operator token cannot be revoked", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<crate::dto::ApiKeyView>, ApiError> {
    let Some(key_id) = auth.key_id else {
        return Err(ApiError::conflict("the operator token cannot be revoked"));
    };
    let key = state.store().revoke_api_key(key_id).await?;
    Ok(Json(key.into()))
}
