//! Input checks, in one place for every store backend, so all of them
//! reject the same input with the same [`StoreError::Invalid`] message.
//!
//! A backend calls the function for the record it is given before it
//! touches any row, so invalid input changes nothing:
//!
//! | call | function | checks |
//! | --- | --- | --- |
//! | `create_user` | [`new_user`] | [`username`]; `display_name` [`text`] ≤ [`MAX_NAME_LEN`]; `password_hash` [`text`] ≤ [`MAX_TEXT_LEN`] |
//! | `update_user` | [`user_patch`] | as `create_user`, for the fields set |
//! | `create_api_key` | [`new_api_key`] | `name`, `prefix` [`name`]; `hash` [`text`] ≤ [`MAX_TEXT_LEN`] |
//! | `create_preset` | [`new_preset`] | `name` [`name`]; `description` [`text`] ≤ [`MAX_TEXT_LEN`]; `config` holds no NUL |
//! | `update_preset` | [`preset_patch`] | as `create_preset`, for the fields set |
//! | `create_workspace` | [`new_workspace`] | `name` [`name`]; [`project_dirs`]; [`metadata`] |
//! | `update_workspace` | [`workspace_patch`], then [`patch_metadata`] (in [`WorkspacePatch::apply`]) | as `create_workspace`; [`metadata`] of the merged result |
//! | `create_conversation` | [`new_conversation`] | `title` [`text`] ≤ [`MAX_TITLE_LEN`]; [`metadata`]; [`conversation_metadata`] (no reserved key) |
//! | `update_conversation` | [`conversation_patch`], then [`patch_metadata`] (in [`ConversationPatch::apply`]) | `title` as above; `summary` [`text`] ≤ [`MAX_TEXT_LEN`]; [`conversation_metadata`] of the patch; [`metadata`] of the merged result |
//! | `list_conversations` | [`conversation_query`] | `limit` [`page_size`]; `cursor` [`ConversationCursor::decode`] |
//! | `search_conversations` | [`search_query`] | `limit` [`page_size`]; query non-blank, ≤ [`MAX_QUERY_LEN`] characters after trimming |
//! | `finish_session` | [`session_finish`] | the status is terminal |
//! | `create_memory` | [`new_memory`] | `content` [`memory_content`]; [`embedding`] |
//! | `update_memory` | [`memory_patch`] | as `create_memory`, for the fields set |
//! | `search_memories` | [`memory_query`] | as `search_conversations` |
//! | `append` | [`session_append`], then [`event_order`] | every event is the session's, its `seq` ≤ [`MAX_EVENT_SEQ`]; then (a conflict) above the stored ones |
//! | `create_provider` | [`new_provider`] | [`provider_name`]; [`provider_fields`] |
//! | `update_provider` | [`provider_fields`] of the merged result (in [`ProviderPatch::apply`](super::ProviderPatch::apply)) | as `create_provider` |
//!
//! Text never holds NUL characters (Postgres cannot store them), so no
//! backend accepts them.

use serde_json::Value;

use super::{
    ConversationCursor, ConversationPatch, ConversationQuery, Metadata, NewApiKey, NewConversation,
    NewPreset, NewUser, NewWorkspace, PresetPatch, SessionAppend, SessionFinish, StoreError,
    StoreResult, UserPatch, WorkspacePatch,
};
use crate::ids::{EventSeq, SessionId};

/// Longest name (preset, workspace, API key label).
pub const MAX_NAME_LEN: usize = 128;
/// Longest username.
pub const MAX_USERNAME_LEN: usize = 64;
/// Longest conversation title.
pub const MAX_TITLE_LEN: usize = 512;
/// Longest free text (summary, description).
pub const MAX_TEXT_LEN: usize = 16 * 1024;
/// Largest serialized metadata object.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Largest page of conversations.
pub const MAX_PAGE_SIZE: u32 = 200;
/// Longest search query.
pub const MAX_QUERY_LEN: usize = 512;

/// Highest event sequence number a store keeps (the SQL backends store it
/// as a signed 64-bit integer).
pub const MAX_EVENT_SEQ: EventSeq = i64::MAX as EventSeq;
/// Most sessions a parent chain may hold before
/// [`session_history`](super::SessionStore::session_history) gives up.
pub const MAX_SESSION_CHAIN: usize = 100_000;
/// Longest memory any store keeps (services set a lower limit).
pub const MAX_MEMORY_LEN: usize = MAX_TEXT_LEN;
/// Most dimensions of a stored embedding.
pub const MAX_EMBEDDING_DIMS: usize = 8192;
/// Most words of a search query that are used.
pub const MAX_SEARCH_TERMS: usize = 16;

