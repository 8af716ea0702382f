//! Extractors whose rejections are [`ApiError`]s, so malformed input is
//! always answered with the JSON error shape and a 4xx status.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection, StringRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// A JSON body (request) or JSON response.
///
/// A request body is checked against its schema in the OpenAPI document
/// before it is read, so the server refuses exactly what the document
/// refuses (serde alone would read an array into a struct by position, or
/// a NUL character into a string no store can keep). Malformed JSON is
/// `400`, a missing or wrong `Content-Type` is `415`, well-formed JSON
/// that fails the schema is `422`, an oversize body is `413` — each as an
/// [`ApiError`] body. Fields the schema does not name are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned + ToSchema,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::unsupported_media_type(
                "expected `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            ApiError::from_rejection(rejection.status(), rejection.body_text())
        })?;
        let mut value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        crate::schema::check(&T::name(), &value).map_err(|message| unprocessable(&message))?;
        match T::deserialize(&value) {
            Ok(parsed) => Ok(Self(parsed)),
            Err(first) => {
                // `1.0` is the integer 1 to JSON Schema; serde wants `1`.
                integral_floats_to_integers(&mut value);
                T::deserialize(&value).map(Self).map_err(|_| {
                    unprocessable(&format!("the body does not fit its schema: {first}"))
                })
            }
        }
    }
}

fn unprocessable(message: &str) -> ApiError {
    ApiError::from_rejection(StatusCode::UNPROCESSABLE_ENTITY, message.to_owned())
}

/// Turns every float with an integral value (within `i64`/`u64`) into an
/// integer, so `1.0` reads as the integer field it is in JSON Schema.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
            {
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss,
                    reason = "the value is integral and checked to be in range"
                )]
                if f >= 0.0 && f < u64::MAX as f64 {
                    *value = Value::from(f as u64);
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// `Content-Type: application/json` or any `application/*+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5
                && subtype.is_char_boundary(subtype.len() - 5)
                && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
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
        if parts.uri.query().is_some_and(query_has_nul) {
            return Err(ApiError::bad_request(
                "query parameters must not contain NUL characters (%00)",
            ));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

/// Whether a raw query string encodes a NUL character.
fn query_has_nul(query: &str) -> bool {
    query.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            is_json(&headers)
        };
        assert!(check("application/json"));
        assert!(check("Application/JSON; charset=utf-8"));
        assert!(check("application/problem+json"));
        assert!(!check("text/json"));
        assert!(!check("application/jsonx"));
        assert!(!check("application/+json"));
    }

    #[test]
    fn integral_floats_become_integers() {
        let mut value = serde_json::json!({"a": 216.0, "b": [1.5, -3.0], "c": 1e30});
        integral_floats_to_integers(&mut value);
        assert_eq!(value, serde_json::json!({"a": 216, "b": [1.5, -3], "c": 1e30}));
    }
}
