//! The statements both SQL backends run verbatim: the plain reads
//! ([`Portable`], over the pool), [`session_history`](Portable::session_history)
//! as one recursive query, and the writes that differ only in how a time is
//! bound, whether a row is locked and how a JSON parameter is cast
//! ([`InTx`], inside a backend's transaction).
//!
//! sqlx's SQLite driver binds `$N` parameters as Postgres does, so one SQL
//! text serves both; what differs by dialect is named in [`Dialect`], and
//! column types are hidden by [`RowGet`]. The rest stays in each backend:
//! how a write transaction starts (SQLite serialises writers), metadata
//! filters (`json_extract` pushdown vs `jsonb @>`), full-text search, the
//! bulk inserts of session messages and events, finishing a session
//! (Postgres strips NUL from model output) and taking the mailbox
//! (`SKIP LOCKED`).

use std::fmt::Display;

use chrono::{DateTime, Utc};
use netherbrain_core::store::{
    ApiKey, Conversation, ConversationPatch, MailboxEntry, NewApiKey, NewConversation,
    NewMailboxEntry, NewPreset, NewUser, NewWorkspace, Preset, PresetPatch, Session, StoreError,
    StoreResult, User, UserPatch, Workspace, WorkspacePatch, validate,
};
use netherbrain_core::{
    ApiKeyId, ConversationId, EventEnvelope, EventSeq, MailboxId, Message, PresetId, SessionId,
    UserId, WorkspaceId,
};
use sqlx::query::Query;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Postgres, Sqlite, Type};
use uuid::Uuid;

use crate::common::{DbFailure, classify, db_err, now, to_json, truncate, unique_or};
use crate::rows::{
    self, API_KEY_COLS, CONVERSATION_COLS, MAILBOX_COLS, PRESET_COLS, RowGet, SESSION_COLS,
    USER_COLS, WORKSPACE_COLS,
};

/// What the shared statements need to know about a dialect.
pub(crate) trait Dialect: Database {
    /// Appended to `ORDER BY <text column>` to sort by code point, as
    /// every backend (and `MemoryStore`) orders names.
    const BY_CODE_POINT: &'static str;
    /// Appended to a `SELECT` of the row a transaction is about to change.
    const FOR_UPDATE: &'static str;
    /// Appended to a parameter that fills a `jsonb` column (SQLite keeps
    /// JSON as text: nothing).
    const AS_JSONB: &'static str;
    /// Appended to a parameter that fills a `json` column.
    const AS_JSON: &'static str;
    /// The full-text condition on a `memories` row, with the words bound
    /// as `$3` ([`memory_terms`](Self::memory_terms)): any word may match.
    const MEMORY_MATCH: &'static str;
    /// The words of a memory search as `$3` of [`MEMORY_MATCH`](Self::MEMORY_MATCH)
    /// (letters and digits only, so always valid query syntax).
    fn memory_terms(terms: &[String]) -> String;
    /// How a timestamp column is bound.
    type Time: for<'q> Encode<'q, Self> + Type<Self> + Send + Sync + 'static;
    /// A time as bound to this dialect's timestamp columns.
    fn time(at: DateTime<Utc>) -> Self::Time;
}

impl Dialect for Sqlite {
    // SQLite's default collation (BINARY) compares code points.
    const BY_CODE_POINT: &'static str = "";
    // Writers are serialised (`BEGIN IMMEDIATE`): nothing to lock.
    const FOR_UPDATE: &'static str = "";
    const AS_JSONB: &'static str = "";
    const AS_JSON: &'static str = "";
    const MEMORY_MATCH: &'static str =
        "pk IN (SELECT rowid FROM memory_fts WHERE memory_fts MATCH $3)";
    fn memory_terms(terms: &[String]) -> String {
        terms
            .iter()
            .map(|t| format!("\"{t}\"*"))
            .collect::<Vec<_>>()
            .join(" OR ")
    }
    // Microseconds since the epoch, in an INTEGER column.
    type Time = i64;
    fn time(at: DateTime<Utc>) -> i64 {
        crate::common::micros(at)
    }
}

impl Dialect for Postgres {
    const BY_CODE_POINT: &'static str = " COLLATE \"C\"";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const AS_JSONB: &'static str = "::jsonb";
    const AS_JSON: &'static str = "::json";
    const MEMORY_MATCH: &'static str = "to_tsvector('simple', content) @@ to_tsquery('simple', $3)";
    fn memory_terms(terms: &[String]) -> String {
        terms
            .iter()
            .map(|t| format!("{t}:*"))
            .collect::<Vec<_>>()
            .join(" | ")
    }
    type Time = DateTime<Utc>;
    fn time(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }
}

