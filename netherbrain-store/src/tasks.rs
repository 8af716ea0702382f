//! Users' scheduled tasks ([`TaskStore`](netherbrain_core::store::TaskStore)):
//! the same statements on both dialects, reads over the pool
//! ([`Portable`]) and writes inside the backend's transaction ([`InTx`]).
//! A slot is claimed by one `UPDATE … WHERE next_run_at = $slot`: the
//! database serialises the racing updates, and only the first matches.

use chrono::{DateTime, Utc};
use netherbrain_core::TaskId;
use netherbrain_core::UserId;
use netherbrain_core::store::{
    NewTask, ScheduledTask, StoreError, StoreResult, TaskPatch, TaskRun, tasks_full_message,
    validate,
};
use netherbrain_core::tasks::TaskSchedule;
use sqlx::{Encode, Executor, IntoArguments, Pool, Type};
use uuid::Uuid;

use crate::common::{db_err, now, record, truncate};
use crate::portable::{Dialect, InTx, Portable};
use crate::rows::{Fields, RowGet};

const TASK_COLS: &str = "id, owner_id, name, schedule, preset_id, prompt, conversation_id, catch_up, enabled, next_run_at, last_run_at, last_session_id, last_error, created_at, updated_at";

fn task<R: RowGet>(r: &R) -> StoreResult<ScheduledTask> {
    let schedule: TaskSchedule = serde_json::from_str(&r.text("schedule")?)
        .map_err(|e| StoreError::Backend(format!("corrupt task schedule: {e}")))?;
    let mut f = Fields::new();
    f.set("id", r.uuid("id")?)?
        .set("owner", r.uuid("owner_id")?)?
        .set("name", r.text("name")?)?
        .set("schedule", schedule)?
        .set("preset_id", r.uuid("preset_id")?)?
        .set("prompt", r.text("prompt")?)?
        .set("conversation_id", r.opt_uuid("conversation_id")?)?
        .set("catch_up", r.flag("catch_up")?)?
        .set("enabled", r.flag("enabled")?)?
        .set("next_run_at", r.ts("next_run_at")?)?
        .set("last_run_at", r.opt_ts("last_run_at")?)?
        .set("last_session_id", r.opt_uuid("last_session_id")?)?
        .set("last_error", r.opt_text("last_error")?)?
        .set("created_at", r.ts("created_at")?)?
        .set("updated_at", r.ts("updated_at")?)?;
    record("task", f.0)
}

fn schedule_text(schedule: &TaskSchedule) -> StoreResult<String> {
    serde_json::to_string(schedule)
        .map_err(|e| StoreError::Backend(format!("cannot encode a schedule: {e}")))
}

fn name_taken(e: StoreError, name: &str) -> StoreError {
    match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a task named `{name}` exists")),
        other => other,
    }
}

