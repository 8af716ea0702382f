//! [`TaskStore`]: users' scheduled tasks — a preset, a prompt and a target
//! conversation, run on a [`TaskSchedule`] — and the compare-and-set claim
//! that lets only one process run a slot.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::ids::{ConversationId, PresetId, SessionId, TaskId, UserId};
use crate::tasks::TaskSchedule;

/// A scheduled task of a user.
///
/// ```
/// use netherbrain_core::store::ScheduledTask;
/// fn new_conversation_each_time(t: &ScheduledTask) -> bool {
///     t.conversation_id.is_none()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduledTask {
    /// Its id.
    pub id: TaskId,
    /// The user it runs as (server-owned: never from request data).
    pub owner: UserId,
    /// Its name, unique per owner.
    pub name: String,
    /// When it runs.
    pub schedule: TaskSchedule,
    /// The preset each run uses.
    pub preset_id: PresetId,
    /// The message each run starts with.
    pub prompt: String,
    /// The conversation each run goes to; `None`: a new one each time.
    pub conversation_id: Option<ConversationId>,
    /// Whether a slot missed while no server ran is run once at start.
    pub catch_up: bool,
    /// Whether it runs at all.
    pub enabled: bool,
    /// Its next slot.
    pub next_run_at: DateTime<Utc>,
    /// When it last ran.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The session its last run started.
    pub last_session_id: Option<SessionId>,
    /// Why its last slot did not run (or failed to start), if it did not.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A task to create.
///
/// ```
/// use chrono::Utc;
/// use netherbrain_core::store::NewTask;
/// use netherbrain_core::tasks::TaskSchedule;
/// use netherbrain_core::{PresetId, UserId};
/// let t = NewTask::new(UserId::new(), "alerts", TaskSchedule::cron("0 7 * * *", "UTC"), PresetId::new(), "Summarise the alerts", Utc::now());
/// assert!(t.enabled && !t.catch_up);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewTask {
    /// The owner.
    pub owner: UserId,
    /// Its name.
    pub name: String,
    /// When it runs.
    pub schedule: TaskSchedule,
    /// The preset.
    pub preset_id: PresetId,
    /// The prompt.
    pub prompt: String,
    /// The target conversation (`None`: new each time).
    pub conversation_id: Option<ConversationId>,
    /// Run a missed slot once at start.
    pub catch_up: bool,
    /// Whether it runs.
    pub enabled: bool,
    /// Its first slot.
    pub next_run_at: DateTime<Utc>,
}

impl NewTask {
    /// An enabled task going to a new conversation each time, without
    /// catch-up.
    #[must_use]
    pub fn new(
        owner: UserId,
        name: impl Into<String>,
        schedule: TaskSchedule,
        preset_id: PresetId,
        prompt: impl Into<String>,
        next_run_at: DateTime<Utc>,
    ) -> Self {
        Self {
            owner,
            name: name.into(),
            schedule,
            preset_id,
            prompt: prompt.into(),
            conversation_id: None,
            catch_up: false,
            enabled: true,
            next_run_at,
        }
    }

    /// Sends every run to this conversation.
    ///
    /// ```
    /// # use chrono::Utc;
    /// # use netherbrain_core::store::NewTask;
    /// # use netherbrain_core::tasks::TaskSchedule;
    /// # use netherbrain_core::{ConversationId, PresetId, UserId};
    /// let c = ConversationId::new();
    /// let t = NewTask::new(UserId::new(), "x", TaskSchedule::every(60), PresetId::new(), "hi", Utc::now())
    ///     .with_conversation(Some(c));
    /// assert_eq!(t.conversation_id, Some(c));
    /// ```
    #[must_use]
    pub fn with_conversation(mut self, conversation: Option<ConversationId>) -> Self {
        self.conversation_id = conversation;
        self
    }

    /// Runs a missed slot once at start.
    ///
    /// ```
    /// # use chrono::Utc;
    /// # use netherbrain_core::store::NewTask;
    /// # use netherbrain_core::tasks::TaskSchedule;
    /// # use netherbrain_core::{PresetId, UserId};
    /// let t = NewTask::new(UserId::new(), "x", TaskSchedule::every(60), PresetId::new(), "hi", Utc::now())
    ///     .with_catch_up(true);
    /// assert!(t.catch_up);
    /// ```
    #[must_use]
    pub fn with_catch_up(mut self, catch_up: bool) -> Self {
        self.catch_up = catch_up;
        self
    }
}

/// A change to a task; `None` keeps a field.
///
/// ```
/// use netherbrain_core::store::TaskPatch;
/// let mut pause = TaskPatch::default();
/// pause.enabled = Some(false);
/// assert!(pause.name.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct TaskPatch {
    /// New name.
    pub name: Option<String>,
    /// New schedule (give `next_run_at` with it).
    pub schedule: Option<TaskSchedule>,
    /// New preset.
    pub preset_id: Option<PresetId>,
    /// New prompt.
    pub prompt: Option<String>,
    /// New target (`Some(None)`: a new conversation each time).
    pub conversation_id: Option<Option<ConversationId>>,
    /// New catch-up setting.
    pub catch_up: Option<bool>,
    /// Enables or pauses it.
    pub enabled: Option<bool>,
    /// Its next slot.
    pub next_run_at: Option<DateTime<Utc>>,
}

