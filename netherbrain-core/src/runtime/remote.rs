//! Following a session that runs in another process.
//!
//! The store is read first and is the last word: every event a reader gets
//! has the next sequence number, and anything the cluster skipped is read
//! back from the store (the owner persists its events within its
//! `flush_after`). The cluster only makes the live part prompt; without
//! one, or while it is down, the store is read as it grows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::event::EventEnvelope;
use crate::ids::{EventSeq, SessionId};
use crate::store::StateStore;

/// Events read per store query.
const PAGE: u32 = 512;
/// How often the store is read when nothing else says there is more.
const POLL: Duration = Duration::from_millis(250);
/// How long a live cluster stream may stay quiet before the session's
/// status is checked in the store (its owner may have died).
const RECHECK: Duration = Duration::from_secs(2);
/// How long a session whose lease expired is waited for (some process
/// recovers it, which writes its terminal event) before the reader ends.
const ABANDONED_WAIT: Duration = Duration::from_secs(30);
/// Store failures in a row after which the reader gives up.
const MAX_FAILURES: u32 = 5;
/// Events buffered for a slow reader before the follower waits.
const BUFFER: usize = 256;

/// Events of `session_id` with `seq > after`, in order without gaps,
/// ending after its terminal event (or once it is no longer active).
pub(crate) fn subscribe(
    store: Arc<dyn StateStore>,
    cluster: Option<Arc<dyn Cluster>>,
    session_id: SessionId,
    after: EventSeq,
) -> BoxStream<'static, EventEnvelope> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let follower = Follower {
        store,
        cluster,
        session_id,
        after,
        tx,
    };
    tokio::spawn(follower.run());
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }).boxed()
}

struct Follower {
    store: Arc<dyn StateStore>,
    cluster: Option<Arc<dyn Cluster>>,
    session_id: SessionId,
    after: EventSeq,
    tx: mpsc::Sender<EventEnvelope>,
}

/// What handing an event to the reader came to.
enum Sent {
    More,
    /// The terminal event was sent, or the reader left.
    Done,
    /// Not the next event: the reader needs the ones between from the store.
    Gap,
}

impl Follower {
    async fn send(&mut self, envelope: EventEnvelope) -> Sent {
        if envelope.seq <= self.after {
            return Sent::More;
        }
        if envelope.seq != self.after + 1 {
            return Sent::Gap;
        }
        let terminal = envelope.event.is_terminal();
        self.after = envelope.seq;
        if self.tx.send(envelope).await.is_err() || terminal {
            Sent::Done
        } else {
            Sent::More
        }
    }

    /// Sends what the store has after `after`; `None` when the reader is
    /// done, else whether anything was sent.
    async fn read_store(&mut self, failures: &mut u32) -> Option<bool> {
        let mut sent = false;
        loop {
            match self
                .store
                .list_events(self.session_id, self.after, PAGE)
                .await
            {
                Ok(events) => {
                    *failures = 0;
                    let full = events.len() >= PAGE as usize;
                    for envelope in events {
                        match self.send(envelope).await {
                            Sent::More => sent = true,
                            Sent::Done => return None,
                            // The store is ordered: a gap there is a
                            // lost event, which waiting will not bring.
                            Sent::Gap => {
                                tracing::warn!(session_id = %self.session_id, after = self.after, "the stored log has a gap");
                                return None;
                            }
                        }
                    }
                    if !full {
                        return Some(sent);
                    }
                }
                Err(err) => {
                    *failures += 1;
                    tracing::warn!(session_id = %self.session_id, error = %err, "reading a remote run's events failed");
                    return (*failures < MAX_FAILURES).then_some(sent);
                }
            }
        }
    }

    async fn run(mut self) {
        let mut failures = 0;
        let mut live: Option<BoxStream<'static, EventEnvelope>> = None;
        let mut ending = false;
        let mut abandoned_since: Option<Instant> = None;
        loop {
            // The reader left: stop reading for it.
            if self.tx.is_closed() {
                return;
            }
            let Some(_) = self.read_store(&mut failures).await else {
                return;
            };
            if ending {
                // The session ended before that read: the store had it all.
                return;
            }
            match self.store.get_session(self.session_id).await {
                Ok(session) if !session.status.is_active() => {
                    ending = true;
                    continue;
                }
                Ok(session) => {
                    let expired = session
                        .lease
                        .as_ref()
                        .is_none_or(|l| l.is_expired(chrono::Utc::now()));
                    if expired {
                        let since = *abandoned_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= ABANDONED_WAIT {
                            return;
                        }
                    } else {
                        abandoned_since = None;
                    }
                }
                Err(err) => {
                    tracing::debug!(session_id = %self.session_id, error = %err, "a followed session is gone");
                    return;
                }
            }
            let Some(cluster) = self.cluster.clone() else {
                tokio::time::sleep(POLL).await;
                continue;
            };
            if live.is_none() {
                match cluster.live_events(self.session_id, self.after).await {
                    Ok(stream) => live = Some(stream),
                    Err(err) => {
                        tracing::debug!(session_id = %self.session_id, error = %err, "no live events from the cluster; reading the store");
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                }
            }
            let Some(stream) = live.as_mut() else {
                continue;
            };
            loop {
                match tokio::time::timeout(RECHECK, stream.next()).await {
                    Ok(Some(envelope)) => match self.send(envelope).await {
                        Sent::More => {}
                        Sent::Done => return,
                        Sent::Gap => {
                            // Let the owner persist what the cluster lost.
                            live = None;
                            tokio::time::sleep(POLL).await;
                            break;
                        }
                    },
                    Ok(None) => {
                        live = None;
                        tokio::time::sleep(POLL).await;
                        break;
                    }
                    // Quiet: still running under a live lease? Then keep
                    // waiting; else read the store (it may have ended).
                    Err(_) if self.tx.is_closed() => return,
                    Err(_) => match self.store.get_session(self.session_id).await {
                        Ok(session)
                            if session.status.is_active()
                                && session
                                    .lease
                                    .as_ref()
                                    .is_some_and(|l| !l.is_expired(chrono::Utc::now())) => {}
                        _ => break,
                    },
                }
            }
        }
    }
}
