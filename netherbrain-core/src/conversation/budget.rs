//! Daily token budgets: a cap per user (the same for every user, set by
//! the operator) and per preset (its `daily_token_budget`, across users).
//! A run is refused once its day's tokens are spent; the day is UTC.
//! Usage is what the store's sessions recorded, so every process sharing
//! the database counts the same.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::{ConversationService, ServiceError};
use crate::auth::{Principal, keys::target_user};
use crate::ids::{PresetId, UserId};
use crate::store::{Preset, SessionUsage, UsageQuery};
use crate::usage::{Usage, UsageByModel};

/// Longest span of the usage report, in days.
pub const MAX_USAGE_DAYS: u32 = 90;

/// The operator's token caps.
///
/// ```
/// use netherbrain_core::conversation::TokenBudgets;
/// let b = TokenBudgets::default().with_user_daily_tokens(Some(200_000));
/// assert_eq!(b.user_daily_tokens, Some(200_000));
/// assert_eq!(TokenBudgets::default().user_daily_tokens, None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenBudgets {
    /// Most tokens (input plus output) each user's runs may spend per day
    /// (UTC); `None`: no cap.
    pub user_daily_tokens: Option<u64>,
}

impl TokenBudgets {
    /// Sets the per-user daily cap.
    #[must_use]
    pub fn with_user_daily_tokens(mut self, tokens: Option<u64>) -> Self {
        self.user_daily_tokens = tokens.filter(|t| *t > 0);
        self
    }
}

/// One day of a user's usage.
///
/// ```
/// use netherbrain_core::conversation::DayUsage;
/// fn tokens(d: &DayUsage) -> u64 {
///     d.total.total_tokens()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DayUsage {
    /// The day (UTC).
    pub date: NaiveDate,
    /// Its tokens in all.
    pub total: Usage,
    /// Per model.
    pub by_model: UsageByModel,
    /// Per preset (`None`: runs whose preset is gone).
    pub by_preset: BTreeMap<Option<PresetId>, Usage>,
}

/// A user's usage per day, with their budget.
///
/// ```
/// use netherbrain_core::conversation::UsageReport;
/// fn left(r: &UsageReport) -> Option<u64> {
///     r.user_daily_tokens.map(|cap| cap.saturating_sub(r.used_today))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageReport {
    /// Whose.
    pub user_id: UserId,
    /// The days asked for, oldest first (days without runs included).
    pub days: Vec<DayUsage>,
    /// The per-user daily cap.
    pub user_daily_tokens: Option<u64>,
    /// Tokens spent today.
    pub used_today: u64,
    /// When today's count ends (midnight UTC).
    pub resets_at: DateTime<Utc>,
}

/// Midnight (UTC) starting the day of `now`, and the next.
fn day_bounds(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |t| t.and_utc());
    (start, start + TimeDelta::days(1))
}

fn tokens(rows: &[SessionUsage]) -> u64 {
    rows.iter()
        .map(|r| r.usage.total().total_tokens())
        .fold(0, u64::saturating_add)
}

impl ConversationService {
    /// The operator's token caps.
    #[must_use]
    pub fn token_budgets(&self) -> TokenBudgets {
        self.inner.budgets
    }

    /// Refuses a run of `owner` with `preset` once today's tokens of the
    /// user or of the preset reached their cap. Reads nothing when no cap
    /// applies.
    pub(super) async fn check_budget(
        &self,
        owner: UserId,
        preset: &Preset,
    ) -> Result<(), ServiceError> {
        let user_cap = self.inner.budgets.user_daily_tokens;
        let preset_cap = preset.config.daily_token_budget.filter(|t| *t > 0);
        if user_cap.is_none() && preset_cap.is_none() {
            return Ok(());
        }
        let (since, resets_at) = day_bounds(Utc::now());
        let store = &self.inner.store;
        if let Some(limit) = user_cap {
            let used = tokens(
                &store
                    .session_usage(UsageQuery::since(since).for_owner(owner))
                    .await?,
            );
            if used >= limit {
                let username = store
                    .get_user(owner)
                    .await
                    .map_or_else(|_| owner.to_string(), |u| u.username);
                return Err(ServiceError::BudgetExhausted {
                    scope: format!("of user `{username}`"),
                    limit,
                    used,
                    resets_at,
                });
            }
        }
        if let Some(limit) = preset_cap {
            let used = tokens(
                &store
                    .session_usage(UsageQuery::since(since).for_preset(preset.id))
                    .await?,
            );
            if used >= limit {
                return Err(ServiceError::BudgetExhausted {
                    scope: format!("of preset `{}`", preset.name),
                    limit,
                    used,
                    resets_at,
                });
            }
        }
        Ok(())
    }

    /// The tokens `who` (admins: `user_id`) spent per day over the last
    /// `days` days (today included, at most [`MAX_USAGE_DAYS`]), with their
    /// budget.
    ///
    /// # Errors
    ///
    /// `Invalid` for `days` outside 1–90; `Forbidden` for another user's
    /// without admin rights; `NotFound` for an unknown `user_id`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netherbrain_core::conversation::ServiceError> {
    /// use std::sync::Arc;
    /// use netherbrain_core::auth::Principal;
    /// use netherbrain_core::conversation::ConversationService;
    /// use netherbrain_core::store::prelude::*;
    /// use netherbrain_core::store::{MemoryStore, NewUser, UserRole};
    /// let store = Arc::new(MemoryStore::new());
    /// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
    /// let service = ConversationService::builder(store).build();
    /// let report = service.daily_usage(&Principal::of(&ada), None, 7).await?;
    /// assert_eq!(report.days.len(), 7);
    /// assert_eq!(report.used_today, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn daily_usage(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
        days: u32,
    ) -> Result<UsageReport, ServiceError> {
        if !(1..=MAX_USAGE_DAYS).contains(&days) {
            return Err(ServiceError::Invalid(format!(
                "`days` must be between 1 and {MAX_USAGE_DAYS}"
            )));
        }
        let owner = target_user(self.inner.store.as_ref(), who, user_id).await?;
        let (today, resets_at) = day_bounds(Utc::now());
        let since = today - TimeDelta::days(i64::from(days) - 1);
        let rows = self
            .inner
            .store
            .session_usage(UsageQuery::since(since).for_owner(owner))
            .await?;
        let mut by_day: BTreeMap<NaiveDate, DayUsage> = (0..days)
            .map(|i| {
                let date = (since + TimeDelta::days(i64::from(i))).date_naive();
                (
                    date,
                    DayUsage {
                        date,
                        total: Usage::default(),
                        by_model: UsageByModel::default(),
                        by_preset: BTreeMap::new(),
                    },
                )
            })
            .collect();
        for row in &rows {
            if let Some(day) = by_day.get_mut(&row.created_at.date_naive()) {
                let total = row.usage.total();
                day.total += total;
                day.by_model.merge(&row.usage);
                *day.by_preset.entry(row.preset_id).or_default() += total;
            }
        }
        let used_today = by_day
            .get(&today.date_naive())
            .map_or(0, |d| d.total.total_tokens());
        Ok(UsageReport {
            user_id: owner,
            days: by_day.into_values().collect(),
            user_daily_tokens: self.inner.budgets.user_daily_tokens,
            used_today,
            resets_at,
        })
    }
}
