//! `/api/usage/*`: tokens spent per day and the daily budget.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use netherbrain_core::UserId;

use crate::auth::AuthUser;
use crate::dto::{UsageQueryParams, UsageReportView};
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;

/// Days reported when the query names none.
const DEFAULT_DAYS: u32 = 7;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/usage/daily", get(daily))
}

/// The caller's tokens per day (UTC), per preset, with the daily budget.
#[utoipa::path(
    get,
    path = "/api/usage/daily",
    tag = "usage",
    params(UsageQueryParams),
    responses(
        (status = 200, description = "Usage per day, oldest first", body = UsageReportView),
        (status = 403, description = "`user_id` of another user, caller not admin", body = crate::dto::ErrorBody),
        (status = 404, description = "No user `user_id`", body = crate::dto::ErrorBody),
        (status = 422, description = "`days` outside 1–90", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn daily(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<UsageQueryParams>,
) -> Result<Json<UsageReportView>, ApiError> {
    let report = state
        .service()
        .daily_usage(
            &auth.principal(),
            query.user_id.map(UserId::from_uuid),
            query.days.unwrap_or(DEFAULT_DAYS),
        )
        .await?;
    Ok(Json(report.into()))
}
