//! `/api/gateway/*`: the chat gateway's administration (admins only):
//! approving a pairing code, as `netherbrain gateway pair CODE` does.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use netherbrain_core::UserId;

use crate::auth::AdminUser;
use crate::dto::{ApprovePairingRequest, PairedIdentityView};
use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/gateway/pairings/approve", post(approve_pairing))
}

/// Approves a pairing code a chat user was given: from then on that
/// platform user is served, acting as `user_id` (default: the caller).
#[utoipa::path(
    post,
    path = "/api/gateway/pairings/approve",
    tag = "gateway",
    request_body = ApprovePairingRequest,
    responses(
        (status = 200, description = "Paired", body = PairedIdentityView),
        (status = 403, description = "Not an admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No pending pairing has this code (unknown or expired), or no user `user_id`", body = crate::dto::ErrorBody),
        (status = 422, description = "Empty code, or `user_id` is deactivated", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn approve_pairing(
    State(state): State<AppState>,
    admin: AdminUser,
    Json(req): Json<ApprovePairingRequest>,
) -> Result<Json<PairedIdentityView>, ApiError> {
    let code = req.code.trim();
    if code.is_empty() {
        return Err(ApiError::invalid("code must not be empty"));
    }
    let user = match req.user_id {
        Some(id) => state.store().get_user(UserId::from(id)).await?,
        None => admin.0.user,
    };
    if !user.active {
        return Err(ApiError::invalid("the user is deactivated"));
    }
    let identity = state
        .store()
        .approve_pairing(code, user.id, chrono::Utc::now())
        .await
        .map_err(|e| {
            if e.is_not_found() {
                ApiError::not_found("no pending pairing has this code (it may have expired)")
            } else {
                e.into()
            }
        })?;
    tracing::info!(channel = %identity.channel, sender = %identity.sender_id, user = %user.username, "pairing approved over the API");
    Ok(Json(identity.into()))
}
