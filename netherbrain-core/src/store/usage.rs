//! What sessions spent, read back for token budgets and the usage API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{PresetId, SessionId, UserId};
use crate::usage::UsageByModel;

/// Which sessions' usage to read: those created at or after `since`, of
/// conversations owned by `owner` and run with `preset_id` when given.
///
/// ```
/// use netherbrain_core::store::UsageQuery;
/// use netherbrain_core::UserId;
/// let q = UsageQuery::since(chrono::Utc::now()).for_owner(UserId::new());
/// assert!(q.owner.is_some() && q.preset_id.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageQuery {
    /// Sessions created at or after this time.
    pub since: DateTime<Utc>,
    /// Only sessions in conversations of this user.
    pub owner: Option<UserId>,
    /// Only sessions run with this preset.
    pub preset_id: Option<PresetId>,
}

impl UsageQuery {
    /// Every session created at or after `since`.
    #[must_use]
    pub fn since(since: DateTime<Utc>) -> Self {
        Self {
            since,
            owner: None,
            preset_id: None,
        }
    }

    /// Only the sessions of `owner`'s conversations.
    #[must_use]
    pub fn for_owner(mut self, owner: UserId) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Only the sessions run with `preset`.
    ///
    /// ```
    /// # use netherbrain_core::{store::UsageQuery, PresetId};
    /// let p = PresetId::new();
    /// assert_eq!(UsageQuery::since(chrono::Utc::now()).for_preset(p).preset_id, Some(p));
    /// ```
    #[must_use]
    pub fn for_preset(mut self, preset: PresetId) -> Self {
        self.preset_id = Some(preset);
        self
    }
}

/// What one session spent.
///
/// ```
/// use netherbrain_core::store::SessionUsage;
/// fn tokens(s: &SessionUsage) -> u64 {
///     s.usage.total().total_tokens()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionUsage {
    /// The session.
    pub session_id: SessionId,
    /// The preset it ran with.
    pub preset_id: Option<PresetId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its tokens, per model.
    pub usage: UsageByModel,
}
