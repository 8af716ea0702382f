//! Several processes serving one deployment: how a run's events reach
//! readers on other replicas, and how commands reach the replica running a
//! session.
//!
//! A run lives in the process that started it (its [lease](crate::store::SessionLease)
//! names that process). The store stays the source of truth; a [`Cluster`]
//! only carries what the store has not got yet or cannot say:
//!
//! - **Live events.** The owner [`publish`](Cluster::publish)es each event
//!   as it shows it to its own subscribers; a reader on another replica gets
//!   them from [`live_events`](Cluster::live_events) after replaying the
//!   persisted log. The runtime checks sequence numbers, so a cluster may
//!   lose or repeat events under pressure: a gap is filled from the store.
//! - **Commands.** Interrupt and steer sent to any replica are delivered to
//!   the owner with [`send_command`](Cluster::send_command), which waits for
//!   its [`CommandReply`].
//!
//! [`LocalCluster`] joins runtimes of one process (tests, embedders that
//! run several); `netherbrain-cluster` implements the trait over Redis.
//!
//! ```
//! use std::sync::Arc;
//! use netherbrain_core::cluster::{Cluster, LocalCluster};
//! use netherbrain_core::runtime::Runtime;
//! use netherbrain_core::store::MemoryStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let cluster: Arc<dyn Cluster> = Arc::new(LocalCluster::new());
//! let a = Runtime::new(store.clone());
//! let b = Runtime::new(store);
//! a.join_cluster(cluster.clone());
//! b.join_cluster(cluster);
//! assert!(a.cluster().is_some());
//! # });
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::event::EventEnvelope;
use crate::ids::{EventSeq, SessionId};

/// Why the cluster could not do something.
///
/// ```
/// use netherbrain_core::cluster::ClusterError;
/// let e = ClusterError::NoListener("host/1/ab".into());
/// assert!(e.to_string().contains("host/1/ab"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The engine behind the cluster (Redis) cannot be reached.
    #[error("the cluster is unavailable: {0}")]
    Unavailable(String),
    /// No process listens for commands under this owner name (it stopped).
    #[error("no replica named {0} is listening")]
    NoListener(String),
    /// The owner did not answer in time.
    #[error("replica {owner} did not answer within {timeout:?}")]
    Timeout {
        /// The replica asked.
        owner: String,
        /// How long the sender waited.
        timeout: Duration,
    },
    /// A message could not be read.
    #[error("malformed cluster message: {0}")]
    Malformed(String),
}

/// What a replica asks of the replica running a session.
///
/// ```
/// use netherbrain_core::cluster::RunCommand;
/// let json = serde_json::to_string(&RunCommand::Steer { text: "shorter".into() }).unwrap();
/// assert_eq!(json, r#"{"kind":"steer","text":"shorter"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunCommand {
    /// Stop the run now; it commits what it produced.
    Interrupt,
    /// Inject user text at the next model round.
    Steer {
        /// The text.
        text: String,
    },
}

/// The owner's answer to a [`RunCommand`].
///
/// ```
/// use netherbrain_core::cluster::CommandReply;
/// assert_eq!(serde_json::to_string(&CommandReply::Done).unwrap(), r#""done""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CommandReply {
    /// The command reached the run.
    Done,
    /// The session does not run there (any more): it has ended.
    NotRunning,
    /// The command was refused (blank steering text).
    Refused,
}

/// Carries out commands addressed to one process; the runtime registers
/// one with [`Cluster::serve_commands`].
#[async_trait]
pub trait CommandHandler: Send + Sync {
    /// Applies `command` to the session, if it runs here.
    async fn handle(&self, session_id: SessionId, command: RunCommand) -> CommandReply;
}

/// How the replicas of one deployment reach each other; see the
/// [module docs](self).
///
/// Implementations must not block in [`publish`](Self::publish) or
/// [`run_ended`](Self::run_ended): they are called on a run's hot path and
/// queue the work.
#[async_trait]
pub trait Cluster: Send + Sync + fmt::Debug {
    /// Hands a running session's event to readers on other replicas.
    fn publish(&self, envelope: &EventEnvelope);

    /// The session's run has ended and its terminal event was published:
    /// what the cluster holds for it may go soon.
    fn run_ended(&self, session_id: SessionId);

