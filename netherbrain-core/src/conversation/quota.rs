//! Runs per user: a semaphore per owner, a permit held by each run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

use super::ServiceError;
use crate::ids::UserId;
use crate::runtime::RunPermit;

/// At most `limit` runs per owner at once (no limit when `None`).
#[derive(Debug)]
pub(super) struct RunQuota {
    limit: Option<usize>,
    owners: Mutex<HashMap<UserId, Arc<Semaphore>>>,
}

impl RunQuota {
    pub(super) fn new(limit: Option<usize>) -> Self {
        Self {
            limit,
            owners: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more run of `owner`, taken atomically; `None` when
    /// there is no limit.
    pub(super) fn acquire(&self, owner: UserId) -> Result<Option<RunPermit>, ServiceError> {
        let Some(limit) = self.limit else {
            return Ok(None);
        };
        let semaphore = self
            .owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(owner)
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone();
        semaphore
            .try_acquire_owned()
            .map(|permit| Some(RunPermit::new(permit)))
            .map_err(|_| ServiceError::TooManyRuns { limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_owner_and_releases_on_drop() {
        let quota = RunQuota::new(Some(2));
        let (a, b) = (UserId::new(), UserId::new());
        let first = quota.acquire(a).unwrap();
        let _second = quota.acquire(a).unwrap();
        assert_eq!(
            quota.acquire(a).unwrap_err(),
            ServiceError::TooManyRuns { limit: 2 }
        );
        assert!(quota.acquire(b).is_ok());
        drop(first);
        assert!(quota.acquire(a).is_ok());
        assert!(RunQuota::new(None).acquire(a).unwrap().is_none());
    }
}