impl<DB> Portable<'_, DB>
where
    DB: Dialect,
    DB::Row: RowGet,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    pub(crate) async fn get_task(&self, id: TaskId) -> StoreResult<ScheduledTask> {
        let sql = format!("SELECT {TASK_COLS} FROM scheduled_tasks WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(Uuid::from(id))
            .fetch_optional(self.0)
            .await
            .map_err(db_err)?;
        row.as_ref()
            .map(task)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("task", id))
    }

    pub(crate) async fn list_tasks(&self, owner: UserId) -> StoreResult<Vec<ScheduledTask>> {
        let sql = format!(
            "SELECT {TASK_COLS} FROM scheduled_tasks WHERE owner_id = $1 ORDER BY name, id"
        );
        let rows = sqlx::query(&sql)
            .bind(Uuid::from(owner))
            .fetch_all(self.0)
            .await
            .map_err(db_err)?;
        rows.iter().map(task).collect()
    }

    pub(crate) async fn due_tasks(
        &self,
        at: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ScheduledTask>> {
        validate::page_size(limit)?;
        let sql = format!(
            "SELECT {TASK_COLS} FROM scheduled_tasks WHERE enabled = $1 AND next_run_at <= $2 \
             ORDER BY next_run_at, id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(true)
            .bind(DB::time(at))
            .bind(i64::from(limit))
            .fetch_all(self.0)
            .await
            .map_err(db_err)?;
        rows.iter().map(task).collect()
    }

    pub(crate) async fn claim_task(
        &self,
        id: TaskId,
        slot: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let claimed = sqlx::query(
            "UPDATE scheduled_tasks SET next_run_at = $1, updated_at = $2 \
             WHERE id = $3 AND next_run_at = $4 AND enabled = $5 RETURNING id",
        )
        .bind(DB::time(truncate(next)))
        .bind(DB::time(now()))
        .bind(Uuid::from(id))
        .bind(DB::time(truncate(slot)))
        .bind(true)
        .fetch_optional(self.0)
        .await
        .map_err(db_err)?;
        Ok(claimed.is_some())
    }
}

impl<DB> InTx<'_, DB>
where
    DB: Dialect,
    DB::Row: RowGet,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DB::Time>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    async fn task_for_update(&mut self, id: TaskId) -> StoreResult<ScheduledTask> {
        let sql = format!(
            "SELECT {TASK_COLS} FROM scheduled_tasks WHERE id = $1{}",
            DB::FOR_UPDATE
        );
        let row = sqlx::query(&sql)
            .bind(Uuid::from(id))
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        row.as_ref()
            .map(task)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("task", id))
    }

    pub(crate) async fn create_task(
        &mut self,
        new: NewTask,
        max_per_user: u32,
    ) -> StoreResult<ScheduledTask> {
        validate::new_task(&new)?;
        // Locking the owner's row serialises their inserts, so the count
        // and the insert are one step.
        let sql = format!("SELECT 1 AS n FROM users WHERE id = $1{}", DB::FOR_UPDATE);
        let user = sqlx::query(&sql)
            .bind(Uuid::from(new.owner))
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        if user.is_none() {
            return Err(StoreError::not_found("user", new.owner));
        }
        self.require("presets", "preset", new.preset_id).await?;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM scheduled_tasks WHERE owner_id = $1")
            .bind(Uuid::from(new.owner))
            .fetch_one(&mut *self.0)
            .await
            .map_err(db_err)?;
        if u64::try_from(row.int("n")?).unwrap_or(0) >= u64::from(max_per_user) {
            return Err(StoreError::Conflict(tasks_full_message(max_per_user)));
        }
        let at = now();
        let sql = format!(
            "INSERT INTO scheduled_tasks ({TASK_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL, NULL, $11, $11) \
             RETURNING {TASK_COLS}"
        );
        let name = new.name.clone();
        let row = sqlx::query(&sql)
            .bind(Uuid::from(netherbrain_core::TaskId::new()))
            .bind(Uuid::from(new.owner))
            .bind(new.name)
            .bind(schedule_text(&new.schedule)?)
            .bind(Uuid::from(new.preset_id))
            .bind(new.prompt)
            .bind(new.conversation_id.map(Uuid::from))
            .bind(new.catch_up)
            .bind(new.enabled)
            .bind(DB::time(truncate(new.next_run_at)))
            .bind(DB::time(at))
            .fetch_one(&mut *self.0)
            .await
            .map_err(|e| name_taken(db_err(e), &name))?;
        task(&row)
    }

    pub(crate) async fn update_task(
        &mut self,
        id: TaskId,
        patch: TaskPatch,
    ) -> StoreResult<ScheduledTask> {
        validate::task_patch(&patch)?;
        let mut stored = self.task_for_update(id).await?;
        if let Some(preset) = patch.preset_id {
            self.require("presets", "preset", preset).await?;
        }
        patch.apply(&mut stored, now());
        let sql = format!(
            "UPDATE scheduled_tasks SET name = $1, schedule = $2, preset_id = $3, prompt = $4, \
             conversation_id = $5, catch_up = $6, enabled = $7, next_run_at = $8, updated_at = $9 \
             WHERE id = $10 RETURNING {TASK_COLS}"
        );
        let name = stored.name.clone();
        let row = sqlx::query(&sql)
            .bind(stored.name)
            .bind(schedule_text(&stored.schedule)?)
            .bind(Uuid::from(stored.preset_id))
            .bind(stored.prompt)
            .bind(stored.conversation_id.map(Uuid::from))
            .bind(stored.catch_up)
            .bind(stored.enabled)
            .bind(DB::time(truncate(stored.next_run_at)))
            .bind(DB::time(stored.updated_at))
            .bind(Uuid::from(id))
            .fetch_one(&mut *self.0)
            .await
            .map_err(|e| name_taken(db_err(e), &name))?;
        task(&row)
    }

    pub(crate) async fn delete_task(&mut self, id: TaskId) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM scheduled_tasks WHERE id = $1 RETURNING id")
            .bind(Uuid::from(id))
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        if done.is_none() {
            return Err(StoreError::not_found("task", id));
        }
        Ok(())
    }

    pub(crate) async fn record_task_run(
        &mut self,
        id: TaskId,
        run: TaskRun,
    ) -> StoreResult<ScheduledTask> {
        if let Some(error) = &run.error {
            validate::text("error", Some(error), validate::MAX_TEXT_LEN)?;
        }
        let mut stored = self.task_for_update(id).await?;
        if run.session_id.is_some() {
            stored.last_run_at = Some(truncate(run.at));
            stored.last_session_id = run.session_id;
        }
        let sql = format!(
            "UPDATE scheduled_tasks SET last_run_at = $1, last_session_id = $2, last_error = $3, \
             updated_at = $4 WHERE id = $5 RETURNING {TASK_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(stored.last_run_at.map(DB::time))
            .bind(stored.last_session_id.map(Uuid::from))
            .bind(run.error)
            .bind(DB::time(now()))
            .bind(Uuid::from(id))
            .fetch_one(&mut *self.0)
            .await
            .map_err(db_err)?;
        task(&row)
    }
}

