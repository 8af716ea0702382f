//! Failed-login throttling per username and client IP (sliding window).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::LoginRateLimit;

/// Above this many tracked keys, stale ones are swept on the next failure.
const SWEEP_THRESHOLD: usize = 10_000;

type Key = (String, Option<IpAddr>);

/// Remembers recent failed logins.
#[derive(Debug)]
pub(crate) struct LoginLimiter {
    limit: LoginRateLimit,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub(crate) fn new(limit: LoginRateLimit) -> Self {
        Self {
            limit,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn key(username: &str, ip: Option<IpAddr>) -> Key {
        (username.to_lowercase(), ip)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // in a way that matters here, so recover from poisoning.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(retry_after)` if the key has used up its failures.
    pub(crate) fn check(&self, username: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(username, ip, Instant::now())
    }

    fn check_at(&self, username: &str, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut map = self.lock();
        let Some(times) = map.get_mut(&Self::key(username, ip)) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.limit.window)
        {
            times.pop_front();
        }
        if times.len() >= self.limit.max_failures as usize {
            let oldest = times.front().copied().unwrap_or(now);
            let retry = self.limit.window.saturating_sub(now.duration_since(oldest));
            return Err(retry.max(Duration::from_secs(1)));
        }
        Ok(())
    }

    /// Records a failure.
    pub(crate) fn record_failure(&self, username: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        let window = self.limit.window;
        let mut map = self.lock();
        if map.len() > SWEEP_THRESHOLD {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let times = map.entry(Self::key(username, ip)).or_default();
        times.push_back(now);
        while times.len() > self.limit.max_failures as usize {
            times.pop_front();
        }
    }

    /// Forgets the failures of a key (after a successful login).
    pub(crate) fn reset(&self, username: &str, ip: Option<IpAddr>) {
        self.lock().remove(&Self::key(username, ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_and_recovers() {
        let l = LoginLimiter::new(LoginRateLimit::new(2, Duration::from_secs(60)));
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        assert!(l.check("bob", ip).is_ok());
        l.record_failure("bob", ip);
        l.record_failure("Bob", ip);
        let retry = l.check("bob", ip).unwrap_err();
        assert!(retry <= Duration::from_secs(60));
        assert!(l.check("bob", Some(IpAddr::from([10, 0, 0, 1]))).is_ok());
        assert!(l.check("alice", ip).is_ok());
        let later = Instant::now() + Duration::from_secs(61);
        assert!(l.check_at("bob", ip, later).is_ok());
        l.reset("bob", ip);
        assert!(l.check("bob", ip).is_ok());
    }
}
