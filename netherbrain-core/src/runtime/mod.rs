//! The session runtime: runs agents in the background, one run at a time
//! per conversation, and lets anyone subscribe, interrupt, steer or drain.
//!
//! - [`Runtime::start`] records a session (its input durable before the
//!   model is called) and runs it in a task. A second start in the same
//!   conversation is [`RuntimeError::Busy`] naming the active session.
//! - [`Runtime::subscribe`] streams a session's events after a given id:
//!   the live tail while it runs, the persisted log once it has finished.
//! - [`Runtime::interrupt`] / [`Runtime::steer`] act on a running session
//!   (or, with the `_conversation` variants, on a conversation's).
//! - [`Runtime::drain`] refuses new runs, waits for running ones, then
//!   interrupts what is left; [`Runtime::recover`] marks sessions a crash
//!   left running as interrupted.
//! - [`Runtime::observe`] registers a [`RunObserver`] that hears of every
//!   run started and finished (metrics, the conversation feed).
//!
//! Most surfaces start runs through the
//! [conversation service](crate::conversation), which resolves presets,
//! checks ownership and then calls [`Runtime::start`].
//!
//! ```
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use netherbrain_core::agent::Agent;
//! use netherbrain_core::runtime::{Runtime, StartRun};
//! use netherbrain_core::store::prelude::*;
//! use netherbrain_core::store::{MemoryStore, NewConversation, NewUser, UserRole};
//! use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
//! use netherbrain_core::{AgentEvent, Message};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let user = store.create_user(NewUser::new("ada", UserRole::User)).await.unwrap();
//! let conversation = store.create_conversation(NewConversation::new(user.id)).await.unwrap();
//!
//! let provider = Arc::new(ScriptedProvider::new([ScriptedResponse::text("Hello!")]));
//! let agent = Arc::new(Agent::builder(provider, "test-model").build());
//! let runtime = Runtime::new(store.clone());
//!
//! let run = runtime
//!     .start(StartRun::new(conversation.id, agent, vec![Message::user("Hi")]))
//!     .await
//!     .unwrap();
//! let events: Vec<_> = runtime.subscribe(run.session_id, 0).await.unwrap().collect().await;
//! assert!(matches!(events.last().unwrap().event, AgentEvent::RunFinished { .. }));
//! # });
//! ```

mod config;
mod log;
mod maintenance;
mod observer;
mod remote;
mod sink;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use futures::stream::BoxStream;
use tokio::sync::watch;
use tracing::Instrument;

pub use self::config::RuntimeConfig;
pub use self::observer::RunObserver;

use self::log::LiveLog;
use self::sink::{RunLog, SharedPending, StoreSink};
use crate::agent::{
    Agent, RunControl, RunOutcome, RunRequest, SteeringQueue, ToolDecision, pending_tool_calls,
};
use crate::cluster::{Cluster, CommandHandler, CommandReply, RunCommand};
use crate::event::{AgentEvent, EventEnvelope};
use crate::ids::{ConversationId, EventSeq, PresetId, SessionId};
use crate::message::Message;
use crate::session::SessionStatus;
use crate::store::{NewSession, Session, SessionFinish, SessionLease, StateStore, StoreError};