/// `impl TaskStore` for a backend with `portable()` and `begin()`, as
/// [`memory_records_impl`](crate::memories::memory_records_impl).
macro_rules! task_store_impl {
    ($store:ty, $db:ty, |$tx:ident| $conn:expr, $commit:expr) => {
        #[async_trait::async_trait]
        impl netherbrain_core::store::TaskStore for $store {
            async fn create_task(
                &self,
                task: netherbrain_core::store::NewTask,
                max_per_user: u32,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::ScheduledTask> {
                let mut $tx = self.begin().await?;
                let created = crate::portable::InTx::<$db>($conn)
                    .create_task(task, max_per_user)
                    .await?;
                ($commit)($tx).await?;
                Ok(created)
            }
            async fn get_task(
                &self,
                id: netherbrain_core::TaskId,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::ScheduledTask> {
                self.portable().get_task(id).await
            }
            async fn list_tasks(
                &self,
                owner: netherbrain_core::UserId,
            ) -> netherbrain_core::store::StoreResult<Vec<netherbrain_core::store::ScheduledTask>>
            {
                self.portable().list_tasks(owner).await
            }
            async fn update_task(
                &self,
                id: netherbrain_core::TaskId,
                patch: netherbrain_core::store::TaskPatch,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::ScheduledTask> {
                let mut $tx = self.begin().await?;
                let updated = crate::portable::InTx::<$db>($conn)
                    .update_task(id, patch)
                    .await?;
                ($commit)($tx).await?;
                Ok(updated)
            }
            async fn delete_task(
                &self,
                id: netherbrain_core::TaskId,
            ) -> netherbrain_core::store::StoreResult<()> {
                let mut $tx = self.begin().await?;
                crate::portable::InTx::<$db>($conn).delete_task(id).await?;
                ($commit)($tx).await?;
                Ok(())
            }
            async fn due_tasks(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> netherbrain_core::store::StoreResult<Vec<netherbrain_core::store::ScheduledTask>>
            {
                self.portable().due_tasks(now, limit).await
            }
            async fn claim_task(
                &self,
                id: netherbrain_core::TaskId,
                slot: chrono::DateTime<chrono::Utc>,
                next: chrono::DateTime<chrono::Utc>,
            ) -> netherbrain_core::store::StoreResult<bool> {
                self.portable().claim_task(id, slot, next).await
            }
            async fn record_task_run(
                &self,
                id: netherbrain_core::TaskId,
                run: netherbrain_core::store::TaskRun,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::ScheduledTask> {
                let mut $tx = self.begin().await?;
                let recorded = crate::portable::InTx::<$db>($conn)
                    .record_task_run(id, run)
                    .await?;
                ($commit)($tx).await?;
                Ok(recorded)
            }
        }
    };
}
pub(crate) use task_store_impl;
