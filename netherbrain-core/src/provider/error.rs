//! Classified provider errors.

use std::time::Duration;

/// Why a model call failed, classified so the loop can retry the right ones.
///
/// ```
/// use std::time::Duration;
/// use netherbrain_core::ProviderError;
/// let e = ProviderError::RateLimited { retry_after: Some(Duration::from_secs(2)), message: "slow down".into() };
/// assert!(e.is_retryable());
/// assert!(!ProviderError::Auth { message: "bad key".into() }.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// HTTP 429 or an equivalent error body.
    #[error("rate limited: {message}")]
    RateLimited {
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// The prompt does not fit the model's context window.
    #[error("context too long: {message}")]
    ContextTooLong {
        /// The provider's message.
        message: String,
    },
    /// Missing or wrong credentials.
    #[error("authentication failed: {message}")]
    Auth {
        /// The provider's message.
        message: String,
    },
    /// A temporary failure: 5xx, connection error, timeout, overload.
    #[error("transient provider error: {message}")]
    Transient {
        /// What happened.
        message: String,
    },
    /// The provider rejected the request (bad model name, bad parameter).
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// The provider's message.
        message: String,
    },
    /// The response could not be decoded.
    #[error("could not decode provider response: {message}")]
    Decode {
        /// What could not be decoded.
        message: String,
    },
    /// The call was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
}

impl ProviderError {
    /// Whether trying the same request again may succeed.
    ///
    /// ```
    /// assert!(netherbrain_core::ProviderError::Transient { message: "502".into() }.is_retryable());
    /// ```
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient { .. })
    }

    /// A short machine-readable code (`"rate_limited"`, `"auth"`, …), used
    /// in `RUN_ERROR` events and metrics.
    ///
    /// ```
    /// assert_eq!(netherbrain_core::ProviderError::Cancelled.code(), "cancelled");
    /// ```
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::ContextTooLong { .. } => "context_too_long",
            Self::Auth { .. } => "auth",
            Self::Transient { .. } => "transient",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Decode { .. } => "decode",
            Self::Cancelled => "cancelled",
        }
    }
}
