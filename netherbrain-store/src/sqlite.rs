//! [`SqliteStore`]: the embedded default backend.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
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
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use crate::common::{
    DbFailure, classify, db_err, micros, migrate_err, now, search_text, seq_to_i64, to_json,
};
use crate::portable::{self, InTx, Portable};
use crate::rows::{self, CONVERSATION_COLS, MAILBOX_COLS, RowGet, SESSION_COLS};

/// The embedded migrations for SQLite.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connections in the pool. Writes are serialised (one writer at a time, as
/// SQLite requires); the other connections serve concurrent reads in WAL
/// mode.
const POOL_SIZE: u32 = 8;
/// How long a statement waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows per multi-row INSERT (SQLite limits bound parameters; the statement
/// cache keeps one statement per size).
const MESSAGE_ROWS: usize = 64;
/// How long a call waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`StateStore`](netherbrain_core::store::StateStore) in one SQLite file.
///
/// Durability: WAL journal with `synchronous = NORMAL`. A transaction is in
/// the WAL when its commit returns, so killing the process (even `kill -9`)
/// never loses a committed change; only a power loss or OS crash can lose
/// the last few commits (never corrupting the file). Foreign keys are
/// enforced; other processes wait up to 5 s for locks.
///
/// Writers are serialised inside the process and start with
/// `BEGIN IMMEDIATE`, so read-then-write transactions never fail with
/// `SQLITE_BUSY` part-way.
///
/// The store migrates its schema to the newest version when opened.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    write_lock: Arc<Mutex<()>>,
}

/// A write transaction holding the in-process writer lock: `BEGIN
/// IMMEDIATE` on a pooled connection, `COMMIT` in [`WriteTx::commit`].
///
/// A transaction that is not committed — an error part-way, or a `COMMIT`
/// that failed — closes its connection instead of returning it to the
/// pool; closing rolls back whatever is open. (sqlx's own transactions
/// count their depth per connection and keep counting one when SQLite has
/// already rolled back by itself, as it does when the disk is full; that
/// connection then refuses every later transaction.)
struct WriteTx {
    conn: PoolConnection<Sqlite>,
    open: bool,
    _guard: OwnedMutexGuard<()>,
}

impl WriteTx {
    async fn commit(mut self) -> StoreResult<()> {
        sqlx::query("COMMIT")
            .execute(&mut *self.conn)
            .await
            .map_err(db_err)?;
        self.open = false;
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = PoolConnection<Sqlite>;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// `head` followed by `rows` copies of `row`, comma-separated.
fn multi_insert(head: &str, row: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 2));
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql
}

/// Applies the store's settings: WAL, `synchronous = NORMAL`, foreign
/// keys, busy timeout, create if missing.
fn tune(options: SqliteConnectOptions, in_memory: bool) -> SqliteConnectOptions {
    let options = options
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    if in_memory {
        options
    } else {
        options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
    }
}

/// Opens a pool for a `sqlite:` URL (creating parent directories) without
/// migrating.
pub(crate) async fn open_pool(url: &str) -> StoreResult<SqlitePool> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Invalid(format!("invalid SQLite URL: {e}")))?;
    open_pool_with(options, in_memory).await
}

async fn open_pool_with(options: SqliteConnectOptions, in_memory: bool) -> StoreResult<SqlitePool> {
    let options = tune(options, in_memory);
    if !in_memory
        && let Some(parent) = options.get_filename().parent()
        && !parent.as_os_str().is_empty()
    {
        tokio::fs::create_dir_all(parent).await.map_err(|e| {
            StoreError::Unavailable(format!("cannot create directory {}: {e}", parent.display()))
        })?;
    }
    let mut pool = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
    pool = if in_memory {
        // Every connection to `:memory:` would be its own database: keep one forever.
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool.max_connections(POOL_SIZE)
    };
    let filename = options.get_filename().display().to_string();
    let pool = pool
        .connect_with(options)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Backend(m) => {
                StoreError::Unavailable(format!("cannot open SQLite database {filename}: {m}"))
            }
            other => other,
        })?;
    tracing::info!(path = %filename, in_memory, "opened SQLite database");
    Ok(pool)
}

