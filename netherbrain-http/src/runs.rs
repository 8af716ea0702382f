//! What the conversation, session and WebSocket handlers share: ownership
//! checks, starting runs (with the metrics bookkeeping) and fork points.

use netherbrain_core::runtime::{PresetRun, RunHandle};
use netherbrain_core::store::{Conversation, NewConversation, Session, StoreError};
use netherbrain_core::{ConversationId, PresetId, SessionId};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// The metadata key a fork records its origin under:
/// `{"conversation_id": …, "session_id": …}`.
pub(crate) const FORKED_FROM: &str = "forked_from";

/// Whether `user` may see `conversation`: its owner, or an admin.
pub(crate) fn can_access(user: &AuthUser, conversation: &Conversation) -> bool {
    conversation.owner == user.id() || user.is_admin()
}

/// The conversation, if `user` may see it; another user's is `404` (as if
/// it did not exist).
pub(crate) async fn owned_conversation(
    state: &AppState,
    user: &AuthUser,
    id: ConversationId,
) -> Result<Conversation, ApiError> {
    let conversation = state.store().get_conversation(id).await?;
    if can_access(user, &conversation) {
        Ok(conversation)
    } else {
        Err(StoreError::not_found("conversation", id.to_string()).into())
    }
}

/// The session and its conversation, if `user` may see them; another
/// user's is `404`.
pub(crate) async fn owned_session(
    state: &AppState,
    user: &AuthUser,
    id: SessionId,
) -> Result<(Session, Conversation), ApiError> {
    let not_found = || ApiError::from(StoreError::not_found("session", id.to_string()));
    let session = state.store().get_session(id).await?;
    let conversation = match state
        .store()
        .get_conversation(session.conversation_id)
        .await
    {
        Ok(c) => c,
        Err(StoreError::NotFound { .. }) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if can_access(user, &conversation) {
        Ok((session, conversation))
    } else {
        Err(not_found())
    }
}

/// A new conversation owned by `user` with `preset` as its default, for a
/// run that names no conversation. The preset must exist (`404`) and the
/// catalog must be able to build it (`422`), so a run that cannot start
/// leaves no empty conversation behind.
pub(crate) async fn new_conversation_for_run(
    state: &AppState,
    user: &AuthUser,
    preset: Option<PresetId>,
) -> Result<Conversation, ApiError> {
    if state.runtime().is_draining() {
        return Err(netherbrain_core::runtime::RuntimeError::Draining.into());
    }
    let preset = preset.ok_or_else(|| ApiError::invalid("a new conversation needs `preset_id`"))?;
    let config = state.store().get_preset(preset).await?.config;
    state
        .catalog()
        .check(&config)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(state
        .store()
        .create_conversation(NewConversation::new(user.id()).with_default_preset(preset))
        .await?)
}

/// The session a fork without input recorded as the parent of the fork's
/// first run: set while the conversation has no session yet.
pub(crate) async fn pending_fork_parent(
    state: &AppState,
    conversation: &Conversation,
) -> Result<Option<SessionId>, ApiError> {
    let Some(parent) = conversation
        .metadata
        .get(FORKED_FROM)
        .and_then(|v| v.get("session_id"))
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<SessionId>().ok())
    else {
        return Ok(None);
    };
    if state
        .store()
        .list_sessions(conversation.id)
        .await?
        .is_empty()
    {
        Ok(Some(parent))
    } else {
        Ok(None)
    }
}

/// Starts a run through the runtime and the catalog, then keeps the
/// metrics current: the active-sessions gauge now and when the run ends,
/// and the tokens it spent by model.
pub(crate) async fn start_run(state: &AppState, run: PresetRun) -> Result<RunHandle, ApiError> {
    let handle = state
        .runtime()
        .start_preset(state.catalog(), run)
        .await
        .map_err(ApiError::from)?;
    refresh_active_gauge(state);
    let watcher = state.clone();
    let session_id = handle.session_id;
    tokio::spawn(async move {
        if let Ok(session) = watcher.runtime().wait(session_id).await {
            for (model, usage) in session.usage.iter() {
                watcher
                    .metrics()
                    .record_tokens(model, usage.input_tokens, usage.output_tokens);
            }
        }
        refresh_active_gauge(&watcher);
    });
    Ok(handle)
}

/// Sets the active-sessions gauge from the runtime.
pub(crate) fn refresh_active_gauge(state: &AppState) {
    state
        .metrics()
        .set_active_sessions(state.runtime().running_count() as u64);
}
