//! Input validation shared by both backends (on top of
//! [`netherbrain_core::store::validate`], following the table in its module
//! docs, so every backend rejects the same input), run before any write so
//! invalid input changes nothing.

use netherbrain_core::SessionId;
use netherbrain_core::store::{
    ConversationPatch, NewApiKey, NewConversation, NewPreset, NewUser, NewWorkspace, PresetPatch,
    SessionAppend, SessionFinish, StoreError, StoreResult, UserPatch, WorkspacePatch, validate,
};

pub(crate) fn new_user(u: &NewUser) -> StoreResult<()> {
    validate::username(&u.username)?;
    validate::text(
        "display_name",
        u.display_name.as_deref(),
        validate::MAX_NAME_LEN,
    )?;
    validate::text(
        "password_hash",
        u.password_hash.as_deref(),
        validate::MAX_TEXT_LEN,
    )
}

pub(crate) fn user_patch(p: &UserPatch) -> StoreResult<()> {
    if let Some(name) = &p.display_name {
        validate::text("display_name", name.as_deref(), validate::MAX_NAME_LEN)?;
    }
    validate::text(
        "password_hash",
        p.password_hash.as_deref(),
        validate::MAX_TEXT_LEN,
    )
}

pub(crate) fn new_api_key(k: &NewApiKey) -> StoreResult<()> {
    validate::name("name", &k.name)?;
    validate::name("prefix", &k.prefix)
}

pub(crate) fn new_preset(p: &NewPreset) -> StoreResult<()> {
    validate::name("name", &p.name)?;
    validate::text(
        "description",
        p.description.as_deref(),
        validate::MAX_TEXT_LEN,
    )
}

pub(crate) fn preset_patch(p: &PresetPatch) -> StoreResult<()> {
    if let Some(name) = &p.name {
        validate::name("name", name)?;
    }
    if let Some(d) = &p.description {
        validate::text("description", d.as_deref(), validate::MAX_TEXT_LEN)?;
    }
    Ok(())
}

pub(crate) fn new_workspace(w: &NewWorkspace) -> StoreResult<()> {
    validate::name("name", &w.name)?;
    validate::metadata(&w.metadata)
}

pub(crate) fn workspace_patch(p: &WorkspacePatch) -> StoreResult<()> {
    if let Some(name) = &p.name {
        validate::name("name", name)?;
    }
    Ok(())
}

pub(crate) fn new_conversation(c: &NewConversation) -> StoreResult<()> {
    validate::text("title", c.title.as_deref(), validate::MAX_TITLE_LEN)?;
    validate::metadata(&c.metadata)
}

pub(crate) fn conversation_patch(p: &ConversationPatch) -> StoreResult<()> {
    if let Some(t) = &p.title {
        validate::text("title", t.as_deref(), validate::MAX_TITLE_LEN)?;
    }
    if let Some(s) = &p.summary {
        validate::text("summary", s.as_deref(), validate::MAX_TEXT_LEN)?;
    }
    Ok(())
}

pub(crate) fn finish(f: &SessionFinish) -> StoreResult<()> {
    if !f.status.is_terminal() {
        return Err(StoreError::Invalid(format!(
            "`{}` is not a terminal session status",
            f.status
        )));
    }
    Ok(())
}

/// Checks an append's events belong to the session and have storable
/// sequence numbers.
pub(crate) fn append(session_id: SessionId, a: &SessionAppend) -> StoreResult<()> {
    for e in &a.events {
        if e.session_id != session_id {
            return Err(StoreError::Invalid(format!(
                "event {} belongs to session {}, not {session_id}",
                e.seq, e.session_id
            )));
        }
        crate::common::seq_to_i64(e.seq)?;
    }
    Ok(())
}

/// Checks the events' sequence numbers increase strictly, starting above
/// the highest stored one (`last`, 0 when none).
pub(crate) fn event_order(last: i64, a: &SessionAppend) -> StoreResult<()> {
    let mut prev = u64::try_from(last).unwrap_or(0);
    for e in &a.events {
        if e.seq <= prev {
            return Err(StoreError::Conflict(format!(
                "event sequence number {} is not above {prev}",
                e.seq
            )));
        }
        prev = e.seq;
    }
    Ok(())
}

/// A search query (non-blank, at most `MAX_QUERY_LEN` characters) and
/// its limit.
pub(crate) fn search_query(query: &str, limit: u32) -> StoreResult<()> {
    validate::page_size(limit)?;
    if query.trim().is_empty() {
        return Err(StoreError::Invalid("search query must not be empty".into()));
    }
    if query.chars().count() > validate::MAX_QUERY_LEN {
        return Err(StoreError::Invalid(format!(
            "query must be at most {} characters",
            validate::MAX_QUERY_LEN
        )));
    }
    Ok(())
}