impl TaskPatch {
    /// Applies the patch to a stored task (every backend merges this way);
    /// `now` becomes `updated_at`.
    ///
    /// ```
    /// # use netherbrain_core::store::{ScheduledTask, TaskPatch};
    /// fn rename(t: &mut ScheduledTask) {
    ///     let mut p = TaskPatch::default();
    ///     p.name = Some("morning".into());
    ///     p.apply(t, chrono::Utc::now());
    ///     assert_eq!(t.name, "morning");
    /// }
    /// ```
    pub fn apply(self, task: &mut ScheduledTask, now: DateTime<Utc>) {
        if let Some(v) = self.name {
            task.name = v;
        }
        if let Some(v) = self.schedule {
            task.schedule = v;
        }
        if let Some(v) = self.preset_id {
            task.preset_id = v;
        }
        if let Some(v) = self.prompt {
            task.prompt = v;
        }
        if let Some(v) = self.conversation_id {
            task.conversation_id = v;
        }
        if let Some(v) = self.catch_up {
            task.catch_up = v;
        }
        if let Some(v) = self.enabled {
            task.enabled = v;
        }
        if let Some(v) = self.next_run_at {
            task.next_run_at = v;
        }
        task.updated_at = now;
    }
}

/// What became of a task's slot, recorded on the task.
///
/// ```
/// use netherbrain_core::store::TaskRun;
/// let r = TaskRun::skipped(chrono::Utc::now(), "the conversation was busy");
/// assert!(r.session_id.is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskRun {
    /// When.
    pub at: DateTime<Utc>,
    /// The session started, if one was.
    pub session_id: Option<SessionId>,
    /// Why none was, or why it could not start.
    pub error: Option<String>,
}

impl TaskRun {
    /// A run started as `session_id`.
    ///
    /// ```
    /// # use netherbrain_core::{store::TaskRun, SessionId};
    /// assert!(TaskRun::started(chrono::Utc::now(), SessionId::new()).error.is_none());
    /// ```
    #[must_use]
    pub fn started(at: DateTime<Utc>, session_id: SessionId) -> Self {
        Self {
            at,
            session_id: Some(session_id),
            error: None,
        }
    }

    /// A slot that did not run, and why.
    ///
    /// ```
    /// # use netherbrain_core::store::TaskRun;
    /// assert!(TaskRun::skipped(chrono::Utc::now(), "why").error.is_some());
    /// ```
    #[must_use]
    pub fn skipped(at: DateTime<Utc>, why: impl Into<String>) -> Self {
        Self {
            at,
            session_id: None,
            error: Some(why.into()),
        }
    }
}

/// The message a full task list gives.
///
/// ```
/// assert!(netherbrain_core::store::tasks_full_message(100).contains("100"));
/// ```
#[must_use]
pub fn tasks_full_message(max_per_user: u32) -> String {
    format!("a user can have at most {max_per_user} scheduled tasks; remove one first")
}

/// Users' scheduled tasks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use chrono::{TimeDelta, Utc};
/// use netherbrain_core::store::prelude::*;
/// use netherbrain_core::store::{MemoryStore, NewPreset, NewTask, NewUser, UserRole};
/// use netherbrain_core::tasks::TaskSchedule;
/// use netherbrain_core::PresetConfig;
///
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
/// let preset = store.create_preset(NewPreset::new("p", PresetConfig::new("local", "m"))).await?;
/// let now = Utc::now();
/// let task = store
///     .create_task(NewTask::new(ada.id, "ping", TaskSchedule::every(60), preset.id, "ping", now), 10)
///     .await?;
/// assert_eq!(store.due_tasks(now, 10).await?.len(), 1);
/// // One process claims the slot; a second claim of the same slot fails.
/// let next = now + TimeDelta::seconds(60);
/// assert!(store.claim_task(task.id, now, next).await?);
/// assert!(!store.claim_task(task.id, now, next).await?);
/// assert!(store.due_tasks(now, 10).await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait TaskStore: Send + Sync + std::fmt::Debug {
    /// Creates a task, if its owner has fewer than `max_per_user`
    /// ([`Conflict`](super::StoreError::Conflict) otherwise, and for a name
    /// the owner uses already); `NotFound` for an unknown owner or preset.
    async fn create_task(&self, task: NewTask, max_per_user: u32) -> StoreResult<ScheduledTask>;
    /// Gets a task.
    async fn get_task(&self, id: TaskId) -> StoreResult<ScheduledTask>;
    /// A user's tasks, by name.
    async fn list_tasks(&self, owner: UserId) -> StoreResult<Vec<ScheduledTask>>;
    /// Changes a task; `Conflict` for a name the owner uses already.
    async fn update_task(&self, id: TaskId, patch: TaskPatch) -> StoreResult<ScheduledTask>;
    /// Deletes a task.
    async fn delete_task(&self, id: TaskId) -> StoreResult<()>;
    /// Enabled tasks whose next slot is at or before `now`, earliest
    /// first, at most `limit`.
    async fn due_tasks(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<ScheduledTask>>;
    /// Claims the slot `slot` of a task by moving its next slot to `next`,
    /// if its next slot is still `slot` and it is enabled — a compare and
    /// set, so of processes racing for one slot exactly one gets `true`.
    async fn claim_task(
        &self,
        id: TaskId,
        slot: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Records what became of a slot (or a run-now).
    async fn record_task_run(&self, id: TaskId, run: TaskRun) -> StoreResult<ScheduledTask>;
}