/// A non-empty name of at most [`MAX_NAME_LEN`] characters without control
/// characters.
///
/// ```
/// use netherbrain_core::store::validate;
/// assert!(validate::name("preset", "coder").is_ok());
/// assert!(validate::name("preset", "").is_err());
/// assert!(validate::name("preset", &"x".repeat(500)).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn name(field: &str, value: &str) -> StoreResult<()> {
    if value.trim().is_empty() {
        return Err(StoreError::Invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > MAX_NAME_LEN {
        return Err(StoreError::Invalid(format!(
            "{field} must be at most {MAX_NAME_LEN} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// A username: 1–64 ASCII letters, digits, `-`, `_`, `.`, `@`.
///
/// ```
/// use netherbrain_core::store::validate;
/// assert!(validate::username("ada.lovelace").is_ok());
/// assert!(validate::username("no spaces").is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn username(value: &str) -> StoreResult<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if value.is_empty() || value.len() > MAX_USERNAME_LEN || !value.chars().all(ok_char) {
        return Err(StoreError::Invalid(format!(
            "username must be 1-{MAX_USERNAME_LEN} characters of letters, digits, '-', '_', '.', '@'"
        )));
    }
    Ok(())
}

/// Optional text of at most `max` characters, without NUL characters.
///
/// ```
/// use netherbrain_core::store::validate;
/// assert!(validate::text("title", Some("hi"), validate::MAX_TITLE_LEN).is_ok());
/// assert!(validate::text("title", None, 1).is_ok());
/// assert!(validate::text("title", Some("too long"), 3).is_err());
/// assert!(validate::text("title", Some("nul\0"), 10).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn text(field: &str, value: Option<&str>, max: usize) -> StoreResult<()> {
    let Some(value) = value else {
        return Ok(());
    };
    if value.chars().count() > max {
        return Err(StoreError::Invalid(format!(
            "{field} must be at most {max} characters"
        )));
    }
    no_nul(field, value)
}

fn no_nul(field: &str, value: &str) -> StoreResult<()> {
    if value.contains('\0') {
        return Err(StoreError::Invalid(format!(
            "{field} must not contain NUL characters"
        )));
    }
    Ok(())
}

/// A JSON document without NUL characters in any string or key.
fn json_without_nul(field: &str, value: &Value) -> StoreResult<()> {
    match value {
        Value::String(s) => no_nul(field, s),
        Value::Array(items) => items.iter().try_for_each(|v| json_without_nul(field, v)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            no_nul(field, k)?;
            json_without_nul(field, v)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// Metadata of at most [`MAX_METADATA_BYTES`] when serialized, without
/// NUL characters.
///
/// ```
/// use netherbrain_core::store::validate;
/// let mut m = serde_json::Map::new();
/// m.insert("k".into(), serde_json::json!("v"));
/// assert!(validate::metadata(&m).is_ok());
/// m.insert("k".into(), serde_json::json!("\u{0}"));
/// assert!(validate::metadata(&m).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn metadata(value: &Metadata) -> StoreResult<()> {
    let size = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(StoreError::Invalid(format!(
            "metadata must be at most {MAX_METADATA_BYTES} bytes of JSON"
        )));
    }
    value.iter().try_for_each(|(k, v)| {
        no_nul("metadata", k)?;
        json_without_nul("metadata", v)
    })
}

/// A workspace's project directories: non-blank, without NUL characters.
///
/// ```
/// use netherbrain_core::store::validate;
/// assert!(validate::project_dirs(&["/srv/code".to_owned()]).is_ok());
/// assert!(validate::project_dirs(&[" ".to_owned()]).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn project_dirs(dirs: &[String]) -> StoreResult<()> {
    for dir in dirs {
        if dir.trim().is_empty() {
            return Err(StoreError::Invalid(
                "project_dirs must not hold an empty path".into(),
            ));
        }
        no_nul("project_dirs", dir)?;
    }
    Ok(())
}

/// Metadata keys of conversations that only the server may set (a fork's
/// origin is a server-owned field; a key of that name in user-writable
/// metadata must never be mistaken for it).
pub const RESERVED_CONVERSATION_KEYS: &[&str] = &["forked_from"];

/// Conversation metadata (or a metadata patch) sets no
/// [reserved key](RESERVED_CONVERSATION_KEYS) to a value (`null`, which
/// removes a key, is allowed).
///
/// ```
/// use netherbrain_core::store::validate;
/// let mut m = serde_json::Map::new();
/// m.insert("source".into(), serde_json::json!("web"));
/// assert!(validate::conversation_metadata(&m).is_ok());
/// m.insert("forked_from".into(), serde_json::json!({"session_id": "x"}));
/// assert!(validate::conversation_metadata(&m).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the key.
pub fn conversation_metadata(value: &Metadata) -> StoreResult<()> {
    for key in RESERVED_CONVERSATION_KEYS {
        if value.get(*key).is_some_and(|v| !v.is_null()) {
            return Err(StoreError::Invalid(format!(
                "metadata key `{key}` is reserved for the server"
            )));
        }
    }
    Ok(())
}

/// A page size between 1 and [`MAX_PAGE_SIZE`].
///
/// ```
/// use netherbrain_core::store::validate;
/// assert!(validate::page_size(50).is_ok());
/// assert!(validate::page_size(0).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn page_size(limit: u32) -> StoreResult<()> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(StoreError::Invalid(format!(
            "limit must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    Ok(())
}

/// Shallow-merges `patch` into `target`: keys with `null` values are
/// removed, others replace.
///
/// ```
/// use netherbrain_core::store::validate::merge_metadata;
/// let mut target = serde_json::json!({"a": 1, "b": 2}).as_object().unwrap().clone();
/// let patch = serde_json::json!({"b": null, "c": 3}).as_object().unwrap().clone();
/// merge_metadata(&mut target, &patch);
/// assert_eq!(serde_json::Value::Object(target), serde_json::json!({"a": 1, "c": 3}));
/// ```
pub fn merge_metadata(target: &mut Metadata, patch: &Metadata) {
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// JSON containment, as Postgres `@>` defines it for objects: every key of
/// `needle` is in `haystack` with a value that contains the needle's value.
///
/// ```
/// use netherbrain_core::store::validate::json_contains;
/// use serde_json::json;
/// assert!(json_contains(&json!({"a": 1, "b": {"c": 2, "d": 3}}), &json!({"b": {"c": 2}})));
/// assert!(json_contains(&json!({"tags": ["x", "y"]}), &json!({"tags": ["y"]})));
/// assert!(!json_contains(&json!({"a": 1}), &json!({"a": 2})));
/// ```
#[must_use]
pub fn json_contains(haystack: &serde_json::Value, needle: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (haystack, needle) {
        (Value::Object(h), Value::Object(n)) => n
            .iter()
            .all(|(k, nv)| h.get(k).is_some_and(|hv| json_contains(hv, nv))),
        (Value::Array(h), Value::Array(n)) => {
            n.iter().all(|nv| h.iter().any(|hv| json_contains(hv, nv)))
        }
        (h, n) => h == n,
    }
}

/// Merges a metadata patch into `target` ([`merge_metadata`]) and checks
/// the result ([`metadata`]). On error the caller discards `target`.
///
/// ```
/// use netherbrain_core::store::validate;
/// use serde_json::json;
/// let mut target = json!({"a": 1}).as_object().unwrap().clone();
/// validate::patch_metadata(&mut target, json!({"b": 2}).as_object().unwrap()).unwrap();
/// assert_eq!(target.len(), 2);
/// let huge = json!({"c": "x".repeat(validate::MAX_METADATA_BYTES)});
/// assert!(validate::patch_metadata(&mut target, huge.as_object().unwrap()).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] when the merged metadata is invalid.
pub fn patch_metadata(target: &mut Metadata, patch: &Metadata) -> StoreResult<()> {
    merge_metadata(target, patch);
    metadata(target)
}

// ---- one function per input record ----

/// Checks a [`NewUser`].
///
/// ```
/// use netherbrain_core::store::{validate, NewUser, UserRole};
/// assert!(validate::new_user(&NewUser::new("ada", UserRole::User)).is_ok());
/// assert!(validate::new_user(&NewUser::new("ada lovelace", UserRole::User)).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn new_user(user: &NewUser) -> StoreResult<()> {
    username(&user.username)?;
    text("display_name", user.display_name.as_deref(), MAX_NAME_LEN)?;
    text("password_hash", user.password_hash.as_deref(), MAX_TEXT_LEN)
}

/// Checks a [`UserPatch`].
///
/// ```
/// use netherbrain_core::store::{validate, UserPatch};
/// let mut patch = UserPatch::default();
/// patch.password_hash = Some("x".repeat(validate::MAX_TEXT_LEN + 1));
/// assert!(validate::user_patch(&patch).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn user_patch(patch: &UserPatch) -> StoreResult<()> {
    if let Some(display_name) = &patch.display_name {
        text("display_name", display_name.as_deref(), MAX_NAME_LEN)?;
    }
    text(
        "password_hash",
        patch.password_hash.as_deref(),
        MAX_TEXT_LEN,
    )
}

/// Checks a [`NewApiKey`].
///
/// ```
/// use netherbrain_core::store::{validate, NewApiKey};
/// use netherbrain_core::UserId;
/// assert!(validate::new_api_key(&NewApiKey::new(UserId::new(), "ci", "nb_x", "h")).is_ok());
/// assert!(validate::new_api_key(&NewApiKey::new(UserId::new(), "", "nb_x", "h")).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn new_api_key(key: &NewApiKey) -> StoreResult<()> {
    name("name", &key.name)?;
    name("prefix", &key.prefix)?;
    text("hash", Some(&key.hash), MAX_TEXT_LEN)
}

