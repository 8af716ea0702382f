//! Scheduled tasks as the API sees them: each principal manages their own;
//! an admin reaches another user's only by naming the user (`user_id`),
//! like memories. A task's run starts as its owner, through `send`.

use super::{ConversationService, SendMessage, Sent, ServiceError};
use crate::auth::{Principal, keys::target_user};
use crate::ids::{TaskId, UserId};
use crate::message::Message;
use crate::runtime::{RunHandle, RuntimeError};
use crate::store::{ScheduledTask, StoreError, TaskRun};
use crate::tasks::{TaskChange, TaskSpec, Tasks};

/// Longest error text recorded on a task.
const MAX_ERROR_CHARS: usize = 1000;

impl ConversationService {
    /// The scheduled-task use-cases (limits, clock) the `schedule` tool and
    /// the [`Scheduler`](crate::tasks::Scheduler) share.
    #[must_use]
    pub fn tasks(&self) -> &Tasks {
        &self.inner.tasks
    }

    async fn task_owner(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
    ) -> Result<UserId, ServiceError> {
        Ok(target_user(self.inner.store.as_ref(), who, user_id).await?)
    }

    /// The tasks of `who` (admins: of `user_id`), by name.
    ///
    /// # Errors
    ///
    /// `Forbidden` for another user's without admin rights; `NotFound` for
    /// an unknown `user_id`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netherbrain_core::conversation::ServiceError> {
    /// use std::sync::Arc;
    /// use netherbrain_core::auth::Principal;
    /// use netherbrain_core::conversation::ConversationService;
    /// use netherbrain_core::store::prelude::*;
    /// use netherbrain_core::store::{MemoryStore, NewPreset, NewUser, UserRole};
    /// use netherbrain_core::tasks::{TaskSchedule, TaskSpec};
    /// use netherbrain_core::PresetConfig;
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
    /// let bob = store.create_user(NewUser::new("bob", UserRole::User)).await?;
    /// let p = store.create_preset(NewPreset::new("p", PresetConfig::new("local", "m"))).await?;
    /// let service = ConversationService::builder(store).build();
    /// let spec = TaskSpec::new("daily", TaskSchedule::cron("@daily", "UTC"), p.id, "Good morning");
    /// service.create_task(&Principal::of(&ada), None, spec).await?;
    /// assert_eq!(service.list_tasks(&Principal::of(&ada), None).await?.len(), 1);
    /// assert!(service.list_tasks(&Principal::of(&bob), None).await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_tasks(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
    ) -> Result<Vec<ScheduledTask>, ServiceError> {
        let owner = self.task_owner(who, user_id).await?;
        self.inner.tasks.list(owner).await
    }

    /// Creates a task of `who` (admins: of `user_id`).
    ///
    /// # Errors
    ///
    /// As [`list_tasks`](Self::list_tasks) and [`Tasks::create`].
    pub async fn create_task(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
        spec: TaskSpec,
    ) -> Result<ScheduledTask, ServiceError> {
        let owner = self.task_owner(who, user_id).await?;
        self.inner.tasks.create(owner, spec).await
    }

    /// One task of `who` (admins: of `user_id`).
    ///
    /// # Errors
    ///
    /// As [`list_tasks`](Self::list_tasks); `NotFound` for another user's.
    pub async fn task(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
        id: TaskId,
    ) -> Result<ScheduledTask, ServiceError> {
        let owner = self.task_owner(who, user_id).await?;
        self.inner.tasks.get(owner, id).await
    }

    /// Changes a task of `who` (admins: of `user_id`).
    ///
    /// # Errors
    ///
    /// As [`Tasks::update`].
    pub async fn update_task(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
        id: TaskId,
        change: TaskChange,
    ) -> Result<ScheduledTask, ServiceError> {
        let owner = self.task_owner(who, user_id).await?;
        self.inner.tasks.update(owner, id, change).await
    }

    /// Deletes a task of `who` (admins: of `user_id`).
    ///
    /// # Errors
    ///
    /// As [`Tasks::delete`].
    pub async fn delete_task(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
        id: TaskId,
    ) -> Result<(), ServiceError> {
        let owner = self.task_owner(who, user_id).await?;
        self.inner.tasks.delete(owner, id).await
    }

    /// Runs a task of `who` now, outside its schedule (its next slot stays),
    /// and records the run on it.
    ///
    /// # Errors
    ///
    /// As [`task`](Self::task), and whatever refuses the run's start
    /// ([`send`](Self::send)'s errors: busy, draining, budget, …).
    pub async fn run_task(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
        id: TaskId,
    ) -> Result<RunHandle, ServiceError> {
        let task = self.task(who, user_id, id).await?;
        self.run_and_record(&task).await
    }

    /// Starts a task's run and records on the task what became of it: the
    /// session, or why it could not start (the error is returned too). The
    /// one place the scheduler and run-now record runs.
    pub(crate) async fn run_and_record(
        &self,
        task: &ScheduledTask,
    ) -> Result<RunHandle, ServiceError> {
        let now = self.inner.tasks.now();
        let started = self.start_task_run(task).await;
        let run = match &started {
            Ok(handle) => TaskRun::started(now, handle.session_id),
            Err(e) => TaskRun::skipped(
                now,
                e.to_string()
                    .chars()
                    .take(MAX_ERROR_CHARS)
                    .collect::<String>(),
            ),
        };
        self.inner.store.record_task_run(task.id, run).await?;
        started
    }

    /// Starts a task's run as its owner: its prompt with its preset, in
    /// its conversation or a new one named after it. A conversation that
    /// is running is not steered: the slot fails as busy.
    pub(crate) async fn start_task_run(
        &self,
        task: &ScheduledTask,
    ) -> Result<RunHandle, ServiceError> {
        let owner = match self.inner.store.get_user(task.owner).await {
            Ok(user) if user.active => user,
            Ok(user) => {
                return Err(ServiceError::Forbidden(format!(
                    "user `{}` is disabled",
                    user.username
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let who = Principal::of(&owner);
        let input = vec![Message::user(task.prompt.clone())];
        let message = match task.conversation_id {
            Some(conversation) => {
                SendMessage::to(conversation, input).with_preset(Some(task.preset_id))
            }
            None => SendMessage::new_conversation(task.preset_id, input).with_title(&task.name),
        };
        match self.send(&who, message).await {
            Ok(Sent::Started(handle) | Sent::Steered(handle)) => Ok(handle),
            Err(ServiceError::Runtime(RuntimeError::Busy { session_id })) => {
                Err(ServiceError::Conflict(format!(
                    "the conversation was busy with run {session_id}; this run was skipped"
                )))
            }
            Err(ServiceError::Runtime(RuntimeError::Catalog(e))) => Err(ServiceError::Conflict(
                format!("the task's preset cannot run: {e}"),
            )),
            Err(ServiceError::Store(StoreError::NotFound { entity, .. })) => Err(
                ServiceError::NotFound(format!("the task's {entity} no longer exists")),
            ),
            Err(e) => Err(e),
        }
    }
}
