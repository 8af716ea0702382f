//! Tunables of a [`Runtime`](super::Runtime).

use std::time::Duration;

/// Tunables of a [`Runtime`](super::Runtime).
///
/// ```
/// use std::time::Duration;
/// use netherbrain_core::runtime::RuntimeConfig;
/// let cfg = RuntimeConfig::default().with_lease(Duration::from_secs(5));
/// assert_eq!(cfg.lease, Duration::from_secs(5));
/// assert!(!cfg.owner.is_empty());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// How long a running session's lease lasts without renewal. The runtime
    /// renews its leases every third of this; a session whose lease ran out
    /// (its process died) is recovered as interrupted by any runtime on the
    /// same store. Default 15 s.
    pub lease: Duration,
    /// This process's name on the leases it holds. Default
    /// `<host>/<pid>/<random>`, unique per runtime.
    pub owner: String,
    /// Events waiting for their turn's commit are written at the latest this
    /// long after they happened, so a crash loses at most about this much.
    /// Default 500 ms.
    pub flush_after: Duration,
    /// Events of a running session kept in memory for subscribers; older
    /// ones (already persisted) are read back from the store. Default 4096.
    pub live_events: usize,
    /// Approximate bytes of a running session's events kept in memory.
    /// Default 4 MiB.
    pub live_bytes: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            owner: default_owner(),
            flush_after: Duration::from_millis(500),
            live_events: 4096,
            live_bytes: 4 * 1024 * 1024,
        }
    }
}

impl RuntimeConfig {
    /// Sets the lease duration (at least 1 s).
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// Sets the owner name written on leases.
    #[must_use]
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Sets how soon waiting events are written.
    #[must_use]
    pub fn with_flush_after(mut self, after: Duration) -> Self {
        self.flush_after = after.max(Duration::from_millis(10));
        self
    }

    /// Sets the in-memory tail of a running session's events (at least 16
    /// events and 64 KiB).
    #[must_use]
    pub fn with_live_tail(mut self, events: usize, bytes: usize) -> Self {
        self.live_events = events.max(16);
        self.live_bytes = bytes.max(64 * 1024);
        self
    }
}

/// `<host>/<pid>/<8 random hex>`.
fn default_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let random: String = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    format!("{host}/{}/{random}", std::process::id())
}