type Q<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// The shared queries, over one backend's pool.
pub(crate) struct Portable<'a, DB: Database>(pub(crate) &'a Pool<DB>);

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
    async fn fetch_opt<'q, T>(
        &self,
        query: Q<'q, DB>,
        decode: fn(&DB::Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let row = query.fetch_optional(self.0).await.map_err(db_err)?;
        row.as_ref().map(decode).transpose()
    }

    async fn fetch_all<'q, T>(
        &self,
        query: Q<'q, DB>,
        decode: fn(&DB::Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let rows = query.fetch_all(self.0).await.map_err(db_err)?;
        rows.iter().map(decode).collect()
    }

    /// The record `sql` (`$1` = `id`) selects, or `NotFound`.
    async fn by_id<T>(
        &self,
        sql: &str,
        entity: &'static str,
        id: impl Into<Uuid> + Display + Copy,
        decode: fn(&DB::Row) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.fetch_opt(sqlx::query(sql).bind(id.into()), decode)
            .await?
            .ok_or_else(|| StoreError::not_found(entity, id))
    }

    /// A non-negative count `sql` selects as column `n`.
    async fn count(&self, query: Q<'_, DB>) -> StoreResult<u64> {
        let n = self.fetch_opt(query, |r| r.int("n")).await?.unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// `NotFound` unless a row of `table` has this id.
    pub(crate) async fn require(
        &self,
        table: &str,
        entity: &'static str,
        id: impl Into<Uuid> + Display + Copy,
    ) -> StoreResult<()> {
        self.by_id(
            &format!("SELECT 1 FROM {table} WHERE id = $1"),
            entity,
            id,
            |_| Ok(()),
        )
        .await
    }

    /// After a foreign-key violation: the first reference (in order) that
    /// does not exist, as `NotFound`; a conflict when all exist (one was
    /// deleted and the violation raced with it).
    pub(crate) async fn missing_reference(
        &self,
        references: &[(&str, &'static str, Uuid)],
        violation: &str,
    ) -> StoreError {
        for &(table, entity, id) in references {
            if let Err(e) = self.require(table, entity, id).await {
                return e;
            }
        }
        StoreError::Conflict(format!("a referenced row was deleted ({violation})"))
    }

    pub(crate) async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(self.0)
            .await
            .map(|_| ())
            .map_err(db_err)
    }

    // ---- users ----

    pub(crate) async fn get_user(&self, id: UserId) -> StoreResult<User> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        self.by_id(&sql, "user", id, rows::user).await
    }

    pub(crate) async fn get_user_by_username(&self, username: &str) -> StoreResult<User> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE username = $1");
        self.fetch_opt(sqlx::query(&sql).bind(username.to_owned()), rows::user)
            .await?
            .ok_or_else(|| StoreError::not_found("user", username))
    }

    pub(crate) async fn list_users(&self) -> StoreResult<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLS} FROM users ORDER BY username{}",
            DB::BY_CODE_POINT
        );
        self.fetch_all(sqlx::query(&sql), rows::user).await
    }

    pub(crate) async fn count_users(&self) -> StoreResult<u64> {
        self.count(sqlx::query("SELECT COUNT(*) AS n FROM users"))
            .await
    }

    pub(crate) async fn get_api_key_by_prefix(&self, prefix: &str) -> StoreResult<ApiKey> {
        let sql = format!("SELECT {API_KEY_COLS} FROM api_keys WHERE prefix = $1");
        self.fetch_opt(sqlx::query(&sql).bind(prefix.to_owned()), rows::api_key)
            .await?
            .ok_or_else(|| StoreError::not_found("api key", prefix))
    }

    pub(crate) async fn list_api_keys(&self, user_id: UserId) -> StoreResult<Vec<ApiKey>> {
        let sql = format!(
            "SELECT {API_KEY_COLS} FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        );
        self.fetch_all(sqlx::query(&sql).bind(Uuid::from(user_id)), rows::api_key)
            .await
    }

    // ---- catalog ----

    pub(crate) async fn get_preset(&self, id: PresetId) -> StoreResult<Preset> {
        let sql = format!("SELECT {PRESET_COLS} FROM presets WHERE id = $1");
        self.by_id(&sql, "preset", id, rows::preset).await
    }

    pub(crate) async fn get_preset_by_name(&self, name: &str) -> StoreResult<Preset> {
        let sql = format!("SELECT {PRESET_COLS} FROM presets WHERE name = $1");
        self.fetch_opt(sqlx::query(&sql).bind(name.to_owned()), rows::preset)
            .await?
            .ok_or_else(|| StoreError::not_found("preset", name))
    }

    pub(crate) async fn list_presets(&self) -> StoreResult<Vec<Preset>> {
        let sql = format!(
            "SELECT {PRESET_COLS} FROM presets ORDER BY name{}",
            DB::BY_CODE_POINT
        );
        self.fetch_all(sqlx::query(&sql), rows::preset).await
    }

    pub(crate) async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        let sql = format!("SELECT {WORKSPACE_COLS} FROM workspaces WHERE id = $1");
        self.by_id(&sql, "workspace", id, rows::workspace).await
    }

    pub(crate) async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        let sql = format!(
            "SELECT {WORKSPACE_COLS} FROM workspaces ORDER BY name{}",
            DB::BY_CODE_POINT
        );
        self.fetch_all(sqlx::query(&sql), rows::workspace).await
    }

    // ---- conversations ----

    pub(crate) async fn get_conversation(&self, id: ConversationId) -> StoreResult<Conversation> {
        let sql = format!("SELECT {CONVERSATION_COLS} FROM conversations WHERE id = $1");
        self.by_id(&sql, "conversation", id, rows::conversation)
            .await
    }

    // ---- sessions and their log ----

    pub(crate) async fn get_session(&self, id: SessionId) -> StoreResult<Session> {
        let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1");
        self.by_id(&sql, "session", id, rows::session).await
    }

    pub(crate) async fn session_usage(
        &self,
        query: netherbrain_core::store::UsageQuery,
    ) -> StoreResult<Vec<netherbrain_core::store::SessionUsage>> {
        let mut sql = String::from(
            "SELECT s.id, s.preset_id, s.created_at, s.usage FROM sessions s \
             JOIN conversations c ON c.id = s.conversation_id WHERE s.created_at >= $1",
        );
        let mut n = 1;
        if query.owner.is_some() {
            n += 1;
            sql.push_str(&format!(" AND c.owner_id = ${n}"));
        }
        if query.preset_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND s.preset_id = ${n}"));
        }
        sql.push_str(" ORDER BY s.created_at, s.id");
        let mut q = sqlx::query(&sql).bind(DB::time(query.since));
        if let Some(owner) = query.owner {
            q = q.bind(Uuid::from(owner));
        }
        if let Some(preset) = query.preset_id {
            q = q.bind(Uuid::from(preset));
        }
        self.fetch_all(q, rows::session_usage).await
    }

    pub(crate) async fn list_sessions(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Vec<Session>> {
        self.require("conversations", "conversation", conversation_id)
            .await?;
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE conversation_id = $1 ORDER BY created_at, id"
        );
        self.fetch_all(
            sqlx::query(&sql).bind(Uuid::from(conversation_id)),
            rows::session,
        )
        .await
    }

    /// The newest session (last in `list_sessions`' order); none for an
    /// unknown conversation.
    pub(crate) async fn latest_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE conversation_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        self.fetch_opt(
            sqlx::query(&sql).bind(Uuid::from(conversation_id)),
            rows::session,
        )
        .await
    }

    pub(crate) async fn active_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        self.require("conversations", "conversation", conversation_id)
            .await?;
        self.running_session(conversation_id).await
    }

    /// The conversation's `created` or `running` session (at most one: a
    /// partial unique index).
    pub(crate) async fn running_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE conversation_id = $1 AND status IN ('created', 'running')"
        );
        self.fetch_opt(
            sqlx::query(&sql).bind(Uuid::from(conversation_id)),
            rows::session,
        )
        .await
    }

    pub(crate) async fn session_messages(
        &self,
        session_id: SessionId,
    ) -> StoreResult<Vec<Message>> {
        self.require("sessions", "session", session_id).await?;
        let query =
            sqlx::query("SELECT message FROM session_messages WHERE session_id = $1 ORDER BY seq")
                .bind(Uuid::from(session_id));
        self.fetch_all(query, |r| r.doc("message")).await
    }

    pub(crate) async fn expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<SessionId>> {
        let query = sqlx::query(
            "SELECT id FROM sessions WHERE status IN ('created', 'running') \
             AND (lease_expires_at IS NULL OR lease_expires_at <= $1) ORDER BY created_at, id",
        )
        .bind(DB::time(now));
        self.fetch_all(query, |r| Ok(SessionId::from_uuid(r.uuid("id")?)))
            .await
    }

    pub(crate) async fn list_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
        limit: u32,
    ) -> StoreResult<Vec<EventEnvelope>> {
        self.require("sessions", "session", session_id).await?;
        let query = sqlx::query(
            "SELECT event FROM session_events WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(Uuid::from(session_id))
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit));
        self.fetch_all(query, |r| r.doc("event")).await
    }

    pub(crate) async fn last_event_seq(&self, session_id: SessionId) -> StoreResult<EventSeq> {
        self.require("sessions", "session", session_id).await?;
        self.count(
            sqlx::query(
                "SELECT COALESCE(MAX(seq), 0) AS n FROM session_events WHERE session_id = $1",
            )
            .bind(Uuid::from(session_id)),
        )
        .await
    }

    /// The session's history in one query: a recursive walk up
    /// `parent_session_id` (at most [`validate::MAX_SESSION_CHAIN`]
    /// links), joined to each session's messages, root first.
    pub(crate) async fn session_history(&self, session_id: SessionId) -> StoreResult<Vec<Message>> {
        // Every session of the chain yields a row (the LEFT JOIN keeps
        // sessions without messages), so no row at all means no session.
        const SQL: &str = "WITH RECURSIVE chain(id, parent, depth) AS ( \
                SELECT id, parent_session_id, CAST(0 AS BIGINT) FROM sessions WHERE id = $1 \
              UNION ALL \
                SELECT s.id, s.parent_session_id, chain.depth + 1 \
                FROM sessions s JOIN chain ON s.id = chain.parent WHERE chain.depth < $2 \
            ) \
            SELECT chain.depth, chain.parent, m.message \
            FROM chain LEFT JOIN session_messages m ON m.session_id = chain.id \
            ORDER BY chain.depth DESC, m.seq";
        let limit = i64::try_from(validate::MAX_SESSION_CHAIN).unwrap_or(i64::MAX);
        let query = sqlx::query(SQL).bind(Uuid::from(session_id)).bind(limit);
        let rows = self
            .fetch_all(query, |r| {
                Ok((
                    r.int("depth")?,
                    r.opt_uuid("parent")?,
                    r.opt_doc::<Message>("message")?,
                ))
            })
            .await?;
        match rows.first() {
            None => return Err(StoreError::not_found("session", session_id)),
            // The root comes first: a parent there means the walk stopped
            // at the limit.
            Some((_, Some(_), _)) => {
                return Err(StoreError::Backend("session parent chain too long".into()));
            }
            Some(_) => {}
        }
        Ok(rows.into_iter().filter_map(|(_, _, m)| m).collect())
    }
}

