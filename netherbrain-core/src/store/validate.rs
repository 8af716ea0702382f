//! Input checks shared by every store backend, so all of them reject the
//! same input with the same [`StoreError::Invalid`] message.
//!
//! Backends run these checks before touching any row:
//!
//! | input | check |
//! | --- | --- |
//! | user `username` | [`username`] |
//! | user `display_name` (create and patch) | [`text`] with [`MAX_NAME_LEN`] |
//! | API key `name`, `prefix` | [`name`] |
//! | preset, workspace `name` (create and patch) | [`name`] |
//! | preset `description` | [`text`] with [`MAX_TEXT_LEN`] |
//! | workspace, conversation `metadata` | [`metadata`] on create; on patch, of the merged result ([`merge_metadata`]) |
//! | conversation `metadata` (create and patch) | [`conversation_metadata`]: no reserved key |
//! | conversation `title` | [`text`] with [`MAX_TITLE_LEN`] |
//! | conversation `summary` | [`text`] with [`MAX_TEXT_LEN`] |
//! | listing `limit`, search `limit` | [`page_size`] |
//! | listing `cursor` | [`ConversationCursor::decode`](super::ConversationCursor::decode) |
//! | search query | non-blank after trimming, at most [`MAX_QUERY_LEN`] characters |

use super::{Metadata, StoreError, StoreResult};

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

/// Optional text of at most `max` characters.
///
/// ```
/// use netherbrain_core::store::validate;
/// assert!(validate::text("title", Some("hi"), validate::MAX_TITLE_LEN).is_ok());
/// assert!(validate::text("title", None, 1).is_ok());
/// assert!(validate::text("title", Some("too long"), 3).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Invalid`] naming the field.
pub fn text(field: &str, value: Option<&str>, max: usize) -> StoreResult<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(StoreError::Invalid(format!(
            "{field} must be at most {max} characters"
        ))),
        _ => Ok(()),
    }
}

/// Metadata of at most [`MAX_METADATA_BYTES`] when serialized.
///
/// ```
/// use netherbrain_core::store::validate;
/// let mut m = serde_json::Map::new();
/// m.insert("k".into(), serde_json::json!("v"));
/// assert!(validate::metadata(&m).is_ok());
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
