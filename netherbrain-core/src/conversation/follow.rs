//! Following a conversation: every run's events, live and replayed, from
//! whichever surface started it.
//!
//! The store is the source of truth; a [`ConversationFeed`] only says when
//! to look again. A follower subscribes to the feed *before* reading the
//! store, re-reads the conversation's sessions on every notice, and streams
//! each new session's events from the runtime's log (live while the run is
//! in this process, persisted otherwise). So a lost or late notice delays a
//! follower but never loses an event, and a slow follower reads at its own
//! pace.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{broadcast, mpsc};

use super::{ConversationService, ServiceError};
use crate::auth::Principal;
use crate::event::EventEnvelope;
use crate::ids::{ConversationId, EventSeq, SessionId};
use crate::runtime::{RunHandle, RunObserver};
use crate::store::Session;

/// Something happened in a conversation.
///
/// ```
/// use netherbrain_core::conversation::FeedNotice;
/// use netherbrain_core::ConversationId;
/// let id = ConversationId::new();
/// assert_eq!(FeedNotice::Updated { conversation_id: id }.conversation_id(), id);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedNotice {
    /// A run started.
    RunStarted {
        /// The conversation.
        conversation_id: ConversationId,
        /// The new session.
        session_id: SessionId,
    },
    /// A run ended.
    RunFinished {
        /// The conversation.
        conversation_id: ConversationId,
        /// The session.
        session_id: SessionId,
    },
    /// The conversation itself changed (title, metadata, …), or notices
    /// may have been missed: read it again.
    Updated {
        /// The conversation.
        conversation_id: ConversationId,
    },
}

impl FeedNotice {
    /// The conversation the notice is about.
    #[must_use]
    pub fn conversation_id(&self) -> ConversationId {
        match *self {
            Self::RunStarted {
                conversation_id, ..
            }
            | Self::RunFinished {
                conversation_id, ..
            }
            | Self::Updated { conversation_id } => conversation_id,
        }
    }
}

/// How followers hear that something happened in a conversation. The
/// in-process [`LocalFeed`] is the default; an implementation over Postgres
/// `LISTEN/NOTIFY` or Redis pub/sub lets replicas hear of each other's runs
/// without any caller changing.
///
/// Notices are hints: delivery may be late or, under pressure, lost (then
/// the feed sends [`FeedNotice::Updated`]). Followers re-read the store on
/// every notice, so correctness never depends on them.
///
/// ```
/// use futures::StreamExt;
/// use netherbrain_core::conversation::{ConversationFeed, FeedNotice, LocalFeed};
/// use netherbrain_core::ConversationId;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let feed = LocalFeed::new();
/// let id = ConversationId::new();
/// let mut notices = feed.watch(id);
/// feed.publish(FeedNotice::Updated { conversation_id: id });
/// assert_eq!(notices.next().await, Some(FeedNotice::Updated { conversation_id: id }));
/// # });
/// ```
pub trait ConversationFeed: Send + Sync + fmt::Debug {
    /// Announces a notice to the conversation's watchers.
    fn publish(&self, notice: FeedNotice);

    /// Notices about one conversation from now on. The stream ends only when
    /// the feed shuts down.
    fn watch(&self, conversation_id: ConversationId) -> BoxStream<'static, FeedNotice>;

    /// How often followers re-read the store although no notice came, for
    /// runs this feed cannot hear of (another process on the same database).
    /// `None`: never.
    fn recheck_interval(&self) -> Option<Duration> {
        None
    }
}

/// Notices buffered per conversation before a slow watcher misses some.
const LOCAL_CAPACITY: usize = 64;
/// Default [`LocalFeed`] recheck interval.
pub const LOCAL_RECHECK: Duration = Duration::from_secs(2);

/// The in-process [`ConversationFeed`]: hears every run of this process
/// at once. Runs of other processes sharing the database are found when
/// followers re-read the store, every [`LOCAL_RECHECK`] by default.
///
/// ```
/// use std::time::Duration;
/// use netherbrain_core::conversation::{ConversationFeed, LocalFeed};
/// let feed = LocalFeed::new().with_recheck(Some(Duration::from_millis(500)));
/// assert_eq!(feed.recheck_interval(), Some(Duration::from_millis(500)));
/// ```
#[derive(Debug)]
pub struct LocalFeed {
    channels: Mutex<HashMap<ConversationId, broadcast::Sender<FeedNotice>>>,
    recheck: Option<Duration>,
}

