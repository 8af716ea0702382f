//! The live event log of a running session, and subscriptions that replay
//! from any event id then follow the tail.
//!
//! A running session's recent events live in memory, up to a count and a
//! byte budget; older ones are dropped from memory only once they are
//! persisted, and a subscriber that needs them reads them back from the
//! store before catching up with the tail. So memory per run is bounded,
//! and a subscriber of any speed reads at its own pace — nothing is ever
//! dropped for a slow reader. Finished sessions are replayed from the store.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::event::{AgentEvent, EventEnvelope};
use crate::ids::{EventSeq, SessionId};
use crate::store::StateStore;

/// Events read per store query when replaying.
const REPLAY_PAGE: u32 = 512;
/// Events copied out of the live log per lock.
const LIVE_BATCH: usize = 256;

/// A rough size of an event in memory, counting its text.
fn approx_size(envelope: &EventEnvelope) -> usize {
    const BASE: usize = 96;
    BASE + match &envelope.event {
        AgentEvent::TextMessageContent { delta, .. }
        | AgentEvent::ReasoningMessageContent { delta, .. }
        | AgentEvent::ToolCallArgs { delta, .. } => delta.len(),
        AgentEvent::ToolCallResult { content, .. } => content.len(),
        AgentEvent::RunError { message, .. } => message.len(),
        AgentEvent::Custom { value, .. } => value.to_string().len(),
        _ => 0,
    }
}

#[derive(Debug, Default)]
struct LogState {
    /// The in-memory tail: `events[i].seq == first + i`.
    events: VecDeque<Arc<EventEnvelope>>,
    /// Sequence number of `events[0]` (everything before is in the store).
    first: EventSeq,
    /// Sequence number of the last event.
    last: EventSeq,
    /// Approximate bytes of `events`.
    bytes: usize,
    /// Highest sequence number known to be persisted.
    persisted: EventSeq,
    closed: bool,
}

/// Append-only log of one running session, its tail in memory.
#[derive(Debug)]
pub(crate) struct LiveLog {
    state: Mutex<LogState>,
    max_events: usize,
    max_bytes: usize,
    /// Bumped on every append and on close; wakes subscribers.
    version: watch::Sender<u64>,
}

/// What a read of the live log found.
enum Read {
    /// Events after the position (possibly none), and whether the log is
    /// closed with nothing after them.
    Events(Vec<EventEnvelope>, bool),
    /// The events after the position left memory: read the store first.
    InStore,
}

impl LiveLog {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(LogState {
                first: 1,
                ..LogState::default()
            }),
            max_events,
            max_bytes,
            version: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last sequence number so far.
    pub(crate) fn len(&self) -> EventSeq {
        self.lock().last
    }

    pub(crate) fn push(&self, envelope: EventEnvelope) {
        {
            let mut state = self.lock();
            state.last = envelope.seq;
            state.bytes += approx_size(&envelope);
            state.events.push_back(Arc::new(envelope));
            self.evict(&mut state);
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Records that every event up to `seq` is in the store, so it may
    /// leave memory.
    pub(crate) fn persisted(&self, seq: EventSeq) {
        let mut state = self.lock();
        state.persisted = state.persisted.max(seq);
        self.evict(&mut state);
    }

    /// Drops the oldest persisted events while over budget.
    fn evict(&self, state: &mut LogState) {
        while state.events.len() > self.max_events || state.bytes > self.max_bytes {
            match state.events.front() {
                Some(front) if front.seq <= state.persisted => {
                    state.bytes = state.bytes.saturating_sub(approx_size(front));
                    state.events.pop_front();
                    state.first += 1;
                }
                _ => break,
            }
        }
    }

    /// Marks the log complete: subscribers end after the last event.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.version.send_modify(|v| *v += 1);
    }

    /// Events with `seq > after`, at most [`LIVE_BATCH`].
    fn read_after(&self, after: EventSeq) -> Read {
        let state = self.lock();
        if after.saturating_add(1) < state.first {
            return Read::InStore;
        }
        let len = state.events.len();
        let start = usize::try_from(after.saturating_add(1) - state.first)
            .unwrap_or(usize::MAX)
            .min(len);
        let end = start.saturating_add(LIVE_BATCH).min(len);
        let batch = state
            .events
            .range(start..end)
            .map(|e| (**e).clone())
            .collect();
        Read::Events(batch, state.closed && end == len)
    }

    /// Number of events and approximate bytes held in memory.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let state = self.lock();
        (state.events.len(), state.bytes)
    }
}

struct Cursor {
    store: Arc<dyn StateStore>,
    session_id: SessionId,
    live: Option<(Arc<LiveLog>, watch::Receiver<u64>)>,
    after: EventSeq,
    buffer: VecDeque<EventEnvelope>,
    done: bool,
}

