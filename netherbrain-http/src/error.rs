//! The one error type every handler returns, and the one place store errors
//! become HTTP statuses.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netherbrain_core::SessionId;
use netherbrain_core::auth::AuthError;
use netherbrain_core::conversation::ServiceError;
use netherbrain_core::runtime::RuntimeError;
use netherbrain_core::store::StoreError;

use crate::dto::{ErrorBody, ErrorDetail};

/// An error answered as JSON `{"error": {"code": "...", "message": "..."}}`.
///
/// | status | code |
/// | --- | --- |
/// | 400 | `bad_request` |
/// | 401 | `unauthorized` |
/// | 403 | `forbidden` |
/// | 404 | `not_found` |
/// | 405 | `method_not_allowed` |
/// | 409 | `conflict`, `conversation_busy` with `active_session_id`, `not_running`, or `running_elsewhere` (the run's process is another one) |
/// | 413 | `payload_too_large` |
/// | 415 | `unsupported_media_type` |
/// | 422 | `invalid` |
/// | 429 | `rate_limited` (with `Retry-After`) |
/// | 500 | `internal` (details are logged, never sent) |
/// | 503 | `unavailable` |
///
/// ```
/// use axum::http::StatusCode;
/// use netherbrain_core::store::StoreError;
/// use netherbrain_http::ApiError;
/// let e = ApiError::from(StoreError::not_found("user", "bob"));
/// assert_eq!(e.status(), StatusCode::NOT_FOUND);
/// assert_eq!(e.code(), "not_found");
/// ```
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    active_session_id: Option<SessionId>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with an explicit status and code.
    #[must_use]
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            active_session_id: None,
            retry_after_secs: None,
        }
    }

    /// 400 `bad_request`.
    #[must_use]
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`.
    #[must_use]
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    #[must_use]
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    #[must_use]
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405 `method_not_allowed`.
    #[must_use]
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed for this route",
        )
    }

    /// 409 `conflict`.
    #[must_use]
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 409 `conversation_busy`: the conversation already runs `active`.
    #[must_use]
    pub fn busy(active: SessionId) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "conversation_busy",
            format!("conversation is busy with session {active}"),
        );
        e.active_session_id = Some(active);
        e
    }

    /// 413 `payload_too_large`.
    #[must_use]
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is too large",
        )
    }

    /// 415 `unsupported_media_type`.
    #[must_use]
    pub fn unsupported_media_type(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 422 `invalid`: well-formed input that breaks a rule.
    #[must_use]
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 429 `rate_limited`, answered with `Retry-After: retry_after_secs`.
    #[must_use]
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many attempts; retry in {retry_after_secs} s"),
        );
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// 503 `unavailable`.
    #[must_use]
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`. `detail` is logged, not sent.
    #[must_use]
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The running session, for `busy`.
    #[must_use]
    pub fn active_session_id(&self) -> Option<SessionId> {
        self.active_session_id
    }

    /// Maps an axum rejection (or any status + text) to the JSON shape:
    /// the status is kept when it is a client error, anything else becomes
    /// 400 so bad input is never answered with a 5xx.
    pub(crate) fn from_rejection(status: StatusCode, text: String) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::unsupported_media_type(text),
            StatusCode::UNPROCESSABLE_ENTITY => Self::invalid(text),
            s if s.is_client_error() => Self::new(s, code_for(s), text),
            _ => Self::bad_request(text),
        }
    }
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        _ => "bad_request",
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    /// The single mapping from store errors to HTTP.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::Conflict(msg) => Self::conflict(msg),
            StoreError::Busy { active } => Self::busy(active),
            StoreError::Invalid(msg) => Self::invalid(msg),
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "store unavailable");
                Self::unavailable("the store is unavailable")
            }
            StoreError::OutOfSpace(detail) => {
                tracing::error!(error = %detail, "the store is out of space");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "out_of_space",
                    "the store's disk is full: nothing was written; free space and retry",
                )
            }
            other => Self::internal(other),
        }
    }
}