/// Why the runtime refused or failed a request.
///
/// ```
/// use netherbrain_core::runtime::RuntimeError;
/// use netherbrain_core::SessionId;
/// let e = RuntimeError::Busy { session_id: SessionId::new() };
/// assert!(e.to_string().starts_with("conversation is busy"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The conversation already has a running session.
    #[error("conversation is busy with session {session_id}")]
    Busy {
        /// The running session.
        session_id: SessionId,
    },
    /// The runtime is draining and accepts no new runs.
    #[error("the runtime is shutting down and accepts no new runs")]
    Draining,
    /// The session is not running (in this process).
    #[error("session {0} is not running")]
    NotRunning(SessionId),
    /// The conversation has no running session.
    #[error("conversation {0} has no running session")]
    NoActiveSession(ConversationId),
    /// The session runs in another process (its lease is held there), which
    /// this one cannot reach.
    #[error("session {0} is running in another process")]
    RunningElsewhere(SessionId),
    /// A resume does not match the pending tool calls.
    #[error("invalid resume: {0}")]
    InvalidResume(String),
    /// The input is empty or otherwise unusable.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No preset was given and the conversation has none.
    #[error("no preset given and the conversation has no default preset")]
    NoPreset,
    /// The preset cannot be turned into an agent.
    #[error(transparent)]
    Catalog(#[from] crate::agent::CatalogError),
    /// A store call failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to run: a conversation, the agent, and the new input or a resume.
///
/// ```
/// # use std::sync::Arc;
/// use netherbrain_core::runtime::StartRun;
/// use netherbrain_core::{ConversationId, Message};
/// # fn agent() -> Arc<netherbrain_core::agent::Agent> {
/// #     let p = Arc::new(netherbrain_core::testing::ScriptedProvider::new([]));
/// #     Arc::new(netherbrain_core::agent::Agent::builder(p, "m").build())
/// # }
/// let start = StartRun::new(ConversationId::new(), agent(), vec![Message::user("hi")])
///     .with_project_dirs(vec!["/srv/project".into()]);
/// # let _ = start;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StartRun {
    /// The conversation (must exist).
    pub conversation_id: ConversationId,
    /// The configured agent.
    pub agent: Arc<Agent>,
    /// New user input (may be empty only for a resume).
    pub input: Vec<Message>,
    /// Preset recorded on the session.
    pub preset_id: Option<PresetId>,
    /// Where the history comes from: `None` continues the conversation's
    /// latest session; `Some(id)` branches from that session (a fork).
    pub parent_session_id: Option<SessionId>,
    /// Approvals, denials or results for the tool calls the parent session
    /// left pending.
    pub resume: Vec<ToolDecision>,
    /// Directories tools may touch.
    pub project_dirs: Vec<PathBuf>,
    /// Use this id for the new session.
    pub session_id: Option<SessionId>,
    /// The parent and history, when the caller has read them already.
    pub prepared: Option<PreparedHistory>,
    /// Held by the run until it ends (a quota slot of its owner).
    pub permit: Option<RunPermit>,
    /// Events streamed right after `RUN_STARTED` ([`RunRequest::notices`]).
    pub notices: Vec<AgentEvent>,
    /// The user's memories recalled for the run's system prompt.
    pub memories: Option<crate::memory::Recalled>,
}

/// Something a run holds until it ends — a slot of a quota, released when
/// the run (and so this value) is dropped.
///
/// ```
/// let permit = netherbrain_core::runtime::RunPermit::new(());
/// assert_eq!(format!("{permit:?}"), "RunPermit");
/// ```
#[derive(Clone)]
pub struct RunPermit(#[allow(dead_code)] Arc<dyn std::any::Any + Send + Sync>);

impl RunPermit {
    /// Wraps `held`; dropping the last clone drops it.
    #[must_use]
    pub fn new(held: impl std::any::Any + Send + Sync) -> Self {
        Self(Arc::new(held))
    }
}

impl std::fmt::Debug for RunPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunPermit")
    }
}

/// A run's parent session and the history it sees, read by the caller (the
/// [conversation service](crate::conversation) reads them while checking
/// the request), so [`Runtime::start`] does not read them again.
///
/// ```
/// use netherbrain_core::runtime::PreparedHistory;
/// let first_run = PreparedHistory::new(None, Vec::new());
/// assert!(first_run.parent.is_none());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PreparedHistory {
    /// The session the run continues; `None` for a conversation's first run.
    pub parent: Option<Session>,
    /// [`SessionStore::session_history`](crate::store::SessionStore::session_history) of `parent` (empty without one).
    pub messages: Vec<Message>,
}

impl PreparedHistory {
    /// A parent with its history.
    #[must_use]
    pub fn new(parent: Option<Session>, messages: Vec<Message>) -> Self {
        Self { parent, messages }
    }
}

impl StartRun {
    /// A run continuing the conversation with new input.
    #[must_use]
    pub fn new(conversation_id: ConversationId, agent: Arc<Agent>, input: Vec<Message>) -> Self {
        Self {
            conversation_id,
            agent,
            input,
            preset_id: None,
            parent_session_id: None,
            resume: Vec::new(),
            project_dirs: Vec::new(),
            session_id: None,
            prepared: None,
            permit: None,
            notices: Vec::new(),
            memories: None,
        }
    }

    /// Streams these events right after `RUN_STARTED` (why the run began).
    #[must_use]
    pub fn with_notices(mut self, notices: Vec<AgentEvent>) -> Self {
        self.notices = notices;
        self
    }

