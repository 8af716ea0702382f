//! Extractors whose rejections are [`ApiError`]s, so malformed input is
//! always answered with the JSON error shape and a 4xx status.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection, StringRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body (request) or JSON response.
///
/// Malformed JSON is `400`, a missing or wrong `Content-Type` is `415`,
/// well-formed JSON of the wrong shape is `422`, an oversize body is `413`
/// — each as an [`ApiError`] body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let message = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "expected `Content-Type: application/json`".to_owned()
        }
        _ => rejection.body_text(),
    };
    ApiError::from_rejection(rejection.status(), message)
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters; a malformed id is `400`.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => {
            ApiError::bad_request(format!("invalid path parameter: {}", e.body_text()))
        }
        other => ApiError::from_rejection(other.status(), other.body_text()),
    }
}

/// Query string parameters; malformed ones are `400`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

/// A TOML body: `Content-Type` must be `application/toml`, `text/toml`,
/// `text/x-toml` or `text/plain` (else `415`); the body must be UTF-8.
#[derive(Debug, Clone)]
pub(crate) struct TomlText(pub(crate) String);

impl<S> FromRequest<S> for TomlText
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        match content_type.as_deref() {
            Some("application/toml" | "text/toml" | "text/x-toml" | "text/plain") => {}
            _ => {
                return Err(ApiError::unsupported_media_type(
                    "expected `Content-Type: application/toml` or `text/plain`",
                ));
            }
        }
        match String::from_request(req, state).await {
            Ok(text) => Ok(Self(text)),
            Err(rejection) => Err(string_rejection(&rejection)),
        }
    }
}

fn string_rejection(rejection: &StringRejection) -> ApiError {
    ApiError::from_rejection(rejection.status(), rejection.body_text())
}
