//! When a task runs: a cron expression in a time zone, or a fixed interval.

use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

/// Longest accepted cron expression, in bytes.
pub const MAX_CRON_LEN: usize = 256;

/// Longest accepted interval: one year.
pub const MAX_INTERVAL_SECS: u64 = 366 * 86_400;

/// Why a schedule is not usable.
///
/// ```
/// use netherbrain_core::tasks::{ScheduleError, TaskSchedule};
/// let e = TaskSchedule::cron("61 * * * *", "UTC").check().unwrap_err();
/// assert!(matches!(e, ScheduleError::Cron { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("`{expression}` is not a cron expression: {reason}")]
    Cron {
        /// The expression.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The time zone is not an IANA name.
    #[error("`{0}` is not a time zone (use an IANA name such as `Europe/Berlin` or `UTC`)")]
    TimeZone(String),
    /// The interval is out of range.
    #[error("the interval must be between {min} and {max} seconds")]
    Interval {
        /// Shortest allowed, in seconds.
        min: u64,
        /// Longest allowed, in seconds.
        max: u64,
    },
    /// The cron expression never matches again.
    #[error("`{0}` never runs again")]
    Never(String),
}

/// When a task runs.
///
/// Stored and sent as JSON tagged by `kind`:
/// `{"kind": "cron", "expression": "0 7 * * 1-5", "timezone": "Europe/Berlin"}`
/// or `{"kind": "every", "seconds": 3600}`.
///
/// Cron expressions have the five standard fields (minute, hour, day of
/// month, month, day of week) and the `@hourly`, `@daily`, `@weekly`,
/// `@monthly` and `@yearly` shorthands, evaluated in the time zone; a local
/// time skipped by a daylight-saving change runs at the next valid time.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use netherbrain_core::tasks::TaskSchedule;
///
/// let weekday_mornings = TaskSchedule::cron("0 7 * * 1-5", "Europe/Berlin");
/// let friday = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
/// // Monday 7:00 in Berlin is 6:00 UTC in winter.
/// assert_eq!(
///     weekday_mornings.next_after(friday, None).unwrap(),
///     Utc.with_ymd_and_hms(2026, 12, 7, 6, 0, 0).unwrap()
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum TaskSchedule {
    /// At the times a cron expression matches, in a time zone.
    Cron {
        /// The expression, e.g. `0 7 * * *`.
        expression: String,
        /// An IANA time zone name (default `UTC`).
        #[serde(default = "utc")]
        timezone: String,
    },
    /// Every so many seconds, counted from the previous slot.
    Every {
        /// The interval.
        seconds: u64,
    },
}

fn utc() -> String {
    "UTC".to_owned()
}

impl TaskSchedule {
    /// A cron schedule in `timezone`.
    ///
    /// ```
    /// # use netherbrain_core::tasks::TaskSchedule;
    /// assert!(TaskSchedule::cron("@daily", "UTC").check().is_ok());
    /// ```
    #[must_use]
    pub fn cron(expression: impl Into<String>, timezone: impl Into<String>) -> Self {
        Self::Cron {
            expression: expression.into(),
            timezone: timezone.into(),
        }
    }

    /// An interval schedule.
    ///
    /// ```
    /// # use netherbrain_core::tasks::TaskSchedule;
    /// assert!(TaskSchedule::every(3600).check().is_ok());
    /// assert!(TaskSchedule::every(0).check().is_err());
    /// ```
    #[must_use]
    pub fn every(seconds: u64) -> Self {
        Self::Every { seconds }
    }

    /// Checks the expression, time zone and interval (at least one second;
    /// the service may require more, see
    /// [`TaskConfig::min_interval`](super::TaskConfig)).
    ///
    /// # Errors
    ///
    /// [`ScheduleError`].
    ///
    /// ```
    /// # use netherbrain_core::tasks::TaskSchedule;
    /// assert!(TaskSchedule::cron("0 7 * * *", "Mars/Olympus").check().is_err());
    /// ```
    pub fn check(&self) -> Result<(), ScheduleError> {
        match self {
            Self::Cron {
                expression,
                timezone,
            } => {
                parse_cron(expression)?;
                parse_zone(timezone)?;
                Ok(())
            }
            Self::Every { seconds } => interval(*seconds, 1).map(|_| ()),
        }
    }

    /// The shortest time between two runs: the interval, or for cron one
    /// minute (its finest field).
    ///
    /// ```
    /// # use netherbrain_core::tasks::TaskSchedule;
    /// assert_eq!(TaskSchedule::every(90).min_gap_secs(), 90);
    /// assert_eq!(TaskSchedule::cron("* * * * *", "UTC").min_gap_secs(), 60);
    /// ```
    #[must_use]
    pub fn min_gap_secs(&self) -> u64 {
        match self {
            Self::Cron { .. } => 60,
            Self::Every { seconds } => *seconds,
        }
    }

