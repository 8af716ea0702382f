//! The opaque paging cursor for conversation listings.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::ids::ConversationId;

/// Position after the last conversation of a page: its last-activity time
/// and id (ties broken by id). Encoded as an opaque string for clients.
///
/// ```
/// use netherbrain_core::store::ConversationCursor;
/// use netherbrain_core::ConversationId;
/// let c = ConversationCursor { last_activity_at: chrono::Utc::now(), id: ConversationId::new() };
/// let decoded = ConversationCursor::decode(&c.encode()).unwrap();
/// assert_eq!(decoded.id, c.id);
/// assert!(ConversationCursor::decode("garbage").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationCursor {
    /// Last activity of the last item on the page.
    pub last_activity_at: DateTime<Utc>,
    /// Id of the last item on the page.
    pub id: ConversationId,
}

impl ConversationCursor {
    /// Encodes as `"<micros>_<uuid>"`.
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{}_{}", self.last_activity_at.timestamp_micros(), self.id)
    }

    /// Decodes a cursor made by [`encode`](Self::encode).
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for anything else.
    pub fn decode(s: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::Invalid("invalid page cursor".into());
        let (micros, id) = s.split_once('_').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        Ok(Self {
            last_activity_at: DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?,
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}
