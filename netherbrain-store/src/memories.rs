//! Users' long-term memories ([`MemoryRecords`](netherbrain_core::store::MemoryRecords)):
//! the statements both dialects run verbatim, reads over the pool
//! ([`Portable`]) and writes inside the backend's transaction ([`InTx`]).
//! Only the full-text match differs ([`Dialect::MEMORY_MATCH`]); the
//! candidates it finds are ranked by core's `rank_memories`, so every
//! backend returns the same order.

use netherbrain_core::store::{
    MemoryPatch, MemoryQuery, MemoryRecord, NewMemory, StoreError, StoreResult, check_memory_room,
    rank_memories, validate,
};
use netherbrain_core::{MemoryId, UserId};
use sqlx::{Encode, Executor, IntoArguments, Pool, Type};
use uuid::Uuid;

use crate::common::{db_err, now, record};
use crate::portable::{Dialect, InTx, Portable};
use crate::rows::{Fields, RowGet};

const MEMORY_COLS: &str = "id, user_id, workspace_id, content, source_conversation_id, source_session_id, embedding, created_at, updated_at";

/// Most full-text candidates a search ranks.
const MAX_CANDIDATES: i64 = 2000;

fn memory<R: RowGet>(r: &R) -> StoreResult<MemoryRecord> {
    let embedding: Option<Vec<f32>> = r
        .opt_text("embedding")?
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Backend(format!("corrupt memory embedding: {e}")))
        })
        .transpose()?;
    let mut f = Fields::new();
    f.set("id", r.uuid("id")?)?
        .set("user_id", r.uuid("user_id")?)?
        .set("workspace_id", r.opt_uuid("workspace_id")?)?
        .set("content", r.text("content")?)?
        .set(
            "source_conversation_id",
            r.opt_uuid("source_conversation_id")?,
        )?
        .set("source_session_id", r.opt_uuid("source_session_id")?)?
        .set("embedding", embedding)?
        .set("created_at", r.ts("created_at")?)?
        .set("updated_at", r.ts("updated_at")?)?;
    record("memory", f.0)
}

fn embedding_text(embedding: Option<&Vec<f32>>) -> StoreResult<Option<String>> {
    embedding
        .map(|e| {
            serde_json::to_string(e)
                .map_err(|e| StoreError::Backend(format!("cannot encode an embedding: {e}")))
        })
        .transpose()
}

impl<DB> Portable<'_, DB>
where
    DB: Dialect,
    DB::Row: RowGet,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    pub(crate) async fn get_memory(&self, id: MemoryId) -> StoreResult<MemoryRecord> {
        let sql = format!("SELECT {MEMORY_COLS} FROM memories WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(Uuid::from(id))
            .fetch_optional(self.0)
            .await
            .map_err(db_err)?;
        row.as_ref()
            .map(memory)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("memory", id))
    }

    pub(crate) async fn list_memories(&self, user_id: UserId) -> StoreResult<Vec<MemoryRecord>> {
        let sql = format!(
            "SELECT {MEMORY_COLS} FROM memories WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(Uuid::from(user_id))
            .fetch_all(self.0)
            .await
            .map_err(db_err)?;
        rows.iter().map(memory).collect()
    }

    pub(crate) async fn count_memories(&self, user_id: UserId) -> StoreResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM memories WHERE user_id = $1")
            .bind(Uuid::from(user_id))
            .fetch_one(self.0)
            .await
            .map_err(db_err)?;
        Ok(u64::try_from(row.int("n")?).unwrap_or(0))
    }

    pub(crate) async fn search_memories(
        &self,
        query: MemoryQuery,
    ) -> StoreResult<Vec<MemoryRecord>> {
        let terms = validate::memory_query(&query)?;
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {MEMORY_COLS} FROM memories WHERE user_id = $1 \
             AND (workspace_id IS NULL OR workspace_id = $2) AND {} \
             ORDER BY created_at DESC, id DESC LIMIT $4",
            DB::MEMORY_MATCH
        );
        // An unknown workspace id matches no memory's workspace.
        let workspace = query.workspace_id.map_or_else(Uuid::nil, Uuid::from);
        let rows = sqlx::query(&sql)
            .bind(Uuid::from(query.user_id))
            .bind(workspace)
            .bind(DB::memory_terms(&terms))
            .bind(MAX_CANDIDATES)
            .fetch_all(self.0)
            .await
            .map_err(db_err)?;
        let candidates = rows.iter().map(memory).collect::<StoreResult<Vec<_>>>()?;
        Ok(rank_memories(&terms, candidates, query.limit))
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
    pub(crate) async fn create_memory(
        &mut self,
        new: NewMemory,
        max_per_user: u32,
    ) -> StoreResult<MemoryRecord> {
        validate::new_memory(&new)?;
        // Locking the user's row serialises a user's inserts, so the count
        // and the insert are one step.
        let sql = format!("SELECT 1 AS n FROM users WHERE id = $1{}", DB::FOR_UPDATE);
        let user = sqlx::query(&sql)
            .bind(Uuid::from(new.user_id))
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        if user.is_none() {
            return Err(StoreError::not_found("user", new.user_id));
        }
        if let Some(workspace) = new.workspace_id {
            self.require("workspaces", "workspace", workspace).await?;
        }
        let row = sqlx::query("SELECT COUNT(*) AS n FROM memories WHERE user_id = $1")
            .bind(Uuid::from(new.user_id))
            .fetch_one(&mut *self.0)
            .await
            .map_err(db_err)?;
        check_memory_room(u64::try_from(row.int("n")?).unwrap_or(0), max_per_user)?;
        let at = now();
        let sql = format!(
            "INSERT INTO memories ({MEMORY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             RETURNING {MEMORY_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(Uuid::from(MemoryId::new()))
            .bind(Uuid::from(new.user_id))
            .bind(new.workspace_id.map(Uuid::from))
            .bind(new.content)
            .bind(new.source_conversation_id.map(Uuid::from))
            .bind(new.source_session_id.map(Uuid::from))
            .bind(embedding_text(new.embedding.as_ref())?)
            .bind(DB::time(at))
            .fetch_one(&mut *self.0)
            .await
            .map_err(db_err)?;
        memory(&row)
    }

    pub(crate) async fn update_memory(
        &mut self,
        id: MemoryId,
        patch: MemoryPatch,
    ) -> StoreResult<MemoryRecord> {
        validate::memory_patch(&patch)?;
        let sql = format!(
            "SELECT {MEMORY_COLS} FROM memories WHERE id = $1{}",
            DB::FOR_UPDATE
        );
        let row = sqlx::query(&sql)
            .bind(Uuid::from(id))
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        let mut stored = row
            .as_ref()
            .map(memory)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("memory", id))?;
        patch.apply(&mut stored, now());
        let sql = format!(
            "UPDATE memories SET content = $1, embedding = $2, updated_at = $3 WHERE id = $4 \
             RETURNING {MEMORY_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(stored.content)
            .bind(embedding_text(stored.embedding.as_ref())?)
            .bind(DB::time(stored.updated_at))
            .bind(Uuid::from(id))
            .fetch_one(&mut *self.0)
            .await
            .map_err(db_err)?;
        memory(&row)
    }

    pub(crate) async fn delete_memory(&mut self, id: MemoryId) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM memories WHERE id = $1 RETURNING id")
            .bind(Uuid::from(id))
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        if done.is_none() {
            return Err(StoreError::not_found("memory", id));
        }
        Ok(())
    }
}

