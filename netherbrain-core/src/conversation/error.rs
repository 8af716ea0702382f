//! Why a use-case of the conversation service was refused or failed.

use crate::agent::CatalogError;
use crate::auth::AuthError;
use crate::runtime::RuntimeError;
use crate::store::StoreError;

/// Why a [`ConversationService`](super::ConversationService) call was
/// refused or failed. Surfaces map it once to their own shape (an HTTP
/// status, a chat reply, a CLI message).
///
/// Something the principal may not see is reported as
/// [`StoreError::NotFound`] (as if it did not exist), never as
/// [`Forbidden`](Self::Forbidden).
///
/// ```
/// use netherbrain_core::conversation::ServiceError;
/// let e = ServiceError::Invalid("the input must not be empty".into());
/// assert_eq!(e.to_string(), "the input must not be empty");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The principal may see the thing but not do this (e.g. a non-admin
    /// importing presets).
    #[error("{0}")]
    Forbidden(String),
    /// Well-formed but unusable input (empty input, no preset, a failed
    /// session to fork, …).
    #[error("{0}")]
    Invalid(String),
    /// Something asked for does not exist (beyond a plain unknown id, which
    /// is a store `NotFound`).
    #[error("{0}")]
    NotFound(String),
    /// Input that cannot be parsed at all (a TOML syntax error).
    #[error("{0}")]
    Malformed(String),
    /// The request conflicts with the current state (forking a session that
    /// has not finished).
    #[error("{0}")]
    Conflict(String),
    /// A model call the use-case needed failed (summarize).
    #[error("{0}")]
    Unavailable(String),
    /// The runtime refused: busy, draining, nothing running, a resume that
    /// does not match, a preset the catalog cannot build.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A store call failed (`NotFound` for unknown or foreign ids).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Authentication or key management refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The owner already has `limit` runs going (see
    /// [`ServiceBuilder::max_runs_per_user`](super::ServiceBuilder::max_runs_per_user)).
    #[error("too many runs at once: at most {limit} per user; wait for one to finish")]
    TooManyRuns {
        /// The limit.
        limit: usize,
    },
    /// A daily token budget is spent (see
    /// [`TokenBudgets`](super::TokenBudgets) and
    /// [`PresetConfig::daily_token_budget`](crate::PresetConfig::daily_token_budget)).
    #[error(
        "the daily token budget {scope} is spent ({used} of {limit} tokens today); it renews at {resets_at}"
    )]
    BudgetExhausted {
        /// Whose budget: `of user …` or `of preset …`.
        scope: String,
        /// The cap.
        limit: u64,
        /// Tokens spent today.
        used: u64,
        /// When the day's count starts again (midnight UTC).
        resets_at: chrono::DateTime<chrono::Utc>,
    },
}

impl From<CatalogError> for ServiceError {
    fn from(e: CatalogError) -> Self {
        Self::Runtime(RuntimeError::Catalog(e))
    }
}