/// Checks a [`NewPreset`].
///
/// ```
/// use netherbrain_core::PresetConfig;
/// use netherbrain_core::store::{validate, NewPreset};
/// let config = PresetConfig::new("openai", "gpt-4o");
/// assert!(validate::new_preset(&NewPreset::new("coder", config.clone())).is_ok());
/// assert!(validate::new_preset(&NewPreset::new(" ", config)).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn new_preset(preset: &NewPreset) -> StoreResult<()> {
    name("name", &preset.name)?;
    text("description", preset.description.as_deref(), MAX_TEXT_LEN)?;
    preset_config(&preset.config)
}

/// Checks a [`PresetPatch`].
///
/// ```
/// use netherbrain_core::store::{validate, PresetPatch};
/// let mut patch = PresetPatch::default();
/// patch.name = Some(String::new());
/// assert!(validate::preset_patch(&patch).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn preset_patch(patch: &PresetPatch) -> StoreResult<()> {
    if let Some(value) = &patch.name {
        name("name", value)?;
    }
    if let Some(description) = &patch.description {
        text("description", description.as_deref(), MAX_TEXT_LEN)?;
    }
    if let Some(config) = &patch.config {
        preset_config(config)?;
    }
    Ok(())
}

fn preset_config(config: &crate::preset::PresetConfig) -> StoreResult<()> {
    for (server, mcp) in &config.mcp_servers {
        if !crate::tool::valid_mcp_server_name(server) {
            return Err(StoreError::Invalid(format!(
                "mcp_servers: `{server}`: a server name is 1 to 32 ASCII letters, digits or `-`"
            )));
        }
        mcp.validate()
            .map_err(|e| StoreError::Invalid(format!("mcp_servers.{server}: {e}")))?;
    }
    let value = serde_json::to_value(config)
        .map_err(|e| StoreError::Invalid(format!("config is not serialisable: {e}")))?;
    json_without_nul("config", &value)
}

