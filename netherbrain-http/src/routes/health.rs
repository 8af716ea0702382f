//! `GET /api/health`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::dto::HealthResponse;
use crate::extract::Json;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/health", get(health))
}

/// Liveness and store reachability. No auth.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Serving", body = HealthResponse),
        (status = 503, description = "The store is unreachable", body = HealthResponse),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let store_ok = match state.store().ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "health check: store ping failed");
            false
        }
    };
    let body = HealthResponse {
        status: if store_ok { "ok" } else { "degraded" }.to_owned(),
        store: if store_ok { "ok" } else { "unavailable" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
