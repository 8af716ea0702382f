//! The wall clock schedules are evaluated on, replaceable in tests.

use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// Where the scheduler reads the time.
///
/// ```
/// use netherbrain_core::tasks::{Clock, SystemClock};
/// let before = chrono::Utc::now();
/// assert!(SystemClock.now() >= before);
/// ```
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: for tests of schedules.
///
/// ```
/// use chrono::{TimeDelta, Utc};
/// use netherbrain_core::tasks::{Clock, ManualClock};
/// let start = Utc::now();
/// let clock = ManualClock::new(start);
/// clock.advance(TimeDelta::hours(2));
/// assert_eq!(clock.now(), start + TimeDelta::hours(2));
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `at`.
    #[must_use]
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    /// Sets the time.
    ///
    /// ```
    /// # use netherbrain_core::tasks::{Clock, ManualClock};
    /// let clock = ManualClock::new(chrono::Utc::now());
    /// let t = chrono::DateTime::from_timestamp(0, 0).unwrap();
    /// clock.set(t);
    /// assert_eq!(clock.now(), t);
    /// ```
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    /// Moves the time forward (or back, for a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