/// Checks a [`NewWorkspace`].
///
/// ```
/// use netherbrain_core::store::{validate, NewWorkspace};
/// assert!(validate::new_workspace(&NewWorkspace::new("home")).is_ok());
/// assert!(validate::new_workspace(&NewWorkspace::new("")).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn new_workspace(workspace: &NewWorkspace) -> StoreResult<()> {
    name("name", &workspace.name)?;
    project_dirs(&workspace.project_dirs)?;
    metadata(&workspace.metadata)
}

/// Checks a [`WorkspacePatch`]; its metadata is checked after merging, by
/// [`patch_metadata`].
///
/// ```
/// use netherbrain_core::store::{validate, WorkspacePatch};
/// let mut patch = WorkspacePatch::default();
/// patch.project_dirs = Some(vec![String::new()]);
/// assert!(validate::workspace_patch(&patch).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn workspace_patch(patch: &WorkspacePatch) -> StoreResult<()> {
    if let Some(value) = &patch.name {
        name("name", value)?;
    }
    if let Some(dirs) = &patch.project_dirs {
        project_dirs(dirs)?;
    }
    Ok(())
}

/// Checks a [`NewConversation`].
///
/// ```
/// use netherbrain_core::store::{validate, NewConversation};
/// use netherbrain_core::UserId;
/// let long = "t".repeat(validate::MAX_TITLE_LEN + 1);
/// assert!(validate::new_conversation(&NewConversation::new(UserId::new()).with_title(long)).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn new_conversation(conversation: &NewConversation) -> StoreResult<()> {
    text("title", conversation.title.as_deref(), MAX_TITLE_LEN)?;
    conversation_metadata(&conversation.metadata)?;
    metadata(&conversation.metadata)
}

/// Checks a [`ConversationPatch`]; its metadata is checked after merging,
/// by [`patch_metadata`].
///
/// ```
/// use netherbrain_core::store::{validate, ConversationPatch};
/// let mut patch = ConversationPatch::default();
/// patch.summary = Some(Some("s".repeat(validate::MAX_TEXT_LEN + 1)));
/// assert!(validate::conversation_patch(&patch).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn conversation_patch(patch: &ConversationPatch) -> StoreResult<()> {
    if let Some(title) = &patch.title {
        text("title", title.as_deref(), MAX_TITLE_LEN)?;
    }
    if let Some(summary) = &patch.summary {
        text("summary", summary.as_deref(), MAX_TEXT_LEN)?;
    }
    if let Some(changes) = &patch.metadata {
        conversation_metadata(changes)?;
    }
    Ok(())
}

