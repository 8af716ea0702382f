//! `/api/keys/*`: the caller's API keys (admins may act for any user).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use netherbrain_core::auth::{self, IssueKey};
use netherbrain_core::{ApiKeyId, UserId};

use crate::auth::AuthUser;
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

/// Creates an API key. The secret is in this response only.
#[utoipa::path(
    post,
    path = "/api/keys/create",
    tag = "keys",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 200, description = "Created; `secret` is shown once", body = CreatedApiKey),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No user `user_id`", body = crate::dto::ErrorBody),
        (status = 422, description = "Bad name or expiry in the past", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(req): Json<CreateApiKeyRequest>,
) -> Result<Json<CreatedApiKey>, ApiError> {
    let mut issue = IssueKey::new(req.name).expires_at(req.expires_at);
    issue.user_id = req.user_id.map(UserId::from_uuid);
    let issued = auth::issue_api_key(state.store().as_ref(), &auth.principal(), issue).await?;
    Ok(Json(CreatedApiKey {
        secret: issued.secret().to_owned(),
        key: issued.key.into(),
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
        (status = 404, description = "No user `user_id`", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<KeyOwnerQuery>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let keys = auth::list_api_keys(
        state.store().as_ref(),
        &auth.principal(),
        query.user_id.map(UserId::from_uuid),
    )
    .await?;
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
    let key = auth::revoke_api_key(
        state.store().as_ref(),
        &auth.principal(),
        query.user_id.map(UserId::from_uuid),
        id,
    )
    .await?;
    Ok(Json(key.into()))
}
