//! `GET /api/openapi.json` and `GET /metrics`.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics))
}

/// The OpenAPI document of this API (the same as the checked-in
/// `docs/openapi.json`). No auth: it holds nothing secret.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object))
)]
pub(crate) async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        crate::openapi::openapi_json(),
    )
        .into_response()
}

/// Prometheus text exposition. Requires a token when
/// `ServerConfig::metrics_require_auth` is set, and when the server listens
/// off loopback unless `ServerConfig::metrics_public` opens it.
pub(crate) async fn metrics(State(state): State<AppState>, req: Request) -> Response {
    let config = state.config();
    let required =
        config.metrics_require_auth || (state.is_public() && !config.metrics_public);
    if required
        && let Err(e) = authenticate(&state, req.headers()).await
    {
        return e.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics().render(),
    )
        .into_response()
}

/// Unknown routes.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// Known route, wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
