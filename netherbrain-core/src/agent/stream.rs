//! [`RunStream`]: a run on its own task, as a stream of events.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::builder::Agent;
use super::request::{RunControl, RunFailure, RunOutcome, RunRequest};
use super::sink::{RunSink, SinkError};
use crate::event::AgentEvent;
use crate::message::Message;
use crate::session::SessionStatus;

/// Events buffered between the run task and the consumer.
const CHANNEL_CAPACITY: usize = 256;

/// The events of a run executing on a spawned task; see
/// [`Agent::run_stream`].
///
/// The stream ends after `RUN_FINISHED` or `RUN_ERROR`. Dropping it does not
/// stop the run (cancel [`RunControl::cancel`] for that); the remaining
/// events are then discarded.
pub struct RunStream {
    events: mpsc::Receiver<AgentEvent>,
    handle: JoinHandle<RunOutcome>,
}

impl fmt::Debug for RunStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunStream").finish_non_exhaustive()
    }
}

impl RunStream {
    pub(super) fn spawn(agent: Arc<Agent>, request: RunRequest, control: RunControl) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let handle = tokio::spawn(async move {
            let mut sink = ChannelSink { tx };
            agent.run(request, control, &mut sink).await
        });
        Self { events: rx, handle }
    }

    /// Waits for the run to end and returns its outcome. Events not yet
    /// consumed are discarded.
    pub async fn outcome(self) -> RunOutcome {
        let Self { events, handle } = self;
        drop(events);
        match handle.await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::error!(error = %err, "the run task failed");
                let mut outcome = RunOutcome::new(SessionStatus::Failed);
                outcome.error = Some(RunFailure::new("panic", err.to_string()));
                outcome
            }
        }
    }

    /// The task running the agent, for callers that manage it themselves
    /// (abort it, or await it without consuming the stream).
    #[must_use]
    pub fn into_parts(self) -> (mpsc::Receiver<AgentEvent>, JoinHandle<RunOutcome>) {
        (self.events, self.handle)
    }
}

impl Stream for RunStream {
    type Item = AgentEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AgentEvent>> {
        self.events.poll_recv(cx)
    }
}

/// Forwards events to the stream; messages travel in the outcome.
struct ChannelSink {
    tx: mpsc::Sender<AgentEvent>,
}

#[async_trait]
impl RunSink for ChannelSink {
    async fn event(&mut self, event: AgentEvent) -> Result<(), SinkError> {
        // a consumer that went away does not stop the run
        let _ = self.tx.send(event).await;
        Ok(())
    }

    async fn messages(&mut self, _messages: &[Message]) -> Result<(), SinkError> {
        Ok(())
    }
}
