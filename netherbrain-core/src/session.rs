//! Session status: the life cycle of one run.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a session is in its life cycle:
/// `created` → `running` → `committed` | `awaiting_tool_results` |
/// `interrupted` | `failed`.
///
/// ```
/// use netherbrain_core::SessionStatus;
/// assert!(SessionStatus::Running.is_active());
/// assert!(SessionStatus::Committed.is_terminal());
/// assert_eq!("awaiting_tool_results".parse::<SessionStatus>().unwrap(), SessionStatus::AwaitingToolResults);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionStatus {
    /// Recorded, not started.
    Created,
    /// The agent is running.
    Running,
    /// Finished normally; its messages are part of the conversation.
    Committed,
    /// Stopped for tool approval or client-supplied tool results.
    AwaitingToolResults,
    /// Stopped by the user, a drain, or a crash; what was produced is kept.
    Interrupted,
    /// Stopped by an error.
    Failed,
}

impl SessionStatus {
    /// The snake_case name used in storage and on the wire.
    ///
    /// ```
    /// assert_eq!(netherbrain_core::SessionStatus::Failed.as_str(), "failed");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Committed => "committed",
            Self::AwaitingToolResults => "awaiting_tool_results",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }

    /// `created` or `running`.
    ///
    /// ```
    /// assert!(netherbrain_core::SessionStatus::Created.is_active());
    /// ```
    #[must_use]
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Created | Self::Running)
    }

    /// Any status a run ends in.
    ///
    /// ```
    /// assert!(!netherbrain_core::SessionStatus::Running.is_terminal());
    /// ```
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        !self.is_active()
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown session status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown session status `{0}`")]
pub struct ParseStatusError(String);

impl FromStr for SessionStatus {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "created" => Self::Created,
            "running" => Self::Running,
            "committed" => Self::Committed,
            "awaiting_tool_results" => Self::AwaitingToolResults,
            "interrupted" => Self::Interrupted,
            "failed" => Self::Failed,
            other => return Err(ParseStatusError(other.chars().take(64).collect())),
        })
    }
}