/// `impl MemoryRecords` for a backend with `portable()` and `begin()`, as
/// [`gateway_store_impl`](crate::gateway::gateway_store_impl).
macro_rules! memory_records_impl {
    ($store:ty, $db:ty, |$tx:ident| $conn:expr, $commit:expr) => {
        #[async_trait::async_trait]
        impl netherbrain_core::store::MemoryRecords for $store {
            async fn create_memory(
                &self,
                memory: netherbrain_core::store::NewMemory,
                max_per_user: u32,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::MemoryRecord> {
                let mut $tx = self.begin().await?;
                let created = crate::portable::InTx::<$db>($conn)
                    .create_memory(memory, max_per_user)
                    .await?;
                ($commit)($tx).await?;
                Ok(created)
            }
            async fn get_memory(
                &self,
                id: netherbrain_core::MemoryId,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::MemoryRecord> {
                self.portable().get_memory(id).await
            }
            async fn list_memories(
                &self,
                user_id: netherbrain_core::UserId,
            ) -> netherbrain_core::store::StoreResult<Vec<netherbrain_core::store::MemoryRecord>>
            {
                self.portable().list_memories(user_id).await
            }
            async fn count_memories(
                &self,
                user_id: netherbrain_core::UserId,
            ) -> netherbrain_core::store::StoreResult<u64> {
                self.portable().count_memories(user_id).await
            }
            async fn update_memory(
                &self,
                id: netherbrain_core::MemoryId,
                patch: netherbrain_core::store::MemoryPatch,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::MemoryRecord> {
                let mut $tx = self.begin().await?;
                let updated = crate::portable::InTx::<$db>($conn)
                    .update_memory(id, patch)
                    .await?;
                ($commit)($tx).await?;
                Ok(updated)
            }
            async fn delete_memory(
                &self,
                id: netherbrain_core::MemoryId,
            ) -> netherbrain_core::store::StoreResult<()> {
                let mut $tx = self.begin().await?;
                crate::portable::InTx::<$db>($conn)
                    .delete_memory(id)
                    .await?;
                ($commit)($tx).await?;
                Ok(())
            }
            async fn search_memories(
                &self,
                query: netherbrain_core::store::MemoryQuery,
            ) -> netherbrain_core::store::StoreResult<Vec<netherbrain_core::store::MemoryRecord>>
            {
                self.portable().search_memories(query).await
            }
        }
    };
}
pub(crate) use memory_records_impl;