    /// Adds recalled memories to the run's system prompt.
    #[must_use]
    pub fn with_memories(mut self, memories: Option<crate::memory::Recalled>) -> Self {
        self.memories = memories;
        self
    }

    /// Uses a parent and history the caller has read already; the runtime
    /// trusts them and reads neither.
    #[must_use]
    pub fn with_prepared(mut self, prepared: PreparedHistory) -> Self {
        self.parent_session_id = prepared.parent.as_ref().map(|p| p.id);
        self.prepared = Some(prepared);
        self
    }

    /// Sets the preset recorded on the session.
    #[must_use]
    pub fn with_preset(mut self, preset: Option<PresetId>) -> Self {
        self.preset_id = preset;
        self
    }

    /// Branches from a given session instead of the latest one.
    #[must_use]
    pub fn with_parent(mut self, parent: SessionId) -> Self {
        self.parent_session_id = Some(parent);
        self
    }

    /// Hold `permit` until the run ends.
    #[must_use]
    pub fn with_permit(mut self, permit: RunPermit) -> Self {
        self.permit = Some(permit);
        self
    }

    /// Resumes pending tool calls with these decisions.
    #[must_use]
    pub fn with_resume(mut self, decisions: Vec<ToolDecision>) -> Self {
        self.resume = decisions;
        self
    }

    /// Sets the project directories.
    #[must_use]
    pub fn with_project_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.project_dirs = dirs;
        self
    }

    /// Uses a caller-chosen session id.
    #[must_use]
    pub fn with_session_id(mut self, id: SessionId) -> Self {
        self.session_id = Some(id);
        self
    }
}

/// A started run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunHandle {
    /// The new session.
    pub session_id: SessionId,
    /// Its conversation.
    pub conversation_id: ConversationId,
}

impl RunHandle {
    /// A handle.
    ///
    /// ```
    /// use netherbrain_core::runtime::RunHandle;
    /// use netherbrain_core::{ConversationId, SessionId};
    /// let h = RunHandle::new(SessionId::new(), ConversationId::new());
    /// # let _ = h;
    /// ```
    #[must_use]
    pub fn new(session_id: SessionId, conversation_id: ConversationId) -> Self {
        Self {
            session_id,
            conversation_id,
        }
    }
}

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Runs that finished on their own within the timeout.
    pub finished: usize,
    /// Runs interrupted when the timeout passed.
    pub interrupted: Vec<SessionId>,
}

#[derive(Debug)]
struct ActiveRun {
    session_id: SessionId,
    conversation_id: ConversationId,
    control: RunControl,
    log: RunLog,
}

#[derive(Debug, Default)]
struct Registry {
    by_session: HashMap<SessionId, Arc<ActiveRun>>,
    by_conversation: HashMap<ConversationId, SessionId>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn StateStore>,
    config: RuntimeConfig,
    registry: Mutex<Registry>,
    draining: watch::Sender<bool>,
    /// Number of running runs; drain waits for zero.
    running: watch::Sender<usize>,
    observers: RwLock<Vec<Arc<dyn RunObserver>>>,
    /// Whether the maintenance task runs.
    maintained: std::sync::atomic::AtomicBool,
    /// The replicas this runtime shares its runs with, once joined.
    cluster: OnceLock<Arc<dyn Cluster>>,
    /// A shutdown was announced: still running, no longer ready.
    stopping: std::sync::atomic::AtomicBool,
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The runs going now.
    fn actives(&self) -> Vec<Arc<ActiveRun>> {
        self.registry().by_session.values().cloned().collect()
    }

    fn is_registered(&self, session_id: SessionId) -> bool {
        self.registry().by_session.contains_key(&session_id)
    }
}

