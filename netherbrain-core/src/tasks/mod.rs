//! Scheduled tasks: a user's prompt run with a preset on a schedule — a
//! cron expression in a time zone, or an interval — in a new conversation
//! each time or in one fixed conversation.
//!
//! A task's run is an ordinary run, started through
//! [`ConversationService::send`](crate::conversation::ConversationService::send)
//! as the task's owner, so it reaches every surface that follows the
//! conversation. [`Tasks`] holds the use-cases (limits, validation, the
//! owner rule) the API, the CLI and the `schedule` tool share;
//! [`Scheduler`] runs the due slots.
//!
//! **Exactly once per slot.** Each task stores its next slot. A process
//! that finds it due claims it by moving the next slot forward with a
//! compare-and-set ([`TaskStore::claim_task`](crate::store::TaskStore::claim_task));
//! of processes sharing a database, only the one whose update matched runs
//! the slot. A slot found more than [`TaskConfig::grace`] late (no server
//! was running) is run once if the task has `catch_up`, else recorded as
//! missed; every later missed slot is skipped.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netherbrain_core::conversation::ServiceError> {
//! use std::sync::Arc;
//! use netherbrain_core::store::prelude::*;
//! use netherbrain_core::store::{MemoryStore, NewPreset, NewUser, UserRole};
//! use netherbrain_core::tasks::{TaskConfig, TaskSchedule, TaskSpec, Tasks};
//! use netherbrain_core::PresetConfig;
//!
//! let store = Arc::new(MemoryStore::new());
//! let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
//! let preset = store.create_preset(NewPreset::new("p", PresetConfig::new("local", "m"))).await?;
//! let tasks = Tasks::new(store, TaskConfig::default());
//! let spec = TaskSpec::new("alerts", TaskSchedule::cron("0 7 * * *", "Europe/Berlin"), preset.id, "Summarise the alerts");
//! let task = tasks.create(ada.id, spec).await?;
//! assert!(task.next_run_at > chrono::Utc::now());
//! # Ok(())
//! # }
//! ```

mod clock;
mod schedule;
mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use self::clock::{Clock, ManualClock, SystemClock};
pub use self::schedule::{MAX_CRON_LEN, MAX_INTERVAL_SECS, ScheduleError, TaskSchedule};
pub use self::scheduler::{Scheduler, SlotOutcome};

use crate::conversation::ServiceError;
use crate::ids::{ConversationId, PresetId, TaskId, UserId};
use crate::store::{NewTask, ScheduledTask, StateStore, StoreError, TaskPatch};

/// Limits and timing of scheduled tasks.
///
/// ```
/// use std::time::Duration;
/// use netherbrain_core::tasks::TaskConfig;
/// let c = TaskConfig::default().with_min_interval(Duration::from_secs(5));
/// assert_eq!(c.max_per_user, 100);
/// assert_eq!(c.min_interval, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskConfig {
    /// Most tasks per user (default 100).
    pub max_per_user: u32,
    /// Shortest interval between two runs of a task (default 60 s).
    pub min_interval: Duration,
    /// How often the scheduler looks for due tasks (default 1 s).
    pub poll_interval: Duration,
    /// How late a slot may run and still count as on time; a slot found
    /// later was missed (default 60 s).
    pub grace: Duration,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            max_per_user: 100,
            min_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            grace: Duration::from_secs(60),
        }
    }
}

impl TaskConfig {
    /// Sets the most tasks per user.
    ///
    /// ```
    /// # use netherbrain_core::tasks::TaskConfig;
    /// assert_eq!(TaskConfig::default().with_max_per_user(3).max_per_user, 3);
    /// ```
    #[must_use]
    pub fn with_max_per_user(mut self, max: u32) -> Self {
        self.max_per_user = max;
        self
    }

    /// Sets the shortest interval (at least one second).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use netherbrain_core::tasks::TaskConfig;
    /// assert_eq!(TaskConfig::default().with_min_interval(Duration::ZERO).min_interval, Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn with_min_interval(mut self, min: Duration) -> Self {
        self.min_interval = min.max(Duration::from_secs(1));
        self
    }

    /// Sets how often the scheduler polls (at least 50 ms).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use netherbrain_core::tasks::TaskConfig;
    /// let c = TaskConfig::default().with_poll_interval(Duration::from_millis(200));
    /// assert_eq!(c.poll_interval, Duration::from_millis(200));
    /// ```
    #[must_use]
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll_interval = poll.max(Duration::from_millis(50));
        self
    }

    /// Sets the grace of a late slot.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use netherbrain_core::tasks::TaskConfig;
    /// assert_eq!(TaskConfig::default().with_grace(Duration::from_secs(5)).grace, Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// A task as a caller describes it; the owner and the next slot are the