impl Default for LocalFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalFeed {
    /// A feed that rechecks every [`LOCAL_RECHECK`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            recheck: Some(LOCAL_RECHECK),
        }
    }

    /// Sets how often followers re-read the store without a notice (`None`
    /// when no other process shares the database).
    #[must_use]
    pub fn with_recheck(mut self, interval: Option<Duration>) -> Self {
        self.recheck = interval;
        self
    }
}

impl ConversationFeed for LocalFeed {
    fn publish(&self, notice: FeedNotice) {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let id = notice.conversation_id();
        if let Some(tx) = channels.get(&id)
            && tx.send(notice).is_err()
        {
            // Nobody watches any more.
            channels.remove(&id);
        }
    }

    fn watch(&self, conversation_id: ConversationId) -> BoxStream<'static, FeedNotice> {
        let rx = {
            let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            if channels.len() >= 1024 {
                channels.retain(|_, tx| tx.receiver_count() > 0);
            }
            channels
                .entry(conversation_id)
                .or_insert_with(|| broadcast::channel(LOCAL_CAPACITY).0)
                .subscribe()
        };
        futures::stream::unfold(rx, move |mut rx| async move {
            match rx.recv().await {
                Ok(notice) => Some((notice, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some((FeedNotice::Updated { conversation_id }, rx))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }

    fn recheck_interval(&self) -> Option<Duration> {
        self.recheck
    }
}

/// Publishes the runtime's runs to a feed.
#[derive(Debug)]
pub(super) struct FeedObserver(Arc<dyn ConversationFeed>);

impl FeedObserver {
    pub(super) fn new(feed: Arc<dyn ConversationFeed>) -> Self {
        Self(feed)
    }
}

impl RunObserver for FeedObserver {
    fn run_started(&self, run: &RunHandle, _running: usize) {
        self.0.publish(FeedNotice::RunStarted {
            conversation_id: run.conversation_id,
            session_id: run.session_id,
        });
    }

    fn run_finished(&self, run: &RunHandle, _session: Option<&Session>, _running: usize) {
        self.0.publish(FeedNotice::RunFinished {
            conversation_id: run.conversation_id,
            session_id: run.session_id,
        });
    }
}

/// Where a follower starts.
///
/// ```
/// use netherbrain_core::conversation::FollowFrom;
/// let resume = FollowFrom::After { session_id: netherbrain_core::SessionId::new(), after: 12 };
/// # let _ = (FollowFrom::Live, resume);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FollowFrom {
    /// The running session from its first event (if one runs), then every
    /// later run.
    #[default]
    Live,
    /// The latest session after this event id (`0`: from its start), then
    /// every later run.
    Latest {
        /// Last event id already seen.
        after: EventSeq,
    },
    /// This session after this event id, then every later run: the cursor
    /// a follower that lost its connection resumes from.
    After {
        /// The session of the last event seen.
        session_id: SessionId,
        /// Last event id already seen.
        after: EventSeq,
    },
    /// Every session from the first, then every later run.
    Start,
}

/// Events buffered between the follower task and its reader; the task
/// waits when the reader is slow (the log keeps the rest).
const FOLLOW_BUFFER: usize = 64;

impl ConversationService {
    /// Follows a conversation: every run's events in order, each
    /// [`EventEnvelope`] naming its session — runs started by any surface,
    /// live while they run, replayed from `from`. The stream never ends on
    /// its own; drop it to stop.
    ///
    /// # Errors
    ///
    /// `NotFound` for a conversation `who` may not see, or a
    /// [`FollowFrom::After`] session of another conversation.
    ///
    /// ```
    /// # use netherbrain_core::auth::Principal;
    /// # use netherbrain_core::conversation::{ConversationService, FollowFrom};
    /// # async fn f(service: ConversationService, who: Principal, id: netherbrain_core::ConversationId) {
    /// use futures::StreamExt;
    /// let mut feed = service.follow(&who, id, FollowFrom::Live).await.unwrap();
    /// while let Some(event) = feed.next().await {
    ///     println!("{} #{}: {}", event.session_id, event.seq, event.event.type_name());
    /// }
    /// # }
    /// ```
    pub async fn follow(
        &self,
        who: &Principal,
        conversation_id: ConversationId,
        from: FollowFrom,
    ) -> Result<BoxStream<'static, EventEnvelope>, ServiceError> {
        let conversation = self.conversation(who, conversation_id).await?;
        // Watch before reading the store, so no run falls between the two.
        let notices = self.inner.feed.watch(conversation_id);
        let sessions = self.inner.store.list_sessions(conversation_id).await?;
        let mut seen: HashSet<SessionId> = sessions.iter().map(|s| s.id).collect();
        let mut queue = VecDeque::new();
        match from {
            FollowFrom::Live => {
                if let Some(latest) = sessions.last().filter(|s| s.status.is_active()) {
                    queue.push_back((latest.id, 0));
                }
            }
            FollowFrom::Latest { after } => {
                if let Some(latest) = sessions.last() {
                    queue.push_back((latest.id, after));
                }
            }
            FollowFrom::After { session_id, after } => {
                let position = sessions
                    .iter()
                    .position(|s| s.id == session_id)
                    .ok_or_else(|| crate::store::StoreError::not_found("session", session_id))?;
                queue.push_back((session_id, after));
                queue.extend(sessions[position + 1..].iter().map(|s| (s.id, 0)));
            }
            FollowFrom::Start => {
                seen.clear();
                queue.extend(sessions.iter().map(|s| (s.id, 0)));
                seen.extend(sessions.iter().map(|s| s.id));
            }
        }
        let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
        let follower = Follower {
            service: self.clone(),
            conversation_id,
            last_activity: conversation.last_activity_at,
            seen,
            queue,
            tail: None,
            tx,
        };
        tokio::spawn(follower.run(notices));
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|event| (event, rx))
        })
        .boxed())
    }
}

