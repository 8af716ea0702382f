//! Decoding rows of either backend into core records. Both schemas use the
//! same column names; only the column types differ, which [`RowGet`] hides.

use chrono::{DateTime, Utc};
use netherbrain_core::store::{
    ApiKey, Conversation, MailboxEntry, Preset, Session, StoreError, StoreResult, User, Workspace,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sqlx::Row;
use uuid::Uuid;

use crate::common::{db_err, from_micros, parse_json, record};

/// Typed column access that both backends implement.
pub(crate) trait RowGet {
    fn uuid(&self, col: &str) -> StoreResult<Uuid>;
    fn opt_uuid(&self, col: &str) -> StoreResult<Option<Uuid>>;
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn ts(&self, col: &str) -> StoreResult<DateTime<Utc>>;
    fn opt_ts(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>>;
    fn json(&self, col: &str) -> StoreResult<Value>;
    fn flag(&self, col: &str) -> StoreResult<bool>;
    fn int(&self, col: &str) -> StoreResult<i64>;
    fn opt_bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A stored JSON document decoded straight into `T`.
    fn opt_doc<T: DeserializeOwned>(&self, col: &str) -> StoreResult<Option<T>>;
    fn doc<T: DeserializeOwned>(&self, col: &str) -> StoreResult<T> {
        self.opt_doc(col)?
            .ok_or_else(|| StoreError::Backend(format!("column {col} is NULL")))
    }
}

impl RowGet for sqlx::sqlite::SqliteRow {
    fn uuid(&self, col: &str) -> StoreResult<Uuid> {
        self.try_get(col).map_err(db_err)
    }
    fn opt_uuid(&self, col: &str) -> StoreResult<Option<Uuid>> {
        self.try_get(col).map_err(db_err)
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        self.try_get(col).map_err(db_err)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        self.try_get(col).map_err(db_err)
    }
    fn ts(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        from_micros(self.try_get(col).map_err(db_err)?)
    }
    fn opt_ts(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.try_get::<Option<i64>, _>(col)
            .map_err(db_err)?
            .map(from_micros)
            .transpose()
    }
    fn json(&self, col: &str) -> StoreResult<Value> {
        let text: String = self.try_get(col).map_err(db_err)?;
        parse_json(col, &text)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        self.try_get(col).map_err(db_err)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        self.try_get(col).map_err(db_err)
    }
    fn opt_bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>> {
        self.try_get(col).map_err(db_err)
    }
    fn opt_doc<T: DeserializeOwned>(&self, col: &str) -> StoreResult<Option<T>> {
        let text: Option<&str> = self.try_get(col).map_err(db_err)?;
        text.map(|t| {
            serde_json::from_str(t)
                .map_err(|e| StoreError::Backend(format!("corrupt JSON in column {col}: {e}")))
        })
        .transpose()
    }
}

impl RowGet for sqlx::postgres::PgRow {
    fn uuid(&self, col: &str) -> StoreResult<Uuid> {
        self.try_get(col).map_err(db_err)
    }
    fn opt_uuid(&self, col: &str) -> StoreResult<Option<Uuid>> {
        self.try_get(col).map_err(db_err)
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        self.try_get(col).map_err(db_err)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        self.try_get(col).map_err(db_err)
    }
    fn ts(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        self.try_get(col).map_err(db_err)
    }
    fn opt_ts(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.try_get(col).map_err(db_err)
    }
    fn json(&self, col: &str) -> StoreResult<Value> {
        self.try_get::<sqlx::types::Json<Value>, _>(col)
            .map(|j| j.0)
            .map_err(db_err)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        self.try_get(col).map_err(db_err)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        self.try_get(col).map_err(db_err)
    }
    fn opt_bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>> {
        self.try_get(col).map_err(db_err)
    }
    fn opt_doc<T: DeserializeOwned>(&self, col: &str) -> StoreResult<Option<T>> {
        self.try_get::<Option<sqlx::types::Json<T>>, _>(col)
            .map(|j| j.map(|j| j.0))
            .map_err(db_err)
    }
}

/// Builds the JSON object a record deserialises from.
pub(crate) struct Fields(pub(crate) Map<String, Value>);

impl Fields {
    pub(crate) fn new() -> Self {
        Self(Map::new())
    }
    pub(crate) fn set(
        &mut self,
        key: &str,
        value: impl serde::Serialize,
    ) -> StoreResult<&mut Self> {
        let value = serde_json::to_value(value)
            .map_err(|e| StoreError::Backend(format!("cannot encode {key}: {e}")))?;
        self.0.insert(key.to_owned(), value);
        Ok(self)
    }
    fn raw(&mut self, key: &str, value: Value) -> &mut Self {
        self.0.insert(key.to_owned(), value);
        self
    }
}

pub(crate) fn user<R: RowGet>(r: &R) -> StoreResult<User> {
    let mut f = Fields::new();
    f.set("id", r.uuid("id")?)?
        .set("username", r.text("username")?)?
        .set("display_name", r.opt_text("display_name")?)?
        .set("role", r.text("role")?)?
        .set("password_hash", r.opt_text("password_hash")?)?
        .set("must_change_password", r.flag("must_change_password")?)?
        .set("active", r.flag("active")?)?
        .set("created_at", r.ts("created_at")?)?
        .set("updated_at", r.ts("updated_at")?)?;
    record("user", f.0)
}

pub(crate) fn api_key<R: RowGet>(r: &R) -> StoreResult<ApiKey> {
    let mut f = Fields::new();
    f.set("id", r.uuid("id")?)?
        .set("user_id", r.uuid("user_id")?)?
        .set("name", r.text("name")?)?
        .set("prefix", r.text("prefix")?)?
        .set("hash", r.text("hash")?)?
        .set("created_at", r.ts("created_at")?)?
        .set("expires_at", r.opt_ts("expires_at")?)?
        .set("revoked_at", r.opt_ts("revoked_at")?)?;
    record("api key", f.0)
}

pub(crate) fn preset<R: RowGet>(r: &R) -> StoreResult<Preset> {
    let mut f = Fields::new();
    f.set("id", r.uuid("id")?)?
        .set("name", r.text("name")?)?
        .set("description", r.opt_text("description")?)?
        .raw("config", r.json("config")?)
        .set("created_at", r.ts("created_at")?)?
        .set("updated_at", r.ts("updated_at")?)?;
    record("preset", f.0)
}

pub(crate) fn workspace<R: RowGet>(r: &R) -> StoreResult<Workspace> {
    let mut f = Fields::new();
    f.set("id", r.uuid("id")?)?
        .set("name", r.text("name")?)?
        .set("owner", r.opt_uuid("owner_id")?)?
        .raw("project_dirs", r.json("project_dirs")?)
        .raw("metadata", r.json("metadata")?)
        .set("created_at", r.ts("created_at")?)?
        .set("updated_at", r.ts("updated_at")?)?;
    record("workspace", f.0)
}

pub(crate) fn conversation<R: RowGet>(r: &R) -> StoreResult<Conversation> {
    let mut f = Fields::new();
    f.set("id", r.uuid("id")?)?
        .set("owner", r.uuid("owner_id")?)?
        .set("workspace_id", r.opt_uuid("workspace_id")?)?
        .set("title", r.opt_text("title")?)?
        .set("summary", r.opt_text("summary")?)?
        .set("default_preset", r.opt_uuid("default_preset_id")?)?
        .raw("metadata", r.json("metadata")?)
        .set("status", r.text("status")?)?
        .set("created_at", r.ts("created_at")?)?
        .set("updated_at", r.ts("updated_at")?)?
        .set("last_activity_at", r.ts("last_activity_at")?)?;
    if let (Some(conversation_id), Some(session_id)) = (
        r.opt_uuid("forked_from_conversation_id")?,
        r.opt_uuid("forked_from_session_id")?,
    ) {
        f.set(
            "forked_from",
            serde_json::json!({"conversation_id": conversation_id, "session_id": session_id}),
        )?;
    }
    if let (Some(conversation_id), Some(session_id)) = (
        r.opt_uuid("delegated_from_conversation_id")?,
        r.opt_uuid("delegated_from_session_id")?,
    ) {
        f.set(
            "delegated_from",
            serde_json::json!({"conversation_id": conversation_id, "session_id": session_id}),
        )?;
    }
    record("conversation", f.0)
}

pub(crate) fn session<R: RowGet>(r: &R) -> StoreResult<Session> {
    let mut f = Fields::new();
    f.set("id", r.uuid("id")?)?
        .set("conversation_id", r.uuid("conversation_id")?)?
        .set("parent_session_id", r.opt_uuid("parent_session_id")?)?
        .set("status", r.text("status")?)?
        .set("preset_id", r.opt_uuid("preset_id")?)?
        .raw("input", r.json("input")?)
        .set("final_message", r.opt_text("final_message")?)?
        .raw("deferred_tool_calls", r.json("deferred_tool_calls")?)
        .raw("usage", r.json("usage")?)
        .set("error", r.opt_text("error")?)?
        .set("created_at", r.ts("created_at")?)?
        .set("updated_at", r.ts("updated_at")?)?
        .set("finished_at", r.opt_ts("finished_at")?)?;
    if let (Some(owner), Some(expires_at)) =
        (r.opt_text("lease_owner")?, r.opt_ts("lease_expires_at")?)
    {
        f.set(
            "lease",
            serde_json::json!({"owner": owner, "expires_at": expires_at}),
        )?;
    }
    record("session", f.0)
}

pub(crate) fn session_usage<R: RowGet>(
    r: &R,
) -> StoreResult<netherbrain_core::store::SessionUsage> {
    let mut f = Fields::new();
    f.set("session_id", r.uuid("id")?)?
        .set("preset_id", r.opt_uuid("preset_id")?)?
        .set("created_at", r.ts("created_at")?)?
        .raw("usage", r.json("usage")?);
    record("session usage", f.0)
}

pub(crate) fn mailbox<R: RowGet>(r: &R) -> StoreResult<MailboxEntry> {
    let mut f = Fields::new();
    f.set("id", r.uuid("id")?)?
        .set("conversation_id", r.uuid("conversation_id")?)?
        .set("source_session_id", r.opt_uuid("source_session_id")?)?
        .raw("content", r.json("content")?)
        .set("created_at", r.ts("created_at")?)?
        .set("delivered_at", r.opt_ts("delivered_at")?)?;
    record("mailbox entry", f.0)
}

/// Column lists, in the order the decoders expect (names matter, not order).
pub(crate) const USER_COLS: &str = "id, username, display_name, role, password_hash, must_change_password, active, created_at, updated_at";
pub(crate) const API_KEY_COLS: &str =
    "id, user_id, name, prefix, hash, created_at, expires_at, revoked_at";
pub(crate) const PRESET_COLS: &str = "id, name, description, config, created_at, updated_at";
pub(crate) const WORKSPACE_COLS: &str =
    "id, name, project_dirs, metadata, created_at, updated_at, owner_id";
pub(crate) const CONVERSATION_COLS: &str = "id, owner_id, workspace_id, title, summary, default_preset_id, metadata, status, created_at, updated_at, last_activity_at, forked_from_conversation_id, forked_from_session_id, delegated_from_conversation_id, delegated_from_session_id";
pub(crate) const SESSION_COLS: &str = "id, conversation_id, parent_session_id, status, preset_id, input, final_message, deferred_tool_calls, usage, error, created_at, updated_at, finished_at, lease_owner, lease_expires_at";
pub(crate) const MAILBOX_COLS: &str =
    "id, conversation_id, source_session_id, content, created_at, delivered_at";
