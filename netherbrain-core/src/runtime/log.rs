//! The live event log of a running session, and subscriptions that replay
//! from any event id then follow the tail.
//!
//! Every run is its own session, so a running session's whole event history
//! is its live log: it is kept in memory until the run ends and a subscriber
//! of any speed reads it at its own pace — nothing is ever dropped for a slow
//! reader. Finished sessions are replayed from the store.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::event::EventEnvelope;
use crate::ids::{EventSeq, SessionId};
use crate::store::StateStore;

/// Events read per store query when replaying a finished session.
const REPLAY_PAGE: u32 = 512;
/// Events copied out of the live log per lock.
const LIVE_BATCH: usize = 256;

#[derive(Debug, Default)]
struct LogState {
    /// `events[i].seq == i + 1`.
    events: Vec<Arc<EventEnvelope>>,
    closed: bool,
}

/// Append-only, in-memory log of one running session.
#[derive(Debug)]
pub(crate) struct LiveLog {
    state: Mutex<LogState>,
    /// Bumped on every append and on close; wakes subscribers.
    version: watch::Sender<u64>,
}

impl LiveLog {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(LogState::default()),
            version: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of events so far (= last sequence number).
    pub(crate) fn len(&self) -> EventSeq {
        self.lock().events.len() as EventSeq
    }

    pub(crate) fn push(&self, envelope: EventEnvelope) {
        self.lock().events.push(Arc::new(envelope));
        self.version.send_modify(|v| *v += 1);
    }

    /// Marks the log complete: subscribers end after the last event.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.version.send_modify(|v| *v += 1);
    }

    /// Events with `seq > after` (at most [`LIVE_BATCH`]) and whether the
    /// log is closed with nothing after them.
    fn read_after(&self, after: EventSeq) -> (Vec<EventEnvelope>, bool) {
        let state = self.lock();
        let len = state.events.len();
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(len);
        let end = start.saturating_add(LIVE_BATCH).min(len);
        let batch = state.events[start..end]
            .iter()
            .map(|e| (**e).clone())
            .collect();
        (batch, state.closed && end == len)
    }
}

enum Source {
    Live(Arc<LiveLog>, watch::Receiver<u64>),
    Store(Arc<dyn StateStore>, SessionId),
}

struct Cursor {
    source: Source,
    after: EventSeq,
    buffer: VecDeque<EventEnvelope>,
    done: bool,
}

/// Events of a session with `seq > after`, in order: from the live log while
/// the run is alive (ending when it ends), else from the store.
pub(crate) fn subscribe(
    store: Arc<dyn StateStore>,
    session_id: SessionId,
    live: Option<Arc<LiveLog>>,
    after: EventSeq,
) -> BoxStream<'static, EventEnvelope> {
    let source = match live {
        Some(log) => {
            let rx = log.version.subscribe();
            Source::Live(log, rx)
        }
        None => Source::Store(store, session_id),
    };
    let cursor = Cursor {
        source,
        after,
        buffer: VecDeque::new(),
        done: false,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(event) = c.buffer.pop_front() {
                c.after = event.seq;
                return Some((event, c));
            }
            if c.done {
                return None;
            }
            match &mut c.source {
                Source::Live(log, rx) => {
                    // Mark the current version seen before reading, so an
                    // append racing with the read still wakes us.
                    rx.borrow_and_update();
                    let (batch, done) = log.read_after(c.after);
                    c.done = done;
                    if batch.is_empty() && !done && rx.changed().await.is_err() {
                        c.done = true;
                    }
                    c.buffer.extend(batch);
                }
                Source::Store(store, session_id) => {
                    match store.list_events(*session_id, c.after, REPLAY_PAGE).await {
                        Ok(events) => {
                            c.done = events.len() < REPLAY_PAGE as usize;
                            c.buffer.extend(events);
                        }
                        Err(err) => {
                            tracing::warn!(%session_id, error = %err, "event replay failed");
                            c.done = true;
                        }
                    }
                }
            }
        }
    })
    .boxed()
}