/// Checks a [`ConversationQuery`] and decodes its cursor.
///
/// ```
/// use netherbrain_core::store::{validate, ConversationQuery};
/// use netherbrain_core::UserId;
/// let query = ConversationQuery::for_owner(UserId::new());
/// assert_eq!(validate::conversation_query(&query).unwrap(), None);
/// assert!(validate::conversation_query(&query.with_cursor(Some("bad".into()))).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] for a bad limit or cursor.
pub fn conversation_query(query: &ConversationQuery) -> StoreResult<Option<ConversationCursor>> {
    page_size(query.limit)?;
    query
        .cursor
        .as_deref()
        .map(ConversationCursor::decode)
        .transpose()
}

/// Checks a search query and its limit, and splits the query into the
/// words every backend searches for: runs of letters and digits,
/// lower-cased, deduplicated, at most [`MAX_SEARCH_TERMS`]. No query
/// syntax of any backend survives, so no input is a syntax error; a query
/// of punctuation only has no words and matches nothing.
///
/// ```
/// use netherbrain_core::store::validate;
/// assert_eq!(
///     validate::search_query("Hello, \"wor*ld\" OR hello", 10).unwrap(),
///     ["hello", "wor", "ld", "or"]
/// );
/// assert!(validate::search_query("   ", 10).is_err());
/// assert!(validate::search_query("ok", 0).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] for a blank or over-long query or a bad limit.
pub fn search_query(query: &str, limit: u32) -> StoreResult<Vec<String>> {
    page_size(limit)?;
    let query = query.trim();
    if query.is_empty() {
        return Err(StoreError::Invalid("search query must not be empty".into()));
    }
    if query.chars().count() > MAX_QUERY_LEN {
        return Err(StoreError::Invalid(format!(
            "search query must be at most {MAX_QUERY_LEN} characters"
        )));
    }
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let word = word.to_lowercase();
        if !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == MAX_SEARCH_TERMS {
            break;
        }
    }
    Ok(terms)
}

/// Checks a [`SessionFinish`] of `session_id`: its status must be terminal
/// and its tail must pass [`session_append`].
///
/// ```
/// use netherbrain_core::{SessionId, SessionStatus};
/// use netherbrain_core::store::{validate, SessionFinish};
/// let id = SessionId::new();
/// assert!(validate::session_finish(id, &SessionFinish::new(SessionStatus::Committed)).is_ok());
/// assert!(validate::session_finish(id, &SessionFinish::new(SessionStatus::Running)).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn session_finish(session_id: SessionId, finish: &SessionFinish) -> StoreResult<()> {
    if !finish.status.is_terminal() {
        return Err(StoreError::Invalid(format!(
            "`{}` is not a terminal session status",
            finish.status
        )));
    }
    session_append(session_id, &finish.tail)
}

/// Checks a [`SessionAppend`] to `session_id`: every event belongs to that
/// session and has a sequence number of at most [`MAX_EVENT_SEQ`].
///
/// ```
/// use netherbrain_core::store::{validate, SessionAppend};
/// use netherbrain_core::{AgentEvent, EventEnvelope, SessionId};
/// let (mine, other) = (SessionId::new(), SessionId::new());
/// let event = |s, seq| EventEnvelope::new(s, seq, AgentEvent::TextMessageContent {
///     message_id: "m".into(), delta: "x".into(),
/// });
/// assert!(validate::session_append(mine, &SessionAppend::new(vec![], vec![event(mine, 1)])).is_ok());
/// assert!(validate::session_append(mine, &SessionAppend::new(vec![], vec![event(other, 1)])).is_err());
/// assert!(validate::session_append(mine, &SessionAppend::new(vec![], vec![event(mine, u64::MAX)])).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn session_append(session_id: SessionId, append: &SessionAppend) -> StoreResult<()> {
    for event in &append.events {
        if event.session_id != session_id {
            return Err(StoreError::Invalid(format!(
                "event {} belongs to session {}, not {session_id}",
                event.seq, event.session_id
            )));
        }
        if event.seq > MAX_EVENT_SEQ {
            return Err(StoreError::Invalid(format!(
                "event sequence number {} is above {MAX_EVENT_SEQ}",
                event.seq
            )));
        }
    }
    Ok(())
}

