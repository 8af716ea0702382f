//! Typed identifiers.
//!
//! Every entity has its own id type so a [`SessionId`] can never be passed
//! where a [`ConversationId`] is expected. Ids are UUIDv7: they sort by
//! creation time, which keeps database indexes append-friendly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Error returned when a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id `{value}`")]
pub struct ParseIdError {
    kind: &'static str,
    value: String,
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[derive(schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Creates a new, time-ordered (UUIDv7) id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| ParseIdError {
                    kind: $kind,
                    value: s.chars().take(64).collect(),
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

define_id!(
    /// Identifies a user.
    ///
    /// ```
    /// use netherbrain_core::UserId;
    /// let id = UserId::new();
    /// assert_eq!(id, id.to_string().parse().unwrap());
    /// ```
    UserId,
    "user"
);
define_id!(
    /// Identifies an API key.
    ///
    /// ```
    /// let id = netherbrain_core::ApiKeyId::new();
    /// assert!("not-a-uuid".parse::<netherbrain_core::ApiKeyId>().is_err());
    /// # let _ = id;
    /// ```
    ApiKeyId,
    "api key"
);
define_id!(
    /// Identifies a preset (a named agent configuration).
    ///
    /// ```
    /// let id = netherbrain_core::PresetId::new();
    /// # let _ = id;
    /// ```
    PresetId,
    "preset"
);
define_id!(
    /// Identifies a workspace.
    ///
    /// ```
    /// let id = netherbrain_core::WorkspaceId::new();
    /// # let _ = id;
    /// ```
    WorkspaceId,
    "workspace"
);
define_id!(
    /// Identifies a conversation (a thread owned by one user).
    ///
    /// ```
    /// let id = netherbrain_core::ConversationId::new();
    /// # let _ = id;
    /// ```
    ConversationId,
    "conversation"
);
define_id!(
    /// Identifies a session: one run of the agent in a conversation.
    ///
    /// ```
    /// let a = netherbrain_core::SessionId::new();
    /// let b = netherbrain_core::SessionId::new();
    /// assert!(a < b, "ids sort by creation time");
    /// ```
    SessionId,
    "session"
);
define_id!(
    /// Identifies a mailbox entry (a result delivered to a conversation by a
    /// background subagent).
    ///
    /// ```
    /// let id = netherbrain_core::MailboxId::new();
    /// # let _ = id;
    /// ```
    MailboxId,
    "mailbox"
);

define_id!(
    /// Identifies a long-term memory of a user.
    ///
    /// ```
    /// let id = netherbrain_core::MemoryId::new();
    /// assert_eq!(id, id.to_string().parse().unwrap());
    /// ```
    MemoryId,
    "memory"
);

define_id!(
    /// Identifies a scheduled task of a user.
    ///
    /// ```
    /// let id = netherbrain_core::TaskId::new();
    /// assert_eq!(id, id.to_string().parse().unwrap());
    /// ```
    TaskId,
    "task"
);

/// Sequence number of an event within its session; the first event is `1`.
///
/// Event ids increase by one per event, so a client that reconnects with the
/// last id it saw can be sent exactly what it missed.
pub type EventSeq = u64;