impl Cursor {
    /// Reads the next page of the stored log; `true` when it was the last.
    async fn read_store(&mut self) -> bool {
        match self
            .store
            .list_events(self.session_id, self.after, REPLAY_PAGE)
            .await
        {
            Ok(events) => {
                let last_page = events.len() < REPLAY_PAGE as usize;
                self.buffer.extend(events);
                last_page
            }
            Err(err) => {
                tracing::warn!(session_id = %self.session_id, error = %err, "event replay failed");
                true
            }
        }
    }
}

/// Events of a session with `seq > after`, in order: from the live log
/// while the run is alive (reading evicted ones from the store first, and
/// ending when the run ends), else from the store.
pub(crate) fn subscribe(
    store: Arc<dyn StateStore>,
    session_id: SessionId,
    live: Option<Arc<LiveLog>>,
    after: EventSeq,
) -> BoxStream<'static, EventEnvelope> {
    let cursor = Cursor {
        store,
        session_id,
        live: live.map(|log| {
            let rx = log.version.subscribe();
            (log, rx)
        }),
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
            let read = match &mut c.live {
                Some((log, rx)) => {
                    // Mark the current version seen before reading, so an
                    // append racing with the read still wakes us.
                    rx.borrow_and_update();
                    Some(log.read_after(c.after))
                }
                None => None,
            };
            match read {
                Some(Read::Events(batch, done)) => {
                    c.done = done;
                    if batch.is_empty()
                        && !done
                        && let Some((_, rx)) = &mut c.live
                        && rx.changed().await.is_err()
                    {
                        c.done = true;
                    }
                    c.buffer.extend(batch);
                }
                Some(Read::InStore) => {
                    let before = c.after;
                    c.read_store().await;
                    if c.buffer.is_empty() && before == c.after {
                        // The store has not got them (it failed): give up
                        // rather than spin.
                        c.done = true;
                    }
                }
                None => {
                    c.done = c.read_store().await;
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConversationId;
    use crate::store::prelude::*;
    use crate::store::{
        MemoryStore, NewConversation, NewSession, NewUser, SessionAppend, UserRole,
    };

    fn text(session: SessionId, seq: EventSeq, delta: &str) -> EventEnvelope {
        EventEnvelope::new(
            session,
            seq,
            AgentEvent::TextMessageContent {
                message_id: "m".into(),
                delta: delta.into(),
            },
        )
    }

    async fn running_session(store: &MemoryStore) -> SessionId {
        let user = store
            .create_user(NewUser::new("u", UserRole::User))
            .await
            .unwrap();
        let conversation: ConversationId = store
            .create_conversation(NewConversation::new(user.id))
            .await
            .unwrap()
            .id;
        store
            .create_session(NewSession::new(conversation, vec![]))
            .await
            .unwrap()
            .id
    }

    #[tokio::test]
    async fn the_tail_is_bounded_and_old_events_come_from_the_store() {
        let store = Arc::new(MemoryStore::new());
        let session = running_session(&store).await;
        let log = Arc::new(LiveLog::new(16, 64 * 1024));
        let events: Vec<EventEnvelope> = (1..=100).map(|i| text(session, i, "x")).collect();
        for e in &events[..50] {
            log.push(e.clone());
        }
        // Nothing persisted yet: nothing may leave memory.
        assert_eq!(log.held().0, 50);
        store
            .append(session, SessionAppend::new(vec![], events[..50].to_vec()))
            .await
            .unwrap();
        log.persisted(50);
        assert_eq!(
            log.held().0,
            16,
            "persisted events over the cap leave memory"
        );
        for e in &events[50..] {
            log.push(e.clone());
        }
        log.close();
        // A subscriber from the start reads 1..=50 from the store, then the rest.
        let all: Vec<EventSeq> = subscribe(store.clone(), session, Some(log.clone()), 0)
            .map(|e| e.seq)
            .collect()
            .await;
        assert_eq!(all, (1..=100).collect::<Vec<_>>());
        let tail: Vec<EventSeq> = subscribe(store, session, Some(log), 90)
            .map(|e| e.seq)
            .collect()
            .await;
        assert_eq!(tail, (91..=100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_byte_budget_counts_text() {
        let log = LiveLog::new(10_000, 64 * 1024);
        let session = SessionId::new();
        let big = "y".repeat(16 * 1024);
        for i in 1..=20 {
            log.push(text(session, i, &big));
        }
        log.persisted(20);
        let (events, bytes) = log.held();
        assert!(bytes <= 64 * 1024, "{bytes} bytes held");
        assert!(events < 20);
    }
}