fn uuid_of(id: impl Into<Uuid>) -> Uuid {
    id.into()
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite:` URL such as
    /// `sqlite:///var/lib/netherbrain/netherbrain.db`, `sqlite://data.db`
    /// or `sqlite::memory:`, and migrates it to the newest schema.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a bad URL, [`StoreError::Unavailable`]
    /// when the file cannot be opened, [`StoreError::Backend`] when a
    /// migration fails.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = open_pool(url).await?;
        Self::from_pool(pool).await
    }

    /// Opens (creating if missing) the database file at `path`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new().filename(path.as_ref());
        let pool = open_pool_with(options, false).await?;
        Self::from_pool(pool).await
    }

    /// Wraps an existing pool and migrates the database to the newest
    /// schema. The pool's connections must have foreign keys enabled.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when a migration fails.
    pub async fn from_pool(pool: SqlitePool) -> StoreResult<Self> {
        MIGRATOR.run(&pool).await.map_err(migrate_err)?;
        Ok(Self {
            pool,
            write_lock: Arc::new(Mutex::new(())),
        })
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The queries shared with Postgres.
    fn portable(&self) -> Portable<'_, Sqlite> {
        Portable(&self.pool)
    }

    async fn begin(&self) -> StoreResult<WriteTx> {
        let guard = Arc::clone(&self.write_lock).lock_owned().await;
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(db_err(e));
        }
        Ok(WriteTx {
            conn,
            open: true,
            _guard: guard,
        })
    }

    /// One batch of the listing: rows after `after` in listing order,
    /// filtered by metadata containment. Returns the matching
    /// conversations, the position of the last row scanned and how many
    /// rows were scanned.
    async fn list_batch(
        &self,
        query: &ConversationQuery,
        needle: Option<&serde_json::Value>,
        after: Option<ConversationCursor>,
        batch: u32,
    ) -> StoreResult<(Vec<Conversation>, Option<ConversationCursor>, usize)> {
        let mut sql = format!("SELECT {CONVERSATION_COLS} FROM conversations WHERE 1 = 1");
        if query.owner.is_some() {
            sql.push_str(" AND owner_id = ?");
        }
        if query.status.is_some() {
            sql.push_str(" AND status = ?");
        }
        if query.workspace_id.is_some() {
            sql.push_str(" AND workspace_id = ?");
        }
        // Top-level scalar members of the filter narrow the scan in SQL
        // (a superset: every row is still checked exactly below).
        let pushed = needle.map(pushdown).unwrap_or_default();
        for (key, _) in &pushed {
            sql.push_str(&format!(" AND json_extract(metadata, '$.{key}') = ?"));
        }
        if after.is_some() {
            sql.push_str(" AND (last_activity_at < ? OR (last_activity_at = ? AND id < ?))");
        }
        sql.push_str(" ORDER BY last_activity_at DESC, id DESC LIMIT ?");
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
        for (_, value) in pushed {
            q = match value {
                Scalar::Text(t) => q.bind(t),
                Scalar::Int(i) => q.bind(i),
            };
        }
        if let Some(c) = after {
            let at = micros(c.last_activity_at);
            q = q.bind(at).bind(at).bind(uuid_of(c.id));
        }
        q = q.bind(i64::from(batch));
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        let last = match rows.last() {
            Some(r) => Some(ConversationCursor {
                last_activity_at: r.ts("last_activity_at")?,
                id: ConversationId::from_uuid(r.uuid("id")?),
            }),
            None => None,
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(n) = needle {
                // Check the raw metadata before decoding the whole row.
                if !validate::json_contains(&row.json("metadata")?, n) {
                    continue;
                }
            }
            out.push(rows::conversation(row)?);
        }
        Ok((out, last, rows.len()))
    }
}