    /// The first slot strictly after `now`. An interval counts from
    /// `previous` (the slot that just ran or was missed), skipping every
    /// slot already past, so the cadence keeps; without one, from `now`.
    ///
    /// # Errors
    ///
    /// [`ScheduleError`] for an invalid schedule or a cron expression that
    /// never matches again.
    ///
    /// ```
    /// use chrono::{TimeDelta, TimeZone, Utc};
    /// use netherbrain_core::tasks::TaskSchedule;
    ///
    /// let hourly = TaskSchedule::every(3600);
    /// let slot = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    /// // Three slots were missed: the next one is the first still ahead.
    /// let now = slot + TimeDelta::minutes(200);
    /// assert_eq!(hourly.next_after(now, Some(slot)).unwrap(), slot + TimeDelta::hours(4));
    /// ```
    pub fn next_after(
        &self,
        now: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, ScheduleError> {
        match self {
            Self::Cron {
                expression,
                timezone,
            } => {
                let cron = parse_cron(expression)?;
                let zone = parse_zone(timezone)?;
                cron.find_next_occurrence(&now.with_timezone(&zone), false)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ScheduleError::Never(expression.clone()))
            }
            Self::Every { seconds } => {
                let step = interval(*seconds, 1)?;
                let Some(previous) = previous.filter(|p| *p <= now) else {
                    return Ok(now + step);
                };
                let behind = (now - previous).num_microseconds().unwrap_or(i64::MAX);
                let step_us = step.num_microseconds().unwrap_or(i64::MAX).max(1);
                let steps = behind / step_us + 1;
                let ahead = i32::try_from(steps)
                    .ok()
                    .and_then(|n| step.checked_mul(n))
                    .and_then(|d| previous.checked_add_signed(d));
                Ok(ahead.unwrap_or(now + step))
            }
        }
    }
}

impl std::fmt::Display for TaskSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cron {
                expression,
                timezone,
            } => write!(f, "cron `{expression}` ({timezone})"),
            Self::Every { seconds } => write!(f, "every {seconds} s"),
        }
    }
}

fn parse_cron(expression: &str) -> Result<Cron, ScheduleError> {
    let bad = |reason: String| ScheduleError::Cron {
        expression: expression.chars().take(MAX_CRON_LEN).collect(),
        reason,
    };
    if expression.len() > MAX_CRON_LEN {
        return Err(bad(format!("longer than {MAX_CRON_LEN} bytes")));
    }
    if expression.trim().is_empty() {
        return Err(bad("it is empty".into()));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| bad(e.to_string()))
}

fn parse_zone(name: &str) -> Result<chrono_tz::Tz, ScheduleError> {
    chrono_tz::Tz::from_str(name.trim()).map_err(|_| ScheduleError::TimeZone(name.to_owned()))
}

/// The interval as a duration, if within `min..=MAX_INTERVAL_SECS`.
pub(super) fn interval(seconds: u64, min: u64) -> Result<TimeDelta, ScheduleError> {
    let out_of_range = || ScheduleError::Interval {
        min,
        max: MAX_INTERVAL_SECS,
    };
    if !(min..=MAX_INTERVAL_SECS).contains(&seconds) {
        return Err(out_of_range());
    }
    i64::try_from(seconds)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(out_of_range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn cron_runs_in_its_time_zone_across_daylight_saving() {
        let daily = TaskSchedule::cron("0 7 * * *", "Europe/Berlin");
        // Winter: UTC+1.
        assert_eq!(
            daily.next_after(at(2026, 12, 1, 10, 0), None).unwrap(),
            at(2026, 12, 2, 6, 0)
        );
        // Summer: UTC+2.
        assert_eq!(
            daily.next_after(at(2026, 7, 1, 10, 0), None).unwrap(),
            at(2026, 7, 2, 5, 0)
        );
        // A slot exactly at `now` is not "after" it.
        assert_eq!(
            daily.next_after(at(2026, 12, 2, 6, 0), None).unwrap(),
            at(2026, 12, 3, 6, 0)
        );
    }

    #[test]
    fn shorthands_and_bad_input() {
        assert!(TaskSchedule::cron("@hourly", "UTC").check().is_ok());
        assert!(TaskSchedule::cron("0 0 7 * * *", "UTC").check().is_err());
        assert!(TaskSchedule::cron("", "UTC").check().is_err());
        assert!(TaskSchedule::cron("x".repeat(300), "UTC").check().is_err());
        assert!(matches!(
            TaskSchedule::cron("* * * * *", "Nowhere").check(),
            Err(ScheduleError::TimeZone(_))
        ));
        assert!(TaskSchedule::every(MAX_INTERVAL_SECS + 1).check().is_err());
    }

    #[test]
    fn intervals_keep_their_cadence() {
        let every = TaskSchedule::every(60);
        let slot = at(2026, 12, 1, 9, 0);
        // On time: the next slot.
        assert_eq!(
            every.next_after(slot, Some(slot)).unwrap(),
            slot + TimeDelta::seconds(60)
        );
        // Late by 10 s: still the next slot of the cadence.
        assert_eq!(
            every
                .next_after(slot + TimeDelta::seconds(10), Some(slot))
                .unwrap(),
            slot + TimeDelta::seconds(60)
        );
        // No previous slot: counted from now.
        assert_eq!(
            every.next_after(slot, None).unwrap(),
            slot + TimeDelta::seconds(60)
        );
    }

    #[test]
    fn the_json_form_is_tagged() {
        let s: TaskSchedule =
            serde_json::from_str(r#"{"kind":"cron","expression":"@daily"}"#).unwrap();
        assert_eq!(s, TaskSchedule::cron("@daily", "UTC"));
        let s: TaskSchedule = serde_json::from_str(r#"{"kind":"every","seconds":5}"#).unwrap();
        assert_eq!(s, TaskSchedule::every(5));
        assert!(serde_json::from_str::<TaskSchedule>(r#"{"kind":"every"}"#).is_err());
    }
}
