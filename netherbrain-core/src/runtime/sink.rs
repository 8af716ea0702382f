//! The sink a runtime-managed run writes to: it numbers events, shows them
//! to subscribers at once and persists them with the run's messages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::log::LiveLog;
use crate::agent::{RunSink, SinkError};
use crate::cluster::Cluster;
use crate::event::{AgentEvent, EventEnvelope};
use crate::ids::{EventSeq, SessionId};
use crate::message::{Message, Role};
use crate::store::{SessionAppend, StateStore, StoreError};

/// Events buffered before they are written without waiting for a message.
const FLUSH_EVENTS: usize = 128;

/// Events shown but not yet written, shared between a run's sink and the
/// runtime's maintenance task (which writes them once they are old).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    events: Vec<EventEnvelope>,
    /// When the oldest of `events` happened.
    since: Option<Instant>,
}

pub(crate) type SharedPending = Arc<tokio::sync::Mutex<Pending>>;

/// A run's store, session and live log: where its writes go.
#[derive(Debug, Clone)]
pub(crate) struct RunLog {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) session_id: SessionId,
    pub(crate) live: Arc<LiveLog>,
    pub(crate) pending: SharedPending,
    /// Where other replicas read the run's events, if it has joined one.
    pub(crate) cluster: Option<Arc<dyn Cluster>>,
}

impl RunLog {
    /// Shows an event to this process's subscribers and publishes it to
    /// the other replicas.
    pub(crate) fn show(&self, envelope: EventEnvelope) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(&envelope);
        }
        self.live.push(envelope);
    }

    /// Writes `messages` and the pending events in one transaction (the
    /// caller holds the pending lock, so writes stay in order), then lets
    /// the live log drop what is now durable.
    async fn write(&self, pending: &mut Pending, messages: Vec<Message>) -> Result<(), StoreError> {
        if messages.is_empty() && pending.events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut pending.events);
        let last = events.last().map(|e| e.seq);
        pending.since = None;
        self.store
            .append(self.session_id, SessionAppend::new(messages, events))
            .await?;
        if let Some(seq) = last {
            self.live.persisted(seq);
        }
        Ok(())
    }

    /// Writes the pending events if the oldest is at least `age` old.
    pub(crate) async fn flush_older_than(&self, age: Duration) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().await;
        if pending.since.is_some_and(|since| since.elapsed() >= age) {
            self.write(&mut pending, Vec::new()).await?;
        }
        Ok(())
    }
}

/// Persists a run.
///
/// - Each completed message is committed in one transaction together with
///   the events buffered before it, so a committed turn and its events
///   survive a crash together. Events buffered longer than the runtime's
///   `flush_after` are written by its maintenance task without waiting for a
///   message, so a crash loses at most about that much of a run.
/// - A final answer (an assistant message without tool calls) is held
///   back with what follows it, and the terminal event is held back from
///   subscribers too: the runtime commits both with the session's end in one
///   transaction ([`take_tail`](Self::take_tail)), and only then shows the
///   terminal event. So `RUN_FINISHED` is never seen before it is durable,
///   and a run's end costs one transaction.
/// - Other events reach live subscribers before they are persisted.
#[derive(Debug)]
pub(crate) struct StoreSink {
    log: RunLog,
    /// Messages not yet written (a final answer waiting for the end).
    held_messages: Vec<Message>,
    /// The terminal event, written and shown at the end.
    terminal: Vec<EventEnvelope>,
    /// Sequence number of the last event.
    last_seq: EventSeq,
}

impl StoreSink {
    pub(crate) fn new(log: RunLog) -> Self {
        Self {
            last_seq: log.live.len(),
            log,
            held_messages: Vec::new(),
            terminal: Vec::new(),
        }
    }

    /// Writes the held messages, these and the buffered events, in one
    /// transaction.
    async fn commit(&mut self, messages: Vec<Message>) -> Result<(), SinkError> {
        let mut all = std::mem::take(&mut self.held_messages);
        all.extend(messages);
        let mut pending = self.log.pending.lock().await;
        self.log
            .write(&mut pending, all)
            .await
            .map_err(SinkError::failed)
    }

    /// Numbers an event the runtime itself adds at the end (a run that
    /// panicked), without showing or buffering it.
    pub(crate) fn number(&mut self, event: AgentEvent) -> EventEnvelope {
        self.last_seq += 1;
        EventEnvelope::new(self.log.session_id, self.last_seq, event)
    }

    /// What is still to be written: held messages, buffered events and the
    /// terminal event, for the session's finish. The terminal events are
    /// returned separately too, to be shown once committed.
    pub(crate) async fn take_tail(&mut self) -> (SessionAppend, Vec<EventEnvelope>) {
        let mut events = {
            let mut pending = self.log.pending.lock().await;
            pending.since = None;
            std::mem::take(&mut pending.events)
        };
        let terminal = std::mem::take(&mut self.terminal);
        events.extend(terminal.iter().cloned());
        let messages = std::mem::take(&mut self.held_messages);
        (SessionAppend::new(messages, events), terminal)
    }
}

/// A final answer: only assistant messages, none asking for tools. Nothing
/// slow follows one before the next event or the end of the run.
fn is_final_answer(messages: &[Message]) -> bool {
    !messages.is_empty()
        && messages
            .iter()
            .all(|m| m.role == Role::Assistant && m.tool_calls().next().is_none())
}

#[async_trait]
impl RunSink for StoreSink {
    async fn event(&mut self, event: AgentEvent) -> Result<(), SinkError> {
        self.last_seq += 1;
        let envelope = EventEnvelope::new(self.log.session_id, self.last_seq, event);
        if envelope.event.is_terminal() {
            self.terminal.push(envelope);
            return Ok(());
        }
        self.log.show(envelope.clone());
        let mut pending = self.log.pending.lock().await;
        pending.since.get_or_insert_with(Instant::now);
        pending.events.push(envelope);
        if pending.events.len() >= FLUSH_EVENTS {
            self.log
                .write(&mut pending, Vec::new())
                .await
                .map_err(SinkError::failed)?;
        }
        Ok(())
    }

    async fn messages(&mut self, messages: &[Message]) -> Result<(), SinkError> {
        if is_final_answer(messages) {
            self.held_messages.extend_from_slice(messages);
            return Ok(());
        }
        self.commit(messages.to_vec()).await
    }
}
