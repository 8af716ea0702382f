//! `/api/keys/*`: the caller's API keys (admins may act for any user).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use netherbrain_core::store::{ApiKey, NewApiKey, StoreError};
use netherbrain_core::{ApiKeyId, UserId};
use uuid::Uuid;

use crate::auth::{AuthUser, token};
use crate::dto::{ApiKeyList, ApiKeyView, CreateApiKeyRequest, CreatedApiKey, KeyOwnerQuery};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/keys/create", post(create))
        .route("/api/keys/list", get(list))
        .route("/api/keys/{id}/revoke", post(revoke))
}

/// Generates a key for `user_id`, stores its hash and returns the key with
/// its secret. Retries on the (astronomically rare) prefix collision.
pub(crate) async fn issue_key(
    state: &AppState,
    user_id: UserId,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(ApiKey, String), ApiError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let generated = token::generate().map_err(ApiError::internal)?;
        let mut new = NewApiKey::new(user_id, name, generated.prefix, generated.hash);
        new.expires_at = expires_at;
        match state.store().create_api_key(new).await {
            Ok(key) => return Ok((key, generated.token)),
            Err(StoreError::Conflict(_)) if attempts < 3 => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The user whose keys a request is about: the caller, or (admins only)
/// `requested`. `403` for a non-admin naming someone else.
async fn target_user(
    state: &AppState,
    auth: &AuthUser,
    requested: Option<Uuid>,
) -> Result<UserId, ApiError> {
    match requested.map(UserId::from_uuid) {
        None => Ok(auth.id()),
        Some(id) if id == auth.id() => Ok(id),
        Some(id) => {
            auth.require_admin()?;
            Ok(state.store().get_user(id).await?.id)
        }
    }
}

/// Creates an API key. The secret is in this response only.
#[utoipa::path(
    post,
    path = "/api/keys/create",
    tag = "keys",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 200, description = "Created; `secret` is shown once", body = CreatedApiKey),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 422, description = "Bad name or expiry in the past", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(req): Json<CreateApiKeyRequest>,
) -> Result<Json<CreatedApiKey>, ApiError> {
    let user_id = target_user(&state, &auth, req.user_id).await?;
    if req.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::invalid("expires_at must be in the future"));
    }
    let (key, secret) = issue_key(&state, user_id, &req.name, req.expires_at).await?;
    Ok(Json(CreatedApiKey {
        key: key.into(),
        secret,
    }))
}

/// Lists keys (including login tokens, revoked and expired keys), newest
/// first.
#[utoipa::path(
    get,
    path = "/api/keys/list",
    tag = "keys",
    params(KeyOwnerQuery),
    responses(
        (status = 200, description = "Keys", body = ApiKeyList),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<KeyOwnerQuery>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let user_id = target_user(&state, &auth, query.user_id).await?;
    let keys = state.store().list_api_keys(user_id).await?;
    Ok(Json(ApiKeyList {
        items: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Revokes one of the caller's keys (admins: of `user_id`'s keys). A key
/// of another user is `404`; revoking twice is `409`.
#[utoipa::path(
    post,
    path = "/api/keys/{id}/revoke",
    tag = "keys",
    params(("id" = Uuid, Path, description = "Key id"), KeyOwnerQuery),
    responses(
        (status = 200, description = "Revoked", body = ApiKeyView),
        (status = 404, description = "No such key of this user", body = crate::dto::ErrorBody),
        (status = 409, description = "Already revoked", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<ApiKeyId>,
    Query(query): Query<KeyOwnerQuery>,
) -> Result<Json<ApiKeyView>, ApiError> {
    let user_id = target_user(&state, &auth, query.user_id).await?;
    let owned = state
        .store()
        .list_api_keys(user_id)
        .await?
        .into_iter()
        .any(|k| k.id == id);
    if !owned {
        return Err(ApiError::not_found(format!("api key `{id}` not found")));
    }
    let key = state.store().revoke_api_key(id).await?;
    Ok(Json(key.into()))
}
