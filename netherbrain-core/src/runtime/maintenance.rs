//! The runtime's background work: writing events that waited too long,
//! renewing the leases of its running sessions and recovering sessions
//! whose process died.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::Inner;
use crate::cluster::Cluster;
use crate::ids::SessionId;
use crate::store::{SessionAppend, StateStore, StoreError};

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

/// Recovers sessions whose lease expired (their process died): first
/// writes what the cluster still holds of their events (shown to readers
/// on other replicas, not yet written by the dead process) to their logs,
/// then marks them interrupted with a terminal event after those.
pub(super) async fn recover_abandoned(inner: &Inner) -> Result<Vec<SessionId>, StoreError> {
    let now = Utc::now();
    if let Some(cluster) = inner.cluster.get() {
        salvage(inner.store.as_ref(), cluster.as_ref(), now).await;
    }
    inner.store.recover_sessions(now).await
}

async fn salvage(store: &dyn StateStore, cluster: &dyn Cluster, now: chrono::DateTime<Utc>) {
    let Ok(expired) = store.expired_sessions(now).await else {
        return;
    };
    for session_id in expired {
        let Ok(last) = store.last_event_seq(session_id).await else {
            continue;
        };
        let held = match cluster.held_events(session_id, last).await {
            Ok(held) => held,
            Err(err) => {
                tracing::debug!(error = %err, "the cluster cannot say what a stopped replica published");
                return;
            }
        };
        let mut next = last + 1;
        let events: Vec<_> = held
            .into_iter()
            .take_while(|e| {
                let follows = e.seq == next && !e.event.is_terminal();
                next += 1;
                follows
            })
            .collect();
        if events.is_empty() {
            continue;
        }
        let count = events.len();
        match store
            .append(session_id, SessionAppend::new(Vec::new(), events))
            .await
        {
            Ok(()) => tracing::info!(
                %session_id,
                count,
                "kept the events a stopped replica had published but not written"
            ),
            // Another replica kept them first, or the owner came back.
            Err(err) => {
                tracing::debug!(%session_id, error = %err, "did not keep a stopped replica's events")
            }
        }
    }
}

/// Recovers sessions whose lease expired (their process died).
async fn reap(inner: &Arc<Inner>) {
    match recover_abandoned(inner).await {
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