/// The shared writes, on the connection of a backend's open transaction
/// (the backend begins and commits it).
pub(crate) struct InTx<'a, DB: Database>(pub(crate) &'a mut DB::Connection);

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
    /// Runs an `INSERT … RETURNING`; a unique violation is `taken`.
    async fn insert<'q, T>(
        &mut self,
        query: Q<'q, DB>,
        decode: fn(&DB::Row) -> StoreResult<T>,
        taken: impl FnOnce() -> String,
    ) -> StoreResult<T> {
        match query.fetch_one(&mut *self.0).await.map_err(classify) {
            Ok(row) => decode(&row),
            Err(DbFailure::Unique(_)) => Err(StoreError::Conflict(taken())),
            // Checked before the insert, then deleted by a concurrent transaction.
            Err(DbFailure::ForeignKey(c)) => Err(StoreError::Conflict(format!(
                "a referenced row was deleted ({c})"
            ))),
            Err(DbFailure::Other(e)) => Err(e),
        }
    }

    pub(crate) async fn create_user(&mut self, user: NewUser) -> StoreResult<User> {
        let at = DB::time(now());
        let sql = format!(
            "INSERT INTO users (id, username, display_name, role, password_hash, must_change_password, active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $7) RETURNING {USER_COLS}"
        );
        let query = sqlx::query(&sql)
            .bind(Uuid::from(UserId::new()))
            .bind(user.username.clone())
            .bind(user.display_name)
            .bind(user.role.as_str().to_owned())
            .bind(user.password_hash)
            .bind(user.must_change_password)
            .bind(at);
        self.insert(query, rows::user, || {
            format!("username `{}` is taken", user.username)
        })
        .await
    }

    pub(crate) async fn create_api_key(&mut self, key: NewApiKey) -> StoreResult<ApiKey> {
        self.require("users", "user", key.user_id).await?;
        let sql = format!(
            "INSERT INTO api_keys (id, user_id, name, prefix, hash, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) RETURNING {API_KEY_COLS}"
        );
        let query = sqlx::query(&sql)
            .bind(Uuid::from(ApiKeyId::new()))
            .bind(Uuid::from(key.user_id))
            .bind(key.name)
            .bind(key.prefix.clone())
            .bind(key.hash)
            .bind(DB::time(now()))
            .bind(key.expires_at.map(|at| DB::time(truncate(at))));
        self.insert(query, rows::api_key, || {
            format!("API key prefix `{}` is taken", key.prefix)
        })
        .await
    }

    /// Revokes a key; a conflict when it already is.
    pub(crate) async fn revoke_api_key(&mut self, id: ApiKeyId) -> StoreResult<ApiKey> {
        let sql = format!(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING {API_KEY_COLS}"
        );
        let query = sqlx::query(&sql).bind(DB::time(now())).bind(Uuid::from(id));
        let row = query.fetch_optional(&mut *self.0).await.map_err(db_err)?;
        match row {
            Some(row) => rows::api_key(&row),
            None => {
                self.require("api_keys", "api key", id).await?;
                Err(StoreError::Conflict(format!(
                    "API key {id} is already revoked"
                )))
            }
        }
    }

    pub(crate) async fn create_preset(&mut self, preset: NewPreset) -> StoreResult<Preset> {
        let at = DB::time(now());
        let sql = format!(
            "INSERT INTO presets (id, name, description, config, created_at, updated_at) \
             VALUES ($1, $2, $3, $4{j}, $5, $5) RETURNING {PRESET_COLS}",
            j = DB::AS_JSONB
        );
        let query = sqlx::query(&sql)
            .bind(Uuid::from(PresetId::new()))
            .bind(preset.name.clone())
            .bind(preset.description)
            .bind(to_json(&preset.config)?)
            .bind(at);
        self.insert(query, rows::preset, || {
            format!("preset name `{}` is taken", preset.name)
        })
        .await
    }

    pub(crate) async fn create_workspace(
        &mut self,
        workspace: NewWorkspace,
    ) -> StoreResult<Workspace> {
        let at = DB::time(now());
        let sql = format!(
            "INSERT INTO workspaces (id, name, project_dirs, metadata, created_at, updated_at, owner_id) \
             VALUES ($1, $2, $3{j}, $4{j}, $5, $5, $6) RETURNING {WORKSPACE_COLS}",
            j = DB::AS_JSONB
        );
        let query = sqlx::query(&sql)
            .bind(Uuid::from(WorkspaceId::new()))
            .bind(workspace.name.clone())
            .bind(to_json(&workspace.project_dirs)?)
            .bind(to_json(&workspace.metadata)?)
            .bind(at)
            .bind(workspace.owner.map(Uuid::from));
        self.insert(query, rows::workspace, || {
            format!("workspace name `{}` is taken", workspace.name)
        })
        .await
    }

    /// Creates a conversation in one statement. A missing owner, workspace
    /// or preset is a foreign-key violation, returned as `Ok(Err(detail))`
    /// for the caller to explain outside the (now failed) transaction with
    /// [`Portable::missing_reference`] and [`conversation_references`].
    pub(crate) async fn create_conversation(
        &mut self,
        conversation: NewConversation,
    ) -> StoreResult<Result<Conversation, String>> {
        let at = DB::time(now());
        let sql = format!(
            "INSERT INTO conversations (id, owner_id, workspace_id, title, summary, default_preset_id, metadata, status, created_at, updated_at, last_activity_at, forked_from_conversation_id, forked_from_session_id, delegated_from_conversation_id, delegated_from_session_id) \
             VALUES ($1, $2, $3, $4, NULL, $5, $6{j}, 'active', $7, $7, $7, $8, $9, $10, $11) RETURNING {CONVERSATION_COLS}",
            j = DB::AS_JSONB
        );
        let id = conversation.id;
        let query = sqlx::query(&sql)
            .bind(Uuid::from(id))
            .bind(Uuid::from(conversation.owner))
            .bind(conversation.workspace_id.map(Uuid::from))
            .bind(conversation.title)
            .bind(conversation.default_preset.map(Uuid::from))
            .bind(to_json(&conversation.metadata)?)
            .bind(at)
            .bind(
                conversation
                    .forked_from
                    .map(|o| Uuid::from(o.conversation_id)),
            )
            .bind(conversation.forked_from.map(|o| Uuid::from(o.session_id)))
            .bind(
                conversation
                    .delegated_from
                    .map(|o| Uuid::from(o.conversation_id)),
            )
            .bind(
                conversation
                    .delegated_from
                    .map(|o| Uuid::from(o.session_id)),
            );
        match query.fetch_one(&mut *self.0).await.map_err(classify) {
            Ok(row) => rows::conversation(&row).map(Ok),
            Err(DbFailure::Unique(_)) => Err(StoreError::Conflict(format!(
                "conversation {id} already exists"
            ))),
            Err(DbFailure::ForeignKey(detail)) => Ok(Err(detail)),
            Err(DbFailure::Other(e)) => Err(e),
        }
    }

    /// Leaves a mailbox entry for an existing conversation.
    pub(crate) async fn post_mailbox(
        &mut self,
        entry: NewMailboxEntry,
    ) -> StoreResult<MailboxEntry> {
        self.require("conversations", "conversation", entry.conversation_id)
            .await?;
        if let Some(source) = entry.source_session_id {
            self.require("sessions", "session", source).await?;
        }
        let sql = format!(
            "INSERT INTO mailbox (id, conversation_id, source_session_id, content, created_at, delivered_at) \
             VALUES ($1, $2, $3, $4{j}, $5, NULL) RETURNING {MAILBOX_COLS}",
            j = DB::AS_JSON
        );
        let query = sqlx::query(&sql)
            .bind(Uuid::from(MailboxId::new()))
            .bind(Uuid::from(entry.conversation_id))
            .bind(entry.source_session_id.map(Uuid::from))
            .bind(to_json(&entry.content)?)
            .bind(DB::time(now()));
        self.insert(query, rows::mailbox, || "mailbox entry id is taken".into())
            .await
    }

    /// The row `sql` (`$1` = `id`) selects, decoded.
    async fn by_id<T>(
        &mut self,
        sql: &str,
        id: Uuid,
        decode: fn(&DB::Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        row.as_ref().map(decode).transpose()
    }

    /// `NotFound` unless a row of `table` has this id.
    pub(crate) async fn require(
        &mut self,
        table: &str,
        entity: &'static str,
        id: impl Into<Uuid> + Display + Copy,
    ) -> StoreResult<()> {
        let sql = format!("SELECT 1 FROM {table} WHERE id = $1");
        self.by_id(&sql, id.into(), |_| Ok(()))
            .await?
            .ok_or_else(|| StoreError::not_found(entity, id))
    }

    /// Deletes the row of `table` with this id, unless `referenced` (a
    /// query with `$1` = `id`) finds a row that refers to it: then
    /// `in_use` is the conflict.
    pub(crate) async fn delete_unreferenced(
        &mut self,
        table: &str,
        entity: &'static str,
        id: impl Into<Uuid> + Display + Copy,
        referenced: &str,
        in_use: impl Fn() -> String,
    ) -> StoreResult<()> {
        let sql = format!("SELECT 1 FROM {table} WHERE id = $1{}", DB::FOR_UPDATE);
        if self.by_id(&sql, id.into(), |_| Ok(())).await?.is_none() {
            return Err(StoreError::not_found(entity, id));
        }
        if self
            .by_id(referenced, id.into(), |_| Ok(()))
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(in_use()));
        }
        let res = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id.into())
            .execute(&mut *self.0)
            .await;
        match res.map_err(classify) {
            Ok(_) => Ok(()),
            // A reference added by a concurrent transaction.
            Err(DbFailure::ForeignKey(_)) => Err(StoreError::Conflict(in_use())),
            Err(DbFailure::Unique(c)) => Err(StoreError::Conflict(c)),
            Err(DbFailure::Other(e)) => Err(e),
        }
    }

    /// Applies a (validated) patch to a user.
    pub(crate) async fn update_user(&mut self, id: UserId, patch: UserPatch) -> StoreResult<User> {
        let mut user = self
            .for_update(USER_COLS, "users", "user", id, rows::user)
            .await?;
        patch.apply(&mut user);
        user.updated_at = now();
        sqlx::query(
            "UPDATE users SET display_name = $1, role = $2, active = $3, password_hash = $4, must_change_password = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(user.display_name.clone())
        .bind(user.role.as_str().to_owned())
        .bind(user.active)
        .bind(user.password_hash.clone())
        .bind(user.must_change_password)
        .bind(DB::time(user.updated_at))
        .bind(Uuid::from(id))
        .execute(&mut *self.0)
        .await
        .map_err(db_err)?;
        Ok(user)
    }

    /// The row of `table` (columns `cols`) with this id, locked for the
    /// transaction, or `NotFound`.
    async fn for_update<T>(
        &mut self,
        cols: &str,
        table: &str,
        entity: &'static str,
        id: impl Into<Uuid> + Display + Copy,
        decode: fn(&DB::Row) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let sql = format!("SELECT {cols} FROM {table} WHERE id = $1{}", DB::FOR_UPDATE);
        self.by_id(&sql, id.into(), decode)
            .await?
            .ok_or_else(|| StoreError::not_found(entity, id))
    }

    /// Applies a (validated) patch to a preset; a taken name conflicts.
    pub(crate) async fn update_preset(
        &mut self,
        id: PresetId,
        patch: PresetPatch,
    ) -> StoreResult<Preset> {
        let mut preset = self
            .for_update(PRESET_COLS, "presets", "preset", id, rows::preset)
            .await?;
        patch.apply(&mut preset);
        preset.updated_at = now();
        let res = sqlx::query(&format!(
            "UPDATE presets SET name = $1, description = $2, config = $3{j}, updated_at = $4 WHERE id = $5",
            j = DB::AS_JSONB
        ))
        .bind(preset.name.clone())
        .bind(preset.description.clone())
        .bind(to_json(&preset.config)?)
        .bind(DB::time(preset.updated_at))
        .bind(Uuid::from(id))
        .execute(&mut *self.0)
        .await;
        unique_or(res, || {
            StoreError::Conflict(format!("preset name `{}` is taken", preset.name))
        })?;
        Ok(preset)
    }

    /// Applies a (validated) patch to a workspace; a taken name conflicts.
    pub(crate) async fn update_workspace(
        &mut self,
        id: WorkspaceId,
        patch: WorkspacePatch,
    ) -> StoreResult<Workspace> {
        let mut ws = self
            .for_update(
                WORKSPACE_COLS,
                "workspaces",
                "workspace",
                id,
                rows::workspace,
            )
            .await?;
        patch.apply(&mut ws)?;
        ws.updated_at = now();
        let res = sqlx::query(&format!(
            "UPDATE workspaces SET name = $1, project_dirs = $2{j}, metadata = $3{j}, updated_at = $4, owner_id = $6 WHERE id = $5",
            j = DB::AS_JSONB
        ))
        .bind(ws.name.clone())
        .bind(to_json(&ws.project_dirs)?)
        .bind(to_json(&ws.metadata)?)
        .bind(DB::time(ws.updated_at))
        .bind(Uuid::from(id))
        .bind(ws.owner.map(Uuid::from))
        .execute(&mut *self.0)
        .await;
        unique_or(res, || {
            StoreError::Conflict(format!("workspace name `{}` is taken", ws.name))
        })?;
        Ok(ws)
    }

    /// Applies a (validated) patch to a conversation; a new default preset
    /// must exist.
    pub(crate) async fn update_conversation(
        &mut self,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> StoreResult<Conversation> {
        let mut c = self
            .for_update(
                CONVERSATION_COLS,
                "conversations",
                "conversation",
                id,
                rows::conversation,
            )
            .await?;
        if let Some(Some(preset)) = patch.default_preset {
            self.require("presets", "preset", preset).await?;
        }
        patch.apply(&mut c)?;
        c.updated_at = now();
        let res = sqlx::query(&format!(
            "UPDATE conversations SET title = $1, summary = $2, default_preset_id = $3, metadata = $4{j}, status = $5, updated_at = $6 WHERE id = $7",
            j = DB::AS_JSONB
        ))
        .bind(c.title.clone())
        .bind(c.summary.clone())
        .bind(c.default_preset.map(Uuid::from))
        .bind(to_json(&c.metadata)?)
        .bind(c.status.as_str().to_owned())
        .bind(DB::time(c.updated_at))
        .bind(Uuid::from(id))
        .execute(&mut *self.0)
        .await;
        match res.map_err(classify) {
            Ok(_) => Ok(c),
            // Deleted by a concurrent transaction after the check above.
            Err(DbFailure::ForeignKey(_)) => {
                Err(StoreError::Conflict("the preset was deleted".into()))
            }
            Err(DbFailure::Unique(u)) => Err(StoreError::Conflict(u)),
            Err(DbFailure::Other(e)) => Err(e),
        }
    }

    /// Marks every `created` or `running` session interrupted; their ids,
    /// oldest first.
    /// Extends `owner`'s leases on these sessions while they run.
    pub(crate) async fn renew_leases(
        &mut self,
        owner: &str,
        sessions: &[SessionId],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = (0..sessions.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE sessions SET lease_expires_at = $1 \
             WHERE lease_owner = $2 AND status IN ('created', 'running') AND id IN ({}) RETURNING id",
            ids.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(DB::time(until))
            .bind(owner.to_owned());
        for id in sessions {
            query = query.bind(Uuid::from(*id));
        }
        let rows = query.fetch_all(&mut *self.0).await.map_err(db_err)?;
        rows.iter()
            .map(|r| r.uuid("id").map(SessionId::from_uuid))
            .collect()
    }

    /// Interrupts the sessions whose lease expired by `now` (or that have
    /// none), each with a terminal event after its last one.
    pub(crate) async fn recover_sessions(
        &mut self,
        expired_by: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        let sql = format!(
            "SELECT id, conversation_id, created_at FROM sessions \
             WHERE status IN ('created', 'running') AND (lease_expires_at IS NULL OR lease_expires_at <= $1){}",
            DB::FOR_UPDATE
        );
        let rows = sqlx::query(&sql)
            .bind(DB::time(expired_by))
            .fetch_all(&mut *self.0)
            .await
            .map_err(db_err)?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            found.push((
                row.ts("created_at")?,
                SessionId::from_uuid(row.uuid("id")?),
                ConversationId::from_uuid(row.uuid("conversation_id")?),
            ));
        }
        found.sort();
        // Recovery is not activity: conversations keep their place in listings.
        let at = now();
        let mut recovered = Vec::with_capacity(found.len());
        for (_, session_id, conversation_id) in found {
            let last = sqlx::query(
                "SELECT COALESCE(MAX(seq), 0) AS n FROM session_events WHERE session_id = $1",
            )
            .bind(Uuid::from(session_id))
            .fetch_one(&mut *self.0)
            .await
            .map_err(db_err)?
            .int("n")?;
            let event = netherbrain_core::store::recovered_event(
                session_id,
                conversation_id,
                u64::try_from(last).unwrap_or(0),
            );
            sqlx::query(&format!(
                "INSERT INTO session_events (session_id, seq, at, event) VALUES ($1, $2, $3, $4{})",
                DB::AS_JSON
            ))
            .bind(Uuid::from(session_id))
            .bind(last.saturating_add(1))
            .bind(DB::time(event.at))
            .bind(to_json(&event)?)
            .execute(&mut *self.0)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "UPDATE sessions SET status = 'interrupted', updated_at = $1, finished_at = $1, \
                 lease_owner = NULL, lease_expires_at = NULL WHERE id = $2",
            )
            .bind(DB::time(at))
            .bind(Uuid::from(session_id))
            .execute(&mut *self.0)
            .await
            .map_err(db_err)?;
            recovered.push(session_id);
        }
        if !recovered.is_empty() {
            tracing::info!(
                count = recovered.len(),
                "marked sessions left behind by a stopped process as interrupted"
            );
        }
        Ok(recovered)
    }
}

/// What a new conversation refers to, in the order a missing one is
/// reported.
pub(crate) fn conversation_references(
    c: &NewConversation,
) -> Vec<(&'static str, &'static str, Uuid)> {
    let mut refs = vec![("users", "user", Uuid::from(c.owner))];
    if let Some(ws) = c.workspace_id {
        refs.push(("workspaces", "workspace", Uuid::from(ws)));
    }
    if let Some(p) = c.default_preset {
        refs.push(("presets", "preset", Uuid::from(p)));
    }
    refs
}

/// What a new session refers to, in the order a missing one is reported.
pub(crate) fn session_references(
    s: &netherbrain_core::store::NewSession,
) -> Vec<(&'static str, &'static str, Uuid)> {
    let mut refs = vec![(
        "conversations",
        "conversation",
        Uuid::from(s.conversation_id),
    )];
    if let Some(parent) = s.parent_session_id {
        refs.push(("sessions", "session", Uuid::from(parent)));
    }
    if let Some(p) = s.preset_id {
        refs.push(("presets", "preset", Uuid::from(p)));
    }
    refs
}
