//! [`PostgresStore`]: shared state for several runtime replicas.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use netherbrain_core::store::{
    ApiKey, CatalogStore, Conversation, ConversationCursor, ConversationPatch, ConversationQuery,
    ConversationStore, MailboxEntry, MailboxStore, NewApiKey, NewConversation, NewMailboxEntry,
    NewPreset, NewSession, NewUser, NewWorkspace, Page, Preset, PresetPatch, Session,
    SessionAppend, SessionFinish, SessionStore, StoreError, StoreHealth, StoreResult, User,
    UserPatch, UserStore, Workspace, WorkspacePatch, validate,
};
use netherbrain_core::{
    ApiKeyId, ConversationId, EventEnvelope, EventSeq, Message, PresetId, SessionId, SessionStatus,
    UserId, WorkspaceId,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::common::{
    DbFailure, classify, db_err, migrate_err, now, search_text, seq_to_i64, to_json, truncate,
};
use crate::portable::{self, InTx, Portable};
use crate::rows::{self, CONVERSATION_COLS, MAILBOX_COLS, SESSION_COLS};

/// The embedded migrations for Postgres.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections in the pool.
const POOL_SIZE: u32 = 10;
/// How long a call waits for a connection (including connecting).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`StateStore`](netherbrain_core::store::StateStore) in a Postgres
/// database, for several runtime replicas sharing state.
///
/// [`connect`](Self::connect) and [`from_pool`](Self::from_pool) apply
/// pending migrations (serialised across replicas by an advisory lock), so
/// the schema is always current. Conversation search uses Postgres full
/// text search (`simple` configuration, prefix matching) over GIN indexes;
/// metadata filters use `jsonb @>`.
///
/// TLS (rustls, system trust roots) follows the URL's `sslmode`
/// (`prefer` by default; `require`, `verify-ca`, `verify-full`; add
/// `sslrootcert=` for a private CA).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

/// Opens a pool without migrating. One connection is made first, so an
/// unreachable server or bad credentials fail at once with a clear error
/// instead of after the pool's acquire timeout.
pub(crate) async fn open_pool(url: &str) -> StoreResult<PgPool> {
    use sqlx::{ConnectOptions, Connection};
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Invalid(format!("invalid Postgres URL: {e}")))?;
    let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect())
        .await
        .map_err(|_| StoreError::Unavailable("timed out connecting to Postgres".into()))?
        .map_err(connect_err)?;
    let _ = probe.close().await;
    // Host and database only: the URL may hold a password.
    let (host, port, database) = (
        options.get_host().to_owned(),
        options.get_port(),
        options.get_database().unwrap_or("").to_owned(),
    );
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(connect_err)?;
    tracing::info!(%host, port, %database, "connected to Postgres");
    Ok(pool)
}

fn connect_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Configuration(e) => StoreError::Invalid(format!("invalid Postgres URL: {e}")),
        sqlx::Error::Database(db) => {
            StoreError::Unavailable(format!("cannot connect to Postgres: {}", db.message()))
        }
        other => match db_err(other) {
            StoreError::Backend(m) => {
                StoreError::Unavailable(format!("cannot connect to Postgres: {m}"))
            }
            e => e,
        },
    }
}

fn uuid_of(id: impl Into<Uuid>) -> Uuid {
    id.into()
}

fn strip_nul(s: &str) -> String {
    s.replace('\0', "")
}

fn status_of(s: &str) -> StoreResult<SessionStatus> {
    s.parse()
        .map_err(|_| StoreError::Backend(format!("unknown session status `{s}` in database")))
}

type Tx = Transaction<'static, Postgres>;

impl PostgresStore {
    /// Connects to a `postgres://` / `postgresql://` URL and applies
    /// pending migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a bad URL, [`StoreError::Unavailable`]
    /// when the server cannot be reached, [`StoreError::Backend`] when a
    /// migration fails.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = open_pool(url).await?;
        Self::from_pool(pool).await
    }

    /// Wraps an existing pool and applies pending migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when a migration fails.
    pub async fn from_pool(pool: PgPool) -> StoreResult<Self> {
        MIGRATOR.run(&pool).await.map_err(migrate_err)?;
        Ok(Self { pool })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The queries shared with SQLite.
    fn portable(&self) -> Portable<'_, Postgres> {
        Portable(&self.pool)
    }

    async fn begin(&self) -> StoreResult<Tx> {
        self.pool.begin().await.map_err(db_err)
    }

    async fn fetch_opt(&self, sql: &str, id: Uuid) -> StoreResult<Option<PgRow>> {
        sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }
}

