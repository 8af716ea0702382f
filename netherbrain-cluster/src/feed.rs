//! The conversation feed across replicas: notices published here reach
//! this process's followers at once and the other replicas' over the
//! deployment's feed channel.

use std::sync::Arc;

use futures::stream::BoxStream;
use netherbrain_core::conversation::{ConversationFeed, FeedNotice, LocalFeed};
use netherbrain_core::{ConversationId, SessionId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::publisher::Outgoing;

/// A notice on the wire, with the process that published it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireNotice {
    origin: String,
    kind: String,
    conversation_id: ConversationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_id: Option<SessionId>,
}

impl WireNotice {
    fn of(origin: &str, notice: FeedNotice) -> Self {
        let (kind, session_id) = match notice {
            FeedNotice::RunStarted { session_id, .. } => ("run_started", Some(session_id)),
            FeedNotice::RunFinished { session_id, .. } => ("run_finished", Some(session_id)),
            _ => ("updated", None),
        };
        Self {
            origin: origin.to_owned(),
            kind: kind.to_owned(),
            conversation_id: notice.conversation_id(),
            session_id,
        }
    }

    /// The notice, unless this process published it.
    pub(crate) fn into_notice_unless_from(self, origin: &str) -> Option<FeedNotice> {
        if self.origin == origin {
            return None;
        }
        let conversation_id = self.conversation_id;
        Some(match (self.kind.as_str(), self.session_id) {
            ("run_started", Some(session_id)) => FeedNotice::RunStarted {
                conversation_id,
                session_id,
            },
            ("run_finished", Some(session_id)) => FeedNotice::RunFinished {
                conversation_id,
                session_id,
            },
            // Anything else: read the conversation again.
            _ => FeedNotice::Updated { conversation_id },
        })
    }
}

/// A [`ConversationFeed`] shared by the replicas of one deployment:
/// notices published here reach this process's followers at once and the
/// other replicas' over the deployment's feed channel. Notices are hints:
/// one Redis loses is made up for by followers re-reading the store every
/// [`LOCAL_RECHECK`](netherbrain_core::conversation::LOCAL_RECHECK).
#[derive(Debug)]
pub struct RedisFeed {
    local: Arc<LocalFeed>,
    queue: mpsc::Sender<Outgoing>,
    origin: String,
}

impl RedisFeed {
    pub(crate) fn new(
        local: Arc<LocalFeed>,
        queue: mpsc::Sender<Outgoing>,
        origin: String,
    ) -> Self {
        Self {
            local,
            queue,
            origin,
        }
    }
}

impl ConversationFeed for RedisFeed {
    fn publish(&self, notice: FeedNotice) {
        self.local.publish(notice);
        if let Ok(json) = serde_json::to_string(&WireNotice::of(&self.origin, notice)) {
            // A full queue drops the hint; followers re-read the store.
            let _ = self.queue.try_send(Outgoing::Notice(json));
        }
    }

    fn watch(&self, conversation_id: ConversationId) -> BoxStream<'static, FeedNotice> {
        self.local.watch(conversation_id)
    }

    fn recheck_interval(&self) -> Option<std::time::Duration> {
        self.local.recheck_interval()
    }
}
