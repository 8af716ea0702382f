//! The sink a runtime-managed run writes to: it numbers events, shows them
//! to subscribers at once and persists them with the run's messages.

use std::sync::Arc;

use async_trait::async_trait;

use super::log::LiveLog;
use crate::agent::{RunSink, SinkError};
use crate::event::{AgentEvent, EventEnvelope};
use crate::ids::SessionId;
use crate::message::Message;
use crate::store::{SessionAppend, StateStore};

/// Events buffered before they are written without waiting for a message.
const FLUSH_EVENTS: usize = 128;

/// Persists a run: each completed message is committed in one transaction
/// together with the events buffered before it, so a committed turn and its
/// events survive a crash together. Events reach live subscribers before
/// they are persisted; the live log holds them until the run ends.
#[derive(Debug)]
pub(crate) struct StoreSink {
    store: Arc<dyn StateStore>,
    session_id: SessionId,
    log: Arc<LiveLog>,
    pending: Vec<EventEnvelope>,
    /// Sequence number of the last event.
    last_seq: crate::ids::EventSeq,
}

impl StoreSink {
    pub(crate) fn new(
        store: Arc<dyn StateStore>,
        session_id: SessionId,
        log: Arc<LiveLog>,
    ) -> Self {
        Self {
            store,
            session_id,
            last_seq: log.len(),
            log,
            pending: Vec::new(),
        }
    }

    async fn commit(&mut self, messages: Vec<Message>) -> Result<(), SinkError> {
        if messages.is_empty() && self.pending.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.pending);
        self.store
            .append(self.session_id, SessionAppend::new(messages, events))
            .await
            .map_err(SinkError::failed)
    }

    /// Writes buffered events.
    pub(crate) async fn flush(&mut self) -> Result<(), SinkError> {
        self.commit(Vec::new()).await
    }
}

#[async_trait]
impl RunSink for StoreSink {
    async fn event(&mut self, event: AgentEvent) -> Result<(), SinkError> {
        let terminal = event.is_terminal();
        self.last_seq += 1;
        let envelope = EventEnvelope::new(self.session_id, self.last_seq, event);
        self.pending.push(envelope.clone());
        self.log.push(envelope);
        if terminal || self.pending.len() >= FLUSH_EVENTS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn messages(&mut self, messages: &[Message]) -> Result<(), SinkError> {
        self.commit(messages.to_vec()).await
    }
}