#[async_trait]
impl StoreHealth for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        self.portable().ping().await
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        validate::new_user(&user)?;
        let mut tx = self.begin().await?;
        let created = InTx::<Postgres>(&mut *tx).create_user(user).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        self.portable().get_user(id).await
    }

    async fn get_user_by_username(&self, username: &str) -> StoreResult<User> {
        self.portable().get_user_by_username(username).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.portable().list_users().await
    }

    async fn update_user(&self, id: UserId, patch: UserPatch) -> StoreResult<User> {
        validate::user_patch(&patch)?;
        let mut tx = self.begin().await?;
        let user = InTx::<Postgres>(&mut *tx).update_user(id, patch).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(user)
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.portable().count_users().await
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        validate::new_api_key(&key)?;
        let mut tx = self.begin().await?;
        let created = InTx::<Postgres>(&mut *tx).create_api_key(key).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn get_api_key_by_prefix(&self, prefix: &str) -> StoreResult<ApiKey> {
        self.portable().get_api_key_by_prefix(prefix).await
    }

    async fn list_api_keys(&self, user_id: UserId) -> StoreResult<Vec<ApiKey>> {
        self.portable().list_api_keys(user_id).await
    }

    async fn revoke_api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey> {
        let mut tx = self.begin().await?;
        let revoked = InTx::<Postgres>(&mut *tx).revoke_api_key(id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(revoked)
    }
}

#[async_trait]
impl CatalogStore for PostgresStore {
    async fn create_preset(&self, preset: NewPreset) -> StoreResult<Preset> {
        validate::new_preset(&preset)?;
        let mut tx = self.begin().await?;
        let created = InTx::<Postgres>(&mut *tx).create_preset(preset).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn get_preset(&self, id: PresetId) -> StoreResult<Preset> {
        self.portable().get_preset(id).await
    }

    async fn get_preset_by_name(&self, name: &str) -> StoreResult<Preset> {
        self.portable().get_preset_by_name(name).await
    }

    async fn list_presets(&self) -> StoreResult<Vec<Preset>> {
        self.portable().list_presets().await
    }

    async fn update_preset(&self, id: PresetId, patch: PresetPatch) -> StoreResult<Preset> {
        validate::preset_patch(&patch)?;
        let mut tx = self.begin().await?;
        let preset = InTx::<Postgres>(&mut *tx).update_preset(id, patch).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(preset)
    }

    async fn delete_preset(&self, id: PresetId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        InTx::<Postgres>(&mut *tx)
            .delete_unreferenced(
                "presets",
                "preset",
                id,
                "SELECT 1 FROM conversations WHERE default_preset_id = $1 \
                 UNION ALL SELECT 1 FROM scheduled_tasks WHERE preset_id = $1 LIMIT 1",
                || format!("preset {id} is the default preset of a conversation or used by a scheduled task"),
            )
            .await?;
        tx.commit().await.map_err(db_err)
    }

    async fn create_workspace(&self, workspace: NewWorkspace) -> StoreResult<Workspace> {
        validate::new_workspace(&workspace)?;
        let mut tx = self.begin().await?;
        let created = InTx::<Postgres>(&mut *tx)
            .create_workspace(workspace)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        self.portable().get_workspace(id).await
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.portable().list_workspaces().await
    }

    async fn update_workspace(
        &self,
        id: WorkspaceId,
        patch: WorkspacePatch,
    ) -> StoreResult<Workspace> {
        validate::workspace_patch(&patch)?;
        let mut tx = self.begin().await?;
        let workspace = InTx::<Postgres>(&mut *tx)
            .update_workspace(id, patch)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(workspace)
    }

    async fn delete_workspace(&self, id: WorkspaceId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        InTx::<Postgres>(&mut *tx)
            .delete_unreferenced(
                "workspaces",
                "workspace",
                id,
                "SELECT 1 FROM conversations WHERE workspace_id = $1 LIMIT 1",
                || format!("workspace {id} still has conversations"),
            )
            .await?;
        tx.commit().await.map_err(db_err)
    }
}

#[async_trait]
impl ConversationStore for PostgresStore {
    async fn create_conversation(
        &self,
        conversation: NewConversation,
    ) -> StoreResult<Conversation> {
        validate::new_conversation(&conversation)?;
        let references = portable::conversation_references(&conversation);
        let mut tx = self.begin().await?;
        let created = InTx::<Postgres>(&mut *tx)
            .create_conversation(conversation)
            .await?;
        match created {
            Ok(created) => {
                tx.commit().await.map_err(db_err)?;
                Ok(created)
            }
            Err(violation) => {
                drop(tx);
                Err(self
                    .portable()
                    .missing_reference(&references, &violation)
                    .await)
            }
        }
    }

    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Conversation> {
        self.portable().get_conversation(id).await
    }

    async fn list_conversations(
        &self,
        query: ConversationQuery,
    ) -> StoreResult<Page<Conversation>> {
        validate::page_size(query.limit)?;
        let after = query
            .cursor
            .as_deref()
            .map(ConversationCursor::decode)
            .transpose()?;
        let metadata = query.metadata.as_ref().map(to_json).transpose()?;
        // Only the filters in use are in the SQL: with `$n IS NULL OR …`
        // terms Postgres's generic plan (used for a prepared statement
        // after five runs) cannot use the indexes and scans and sorts the
        // whole table.
        let mut sql = format!("SELECT {CONVERSATION_COLS} FROM conversations WHERE TRUE");
        let mut n = 0;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        if query.owner.is_some() {
            sql.push_str(&format!(" AND owner_id = {}", param()));
        }
        if query.status.is_some() {
            sql.push_str(&format!(" AND status = {}", param()));
        }
        if query.workspace_id.is_some() {
            sql.push_str(&format!(" AND workspace_id = {}", param()));
        }
        if metadata.is_some() {
            sql.push_str(&format!(" AND metadata @> {}::jsonb", param()));
        }
        if after.is_some() {
            let (at, id) = (param(), param());
            sql.push_str(&format!(
                " AND (last_activity_at < {at} OR (last_activity_at = {at} AND id < {id}))"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY last_activity_at DESC, id DESC LIMIT {}",
            param()
        ));
        let mut q = sqlx::query(&sql);
        if let Some(owner) = query.owner {
            q = q.bind(uuid_of(owner));
        }
        if let Some(status) = query.status {
            q = q.bind(status.as_str());
        }
        if let Some(ws) = query.workspace_id {
            q = q.bind(uuid_of(ws));
        }
        if let Some(m) = metadata {
            q = q.bind(m);
        }
        if let Some(c) = after {
            q = q.bind(c.last_activity_at).bind(uuid_of(c.id));
        }
        let rows = q
            .bind(i64::from(query.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut items = rows
            .iter()
            .map(rows::conversation)
            .collect::<StoreResult<Vec<_>>>()?;
        let limit = query.limit as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|c| {
                ConversationCursor {
                    last_activity_at: c.last_activity_at,
                    id: c.id,
                }
                .encode()
            })
        } else {
            None
        };
        Ok(Page::new(items, next_cursor))
    }

    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> StoreResult<Conversation> {
        validate::conversation_patch(&patch)?;
        let mut tx = self.begin().await?;
        let conversation = InTx::<Postgres>(&mut *tx)
            .update_conversation(id, patch)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(conversation)
    }

    async fn search_conversations(
        &self,
        owner: Option<UserId>,
        query: &str,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        let terms = validate::search_query(query, limit)?;
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        // Words are letters and digits only, so `word:*` is always valid
        // tsquery syntax; a conversation matches when every word (as a
        // prefix) is in its title, summary or any message.
        let per_term: Vec<String> = terms.iter().map(|t| format!("{t}:*")).collect();
        let any = per_term.join(" | ");
        let cols = CONVERSATION_COLS
            .split(", ")
            .map(|col| format!("c.{col}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "WITH q AS (SELECT to_tsquery('simple', $1) AS q), \
             hits AS ( \
               SELECT m.conversation_id AS cid, 0 AS meta, ts_rank(to_tsvector('simple', m.text), q.q) AS score \
                 FROM session_messages m, q WHERE to_tsvector('simple', m.text) @@ q.q \
               UNION ALL \
               SELECT c2.id, 1, ts_rank(to_tsvector('simple', coalesce(c2.title, '') || ' ' || coalesce(c2.summary, '')), q.q) \
                 FROM conversations c2, q \
                 WHERE to_tsvector('simple', coalesce(c2.title, '') || ' ' || coalesce(c2.summary, '')) @@ q.q \
             ), best AS (SELECT cid, MAX(meta) AS meta, MAX(score) AS score, COUNT(*) AS n FROM hits GROUP BY cid) \
             SELECT {cols} FROM conversations c JOIN best ON best.cid = c.id \
             WHERE ($2::uuid IS NULL OR c.owner_id = $2) \
               AND NOT EXISTS ( \
                 SELECT 1 FROM unnest($3::text[]) AS t(term) WHERE NOT ( \
                   to_tsvector('simple', coalesce(c.title, '') || ' ' || coalesce(c.summary, '')) @@ to_tsquery('simple', t.term) \
                   OR EXISTS (SELECT 1 FROM session_messages m2 WHERE m2.conversation_id = c.id \
                              AND to_tsvector('simple', m2.text) @@ to_tsquery('simple', t.term)))) \
             ORDER BY best.meta DESC, best.score DESC, best.n DESC, c.last_activity_at DESC, c.id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(any)
            .bind(owner.map(uuid_of))
            .bind(&per_term)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(rows::conversation).collect()
    }
}

/// Appends messages and events to a running session inside `tx`, after
/// locking its row (appends to one session are serialised). Returns the
/// session's conversation.
async fn write_log(
    tx: &mut Tx,
    session_id: SessionId,
    append: &SessionAppend,
) -> StoreResult<Uuid> {
    let mut docs = Vec::with_capacity(append.messages.len());
    let mut texts = Vec::with_capacity(append.messages.len());
    for m in &append.messages {
        docs.push(to_json(m)?);
        texts.push(search_text(m));
    }
    let mut seqs = Vec::with_capacity(append.events.len());
    let mut ats: Vec<DateTime<Utc>> = Vec::with_capacity(append.events.len());
    let mut events = Vec::with_capacity(append.events.len());
    for e in &append.events {
        seqs.push(seq_to_i64(e.seq)?);
        ats.push(truncate(e.at));
        events.push(to_json(e)?);
    }
    let row = sqlx::query("SELECT status, conversation_id FROM sessions WHERE id = $1 FOR UPDATE")
        .bind(uuid_of(session_id))
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::not_found("session", session_id))?;
    let status = status_of(&row.try_get::<String, _>("status").map_err(db_err)?)?;
    let conversation: Uuid = row.try_get("conversation_id").map_err(db_err)?;
    if status != SessionStatus::Running {
        return Err(StoreError::Conflict(format!(
            "session {session_id} is not running (it is {status})"
        )));
    }
    if !append.events.is_empty() {
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) FROM session_events WHERE session_id = $1",
        )
        .bind(uuid_of(session_id))
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
        validate::event_order(u64::try_from(last).unwrap_or(0), append)?;
    }
    if !docs.is_empty() {
        sqlx::query(
            "INSERT INTO session_messages (session_id, seq, conversation_id, message, text) \
             SELECT $1, (SELECT COALESCE(MAX(seq) + 1, 0) FROM session_messages WHERE session_id = $1) + m.ord - 1, \
                    $2, m.doc::json, m.txt \
             FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS m(doc, txt, ord)",
        )
        .bind(uuid_of(session_id))
        .bind(conversation)
        .bind(&docs)
        .bind(&texts)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    if !events.is_empty() {
        sqlx::query(
            "INSERT INTO session_events (session_id, seq, at, event) \
             SELECT $1, e.seq, e.at, e.doc::json \
             FROM unnest($2::bigint[], $3::timestamptz[], $4::text[]) AS e(seq, at, doc)",
        )
        .bind(uuid_of(session_id))
        .bind(&seqs)
        .bind(&ats)
        .bind(&events)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    Ok(conversation)
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, session: NewSession) -> StoreResult<Session> {
        let at = now();
        let input_json = to_json(&session.input)?;
        let mut messages = Vec::with_capacity(session.input.len());
        for m in &session.input {
            messages.push((to_json(m)?, search_text(m)));
        }
        let references = portable::session_references(&session);
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO sessions (id, conversation_id, parent_session_id, status, preset_id, input, final_message, deferred_tool_calls, usage, error, created_at, updated_at, finished_at, lease_owner, lease_expires_at) \
             VALUES ($1, $2, $3, 'running', $4, $5::json, NULL, '[]'::json, '{{}}'::json, NULL, $6, $6, NULL, $7, $8) RETURNING {SESSION_COLS}"
        ))
        .bind(uuid_of(session.id))
        .bind(uuid_of(session.conversation_id))
        .bind(session.parent_session_id.map(uuid_of))
        .bind(session.preset_id.map(uuid_of))
        .bind(&input_json)
        .bind(at)
        .bind(session.lease.as_ref().map(|l| l.owner.clone()))
        .bind(session.lease.as_ref().map(|l| truncate(l.expires_at)))
        .fetch_one(&mut *tx)
        .await;
        let created = match row.map_err(classify) {
            Ok(row) => rows::session(&row)?,
            Err(DbFailure::Unique(what)) => {
                drop(tx);
                if what.contains("sessions_one_running") {
                    return match self
                        .portable()
                        .running_session(session.conversation_id)
                        .await?
                    {
                        Some(active) => Err(StoreError::Busy { active: active.id }),
                        None => Err(StoreError::Conflict(
                            "conversation was busy; try again".into(),
                        )),
                    };
                }
                return Err(StoreError::Conflict(format!(
                    "session {} already exists",
                    session.id
                )));
            }
            Err(DbFailure::ForeignKey(violation)) => {
                drop(tx);
                return Err(self
                    .portable()
                    .missing_reference(&references, &violation)
                    .await);
            }
            Err(DbFailure::Other(e)) => return Err(e),
        };
        if !messages.is_empty() {
            let (docs, texts): (Vec<String>, Vec<String>) = messages.into_iter().unzip();
            sqlx::query(
                "INSERT INTO session_messages (session_id, seq, conversation_id, message, text) \
                 SELECT $1, m.ord - 1, $2, m.doc::json, m.txt \
                 FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS m(doc, txt, ord)",
            )
            .bind(uuid_of(session.id))
            .bind(uuid_of(session.conversation_id))
            .bind(&docs)
            .bind(&texts)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        sqlx::query("UPDATE conversations SET last_activity_at = $1 WHERE id = $2")
            .bind(at)
            .bind(uuid_of(session.conversation_id))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Session> {
        self.portable().get_session(id).await
    }

    async fn list_sessions(&self, conversation_id: ConversationId) -> StoreResult<Vec<Session>> {
        self.portable().list_sessions(conversation_id).await
    }

    async fn latest_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        self.portable().latest_session(conversation_id).await
    }

    async fn active_session(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Session>> {
        self.portable().active_session(conversation_id).await
    }

    async fn finish_session(&self, id: SessionId, finish: SessionFinish) -> StoreResult<Session> {
        validate::session_finish(id, &finish)?;
        let deferred = to_json(&finish.deferred_tool_calls)?;
        let usage = to_json(&finish.usage)?;
        let at = now();
        let mut tx = self.begin().await?;
        if !(finish.tail.messages.is_empty() && finish.tail.events.is_empty()) {
            write_log(&mut tx, id, &finish.tail).await?;
        }
        let row = sqlx::query(&format!(
            "UPDATE sessions SET status = $1, final_message = $2, deferred_tool_calls = $3::json, usage = $4::json, \
             error = $5, updated_at = $6, finished_at = $6, lease_owner = NULL, lease_expires_at = NULL WHERE id = $7 AND status = 'running' RETURNING {SESSION_COLS}"
        ))
        .bind(finish.status.as_str())
        // Postgres text cannot hold NUL; a model's output must still commit.
        .bind(finish.final_message.as_deref().map(strip_nul))
        .bind(&deferred)
        .bind(&usage)
        .bind(finish.error.as_deref().map(strip_nul))
        .bind(at)
        .bind(uuid_of(id))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            drop(tx);
            let row = self
                .fetch_opt("SELECT status FROM sessions WHERE id = $1", uuid_of(id))
                .await?
                .ok_or_else(|| StoreError::not_found("session", id))?;
            let status = status_of(&row.try_get::<String, _>("status").map_err(db_err)?)?;
            return Err(StoreError::Conflict(format!(
                "session {id} is not running (it is {status})"
            )));
        };
        let finished = rows::session(&row)?;
        sqlx::query("UPDATE conversations SET last_activity_at = $1 WHERE id = $2")
            .bind(at)
            .bind(uuid_of(finished.conversation_id))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(finished)
    }

    async fn renew_leases(
        &self,
        owner: &str,
        sessions: &[SessionId],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let renewed = InTx::<Postgres>(&mut *tx)
            .renew_leases(owner, sessions, until)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(renewed)
    }

    async fn expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<SessionId>> {
        self.portable().expired_sessions(now).await
    }

    async fn recover_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<SessionId>> {
        let mut tx = self.begin().await?;
        let recovered = InTx::<Postgres>(&mut *tx).recover_sessions(now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(recovered)
    }

    async fn append(&self, session_id: SessionId, append: SessionAppend) -> StoreResult<()> {
        validate::session_append(session_id, &append)?;
        let mut tx = self.begin().await?;
        write_log(&mut tx, session_id, &append).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn session_messages(&self, session_id: SessionId) -> StoreResult<Vec<Message>> {
        self.portable().session_messages(session_id).await
    }

    async fn list_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
        limit: u32,
    ) -> StoreResult<Vec<EventEnvelope>> {
        self.portable().list_events(session_id, after, limit).await
    }

    async fn session_usage(
        &self,
        query: netherbrain_core::store::UsageQuery,
    ) -> StoreResult<Vec<netherbrain_core::store::SessionUsage>> {
        self.portable().session_usage(query).await
    }

    async fn last_event_seq(&self, session_id: SessionId) -> StoreResult<EventSeq> {
        self.portable().last_event_seq(session_id).await
    }

    async fn session_history(&self, session_id: SessionId) -> StoreResult<Vec<Message>> {
        self.portable().session_history(session_id).await
    }
}

#[async_trait]
impl MailboxStore for PostgresStore {
    async fn post_mailbox(&self, entry: NewMailboxEntry) -> StoreResult<MailboxEntry> {
        let mut tx = self.begin().await?;
        let created = InTx::<Postgres>(&mut *tx).post_mailbox(entry).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn take_mailbox(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Vec<MailboxEntry>> {
        self.portable()
            .require("conversations", "conversation", conversation_id)
            .await?;
        // One statement: concurrent takers never both get an entry.
        let rows = sqlx::query(&format!(
            "UPDATE mailbox SET delivered_at = $1 WHERE id IN ( \
               SELECT id FROM mailbox WHERE conversation_id = $2 AND delivered_at IS NULL FOR UPDATE SKIP LOCKED) \
             RETURNING {MAILBOX_COLS}"
        ))
        .bind(now())
        .bind(uuid_of(conversation_id))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut entries = rows
            .iter()
            .map(rows::mailbox)
            .collect::<StoreResult<Vec<_>>>()?;
        entries.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(entries)
    }
}
/// Commits a transaction of the gateway's writes.
async fn commit_tx(tx: Tx) -> StoreResult<()> {
    tx.commit().await.map_err(db_err)
}

crate::gateway::gateway_store_impl!(PostgresStore, Postgres, |tx| &mut *tx, commit_tx);
crate::providers::provider_store_impl!(PostgresStore, Postgres, |tx| &mut *tx, commit_tx);

crate::memories::memory_records_impl!(PostgresStore, Postgres, |tx| &mut *tx, commit_tx);
crate::tasks::task_store_impl!(PostgresStore, Postgres, |tx| &mut *tx, commit_tx);