/// service's.
///
/// ```
/// use netherbrain_core::tasks::{TaskSchedule, TaskSpec};
/// use netherbrain_core::PresetId;
/// let spec = TaskSpec::new("ping", TaskSchedule::every(3600), PresetId::new(), "ping").with_catch_up(true);
/// assert!(spec.catch_up && spec.enabled);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskSpec {
    /// Its name, unique per owner.
    pub name: String,
    /// When it runs.
    pub schedule: TaskSchedule,
    /// The preset.
    pub preset_id: PresetId,
    /// The prompt.
    pub prompt: String,
    /// The conversation each run goes to (`None`: a new one each time);
    /// it must be the owner's.
    pub conversation_id: Option<ConversationId>,
    /// Run a slot missed while no server ran once at start.
    pub catch_up: bool,
    /// Whether it runs.
    pub enabled: bool,
}

impl TaskSpec {
    /// An enabled task going to a new conversation each time.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        schedule: TaskSchedule,
        preset_id: PresetId,
        prompt: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            schedule,
            preset_id,
            prompt: prompt.into(),
            conversation_id: None,
            catch_up: false,
            enabled: true,
        }
    }

    /// Sends every run to this conversation.
    ///
    /// ```
    /// # use netherbrain_core::tasks::{TaskSchedule, TaskSpec};
    /// # use netherbrain_core::{ConversationId, PresetId};
    /// let c = ConversationId::new();
    /// let spec = TaskSpec::new("x", TaskSchedule::every(60), PresetId::new(), "hi").with_conversation(Some(c));
    /// assert_eq!(spec.conversation_id, Some(c));
    /// ```
    #[must_use]
    pub fn with_conversation(mut self, conversation: Option<ConversationId>) -> Self {
        self.conversation_id = conversation;
        self
    }

    /// Runs a missed slot once at start.
    #[must_use]
    pub fn with_catch_up(mut self, catch_up: bool) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Creates it paused (`false`) or running (`true`).
    ///
    /// ```
    /// # use netherbrain_core::tasks::{TaskSchedule, TaskSpec};
    /// # use netherbrain_core::PresetId;
    /// assert!(!TaskSpec::new("x", TaskSchedule::every(60), PresetId::new(), "hi").with_enabled(false).enabled);
    /// ```
    #[must_use]
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }
}

/// A change to a task; `None` keeps a field.
///
/// ```
/// use netherbrain_core::tasks::{TaskChange, TaskSchedule};
/// let pause = TaskChange::enabled(false);
/// assert!(pause.schedule.is_none());
/// let mut reschedule = TaskChange::default();
/// reschedule.schedule = Some(TaskSchedule::every(3600));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct TaskChange {
    /// New name.
    pub name: Option<String>,
    /// New schedule (the next slot is computed from it).
    pub schedule: Option<TaskSchedule>,
    /// New preset.
    pub preset_id: Option<PresetId>,
    /// New prompt.
    pub prompt: Option<String>,
    /// New target (`Some(None)`: a new conversation each time).
    pub conversation_id: Option<Option<ConversationId>>,
    /// New catch-up setting.
    pub catch_up: Option<bool>,
    /// Resumes (`true`) or pauses (`false`) it.
    pub enabled: Option<bool>,
}

impl TaskChange {
    /// A change that only pauses (`false`) or resumes (`true`) the task.
    ///
    /// ```
    /// # use netherbrain_core::tasks::TaskChange;
    /// assert_eq!(TaskChange::enabled(true).enabled, Some(true));
    /// ```
    #[must_use]
    pub fn enabled(enabled: bool) -> Self {
        Self {
            enabled: Some(enabled),
            ..Self::default()
        }
    }
}

/// The scheduled-task use-cases shared by the API, the CLI, the `schedule`
/// tool and the [`Scheduler`]; they act for a server-owned user id.
///
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tasks {
    store: Arc<dyn StateStore>,
    config: TaskConfig,
    clock: Arc<dyn Clock>,
}