/// The task behind one [`ConversationService::follow`] stream.
struct Follower {
    service: ConversationService,
    conversation_id: ConversationId,
    last_activity: chrono::DateTime<chrono::Utc>,
    seen: HashSet<SessionId>,
    /// Sessions to stream, with the last event id already sent.
    queue: VecDeque<(SessionId, EventSeq)>,
    /// A session streamed up to here whose run had not ended (it runs in
    /// another process): read again on the next wake-up.
    tail: Option<(SessionId, EventSeq)>,
    tx: mpsc::Sender<EventEnvelope>,
}

/// Why a follower stopped.
struct Closed;

impl Follower {
    async fn run(mut self, mut notices: BoxStream<'static, FeedNotice>) {
        let recheck = self.service.inner.feed.recheck_interval();
        let mut notices_open = true;
        loop {
            if self.drain_queue().await.is_err() {
                return;
            }
            let tick = async {
                match recheck {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let woke_by_notice = tokio::select! {
                () = self.tx.closed() => return,
                notice = notices.next(), if notices_open => {
                    if notice.is_none() {
                        notices_open = false;
                    }
                    true
                }
                () = tick => false,
            };
            self.refresh(woke_by_notice).await;
        }
    }

    /// Streams every queued session.
    async fn drain_queue(&mut self) -> Result<(), Closed> {
        while let Some((session_id, after)) = self.queue.pop_front() {
            self.stream(session_id, after).await?;
        }
        Ok(())
    }

    /// Sends a session's events after `after`; remembers it as the tail when
    /// they stop before its terminal event.
    async fn stream(&mut self, session_id: SessionId, after: EventSeq) -> Result<(), Closed> {
        let runtime = self.service.runtime();
        let mut events = match runtime.subscribe(session_id, after).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(%session_id, error = %e, "follow: cannot read a session's events");
                return Ok(());
            }
        };
        let mut last = after;
        let mut ended = false;
        loop {
            let next = tokio::select! {
                () = self.tx.closed() => return Err(Closed),
                next = events.next() => next,
            };
            let Some(event) = next else { break };
            last = event.seq;
            ended = event.event.is_terminal();
            if self.tx.send(event).await.is_err() {
                return Err(Closed);
            }
        }
        self.tail = (!ended).then_some((session_id, last));
        Ok(())
    }

    /// Finds what changed: new sessions, and more events of the tail.
    async fn refresh(&mut self, woke_by_notice: bool) {
        let store = self.service.store();
        if !woke_by_notice && self.tail.is_none() {
            // A recheck: only list sessions when the conversation moved.
            match store.get_conversation(self.conversation_id).await {
                Ok(c) if c.last_activity_at == self.last_activity => return,
                Ok(c) => self.last_activity = c.last_activity_at,
                Err(e) => {
                    tracing::debug!(error = %e, "follow: recheck failed");
                    return;
                }
            }
        }
        if let Some((session_id, after)) = self.tail.take() {
            self.queue.push_back((session_id, after));
        }
        let sessions = match store.list_sessions(self.conversation_id).await {
            Ok(sessions) => sessions,
            Err(e) => {
                tracing::debug!(error = %e, "follow: listing sessions failed");
                return;
            }
        };
        for session in sessions {
            if self.seen.insert(session.id) {
                self.queue.push_back((session.id, 0));
            }
        }
    }
}