    /// Events of a session running elsewhere with `seq > after`, in order,
    /// as far as the cluster has them: the ones it still holds, then new
    /// ones as they are published. The stream may skip events (the caller
    /// fills gaps from the store) and ends when the cluster loses track
    /// (the caller opens another).
    ///
    /// # Errors
    ///
    /// [`ClusterError::Unavailable`].
    async fn live_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
    ) -> Result<BoxStream<'static, EventEnvelope>, ClusterError>;

    /// The events of a session the cluster still holds with `seq > after`,
    /// in order (none once it has let them go). A replica recovering a
    /// session whose process died writes them to the session's log first,
    /// so what readers were shown is kept.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Unavailable`].
    async fn held_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
    ) -> Result<Vec<EventEnvelope>, ClusterError>;

    /// Delivers a command to the process named `owner` and waits for its
    /// reply.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoListener`] when no such process listens,
    /// [`ClusterError::Timeout`], [`ClusterError::Unavailable`].
    async fn send_command(
        &self,
        owner: &str,
        session_id: SessionId,
        command: RunCommand,
    ) -> Result<CommandReply, ClusterError>;

    /// Starts delivering commands addressed to `owner` to `handler` (until
    /// the cluster is dropped).
    fn serve_commands(&self, owner: &str, handler: Arc<dyn CommandHandler>);

    /// A [conversation feed](crate::conversation::ConversationFeed) whose
    /// notices also reach the followers on the other replicas, if the
    /// cluster carries them; the conversation service of a runtime that
    /// joined the cluster uses it. Default: none (followers find other
    /// replicas' runs when they re-read the store).
    fn feed(&self) -> Option<Arc<dyn crate::conversation::ConversationFeed>> {
        None
    }

    /// Checks that the engine behind the cluster answers.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Unavailable`].
    async fn ping(&self) -> Result<(), ClusterError>;
}

/// Events a [`LocalCluster`] keeps per session for late readers.
const LOCAL_KEEP: usize = 1024;

#[derive(Default)]
struct LocalState {
    /// Per session: the recent events and the channel of new ones.
    sessions: HashMap<SessionId, (Vec<EventEnvelope>, broadcast::Sender<EventEnvelope>)>,
    handlers: HashMap<String, Arc<dyn CommandHandler>>,
}

/// A [`Cluster`] of runtimes in one process, over channels.
///
/// ```
/// use netherbrain_core::cluster::LocalCluster;
/// let cluster = LocalCluster::new();
/// assert_eq!(format!("{cluster:?}"), "LocalCluster { sessions: 0, listeners: 0 }");
/// ```
#[derive(Default)]
pub struct LocalCluster {
    state: Mutex<LocalState>,
}

impl fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("LocalCluster")
            .field("sessions", &state.sessions.len())
            .field("listeners", &state.handlers.len())
            .finish()
    }
}

impl LocalCluster {
    /// An empty cluster.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Cluster for LocalCluster {
    fn publish(&self, envelope: &EventEnvelope) {
        let mut state = self.lock();
        let (kept, tx) = state
            .sessions
            .entry(envelope.session_id)
            .or_insert_with(|| (Vec::new(), broadcast::channel(LOCAL_KEEP).0));
        kept.push(envelope.clone());
        if kept.len() > LOCAL_KEEP {
            kept.remove(0);
        }
        let _ = tx.send(envelope.clone());
    }

    fn run_ended(&self, session_id: SessionId) {
        self.lock().sessions.remove(&session_id);
    }

    async fn live_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
    ) -> Result<BoxStream<'static, EventEnvelope>, ClusterError> {
        let (kept, rx) = {
            let mut state = self.lock();
            let (kept, tx) = state
                .sessions
                .entry(session_id)
                .or_insert_with(|| (Vec::new(), broadcast::channel(LOCAL_KEEP).0));
            let kept: Vec<EventEnvelope> = kept.iter().filter(|e| e.seq > after).cloned().collect();
            (kept, tx.subscribe())
        };
        let last = kept.last().map_or(after, |e| e.seq);
        let live = futures::stream::unfold((rx, last), |(mut rx, last)| async move {
            loop {
                match rx.recv().await {
                    Ok(e) if e.seq <= last => {}
                    Ok(e) => {
                        let seq = e.seq;
                        return Some((e, (rx, seq)));
                    }
                    // Lagged or closed: end; the reader fills the gap.
                    Err(_) => return None,
                }
            }
        });
        Ok(futures::stream::iter(kept).chain(live).boxed())
    }

    async fn held_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
    ) -> Result<Vec<EventEnvelope>, ClusterError> {
        Ok(self
            .lock()
            .sessions
            .get(&session_id)
            .map(|(kept, _)| kept.iter().filter(|e| e.seq > after).cloned().collect())
            .unwrap_or_default())
    }

    async fn send_command(
        &self,
        owner: &str,
        session_id: SessionId,
        command: RunCommand,
    ) -> Result<CommandReply, ClusterError> {
        let handler = self
            .lock()
            .handlers
            .get(owner)
            .cloned()
            .ok_or_else(|| ClusterError::NoListener(owner.to_owned()))?;
        Ok(handler.handle(session_id, command).await)
    }

    fn serve_commands(&self, owner: &str, handler: Arc<dyn CommandHandler>) {
        self.lock().handlers.insert(owner.to_owned(), handler);
    }

    async fn ping(&self) -> Result<(), ClusterError> {
        Ok(())
    }
}