impl From<RuntimeError> for ApiError {
    /// The single mapping from runtime errors to HTTP: busy is `409`
    /// `conversation_busy` naming the running session, draining `503`,
    /// nothing to act on `409`, unusable input or preset `422`, store errors
    /// as [`From<StoreError>`].
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Busy { session_id } => Self::busy(session_id),
            RuntimeError::Draining => Self::unavailable(e.to_string()),
            RuntimeError::NotRunning(_) | RuntimeError::NoActiveSession(_) => {
                Self::new(StatusCode::CONFLICT, "not_running", e.to_string())
            }
            RuntimeError::RunningElsewhere(_) => {
                Self::new(StatusCode::CONFLICT, "running_elsewhere", e.to_string())
            }
            // What is pending is the session's state, not the request's
            // shape: a resume that does not match it conflicts with it.
            RuntimeError::InvalidResume(_) => {
                Self::new(StatusCode::CONFLICT, "invalid_resume", e.to_string())
            }
            RuntimeError::NoPreset => Self::new(StatusCode::CONFLICT, "no_preset", e.to_string()),
            RuntimeError::InvalidInput(_) | RuntimeError::Catalog(_) => Self::invalid(e.to_string()),
            RuntimeError::Store(store) => store.into(),
            other => Self::internal(other),
        }
    }
}

impl From<ServiceError> for ApiError {
    /// The single mapping from the conversation service's errors to HTTP:
    /// forbidden `403`, unusable input `422`, unparsable input `400`, a
    /// conflicting state `409`, a failed model call `503`, runtime, store
    /// and auth errors as their own mappings.
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Forbidden(msg) => Self::forbidden(msg),
            ServiceError::Invalid(msg) => Self::invalid(msg),
            ServiceError::Malformed(msg) => Self::bad_request(msg),
            ServiceError::NotFound(msg) => Self::not_found(msg),
            ServiceError::Conflict(msg) => Self::conflict(msg),
            ServiceError::Unavailable(msg) => Self::unavailable(msg),
            ServiceError::TooManyRuns { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_runs",
                e.to_string(),
            ),
            ServiceError::BudgetExhausted { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "budget_exhausted",
                e.to_string(),
            ),
            ServiceError::Runtime(e) => e.into(),
            ServiceError::Store(e) => e.into(),
            ServiceError::Auth(e) => e.into(),
            other => Self::internal(other),
        }
    }
}

impl From<AuthError> for ApiError {
    /// Authentication failures are `401`, refusals `403`, a foreign or
    /// unknown key `404`, bad requests `422`.
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidToken | AuthError::Deactivated | AuthError::NoActiveAdmin => {
                Self::unauthorized(e.to_string())
            }
            AuthError::Forbidden(msg) => Self::forbidden(msg),
            AuthError::Invalid(msg) => Self::invalid(msg),
            AuthError::KeyNotFound(_) => Self::not_found(e.to_string()),
            AuthError::Store(e) => e.into(),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.into_owned(),
                active_session_id: self.active_session_id.map(Into::into),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let cases = [
            (StoreError::not_found("user", "x"), 404, "not_found"),
            (StoreError::Conflict("dup".into()), 409, "conflict"),
            (
                StoreError::Busy {
                    active: SessionId::new(),
                },
                409,
                "conversation_busy",
            ),
            (StoreError::Invalid("bad".into()), 422, "invalid"),
            (StoreError::Unavailable("down".into()), 503, "unavailable"),
            (StoreError::OutOfSpace("full".into()), 503, "out_of_space"),
            (StoreError::Backend("secret detail".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!(api.status().as_u16(), status);
            assert_eq!(api.code(), code);
            assert!(!api.message().contains("secret detail"));
        }
    }

    #[test]
    fn busy_names_the_active_session() {
        let id = SessionId::new();
        let api = ApiError::from(StoreError::Busy { active: id });
        assert_eq!(api.active_session_id(), Some(id));
    }

    #[test]
    fn runtime_errors_map_to_statuses() {
        let id = SessionId::new();
        let cases = [
            (
                RuntimeError::Busy { session_id: id },
                409,
                "conversation_busy",
            ),
            (RuntimeError::Draining, 503, "unavailable"),
            (RuntimeError::NotRunning(id), 409, "not_running"),
            (RuntimeError::NoPreset, 409, "no_preset"),
            (RuntimeError::InvalidInput("empty".into()), 422, "invalid"),
            (RuntimeError::InvalidResume("x".into()), 409, "invalid_resume"),
            (
                RuntimeError::Store(StoreError::not_found("conversation", "x")),
                404,
                "not_found",
            ),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!(api.status().as_u16(), status);
            assert_eq!(api.code(), code);
        }
        assert_eq!(
            ApiError::from(RuntimeError::Busy { session_id: id }).active_session_id(),
            Some(id)
        );
    }

    #[test]
    fn rejections_never_become_5xx() {
        let e = ApiError::from_rejection(StatusCode::INTERNAL_SERVER_ERROR, "x".into());
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = ApiError::from_rejection(StatusCode::PAYLOAD_TOO_LARGE, "x".into());
        assert_eq!(e.code(), "payload_too_large");
    }
}
