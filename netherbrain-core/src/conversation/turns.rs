//! A conversation's history, a page of sessions at a time.

use super::{ConversationService, ServiceError};
use crate::auth::Principal;
use crate::ids::{ConversationId, SessionId};
use crate::message::Message;
use crate::store::Session;

/// Default page of turns.
pub const DEFAULT_TURNS_LIMIT: u32 = 20;
/// Largest page of turns.
pub const MAX_TURNS_LIMIT: u32 = 100;

/// Which page of turns.
///
/// ```
/// use netherbrain_core::conversation::TurnsQuery;
/// let first = TurnsQuery::default().with_limit(10);
/// assert_eq!(first.limit, Some(10));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnsQuery {
    /// The `next_cursor` of the previous page; `None` for the first.
    pub cursor: Option<String>,
    /// Turns per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
}

impl TurnsQuery {
    /// Sets the page size.
    #[must_use]
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continues after a page.
    #[must_use]
    pub fn with_cursor(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }
}

/// One run of the conversation with its own messages (input first).
///
/// ```
/// # use netherbrain_core::conversation::Turn;
/// # fn f(t: Turn) { let _ = (t.session.status, t.messages.len()); }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Turn {
    /// The session.
    pub session: Session,
    /// Its messages.
    pub messages: Vec<Message>,
}

/// A page of turns, oldest first.
///
/// ```
/// # use netherbrain_core::conversation::TurnPage;
/// # fn f(p: TurnPage) { let more = p.next_cursor.is_some(); let _ = more; }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TurnPage {
    /// The turns.
    pub items: Vec<Turn>,
    /// Cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

impl ConversationService {
    /// The conversation's history: its sessions oldest first, each with its
    /// own messages, a page at a time.
    ///
    /// # Errors
    ///
    /// `NotFound` for a conversation `who` may not see;
    /// [`ServiceError::Malformed`] for a limit outside 1–100 or a cursor
    /// that is not one of this conversation's.
    pub async fn turns(
        &self,
        who: &Principal,
        id: ConversationId,
        query: TurnsQuery,
    ) -> Result<TurnPage, ServiceError> {
        self.conversation(who, id).await?;
        let limit = query.limit.unwrap_or(DEFAULT_TURNS_LIMIT);
        if !(1..=MAX_TURNS_LIMIT).contains(&limit) {
            return Err(ServiceError::Malformed(format!(
                "`limit` must be between 1 and {MAX_TURNS_LIMIT}"
            )));
        }
        let store = &self.inner.store;
        let sessions = store.list_sessions(id).await?;
        let start = match query.cursor.as_deref() {
            None | Some("") => 0,
            Some(cursor) => {
                let after: SessionId = cursor
                    .parse()
                    .map_err(|_| ServiceError::Malformed("invalid page cursor".into()))?;
                sessions.iter().position(|s| s.id == after).ok_or_else(|| {
                    ServiceError::NotFound(format!(
                        "page cursor: no session `{after}` in this conversation"
                    ))
                })? + 1
            }
        };
        let end = start.saturating_add(limit as usize).min(sessions.len());
        let next_cursor = (end < sessions.len()).then(|| sessions[end - 1].id.to_string());
        let mut items = Vec::with_capacity(end.saturating_sub(start));
        for session in sessions.into_iter().take(end).skip(start) {
            let messages = store.session_messages(session.id).await?;
            items.push(Turn { session, messages });
        }
        Ok(TurnPage { items, next_cursor })
    }
}
