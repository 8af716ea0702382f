//! The runtime's background work: writing events that waited too long,
//! renewing the leases of its running sessions and recovering sessions
//! whose process died.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::Inner;

/// How often the task wakes at most.
const MIN_TICK: Duration = Duration::from_millis(50);

/// Runs until the runtime is dropped.
pub(super) async fn run(inner: Weak<Inner>) {
    let (flush_after, lease) = match inner.upgrade() {
        Some(inner) => (inner.config.flush_after, inner.config.lease),
        None => return,
    };
    let renew_every = lease / 3;
    let tick = flush_after.min(renew_every).max(MIN_TICK);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_renewal = Instant::now();
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        flush(&inner, flush_after).await;
        if last_renewal.elapsed() >= renew_every {
            last_renewal = Instant::now();
            renew(&inner, lease).await;
            reap(&inner).await;
        }
    }
}

/// Writes events of running sessions that waited at least `age`.
async fn flush(inner: &Arc<Inner>, age: Duration) {
    for run in inner.actives() {
        if let Err(err) = run.log.flush_older_than(age).await {
            tracing::warn!(session_id = %run.session_id, error = %err, "could not write a run's events");
        }
    }
}

/// Renews this runtime's leases; a run whose lease another process took
/// (this one stalled past the lease) is stopped.
async fn renew(inner: &Arc<Inner>, lease: Duration) {
    let actives = inner.actives();
    if actives.is_empty() {
        return;
    }
    let ids: Vec<_> = actives.iter().map(|a| a.session_id).collect();
    let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    match inner
        .store
        .renew_leases(&inner.config.owner, &ids, until)
        .await
    {
        Ok(renewed) => {
            for run in actives.iter().filter(|a| !renewed.contains(&a.session_id)) {
                // It may simply have finished meanwhile; only a run still
                // registered lost its lease.
                if inner.is_registered(run.session_id) {
                    tracing::warn!(session_id = %run.session_id, "lost the lease of a running session; stopping it");
                    run.control.cancel.cancel();
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not renew session leases"),
    }
}

/// Recovers sessions whose lease expired (their process died).
async fn reap(inner: &Arc<Inner>) {
    match inner.store.recover_sessions(Utc::now()).await {
        Ok(recovered) if !recovered.is_empty() => {
            tracing::warn!(
                count = recovered.len(),
                "recovered sessions whose process stopped as interrupted"
            );
        }
        Ok(_) => {}
        Err(err) => tracing::debug!(error = %err, "could not recover expired sessions"),
    }
}