/// A scalar pushed down into SQL.
enum Scalar {
    Text(String),
    Int(i64),
}

/// The filter's top-level members that SQLite can compare directly:
/// plain keys with string, integer or boolean values.
fn pushdown(needle: &serde_json::Value) -> Vec<(String, Scalar)> {
    let Some(map) = needle.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter(|(k, _)| {
            !k.is_empty()
                && k.len() <= 64
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .filter_map(|(k, v)| {
            let scalar = match v {
                serde_json::Value::String(s) => Scalar::Text(s.clone()),
                serde_json::Value::Bool(b) => Scalar::Int(i64::from(*b)),
                serde_json::Value::Number(n) => Scalar::Int(n.as_i64()?),
                _ => return None,
            };
            Some((k.clone(), scalar))
        })
        .take(8)
        .collect()
}

fn status_of(s: &str) -> StoreResult<SessionStatus> {
    s.parse()
        .map_err(|_| StoreError::Backend(format!("unknown session status `{s}` in database")))
}

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.portable().ping().await
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        validate::new_user(&user)?;
        let mut tx = self.begin().await?;
        let created = InTx::<Sqlite>(&mut **tx).create_user(user).await?;
        tx.commit().await?;
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
        let user = InTx::<Sqlite>(&mut **tx).update_user(id, patch).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.portable().count_users().await
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        validate::new_api_key(&key)?;
        let mut tx = self.begin().await?;
        let created = InTx::<Sqlite>(&mut **tx).create_api_key(key).await?;
        tx.commit().await?;
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
        let revoked = InTx::<Sqlite>(&mut **tx).revoke_api_key(id).await?;
        tx.commit().await?;
        Ok(revoked)
    }
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn create_preset(&self, preset: NewPreset) -> StoreResult<Preset> {
        validate::new_preset(&preset)?;
        let mut tx = self.begin().await?;
        let created = InTx::<Sqlite>(&mut **tx).create_preset(preset).await?;
        tx.commit().await?;
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
        let preset = InTx::<Sqlite>(&mut **tx).update_preset(id, patch).await?;
        tx.commit().await?;
        Ok(preset)
    }

    async fn delete_preset(&self, id: PresetId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        InTx::<Sqlite>(&mut **tx)
            .delete_unreferenced(
                "presets",
                "preset",
                id,
                "SELECT 1 FROM conversations WHERE default_preset_id = $1 \
                 UNION ALL SELECT 1 FROM scheduled_tasks WHERE preset_id = $1 LIMIT 1",
                || format!("preset {id} is the default preset of a conversation or used by a scheduled task"),
            )
            .await?;
        tx.commit().await
    }

    async fn create_workspace(&self, workspace: NewWorkspace) -> StoreResult<Workspace> {
        validate::new_workspace(&workspace)?;
        let mut tx = self.begin().await?;
        let created = InTx::<Sqlite>(&mut **tx)
            .create_workspace(workspace)
            .await?;
        tx.commit().await?;
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
        let workspace = InTx::<Sqlite>(&mut **tx)
            .update_workspace(id, patch)
            .await?;
        tx.commit().await?;
        Ok(workspace)
    }

    async fn delete_workspace(&self, id: WorkspaceId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        InTx::<Sqlite>(&mut **tx)
            .delete_unreferenced(
                "workspaces",
                "workspace",
                id,
                "SELECT 1 FROM conversations WHERE workspace_id = $1 LIMIT 1",
                || format!("workspace {id} still has conversations"),
            )
            .await?;
        tx.commit().await
    }
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn create_conversation(
        &self,
        conversation: NewConversation,
    ) -> StoreResult<Conversation> {
        validate::new_conversation(&conversation)?;
        let references = portable::conversation_references(&conversation);
        let mut tx = self.begin().await?;
        let created = InTx::<Sqlite>(&mut **tx)
            .create_conversation(conversation)
            .await?;
        match created {
            Ok(created) => {
                tx.commit().await?;
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
        let mut after = validate::conversation_query(&query)?;
        let limit = query.limit as usize;
        let needle = query.metadata.clone().map(serde_json::Value::Object);
        // Without a metadata filter one query of limit + 1 rows answers;
        // with one, scan in batches and filter (JSON containment) here. The
        // first batch is limit + 1 rows, enough when the filter was pushed
        // into SQL exactly (the common case); later batches grow.
        let mut batch = query.limit + 1;
        let mut items = Vec::with_capacity(limit + 1);
        loop {
            let (matched, last, scanned) = self
                .list_batch(&query, needle.as_ref(), after, batch)
                .await?;
            after = last;
            for c in matched {
                items.push(c);
                if items.len() > limit {
                    break;
                }
            }
            if items.len() > limit || scanned < batch as usize {
                break;
            }
            batch = batch.max(256);
        }
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
        let conversation = InTx::<Sqlite>(&mut **tx)
            .update_conversation(id, patch)
            .await?;
        tx.commit().await?;
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
        // Each word is a quoted FTS5 prefix query; a conversation matches
        // when every word is found in its title, summary or any message.
        let fts_terms: Vec<String> = terms.iter().map(|t| format!("\"{t}\"*")).collect();
        let any = fts_terms.join(" OR ");
        let matching = "SELECT m.conversation_id AS cid FROM message_fts \
                        JOIN session_messages m ON m.pk = message_fts.rowid WHERE message_fts MATCH ? \
                        UNION SELECT c2.id FROM conversation_fts \
                        JOIN conversations c2 ON c2.pk = conversation_fts.rowid WHERE conversation_fts MATCH ?";
        let mut sql = format!(
            "WITH hits(cid, meta, score) AS ( \
               SELECT m.conversation_id, 0, bm25(message_fts) FROM message_fts \
                 JOIN session_messages m ON m.pk = message_fts.rowid WHERE message_fts MATCH ?1 \
               UNION ALL \
               SELECT c2.id, 1, bm25(conversation_fts) FROM conversation_fts \
                 JOIN conversations c2 ON c2.pk = conversation_fts.rowid WHERE conversation_fts MATCH ?1 \
             ), best AS (SELECT cid, MAX(meta) AS meta, MIN(score) AS score, COUNT(*) AS n FROM hits GROUP BY cid) \
             SELECT {cols} FROM conversations c JOIN best ON best.cid = c.id WHERE (?2 IS NULL OR c.owner_id = ?2)",
            cols = CONVERSATION_COLS
                .split(", ")
                .map(|col| format!("c.{col}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if fts_terms.len() > 1 {
            for i in 0..fts_terms.len() {
                let p = 4 + i;
                sql.push_str(&format!(
                    " AND c.id IN ({})",
                    matching.replacen("MATCH ?", &format!("MATCH ?{p}"), 2)
                ));
            }
        }
        sql.push_str(" ORDER BY best.meta DESC, best.score ASC, best.n DESC, c.last_activity_at DESC, c.id DESC LIMIT ?3");
        let mut q = sqlx::query(&sql)
            .bind(any)
            .bind(owner.map(uuid_of))
            .bind(i64::from(limit));
        if fts_terms.len() > 1 {
            for t in &fts_terms {
                q = q.bind(t.clone());
            }
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(rows::conversation).collect()
    }
}

/// Appends messages and events to a running session inside `tx` (the
/// single writer). Returns the session's conversation.
async fn write_log(
    tx: &mut WriteTx,
    session_id: SessionId,
    append: &SessionAppend,
) -> StoreResult<Uuid> {
    let mut messages = Vec::with_capacity(append.messages.len());
    for m in &append.messages {
        messages.push((to_json(m)?, search_text(m)));
    }
    let mut events = Vec::with_capacity(append.events.len());
    for e in &append.events {
        events.push((seq_to_i64(e.seq)?, micros(e.at), to_json(e)?));
    }
    // One round trip for the session's status and both sequence heads.
    let row = sqlx::query(
        "SELECT s.status, s.conversation_id, \
           (SELECT COALESCE(MAX(seq), 0) FROM session_events WHERE session_id = s.id) AS last_event, \
           (SELECT COALESCE(MAX(seq) + 1, 0) FROM session_messages WHERE session_id = s.id) AS next_message \
         FROM sessions s WHERE s.id = ?",
    )
    .bind(uuid_of(session_id))
    .fetch_optional(&mut ***tx)
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
        let last: i64 = row.try_get("last_event").map_err(db_err)?;
        validate::event_order(u64::try_from(last).unwrap_or(0), append)?;
    }
    // Multi-row INSERTs, a bounded number of rows per statement.
    const ROWS: usize = MESSAGE_ROWS;
    let next: i64 = row.try_get("next_message").map_err(db_err)?;
    for (chunk_no, chunk) in messages.chunks(ROWS).enumerate() {
        let sql = multi_insert(
            "INSERT INTO session_messages (session_id, conversation_id, seq, message, text) VALUES ",
            "(?, ?, ?, ?, ?)",
            chunk.len(),
        );
        let mut query = sqlx::query(&sql);
        for (i, (message, text)) in chunk.iter().enumerate() {
            let index = i64::try_from(chunk_no * ROWS + i).unwrap_or(i64::MAX);
            query = query
                .bind(uuid_of(session_id))
                .bind(conversation)
                .bind(next + index)
                .bind(message)
                .bind(text);
        }
        query.execute(&mut ***tx).await.map_err(db_err)?;
    }
    for chunk in events.chunks(ROWS) {
        let sql = multi_insert(
            "INSERT INTO session_events (session_id, seq, at, event) VALUES ",
            "(?, ?, ?, ?)",
            chunk.len(),
        );
        let mut query = sqlx::query(&sql);
        for (seq, at, event) in chunk {
            query = query
                .bind(uuid_of(session_id))
                .bind(seq)
                .bind(at)
                .bind(event);
        }
        query.execute(&mut ***tx).await.map_err(db_err)?;
    }
    Ok(conversation)
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: NewSession) -> StoreResult<Session> {
        let at = now();
        let input_json = to_json(&session.input)?;
        let mut messages = Vec::with_capacity(session.input.len());
        for m in &session.input {
            messages.push((to_json(m)?, search_text(m)));
        }
        let references = portable::session_references(&session);
        let mut tx = self.begin().await?;
        let res = sqlx::query(&format!(
            "INSERT INTO sessions (id, conversation_id, parent_session_id, status, preset_id, input, final_message, deferred_tool_calls, usage, error, created_at, updated_at, finished_at, lease_owner, lease_expires_at) \
             VALUES (?, ?, ?, 'running', ?, ?, NULL, '[]', '{{}}', NULL, ?, ?, NULL, ?, ?) RETURNING {SESSION_COLS}"
        ))
        .bind(uuid_of(session.id))
        .bind(uuid_of(session.conversation_id))
        .bind(session.parent_session_id.map(uuid_of))
        .bind(session.preset_id.map(uuid_of))
        .bind(&input_json)
        .bind(micros(at))
        .bind(micros(at))
        .bind(session.lease.as_ref().map(|l| l.owner.clone()))
        .bind(session.lease.as_ref().map(|l| micros(l.expires_at)))
        .fetch_one(&mut **tx)
        .await;
        let created = match res.map_err(classify) {
            Ok(row) => rows::session(&row)?,
            Err(DbFailure::Unique(what)) => {
                drop(tx);
                if what.contains("conversation_id") || what.contains("sessions_one_running") {
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
        for (chunk_no, chunk) in messages.chunks(MESSAGE_ROWS).enumerate() {
            let sql = multi_insert(
                "INSERT INTO session_messages (session_id, conversation_id, seq, message, text) VALUES ",
                "(?, ?, ?, ?, ?)",
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for (i, (message, text)) in chunk.iter().enumerate() {
                query = query
                    .bind(uuid_of(session.id))
                    .bind(uuid_of(session.conversation_id))
                    .bind(i64::try_from(chunk_no * MESSAGE_ROWS + i).unwrap_or(i64::MAX))
                    .bind(message)
                    .bind(text);
            }
            query.execute(&mut **tx).await.map_err(db_err)?;
        }
        sqlx::query("UPDATE conversations SET last_activity_at = ? WHERE id = ?")
            .bind(micros(at))
            .bind(uuid_of(session.conversation_id))
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        tx.commit().await?;
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
        // Checks the session runs and writes the tail (possibly nothing).
        let conversation = write_log(&mut tx, id, &finish.tail).await?;
        let row = sqlx::query(&format!(
            "UPDATE sessions SET status = ?, final_message = ?, deferred_tool_calls = ?, usage = ?, error = ?, updated_at = ?, finished_at = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ? RETURNING {SESSION_COLS}"
        ))
        .bind(finish.status.as_str())
        .bind(&finish.final_message)
        .bind(&deferred)
        .bind(&usage)
        .bind(&finish.error)
        .bind(micros(at))
        .bind(micros(at))
        .bind(uuid_of(id))
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
        let finished = rows::session(&row)?;
        sqlx::query("UPDATE conversations SET last_activity_at = ? WHERE id = ?")
            .bind(micros(at))
            .bind(conversation)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        tx.commit().await?;
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
        let renewed = InTx::<Sqlite>(&mut **tx)
            .renew_leases(owner, sessions, until)
            .await?;
        tx.commit().await?;
        Ok(renewed)
    }

    async fn expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<SessionId>> {
        self.portable().expired_sessions(now).await
    }

    async fn recover_sessions(&self, now: DateTime<Utc>) -> StoreResult<Vec<SessionId>> {
        let mut tx = self.begin().await?;
        let recovered = InTx::<Sqlite>(&mut **tx).recover_sessions(now).await?;
        tx.commit().await?;
        Ok(recovered)
    }

    async fn append(&self, session_id: SessionId, append: SessionAppend) -> StoreResult<()> {
        validate::session_append(session_id, &append)?;
        let mut tx = self.begin().await?;
        write_log(&mut tx, session_id, &append).await?;
        tx.commit().await
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
impl MailboxStore for SqliteStore {
    async fn post_mailbox(&self, entry: NewMailboxEntry) -> StoreResult<MailboxEntry> {
        let mut tx = self.begin().await?;
        let created = InTx::<Sqlite>(&mut **tx).post_mailbox(entry).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn take_mailbox(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Vec<MailboxEntry>> {
        let at = now();
        let mut tx = self.begin().await?;
        InTx::<Sqlite>(&mut **tx)
            .require("conversations", "conversation", conversation_id)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {MAILBOX_COLS} FROM mailbox WHERE conversation_id = ? AND delivered_at IS NULL ORDER BY created_at, id"
        ))
        .bind(uuid_of(conversation_id))
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
        let mut entries = rows
            .iter()
            .map(rows::mailbox)
            .collect::<StoreResult<Vec<_>>>()?;
        if !entries.is_empty() {
            sqlx::query(
                "UPDATE mailbox SET delivered_at = ? WHERE conversation_id = ? AND delivered_at IS NULL",
            )
            .bind(micros(at))
            .bind(uuid_of(conversation_id))
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await?;
        for e in &mut entries {
            e.delivered_at = Some(at);
        }
        Ok(entries)
    }
}
crate::gateway::gateway_store_impl!(SqliteStore, Sqlite, |tx| &mut **tx, WriteTx::commit);
crate::providers::provider_store_impl!(SqliteStore, Sqlite, |tx| &mut **tx, WriteTx::commit);

crate::memories::memory_records_impl!(SqliteStore, Sqlite, |tx| &mut **tx, WriteTx::commit);
crate::tasks::task_store_impl!(SqliteStore, Sqlite, |tx| &mut **tx, WriteTx::commit);
