//! Errors every [`StateStore`](super::StateStore) backend returns.

use crate::ids::SessionId;

/// What went wrong in a store call. Backends map their driver errors into
/// these variants, so callers (and HTTP status codes) never depend on a
/// particular database.
///
/// ```
/// use netherbrain_core::store::StoreError;
/// let e = StoreError::not_found("conversation", "abc");
/// assert_eq!(e.to_string(), "conversation `abc` not found");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such entity.
    #[error("{entity} `{id}` not found")]
    NotFound {
        /// Kind of entity (`"user"`, `"session"`, …).
        entity: &'static str,
        /// The id or name that was looked up.
        id: String,
    },
    /// The change conflicts with existing data (duplicate name, entity
    /// still referenced, session no longer running).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The conversation already has a running session.
    #[error("conversation is busy with session {active}")]
    Busy {
        /// The session that is running.
        active: SessionId,
    },
    /// The input is invalid (over-long field, bad metadata, bad cursor).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The backend cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend is out of space (a full disk): nothing was written;
    /// writes work again once space is freed.
    #[error("store out of space: {0}")]
    OutOfSpace(String),
    /// Any other backend failure.
    #[error("store error: {0}")]
    Backend(String),
}

impl StoreError {
    /// A [`StoreError::NotFound`].
    ///
    /// ```
    /// let e = netherbrain_core::store::StoreError::not_found("user", "bob");
    /// assert!(e.is_not_found());
    /// ```
    #[must_use]
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Whether this is a [`StoreError::NotFound`].
    ///
    /// ```
    /// assert!(!netherbrain_core::store::StoreError::Invalid("x".into()).is_not_found());
    /// ```
    #[must_use]
    pub const fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;
