//! [`Scheduler`]: finds due slots, claims each once across processes and
//! starts its run.

use chrono::{DateTime, TimeDelta, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::conversation::{ConversationService, ServiceError};
use crate::ids::{SessionId, TaskId};
use crate::store::{ScheduledTask, TaskRun};

/// Most due tasks one pass handles; the rest wait for the next pass.
const BATCH: u32 = 100;

/// What became of a slot this process claimed.
///
/// ```
/// use netherbrain_core::tasks::SlotOutcome;
/// fn started(o: &SlotOutcome) -> bool {
///     matches!(o, SlotOutcome::Started { .. })
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotOutcome {
    /// Its run started.
    Started {
        /// The task.
        task_id: TaskId,
        /// The slot.
        slot: DateTime<Utc>,
        /// The run's session.
        session_id: SessionId,
    },
    /// It was missed while no server ran, and the task has no catch-up.
    Missed {
        /// The task.
        task_id: TaskId,
        /// The slot.
        slot: DateTime<Utc>,
    },
    /// Its run could not start (the conversation was busy, the preset is
    /// gone, a budget is spent, …); the reason is recorded on the task.
    Failed {
        /// The task.
        task_id: TaskId,
        /// The slot.
        slot: DateTime<Utc>,
        /// Why.
        error: String,
    },
}

/// Runs the service's due tasks: every [`poll_interval`](super::TaskConfig::poll_interval)
/// it reads the due tasks, claims each slot (only one process sharing the
/// database wins it) and starts the run as the task's owner.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::conversation::ServiceError> {
/// use std::sync::Arc;
/// use netherbrain_core::conversation::ConversationService;
/// use netherbrain_core::tasks::Scheduler;
/// let store = Arc::new(netherbrain_core::store::MemoryStore::new());
/// let service = ConversationService::builder(store).build();
/// // Nothing is due.
/// assert!(Scheduler::new(service).run_due().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Scheduler {
    service: ConversationService,
}

impl Scheduler {
    /// A scheduler of `service`'s tasks, on their clock.
    #[must_use]
    pub fn new(service: ConversationService) -> Self {
        Self { service }
    }

    /// Handles every slot due now, once: claims it and starts its run, or
    /// records it as missed. Slots another process claimed are left out.
    ///
    /// # Errors
    ///
    /// The store's, when the due tasks cannot be read.
    pub async fn run_due(&self) -> Result<Vec<SlotOutcome>, ServiceError> {
        let tasks = self.service.tasks();
        let now = tasks.now();
        let due = tasks.store().due_tasks(now, BATCH).await?;
        let mut outcomes = Vec::with_capacity(due.len());
        for task in due {
            match self.handle(task, now).await {
                Ok(Some(outcome)) => outcomes.push(outcome),
                Ok(None) => {}
                Err(e) => tracing::warn!("scheduled task: {e}"),
            }
        }
        Ok(outcomes)
    }

    async fn handle(
        &self,
        task: ScheduledTask,
        now: DateTime<Utc>,
    ) -> Result<Option<SlotOutcome>, ServiceError> {
        let tasks = self.service.tasks();
        let store = tasks.store();
        let slot = task.next_run_at;
        let next = match task.schedule.next_after(now, Some(slot)) {
            Ok(next) => next,
            Err(e) => {
                // A schedule that never runs again (a cron date past): pause it.
                let patch = crate::store::TaskPatch {
                    enabled: Some(false),
                    ..crate::store::TaskPatch::default()
                };
                store.update_task(task.id, patch).await?;
                store
                    .record_task_run(task.id, TaskRun::skipped(now, e.to_string()))
                    .await?;
                return Ok(None);
            }
        };
        if !store.claim_task(task.id, slot, next).await? {
            // Another process claimed the slot (or the task changed).
            return Ok(None);
        }
        let grace = TimeDelta::from_std(tasks.config().grace).unwrap_or(TimeDelta::MAX);
        if now - slot > grace && !task.catch_up {
            let why = format!(
                "missed the run of {} (no server was running); catch-up is off",
                slot.format("%Y-%m-%d %H:%M:%S UTC")
            );
            store
                .record_task_run(task.id, TaskRun::skipped(now, why))
                .await?;
            tracing::info!(task_id = %task.id, %slot, "scheduled task missed its slot");
            return Ok(Some(SlotOutcome::Missed {
                task_id: task.id,
                slot,
            }));
        }
        Ok(Some(self.start(&task, slot).await?))
    }

    async fn start(
        &self,
        task: &ScheduledTask,
        slot: DateTime<Utc>,
    ) -> Result<SlotOutcome, ServiceError> {
        match self.service.run_and_record(task).await {
            Ok(handle) => {
                tracing::info!(task_id = %task.id, session_id = %handle.session_id, "scheduled task started");
                Ok(SlotOutcome::Started {
                    task_id: task.id,
                    slot,
                    session_id: handle.session_id,
                })
            }
            Err(ServiceError::Store(e)) if !e.is_not_found() => Err(ServiceError::Store(e)),
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(task_id = %task.id, "scheduled task could not start: {error}");
                Ok(SlotOutcome::Failed {
                    task_id: task.id,
                    slot,
                    error,
                })
            }
        }
    }

    /// Polls until `shutdown` is cancelled.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use netherbrain_core::conversation::ConversationService;
    /// use netherbrain_core::tasks::Scheduler;
    /// use tokio_util::sync::CancellationToken;
    /// let store = Arc::new(netherbrain_core::store::MemoryStore::new());
    /// let stop = CancellationToken::new();
    /// let running = Scheduler::new(ConversationService::builder(store).build()).spawn(stop.clone());
    /// stop.cancel();
    /// running.await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        let poll = self.service.tasks().config().poll_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(poll);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                if self.service.runtime().is_draining() {
                    break;
                }
                if let Err(e) = self.run_due().await {
                    tracing::warn!("cannot read the scheduled tasks: {e}");
                }
            }
        })
    }
}
