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

/// Liveness, readiness and the reachability of the store and Redis. No
/// auth.
///
/// `503` while the store is unreachable or the server is shutting down
/// (not ready: a balancer moves new work elsewhere); an unreachable Redis
/// degrades to single-replica behaviour and still answers `200`.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Serving", body = HealthResponse),
        (status = 503, description = "The store is unreachable or the server is shutting down", body = HealthResponse),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let runtime = state.runtime();
    let cluster = runtime.cluster().cloned();
    let (store, redis) = tokio::join!(state.store().ping(), async {
        match &cluster {
            Some(cluster) => Some(cluster.ping().await),
            None => None,
        }
    });
    let store_ok = match store {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "health check: store ping failed");
            false
        }
    };
    let redis_ok = redis.as_ref().map(Result::is_ok);
    let stopping = !runtime.is_ready();
    let ready = store_ok && !stopping;
    let status = if stopping {
        "draining"
    } else if !store_ok || redis_ok == Some(false) {
        "degraded"
    } else {
        "ok"
    };
    let reachable = |ok: bool| if ok { "ok" } else { "unavailable" }.to_owned();
    let body = HealthResponse {
        status: status.to_owned(),
        ready,
        store: reachable(store_ok),
        redis: redis_ok.map(reachable),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