/// Runs agents in the background; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// A runtime over a store.
    #[must_use]
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self::with_config(store, RuntimeConfig::default())
    }

    /// A runtime with explicit configuration.
    #[must_use]
    pub fn with_config(store: Arc<dyn StateStore>, config: RuntimeConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                registry: Mutex::new(Registry::default()),
                draining: watch::channel(false).0,
                running: watch::channel(0).0,
                observers: RwLock::new(Vec::new()),
                maintained: std::sync::atomic::AtomicBool::new(false),
                cluster: OnceLock::new(),
                stopping: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Shares this runtime's runs with the other replicas of `cluster`:
    /// its runs' events are published there, readers of sessions running
    /// elsewhere follow them live, and commands for its sessions sent to
    /// any replica reach it. Joins once; later calls are ignored.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::cluster::LocalCluster;
    /// use netherbrain_core::runtime::Runtime;
    /// use netherbrain_core::store::MemoryStore;
    /// let runtime = Runtime::new(Arc::new(MemoryStore::new()));
    /// runtime.join_cluster(Arc::new(LocalCluster::new()));
    /// assert!(runtime.cluster().is_some());
    /// ```
    pub fn join_cluster(&self, cluster: Arc<dyn Cluster>) {
        if self.inner.cluster.set(cluster.clone()).is_ok() {
            cluster.serve_commands(
                &self.inner.config.owner,
                Arc::new(Commands(Arc::downgrade(&self.inner))),
            );
        }
    }

    /// The cluster joined with [`join_cluster`](Self::join_cluster).
    #[must_use]
    pub fn cluster(&self) -> Option<&Arc<dyn Cluster>> {
        self.inner.cluster.get()
    }

    /// Starts the maintenance task (once): it writes events that waited
    /// too long, renews this runtime's leases and recovers sessions whose
    /// process died. Needs a Tokio runtime.
    fn maintain(&self) {
        use std::sync::atomic::Ordering;
        if !self.inner.maintained.swap(true, Ordering::AcqRel) {
            tokio::spawn(maintenance::run(Arc::downgrade(&self.inner)));
        }
    }

    /// The store this runtime persists to.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    /// Registers an observer of every run started from now on.
    pub fn observe(&self, observer: Arc<dyn RunObserver>) {
        self.inner
            .observers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(observer);
    }

    /// Tells every observer (they are quick by contract, so under the lock).
    fn notify(&self, f: impl Fn(&dyn RunObserver)) {
        let observers = self
            .inner
            .observers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for observer in observers.iter() {
            f(observer.as_ref());
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.registry()
    }

    /// Recovers sessions a crashed process left running — those whose
    /// lease has expired — as interrupted, and starts the maintenance task
    /// that keeps doing so (and renews this runtime's own leases). Call at
    /// start-up. Sessions another live process runs are left alone.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn recover(&self) -> Result<Vec<SessionId>, RuntimeError> {
        self.maintain();
        self.recover_expired().await
    }

    /// Recovers, now, every session whose lease has expired (see
    /// [`recover`](Self::recover)); returns their ids.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn recover_expired(&self) -> Result<Vec<SessionId>, RuntimeError> {
        let recovered = maintenance::recover_abandoned(&self.inner).await?;
        if !recovered.is_empty() {
            tracing::info!(
                count = recovered.len(),
                "marked sessions left behind by a stopped process as interrupted"
            );
        }
        Ok(recovered)
    }

    /// For a session the store says is active but that does not run here:
    /// recovers it when its lease has expired (returning `true`), or says
    /// which process has it.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::RunningElsewhere`] while its lease is live; store
    /// failures.
    pub async fn release_if_abandoned(&self, session: &Session) -> Result<bool, RuntimeError> {
        if !session.status.is_active() || self.is_running(session.id) {
            return Ok(false);
        }
        let live = session
            .lease
            .as_ref()
            .is_some_and(|l| !l.is_expired(chrono::Utc::now()));
        if live {
            return Err(RuntimeError::RunningElsewhere(session.id));
        }
        let recovered = self.recover_expired().await?;
        Ok(recovered.contains(&session.id))
    }

    /// Announces a coming shutdown: runs are still taken, but
    /// [`is_ready`](Self::is_ready) turns false, so a load balancer moves
    /// new work to other replicas before [`drain`](Self::drain) refuses it.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let runtime = netherbrain_core::runtime::Runtime::new(Arc::new(netherbrain_core::store::MemoryStore::new()));
    /// assert!(runtime.is_ready());
    /// runtime.announce_shutdown();
    /// assert!(!runtime.is_ready() && !runtime.is_draining());
    /// ```
    pub fn announce_shutdown(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether this runtime should get new work: no shutdown announced and
    /// no drain begun.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        !self
            .inner
            .stopping
            .load(std::sync::atomic::Ordering::Acquire)
            && !self.is_draining()
    }

    /// Whether [`drain`](Self::drain) has begun.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        *self.inner.draining.borrow()
    }

    /// Number of runs in progress in this process.
    #[must_use]
    pub fn running_count(&self) -> usize {
        *self.inner.running.borrow()
    }

    /// The running session of a conversation, if it runs in this process.
    #[must_use]
    pub fn active_session(&self, conversation_id: ConversationId) -> Option<SessionId> {
        self.registry()
            .by_conversation
            .get(&conversation_id)
            .copied()
    }

    /// Whether a session is running in this process.
    #[must_use]
    pub fn is_running(&self, session_id: SessionId) -> bool {
        self.registry().by_session.contains_key(&session_id)
    }

    /// Records a new session and runs it in the background.
    ///
    /// The session's input is durable when this returns.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Busy`] if the conversation has a running session,
    /// [`RuntimeError::Draining`], [`RuntimeError::InvalidResume`] when the
    /// decisions do not match the pending calls, or a store error (unknown
    /// conversation or parent → `NotFound`).
    pub async fn start(&self, mut start: StartRun) -> Result<RunHandle, RuntimeError> {
        if self.is_draining() {
            return Err(RuntimeError::Draining);
        }
        let conversation_id = start.conversation_id;
        if let Some(active) = self.active_session(conversation_id) {
            return Err(RuntimeError::Busy { session_id: active });
        }
        let store = &self.inner.store;
        let (parent, history) = match start.prepared.take() {
            Some(prepared) => (prepared.parent, prepared.messages),
            None => {
                let parent = match start.parent_session_id {
                    Some(parent) => Some(store.get_session(parent).await?),
                    None => store.latest_session(conversation_id).await?,
                };
                let history = match &parent {
                    Some(parent) => store.session_history(parent.id).await?,
                    None => Vec::new(),
                };
                (parent, history)
            }
        };
        if let Some(parent) = &parent
            && parent.status.is_active()
        {
            return Err(RuntimeError::Busy {
                session_id: parent.id,
            });
        }
        validate_start(&start, parent.as_ref(), &history)?;

        let session_id = start.session_id.unwrap_or_default();
        let config = &self.inner.config;
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(config.lease).unwrap_or(chrono::Duration::MAX);
        let new_session = NewSession::new(conversation_id, start.input.clone())
            .with_id(session_id)
            .with_parent(parent.as_ref().map(|p| p.id))
            .with_preset(start.preset_id)
            .with_lease(SessionLease::new(config.owner.clone(), expires));
        let session = store
            .create_session(new_session)
            .await
            .map_err(|e| match e {
                StoreError::Busy { active } => RuntimeError::Busy { session_id: active },
                other => RuntimeError::Store(other),
            })?;

        let control = RunControl::default();
        let log = RunLog {
            store: store.clone(),
            session_id,
            live: Arc::new(LiveLog::new(config.live_events, config.live_bytes)),
            pending: SharedPending::default(),
            cluster: self.inner.cluster.get().cloned(),
        };
        let active = Arc::new(ActiveRun {
            session_id,
            conversation_id,
            control: control.clone(),
            log: log.clone(),
        });
        let lost_race = {
            let mut registry = self.registry();
            match registry.by_conversation.get(&conversation_id) {
                Some(&other) => Some(other),
                None => {
                    registry.by_session.insert(session_id, active.clone());
                    registry.by_conversation.insert(conversation_id, session_id);
                    None
                }
            }
        };
        if let Some(other) = lost_race {
            // Another start in this process won a race the store did not see
            // (it was not yet recorded); undo ours.
            let _ = store
                .finish_session(session_id, SessionFinish::new(SessionStatus::Failed))
                .await;
            return Err(RuntimeError::Busy { session_id: other });
        }
        self.inner.running.send_modify(|n| *n += 1);
        self.maintain();
        let handle = RunHandle {
            session_id,
            conversation_id,
        };
        let running = self.running_count();
        self.notify(|o| o.run_started(&handle, running));

        let request = RunRequest::new(conversation_id, session_id)
            .with_history(history)
            .with_input(start.input)
            .with_resume(start.resume)
            .with_project_dirs(start.project_dirs)
            .with_notices(std::mem::take(&mut start.notices))
            .with_memories(start.memories.take());
        let runtime = self.clone();
        let span = tracing::info_span!("run", %session_id, %conversation_id);
        let permit = start.permit.take();
        tokio::spawn(
            async move {
                runtime
                    .drive(session, start.agent, request, control, log)
                    .await;
                drop(permit);
            }
            .instrument(span),
        );
        Ok(handle)
    }

    /// Runs the agent, persists the outcome, then releases the conversation.
    async fn drive(
        &self,
        session: Session,
        agent: Arc<Agent>,
        request: RunRequest,
        control: RunControl,
        run_log: RunLog,
    ) {
        let store = self.inner.store.clone();
        let session_id = session.id;
        let log = run_log.live.clone();
        let shown = run_log.clone();
        let mut sink = StoreSink::new(run_log);
        // A panicking tool or provider must not leave the conversation busy
        // forever: the panic is caught and the run fails.
        let outcome = AssertUnwindSafe(agent.run(request, control, &mut sink))
            .catch_unwind()
            .await;
        let (finish, terminal) = match outcome {
            Ok(outcome) => {
                let (tail, terminal) = sink.take_tail().await;
                (finish_from_outcome(outcome).with_tail(tail), terminal)
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "agent run panicked");
                let message = "the run stopped unexpectedly".to_owned();
                let (mut tail, _) = sink.take_tail().await;
                let envelope = sink.number(AgentEvent::RunError {
                    message: message.clone(),
                    code: Some("internal".into()),
                });
                tail.events.push(envelope.clone());
                let mut finish = SessionFinish::new(SessionStatus::Failed).with_tail(tail);
                finish.error = Some(message);
                (finish, vec![envelope])
            }
        };
        // The run's last messages, its terminal event and its end commit in
        // one transaction; only then do subscribers see the terminal event.
        let finished = match store.finish_session(session_id, finish).await {
            Ok(session) => Some(session),
            Err(err) => {
                tracing::error!(error = %err, "could not record the end of a run");
                None
            }
        };
        for envelope in terminal {
            shown.show(envelope);
        }
        {
            let mut registry = self.registry();
            registry.by_session.remove(&session_id);
            if registry.by_conversation.get(&session.conversation_id) == Some(&session_id) {
                registry.by_conversation.remove(&session.conversation_id);
            }
        }
        log.close();
        if let Some(cluster) = &shown.cluster {
            cluster.run_ended(session_id);
        }
        self.inner.running.send_modify(|n| *n = n.saturating_sub(1));
        let handle = RunHandle {
            session_id,
            conversation_id: session.conversation_id,
        };
        let running = self.running_count();
        self.notify(|o| o.run_finished(&handle, finished.as_ref(), running));
    }

    /// Streams a session's events with sequence numbers above `after`
    /// (`0` for all): the live tail while it runs, ending when it ends; the
    /// stored log when it has finished. A session running in another
    /// process is followed until it ends too: through the
    /// [cluster](Self::join_cluster) when there is one, else by reading the
    /// store as it grows.
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown session.
    pub async fn subscribe(
        &self,
        session_id: SessionId,
        after: EventSeq,
    ) -> Result<BoxStream<'static, EventEnvelope>, RuntimeError> {
        let live = self
            .registry()
            .by_session
            .get(&session_id)
            .map(|a| a.log.live.clone());
        if live.is_none() {
            let session = self.inner.store.get_session(session_id).await?;
            let leased_elsewhere = session
                .lease
                .as_ref()
                .is_some_and(|l| !l.is_expired(chrono::Utc::now()));
            if session.status.is_active() && leased_elsewhere && !self.is_running(session_id) {
                return Ok(remote::subscribe(
                    self.inner.store.clone(),
                    self.inner.cluster.get().cloned(),
                    session_id,
                    after,
                ));
            }
        }
        // A run that finished between the lookup and now is still served
        // whole from its live log, which outlives the registry entry.
        Ok(log::subscribe(
            self.inner.store.clone(),
            session_id,
            live,
            after,
        ))
    }

    /// Waits for a session to end and returns it as stored.
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown session.
    pub async fn wait(&self, session_id: SessionId) -> Result<Session, RuntimeError> {
        let live = self
            .registry()
            .by_session
            .get(&session_id)
            .map(|a| a.log.live.clone());
        if live.is_some() {
            let mut running = self.inner.running.subscribe();
            while self.is_running(session_id) {
                if running.changed().await.is_err() {
                    break;
                }
            }
        }
        Ok(self.inner.store.get_session(session_id).await?)
    }

    fn active(&self, session_id: SessionId) -> Result<Arc<ActiveRun>, RuntimeError> {
        self.registry()
            .by_session
            .get(&session_id)
            .cloned()
            .ok_or(RuntimeError::NotRunning(session_id))
    }

    fn active_in(&self, conversation_id: ConversationId) -> Result<Arc<ActiveRun>, RuntimeError> {
        let registry = self.registry();
        registry
            .by_conversation
            .get(&conversation_id)
            .and_then(|id| registry.by_session.get(id))
            .cloned()
            .ok_or(RuntimeError::NoActiveSession(conversation_id))
    }

    /// Interrupts a running session: it stops at once and commits what it
    /// produced.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NotRunning`].
    pub fn interrupt(&self, session_id: SessionId) -> Result<(), RuntimeError> {
        self.active(session_id)?.control.cancel.cancel();
        Ok(())
    }

    /// Interrupts a conversation's running session and returns its id.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NoActiveSession`].
    pub fn interrupt_conversation(
        &self,
        conversation_id: ConversationId,
    ) -> Result<SessionId, RuntimeError> {
        let active = self.active_in(conversation_id)?;
        active.control.cancel.cancel();
        Ok(active.session_id)
    }

    /// Queues user text for a running session; it is injected at the next
    /// model-round boundary.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NotRunning`] or empty text.
    pub fn steer(
        &self,
        session_id: SessionId,
        text: impl Into<String>,
    ) -> Result<(), RuntimeError> {
        let text = non_empty(text.into())?;
        steer_queue(&self.active(session_id)?.control.steering, text);
        Ok(())
    }

    /// Steers a conversation's running session and returns its id.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NoActiveSession`] or empty text.
    pub fn steer_conversation(
        &self,
        conversation_id: ConversationId,
        text: impl Into<String>,
    ) -> Result<SessionId, RuntimeError> {
        let text = non_empty(text.into())?;
        let active = self.active_in(conversation_id)?;
        steer_queue(&active.control.steering, text);
        Ok(active.session_id)
    }

    /// Steers a conversation's running session with text and events to
    /// stream just before it (see [`SteeringQueue::push_with_notices`]);
    /// returns the session's id.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NoActiveSession`] or empty text.
    pub fn steer_conversation_with_notices(
        &self,
        conversation_id: ConversationId,
        text: impl Into<String>,
        notices: Vec<AgentEvent>,
    ) -> Result<SessionId, RuntimeError> {
        let text = non_empty(text.into())?;
        let active = self.active_in(conversation_id)?;
        active.control.steering.push_with_notices(text, notices);
        Ok(active.session_id)
    }

    /// Delivers `command` to a session the store says is active but that
    /// does not run in this process: to the process holding its lease,
    /// through the [cluster](Self::join_cluster). A session whose lease has
    /// expired is recovered instead (which is what an interrupt asks).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NotRunning`] when the session has ended (or was
    /// recovered and the command was a steer);
    /// [`RuntimeError::RunningElsewhere`] when its process cannot be
    /// reached (no cluster, or it does not answer);
    /// [`RuntimeError::InvalidInput`] for blank steering text.
    pub async fn command_elsewhere(
        &self,
        session: &Session,
        command: RunCommand,
    ) -> Result<(), RuntimeError> {
        if let RunCommand::Steer { text } = &command {
            non_empty(text.clone())?;
        }
        if self.is_running(session.id) {
            return match Commands::apply(self, session.id, command) {
                CommandReply::Done => Ok(()),
                CommandReply::Refused => Err(RuntimeError::InvalidInput(
                    "steering text must not be empty".into(),
                )),
                _ => Err(RuntimeError::NotRunning(session.id)),
            };
        }
        if !session.status.is_active() {
            return Err(RuntimeError::NotRunning(session.id));
        }
        let owner = session
            .lease
            .as_ref()
            .filter(|l| !l.is_expired(chrono::Utc::now()))
            .map(|l| l.owner.clone());
        let Some(owner) = owner else {
            let recovered = self.release_if_abandoned(session).await?;
            return match command {
                RunCommand::Interrupt if recovered => Ok(()),
                _ => Err(RuntimeError::NotRunning(session.id)),
            };
        };
        let Some(cluster) = self.inner.cluster.get() else {
            return Err(RuntimeError::RunningElsewhere(session.id));
        };
        match cluster.send_command(&owner, session.id, command).await {
            Ok(CommandReply::Done) => Ok(()),
            Ok(CommandReply::Refused) => Err(RuntimeError::InvalidInput(
                "steering text must not be empty".into(),
            )),
            Ok(_) => Err(RuntimeError::NotRunning(session.id)),
            Err(err) => {
                tracing::warn!(session_id = %session.id, %owner, error = %err, "could not reach the replica running a session");
                Err(RuntimeError::RunningElsewhere(session.id))
            }
        }
    }

    /// Refuses new runs, waits up to `timeout` for running ones to finish,
    /// then interrupts the rest and waits for them to commit.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        self.inner.draining.send_replace(true);
        let before = self.running_count();
        let mut running = self.inner.running.subscribe();
        let finished_in_time = tokio::time::timeout(timeout, running.wait_for(|n| *n == 0))
            .await
            .is_ok();
        let mut report = DrainReport::default();
        if !finished_in_time {
            let actives: Vec<Arc<ActiveRun>> =
                self.registry().by_session.values().cloned().collect();
            for active in &actives {
                tracing::info!(session_id = %active.session_id, conversation_id = %active.conversation_id, "interrupting run for shutdown");
                active.control.cancel.cancel();
                report.interrupted.push(active.session_id);
            }
            // Interrupted runs stop at once; bound the wait anyway.
            let _ =
                tokio::time::timeout(Duration::from_secs(10), running.wait_for(|n| *n == 0)).await;
        }
        report.finished = before.saturating_sub(report.interrupted.len());
        report
    }
}

