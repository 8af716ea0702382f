//! Hearing of runs as they start and finish.

use std::fmt;

use super::RunHandle;
use crate::store::Session;

/// Hears of every run a [`Runtime`](super::Runtime) starts and finishes:
/// metrics, the conversation feed that tells followers of new runs, audit
/// logs. Calls happen on the runtime's tasks, so they must be quick and
/// must not block; both methods default to doing nothing.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use netherbrain_core::runtime::{RunHandle, RunObserver, Runtime};
/// use netherbrain_core::store::MemoryStore;
///
/// #[derive(Debug, Default)]
/// struct Counter(AtomicUsize);
/// impl RunObserver for Counter {
///     fn run_started(&self, _run: &RunHandle, _running: usize) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// let runtime = Runtime::new(Arc::new(MemoryStore::new()));
/// runtime.observe(Arc::new(Counter::default()));
/// ```
pub trait RunObserver: Send + Sync + fmt::Debug {
    /// A run was recorded and started; `running` counts the runs of this
    /// runtime now going, this one included.
    fn run_started(&self, run: &RunHandle, running: usize) {
        let _ = (run, running);
    }

    /// A run ended; `session` is the stored session with its outcome and
    /// usage (`None` when its end could not be recorded); `running` counts
    /// the runs still going.
    fn run_finished(&self, run: &RunHandle, session: Option<&Session>, running: usize) {
        let _ = (run, session, running);
    }
}
