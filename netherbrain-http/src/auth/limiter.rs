//! Login throttling: GCRA rate limits (`governor`) per client address, per
//! username from one address and per username across addresses, and a
//! semaphore bounding concurrent Argon2 verifications.
//!
//! Each limit is checked and counted in one atomic step
//! (`RateLimiter::check_key`), so parallel attempts cannot all pass the
//! check before any of them is recorded. Attempts are counted, successful
//! or not. The per-username limit across addresses is larger than the
//! per-address limit, so one address can never use up the owner's quota:
//! the owner logging in from another address is not locked out.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LoginRateLimit;

/// Above this many tracked keys, a limiter forgets keys whose quota has
/// refilled.
const SWEEP_THRESHOLD: usize = 10_000;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Too many attempts; retry after this long.
    RateLimited(Duration),
    /// Every verification slot stayed busy.
    Busy,
}

/// Login limits and the verification semaphore of one server.
#[derive(Debug)]
pub(crate) struct LoginLimiter {
    limit: LoginRateLimit,
    per_ip: Keyed<Option<IpAddr>>,
    per_user_ip: Keyed<(String, Option<IpAddr>)>,
    per_user: Keyed<String>,
    clock: DefaultClock,
    verifications: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicU64>,
}

fn quota(per_window: u32, window: Duration) -> Quota {
    let n = NonZeroU32::new(per_window.max(1)).unwrap_or(NonZeroU32::MIN);
    let period = (window / n.get()).max(Duration::from_millis(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(n)
}

impl LoginLimiter {
    pub(crate) fn new(limit: LoginRateLimit) -> Self {
        Self {
            per_ip: RateLimiter::keyed(quota(limit.per_address, limit.window)),
            per_user_ip: RateLimiter::keyed(quota(limit.max_attempts, limit.window)),
            per_user: RateLimiter::keyed(quota(limit.per_username, limit.window)),
            clock: DefaultClock::default(),
            verifications: Arc::new(Semaphore::new(limit.max_concurrent_verifications.max(1))),
            in_flight: Arc::default(),
            peak: Arc::default(),
            total: Arc::default(),
            limit,
        }
    }

    fn check_one<K: Hash + Eq + Clone>(&self, limiter: &Keyed<K>, key: &K) -> Result<(), Duration> {
        if limiter.len() > SWEEP_THRESHOLD {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Counts one attempt of `username` from `ip` against every limit;
    /// `Err(retry_after)` when one of them is used up.
    pub(crate) fn attempt(&self, username: &str, ip: Option<IpAddr>) -> Result<(), Refusal> {
        let user = username.to_lowercase();
        let refused = |d: Duration| Refusal::RateLimited(d.max(Duration::from_secs(1)));
        self.check_one(&self.per_ip, &ip).map_err(refused)?;
        self.check_one(&self.per_user_ip, &(user.clone(), ip))
            .map_err(refused)?;
        self.check_one(&self.per_user, &user).map_err(refused)?;
        Ok(())
    }

    /// Waits for a verification slot (at most
    /// `LoginRateLimit::verification_wait`).
    pub(crate) async fn verification_slot(&self) -> Result<VerificationSlot, Refusal> {
        let permit = tokio::time::timeout(
            self.limit.verification_wait,
            self.verifications.clone().acquire_owned(),
        )
        .await
        .map_err(|_| Refusal::Busy)?
        .map_err(|_| Refusal::Busy)?;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(VerificationSlot {
            _permit: permit,
            in_flight: self.in_flight.clone(),
        })
    }

    /// Verifications started so far, and the most that ran at once.
    pub(crate) fn verification_stats(&self) -> (u64, usize) {
        (
            self.total.load(Ordering::Relaxed),
            self.peak.load(Ordering::SeqCst),
        )
    }
}

/// A held verification slot; released when dropped.
#[derive(Debug)]
pub(crate) struct VerificationSlot {
    _permit: OwnedSemaphorePermit,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for VerificationSlot {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> LoginRateLimit {
        LoginRateLimit::new(2, Duration::from_secs(60))
            .with_per_address(4)
            .with_per_username(6)
    }

    #[test]
    fn one_address_cannot_lock_out_another() {
        let l = LoginLimiter::new(limit());
        let attacker = Some(IpAddr::from([192, 0, 2, 1]));
        let owner = Some(IpAddr::from([198, 51, 100, 7]));
        assert!(l.attempt("bob", attacker).is_ok());
        assert!(l.attempt("Bob", attacker).is_ok());
        let Err(Refusal::RateLimited(retry)) = l.attempt("bob", attacker) else {
            panic!("third attempt passed");
        };
        assert!(retry >= Duration::from_secs(1) && retry <= Duration::from_secs(60));
        // Other usernames from the attacker until its address is used up.
        assert!(l.attempt("carol", attacker).is_ok());
        assert!(l.attempt("dave", attacker).is_err());
        // The owner, from elsewhere.
        assert!(l.attempt("bob", owner).is_ok());
    }

    #[tokio::test]
    async fn verifications_are_bounded() {
        let l = LoginLimiter::new(
            limit()
                .with_max_concurrent_verifications(1)
                .with_verification_wait(Duration::from_millis(20)),
        );
        let first = l.verification_slot().await.unwrap();
        assert_eq!(l.verification_slot().await.unwrap_err(), Refusal::Busy);
        drop(first);
        let _again = l.verification_slot().await.unwrap();
        assert_eq!(l.verification_stats(), (2, 1));
    }
}