/// Carries out commands other replicas send to this runtime's sessions.
struct Commands(std::sync::Weak<Inner>);

impl Commands {
    fn apply(runtime: &Runtime, session_id: SessionId, command: RunCommand) -> CommandReply {
        let done = match command {
            RunCommand::Interrupt => runtime.interrupt(session_id),
            RunCommand::Steer { text } => runtime.steer(session_id, text),
        };
        match done {
            Ok(()) => CommandReply::Done,
            Err(RuntimeError::InvalidInput(_)) => CommandReply::Refused,
            Err(_) => CommandReply::NotRunning,
        }
    }
}

#[async_trait::async_trait]
impl CommandHandler for Commands {
    async fn handle(&self, session_id: SessionId, command: RunCommand) -> CommandReply {
        match self.0.upgrade() {
            Some(inner) => Self::apply(&Runtime { inner }, session_id, command),
            None => CommandReply::NotRunning,
        }
    }
}

fn non_empty(text: String) -> Result<String, RuntimeError> {
    if text.trim().is_empty() {
        Err(RuntimeError::InvalidInput(
            "steering text must not be empty".into(),
        ))
    } else {
        Ok(text)
    }
}

fn steer_queue(queue: &SteeringQueue, text: String) {
    queue.push(text);
}

/// Checks input and resume decisions before anything is recorded.
fn validate_start(
    start: &StartRun,
    parent: Option<&Session>,
    history: &[Message],
) -> Result<(), RuntimeError> {
    let awaiting = parent.is_some_and(|p| p.status == SessionStatus::AwaitingToolResults);
    let pending = if awaiting {
        pending_tool_calls(history)
    } else {
        Vec::new()
    };
    if start.resume.is_empty() {
        if start.input.is_empty() {
            return Err(RuntimeError::InvalidInput(
                "the input must not be empty".into(),
            ));
        }
        if !pending.is_empty() {
            return Err(RuntimeError::InvalidResume(format!(
                "the conversation is waiting for {} tool result(s); resume with decisions for them",
                pending.len()
            )));
        }
        return Ok(());
    }
    if pending.is_empty() {
        return Err(RuntimeError::InvalidResume(
            "there are no pending tool calls to resume".into(),
        ));
    }
    for decision in &start.resume {
        if !pending.iter().any(|c| c.id == decision.call_id()) {
            return Err(RuntimeError::InvalidResume(format!(
                "`{}` is not a pending tool call",
                decision.call_id()
            )));
        }
    }
    for call in &pending {
        let count = start
            .resume
            .iter()
            .filter(|d| d.call_id() == call.id)
            .count();
        if count != 1 {
            return Err(RuntimeError::InvalidResume(format!(
                "tool call `{}` needs exactly one decision",
                call.id
            )));
        }
    }
    Ok(())
}

fn finish_from_outcome(outcome: RunOutcome) -> SessionFinish {
    let mut finish = SessionFinish::new(outcome.status);
    finish.final_message = outcome.final_message;
    finish.deferred_tool_calls = outcome.deferred_tool_calls;
    finish.usage = outcome.usage;
    finish.error = outcome.error.map(|e| e.message);
    finish
}