/// Checks an append's events have strictly increasing sequence numbers,
/// all above `last`, the highest stored one (0 when none). Unlike the
/// other checks this depends on stored state, so a failure is a
/// [`StoreError::Conflict`].
///
/// ```
/// use netherbrain_core::store::{validate, SessionAppend, StoreError};
/// use netherbrain_core::{AgentEvent, EventEnvelope, SessionId};
/// let s = SessionId::new();
/// let event = |seq| EventEnvelope::new(s, seq, AgentEvent::TextMessageContent {
///     message_id: "m".into(), delta: "x".into(),
/// });
/// let append = SessionAppend::new(vec![], vec![event(3), event(4)]);
/// assert!(validate::event_order(2, &append).is_ok());
/// assert!(matches!(validate::event_order(3, &append), Err(StoreError::Conflict(_))));
/// ```
///
/// # Errors
///
/// [`StoreError::Conflict`].
pub fn event_order(last: EventSeq, append: &SessionAppend) -> StoreResult<()> {
    let mut prev = last;
    for event in &append.events {
        if event.seq <= prev {
            return Err(StoreError::Conflict(format!(
                "event sequence number {} is not above {prev}",
                event.seq
            )));
        }
        prev = event.seq;
    }
    Ok(())
}

/// Checks a chat binding: `channel`, `chat_id` [`name`]s.
///
/// ```
/// use netherbrain_core::store::{NewChatBinding, validate};
/// use netherbrain_core::{ConversationId, UserId};
/// let ok = NewChatBinding::new("telegram", "42", UserId::new(), ConversationId::new());
/// assert!(validate::new_chat_binding(&ok).is_ok());
/// let bad = NewChatBinding::new("telegram", " ", UserId::new(), ConversationId::new());
/// assert!(validate::new_chat_binding(&bad).is_err());
/// ```
pub fn new_chat_binding(binding: &super::NewChatBinding) -> StoreResult<()> {
    name("channel", &binding.channel)?;
    name("chat_id", &binding.chat_id)?;
    no_nul("channel", &binding.channel)?;
    no_nul("chat_id", &binding.chat_id)
}

/// Checks a pairing request: `code`, `channel`, `sender_id`, `chat_id`
/// [`name`]s; `display_name` [`text`] ≤ [`MAX_NAME_LEN`].
///
/// ```
/// use netherbrain_core::store::{NewPairing, validate};
/// let ok = NewPairing::new("K7QX2M9P", "telegram", "7", "7", chrono::Utc::now());
/// assert!(validate::new_pairing(&ok).is_ok());
/// let bad = NewPairing::new("", "telegram", "7", "7", chrono::Utc::now());
/// assert!(validate::new_pairing(&bad).is_err());
/// ```
pub fn new_pairing(pairing: &super::NewPairing) -> StoreResult<()> {
    for (field, value) in [
        ("code", &pairing.code),
        ("channel", &pairing.channel),
        ("sender_id", &pairing.sender_id),
        ("chat_id", &pairing.chat_id),
    ] {
        name(field, value)?;
        no_nul(field, value)?;
    }
    text(
        "display_name",
        pairing.display_name.as_deref(),
        MAX_NAME_LEN,
    )
}

/// Longest provider profile name.
pub const MAX_PROVIDER_NAME_LEN: usize = 64;
/// Longest provider base URL.
pub const MAX_URL_LEN: usize = 2048;
/// Most models a stored provider profile lists.
pub const MAX_PROVIDER_MODELS: usize = 256;
/// Most extra headers of a stored provider profile.
pub const MAX_PROVIDER_HEADERS: usize = 32;
/// Largest sealed API key (ciphertext and tag), in bytes.
pub const MAX_SEALED_LEN: usize = 4096;

/// A provider profile name: 1–[`MAX_PROVIDER_NAME_LEN`] letters, digits,
/// `-`, `_` or `.`.
///
/// ```
/// use netherbrain_core::store::validate;
/// assert!(validate::provider_name("ollama-2").is_ok());
/// assert!(validate::provider_name("has space").is_err());
/// assert!(validate::provider_name("").is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn provider_name(value: &str) -> StoreResult<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if value.is_empty() || value.len() > MAX_PROVIDER_NAME_LEN || !value.chars().all(ok_char) {
        return Err(StoreError::Invalid(format!(
            "provider name must be 1-{MAX_PROVIDER_NAME_LEN} characters of letters, digits, '-', '_', '.'"
        )));
    }
    Ok(())
}