impl Tasks {
    /// The tasks in `store`, on the system clock.
    #[must_use]
    pub fn new(store: Arc<dyn StateStore>, config: TaskConfig) -> Self {
        Self {
            store,
            config,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses another clock (a [`ManualClock`] in tests).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::tasks::{ManualClock, TaskConfig, Tasks};
    /// let store = Arc::new(netherbrain_core::store::MemoryStore::new());
    /// let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    /// let tasks = Tasks::new(store, TaskConfig::default()).with_clock(clock.clone());
    /// assert_eq!(tasks.now(), clock.now());
    /// # use netherbrain_core::tasks::Clock;
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The limits.
    #[must_use]
    pub fn config(&self) -> &TaskConfig {
        &self.config
    }

    /// The clock's time.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Who a run acts for and the preset it runs: the owner of its
    /// conversation and its session's preset, read from the store (never
    /// from a tool's arguments), for the `schedule` tool.
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown conversation or session.
    pub async fn run_context(
        &self,
        conversation_id: ConversationId,
        session_id: crate::ids::SessionId,
    ) -> Result<(UserId, Option<PresetId>), ServiceError> {
        let conversation = self.store.get_conversation(conversation_id).await?;
        let session = self.store.get_session(session_id).await?;
        let preset = session.preset_id.or(conversation.default_preset);
        Ok((conversation.owner, preset))
    }

    pub(crate) fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    fn check_interval(&self, schedule: &TaskSchedule) -> Result<(), ServiceError> {
        schedule
            .check()
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let min = self.config.min_interval.as_secs().max(1);
        if schedule.min_gap_secs() < min {
            return Err(ServiceError::Invalid(
                ScheduleError::Interval {
                    min,
                    max: MAX_INTERVAL_SECS,
                }
                .to_string(),
            ));
        }
        Ok(())
    }

    /// A conversation a task may target: one of `owner`'s.
    async fn check_target(
        &self,
        owner: UserId,
        conversation: Option<ConversationId>,
    ) -> Result<(), ServiceError> {
        let Some(id) = conversation else {
            return Ok(());
        };
        let found = self.store.get_conversation(id).await?;
        if found.owner == owner {
            Ok(())
        } else {
            Err(StoreError::not_found("conversation", id).into())
        }
    }

    fn first_slot(&self, schedule: &TaskSchedule) -> Result<DateTime<Utc>, ServiceError> {
        schedule
            .next_after(self.now(), None)
            .map_err(|e| ServiceError::Invalid(e.to_string()))
    }

    /// Creates a task of `owner`; its first slot is the schedule's first
    /// after now.
    ///
    /// # Errors
    ///
    /// `Invalid` for a bad name, prompt or schedule (or an interval below
    /// [`TaskConfig::min_interval`]); `NotFound` for an unknown preset or a
    /// conversation that is not `owner`'s; `Conflict` for a taken name or
    /// a full task list.
    pub async fn create(
        &self,
        owner: UserId,
        spec: TaskSpec,
    ) -> Result<ScheduledTask, ServiceError> {
        self.check_interval(&spec.schedule)?;
        self.check_target(owner, spec.conversation_id).await?;
        let next = self.first_slot(&spec.schedule)?;
        let mut new = NewTask::new(
            owner,
            spec.name,
            spec.schedule,
            spec.preset_id,
            spec.prompt,
            next,
        )
        .with_conversation(spec.conversation_id)
        .with_catch_up(spec.catch_up);
        new.enabled = spec.enabled;
        Ok(self
            .store
            .create_task(new, self.config.max_per_user)
            .await?)
    }

    /// `owner`'s tasks, by name.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn list(&self, owner: UserId) -> Result<Vec<ScheduledTask>, ServiceError> {
        Ok(self.store.list_tasks(owner).await?)
    }

    /// One task of `owner`; another user's is `NotFound`.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    pub async fn get(&self, owner: UserId, id: TaskId) -> Result<ScheduledTask, ServiceError> {
        let task = self.store.get_task(id).await?;
        if task.owner == owner {
            Ok(task)
        } else {
            Err(StoreError::not_found("task", id).into())
        }
    }

    /// Changes a task of `owner`. A new schedule, or resuming a paused
    /// task, moves its next slot to the schedule's first after now.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create), and `NotFound` for another user's task.
    pub async fn update(
        &self,
        owner: UserId,
        id: TaskId,
        change: TaskChange,
    ) -> Result<ScheduledTask, ServiceError> {
        let task = self.get(owner, id).await?;
        if let Some(schedule) = &change.schedule {
            self.check_interval(schedule)?;
        }
        if let Some(target) = change.conversation_id {
            self.check_target(owner, target).await?;
        }
        let resumes = change.enabled == Some(true) && !task.enabled;
        let next_run_at = match &change.schedule {
            Some(schedule) => Some(self.first_slot(schedule)?),
            None if resumes => Some(self.first_slot(&task.schedule)?),
            None => None,
        };
        let patch = TaskPatch {
            name: change.name,
            schedule: change.schedule,
            preset_id: change.preset_id,
            prompt: change.prompt,
            conversation_id: change.conversation_id,
            catch_up: change.catch_up,
            enabled: change.enabled,
            next_run_at,
        };
        Ok(self.store.update_task(id, patch).await?)
    }

    /// Deletes a task of `owner`.
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown task or another user's.
    pub async fn delete(&self, owner: UserId, id: TaskId) -> Result<(), ServiceError> {
        self.get(owner, id).await?;
        Ok(self.store.delete_task(id).await?)
    }
}