/// The fields of a stored provider profile: an `http(s)://` base URL of at
/// most [`MAX_URL_LEN`] characters without spaces or control characters;
/// at most [`MAX_PROVIDER_MODELS`] distinct, non-empty model names (each a
/// [`name`]); a default model among them; at most
/// [`MAX_PROVIDER_HEADERS`] headers with token names and visible ASCII
/// values; a sealed key with a 12- or 24-byte nonce and a ciphertext of
/// 16–[`MAX_SEALED_LEN`] bytes.
///
/// ```
/// use std::collections::BTreeMap;
/// use netherbrain_core::store::validate;
/// let models = vec!["m".to_owned()];
/// let none = BTreeMap::new();
/// assert!(validate::provider_fields(Some("http://127.0.0.1:11434/v1"), &models, Some("m"), &none, None).is_ok());
/// assert!(validate::provider_fields(Some("ftp://x"), &models, None, &none, None).is_err());
/// assert!(validate::provider_fields(None, &models, Some("other"), &none, None).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn provider_fields(
    base_url: Option<&str>,
    models: &[String],
    default_model: Option<&str>,
    headers: &std::collections::BTreeMap<String, String>,
    api_key: Option<&super::SealedSecret>,
) -> StoreResult<()> {
    if let Some(url) = base_url {
        let lower = url.to_ascii_lowercase();
        let scheme_ok = lower.starts_with("http://") || lower.starts_with("https://");
        let host_ok = url.split_once("://").is_some_and(|(_, rest)| {
            !rest.is_empty() && !rest.starts_with('/') && !rest.starts_with('?')
        });
        if !scheme_ok
            || !host_ok
            || url.len() > MAX_URL_LEN
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(StoreError::Invalid(format!(
                "base_url must be an http:// or https:// URL of at most {MAX_URL_LEN} characters"
            )));
        }
    }
    if models.len() > MAX_PROVIDER_MODELS {
        return Err(StoreError::Invalid(format!(
            "at most {MAX_PROVIDER_MODELS} models"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for model in models {
        name("model", model)?;
        if model.trim() != model {
            return Err(StoreError::Invalid(
                "model names must not start or end with spaces".into(),
            ));
        }
        if !seen.insert(model.as_str()) {
            return Err(StoreError::Invalid(format!(
                "model `{model}` is listed twice"
            )));
        }
    }
    if let Some(default) = default_model
        && !models.iter().any(|m| m == default)
    {
        return Err(StoreError::Invalid(
            "default_model must be one of the models".into(),
        ));
    }
    if headers.len() > MAX_PROVIDER_HEADERS {
        return Err(StoreError::Invalid(format!(
            "at most {MAX_PROVIDER_HEADERS} headers"
        )));
    }
    for (header, value) in headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if header.is_empty() || header.len() > MAX_NAME_LEN || !header.chars().all(token) {
            return Err(StoreError::Invalid(format!(
                "header name `{}` is not a valid HTTP header name",
                header.escape_debug()
            )));
        }
        if value.len() > MAX_TEXT_LEN
            || !value
                .chars()
                .all(|c| c == ' ' || c == '\t' || c.is_ascii_graphic())
        {
            return Err(StoreError::Invalid(format!(
                "the value of header `{header}` must be visible ASCII"
            )));
        }
    }
    if let Some(sealed) = api_key
        && (!matches!(sealed.nonce.len(), 12 | 24)
            || sealed.ciphertext.len() < 16
            || sealed.ciphertext.len() > MAX_SEALED_LEN)
    {
        return Err(StoreError::Invalid(
            "the sealed API key is malformed".into(),
        ));
    }
    Ok(())
}

/// A provider profile to store: [`provider_name`], then
/// [`provider_fields`].
///
/// ```
/// use netherbrain_core::provider::ProviderKind;
/// use netherbrain_core::store::{NewStoredProvider, validate};
/// assert!(validate::new_provider(&NewStoredProvider::new("ok", ProviderKind::Openai)).is_ok());
/// assert!(validate::new_provider(&NewStoredProvider::new("not ok", ProviderKind::Openai)).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn new_provider(provider: &super::NewStoredProvider) -> StoreResult<()> {
    provider_name(&provider.name)?;
    provider_fields(
        provider.base_url.as_deref(),
        &provider.models,
        provider.default_model.as_deref(),
        &provider.headers,
        provider.api_key.as_ref(),
    )
}

/// A memory's text: not blank, at most [`MAX_MEMORY_LEN`] characters, no
/// NUL.
///
/// ```
/// use netherbrain_core::store::validate;
/// assert!(validate::memory_content("likes tea").is_ok());
/// assert!(validate::memory_content("  ").is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn memory_content(content: &str) -> StoreResult<()> {
    if content.trim().is_empty() {
        return Err(StoreError::Invalid(
            "memory content must not be empty".into(),
        ));
    }
    text("memory content", Some(content), MAX_MEMORY_LEN)
}

/// An embedding: 1 to [`MAX_EMBEDDING_DIMS`] finite numbers.
///
/// ```
/// use netherbrain_core::store::validate;
/// assert!(validate::embedding(&[0.1, 0.2]).is_ok());
/// assert!(validate::embedding(&[]).is_err());
/// assert!(validate::embedding(&[f32::NAN]).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn embedding(values: &[f32]) -> StoreResult<()> {
    if values.is_empty() || values.len() > MAX_EMBEDDING_DIMS {
        return Err(StoreError::Invalid(format!(
            "an embedding must have 1 to {MAX_EMBEDDING_DIMS} dimensions"
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(StoreError::Invalid(
            "an embedding must hold finite numbers".into(),
        ));
    }
    Ok(())
}

/// Checks a [`NewMemory`](super::NewMemory).
///
/// ```
/// use netherbrain_core::store::{validate, NewMemory};
/// use netherbrain_core::UserId;
/// assert!(validate::new_memory(&NewMemory::new(UserId::new(), "tea")).is_ok());
/// assert!(validate::new_memory(&NewMemory::new(UserId::new(), "a\0b")).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn new_memory(memory: &super::NewMemory) -> StoreResult<()> {
    memory_content(&memory.content)?;
    if let Some(e) = &memory.embedding {
        embedding(e)?;
    }
    Ok(())
}

/// Checks a [`MemoryPatch`](super::MemoryPatch).
///
/// ```
/// use netherbrain_core::store::{validate, MemoryPatch};
/// assert!(validate::memory_patch(&MemoryPatch::content("tea")).is_ok());
/// assert!(validate::memory_patch(&MemoryPatch::content("")).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn memory_patch(patch: &super::MemoryPatch) -> StoreResult<()> {
    if let Some(content) = &patch.content {
        memory_content(content)?;
    }
    if let Some(Some(e)) = &patch.embedding {
        embedding(e)?;
    }
    Ok(())
}

/// Checks a [`MemoryQuery`](super::MemoryQuery) and returns its words, as
/// [`search_query`] does.
///
/// ```
/// use netherbrain_core::store::{validate, MemoryQuery};
/// use netherbrain_core::UserId;
/// assert_eq!(validate::memory_query(&MemoryQuery::new(UserId::new(), "Green tea?", 5)).unwrap(), ["green", "tea"]);
/// assert!(validate::memory_query(&MemoryQuery::new(UserId::new(), " ", 5)).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn memory_query(query: &super::MemoryQuery) -> StoreResult<Vec<String>> {
    search_query(&query.text, query.limit)
}

/// Longest prompt of a scheduled task, in characters.
pub const MAX_TASK_PROMPT_LEN: usize = MAX_TEXT_LEN;

fn task_prompt(prompt: &str) -> StoreResult<()> {
    if prompt.trim().is_empty() {
        return Err(StoreError::Invalid("prompt must not be empty".into()));
    }
    text("prompt", Some(prompt), MAX_TASK_PROMPT_LEN)
}

fn task_schedule(schedule: &crate::tasks::TaskSchedule) -> StoreResult<()> {
    schedule
        .check()
        .map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Checks a [`NewTask`](super::NewTask): a name, a non-empty prompt of at
/// most [`MAX_TASK_PROMPT_LEN`] characters and a valid schedule.
///
/// ```
/// use chrono::Utc;
/// use netherbrain_core::store::{validate, NewTask};
/// use netherbrain_core::tasks::TaskSchedule;
/// use netherbrain_core::{PresetId, UserId};
/// let ok = NewTask::new(UserId::new(), "alerts", TaskSchedule::every(60), PresetId::new(), "hi", Utc::now());
/// assert!(validate::new_task(&ok).is_ok());
/// let bad = NewTask::new(UserId::new(), "alerts", TaskSchedule::cron("nope", "UTC"), PresetId::new(), "hi", Utc::now());
/// assert!(validate::new_task(&bad).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn new_task(task: &super::NewTask) -> StoreResult<()> {
    name("name", &task.name)?;
    task_prompt(&task.prompt)?;
    task_schedule(&task.schedule)
}

/// Checks a [`TaskPatch`](super::TaskPatch) as [`new_task`] does for the
/// fields it sets.
///
/// ```
/// use netherbrain_core::store::{validate, TaskPatch};
/// let mut blank = TaskPatch::default();
/// blank.prompt = Some(" ".into());
/// assert!(validate::task_patch(&blank).is_err());
/// assert!(validate::task_patch(&TaskPatch::default()).is_ok());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`].
pub fn task_patch(patch: &super::TaskPatch) -> StoreResult<()> {
    if let Some(n) = &patch.name {
        name("name", n)?;
    }
    if let Some(p) = &patch.prompt {
        task_prompt(p)?;
    }
    if let Some(s) = &patch.schedule {
        task_schedule(s)?;
    }
    Ok(())
}
