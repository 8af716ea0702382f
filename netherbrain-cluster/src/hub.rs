//! The one pub/sub connection of a process: live events for the sessions
//! its readers follow, and the commands addressed to it. It reconnects on
//! its own and subscribes again to what is wanted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use netherbrain_core::cluster::{ClusterError, CommandHandler, CommandReply, RunCommand};
use netherbrain_core::{EventEnvelope, EventSeq, SessionId};
use redis::aio::PubSubSink;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::feed::WireNotice;
use crate::link::Link;

/// Live events buffered per followed session before a slow reader lags
/// (and reads the gap from the database).
const LIVE_CAPACITY: usize = 1024;
/// How long an acknowledgement is kept for a sender that was slow to ask.
const ACK_TTL_SECS: u64 = 30;
/// Reconnect back-off bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A command on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// Where the reply goes (`<prefix>:ack:<id>`).
    pub(crate) id: String,
    pub(crate) session_id: SessionId,
    pub(crate) command: RunCommand,
}

#[derive(Default)]
struct Wanted {
    /// Followed sessions and the channel their events fan out on.
    sessions: HashMap<SessionId, broadcast::Sender<EventEnvelope>>,
    /// The command channel and its handler, once serving.
    commands: Option<(String, Arc<dyn CommandHandler>)>,
}

/// See the [module docs](self).
pub(crate) struct Hub {
    link: Arc<Link>,
    /// This process's followers, and the name its own notices carry.
    feed: Arc<netherbrain_core::conversation::LocalFeed>,
    origin: String,
    /// The subscribing half of the current connection (`None` while down).
    /// Subscribing and unsubscribing hold this lock, so the two never race.
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
    wanted: Mutex<Wanted>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("sessions", &self.wanted().sessions.len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn start(
        link: Arc<Link>,
        feed: Arc<netherbrain_core::conversation::LocalFeed>,
        origin: String,
    ) -> Arc<Self> {
        let hub = Arc::new(Self {
            link,
            feed,
            origin,
            sink: tokio::sync::Mutex::new(None),
            wanted: Mutex::new(Wanted::default()),
        });
        tokio::spawn(supervise(Arc::downgrade(&hub)));
        hub
    }

    fn wanted(&self) -> MutexGuard<'_, Wanted> {
        self.wanted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts hearing commands for `owner`.
    pub(crate) async fn serve_commands(&self, owner: &str, handler: Arc<dyn CommandHandler>) {
        let channel = self.link.keys.commands(owner);
        self.wanted().commands = Some((channel.clone(), handler));
        let mut sink = self.sink.lock().await;
        if let Some(sink) = sink.as_mut()
            && let Err(err) = sink.subscribe(&channel).await
        {
            // The supervisor subscribes again when it reconnects.
            self.link.failed("subscribing to commands", &err);
        }
    }

    /// Live events of `session` from now on; the stream ends when the
    /// reader lags or the connection is lost.
    pub(crate) async fn follow(
        self: &Arc<Self>,
        session: SessionId,
    ) -> Result<BoxStream<'static, EventEnvelope>, ClusterError> {
        let mut sink = self.sink.lock().await;
        let Some(sink) = sink.as_mut() else {
            return Err(ClusterError::Unavailable(
                "not connected to Redis".to_owned(),
            ));
        };
        let (rx, subscribe) = {
            let mut wanted = self.wanted();
            match wanted.sessions.get(&session) {
                Some(tx) => (tx.subscribe(), false),
                None => {
                    let (tx, rx) = broadcast::channel(LIVE_CAPACITY);
                    wanted.sessions.insert(session, tx);
                    (rx, true)
                }
            }
        };
        if subscribe {
            let subscribed = self
                .link
                .call(
                    "following a session",
                    sink.subscribe(self.link.keys.live(session)),
                )
                .await;
            if let Err(err) = subscribed {
                self.wanted().sessions.remove(&session);
                return Err(err);
            }
        }
        let guard = Unfollow {
            hub: Arc::downgrade(self),
            session,
        };
        Ok(
            futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
                match rx.recv().await {
                    Ok(envelope) => Some((envelope, (rx, guard))),
                    Err(_) => None,
                }
            })
            .boxed(),
        )
    }

    /// Drops a session's subscription once nobody follows it.
    async fn unfollow(&self, session: SessionId) {
        let mut sink = self.sink.lock().await;
        let unused = {
            let mut wanted = self.wanted();
            let unused = wanted
                .sessions
                .get(&session)
                .is_some_and(|tx| tx.receiver_count() == 0);
            if unused {
                wanted.sessions.remove(&session);
            }
            unused
        };
        if unused && let Some(sink) = sink.as_mut() {
            let _ = self
                .link
                .call(
                    "unfollowing a session",
                    sink.unsubscribe(self.link.keys.live(session)),
                )
                .await;
        }
    }

    /// Routes one message of the connection.
    fn dispatch(self: &Arc<Self>, message: &redis::Msg) {
        let channel = message.get_channel_name();
        if channel == self.link.keys.feed() {
            use netherbrain_core::conversation::ConversationFeed as _;
            match serde_json::from_slice::<WireNotice>(message.get_payload_bytes()) {
                Ok(wire) => {
                    if let Some(notice) = wire.into_notice_unless_from(&self.origin) {
                        self.feed.publish(notice);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "unreadable feed notice from Redis"),
            }
            return;
        }
        if let Some(session) = self.link.keys.live_session(channel) {
            let tx = self.wanted().sessions.get(&session).cloned();
            if let Some(tx) = tx {
                match serde_json::from_slice::<EventEnvelope>(message.get_payload_bytes()) {
                    Ok(envelope) => {
                        let _ = tx.send(envelope);
                    }
                    Err(err) => {
                        tracing::warn!(%session, error = %err, "unreadable live event from Redis");
                    }
                }
            }
            return;
        }
        let handler = {
            let wanted = self.wanted();
            wanted
                .commands
                .as_ref()
                .filter(|(name, _)| name == channel)
                .map(|(_, handler)| handler.clone())
        };
        let Some(handler) = handler else { return };
        match serde_json::from_slice::<Envelope>(message.get_payload_bytes()) {
            Ok(command) => {
                let link = self.link.clone();
                tokio::spawn(async move {
                    let reply = handler.handle(command.session_id, command.command).await;
                    acknowledge(&link, &command.id, reply).await;
                });
            }
            Err(err) => tracing::warn!(error = %err, "unreadable command from Redis"),
        }
    }

    /// The channels wanted now.
    fn channels(&self) -> Vec<String> {
        let wanted = self.wanted();
        wanted
            .sessions
            .keys()
            .map(|s| self.link.keys.live(*s))
            .chain(wanted.commands.as_ref().map(|(name, _)| name.clone()))
            .chain(std::iter::once(self.link.keys.feed()))
            .collect()
    }
}

/// Pushes a command's reply where its sender waits.
async fn acknowledge(link: &Link, id: &str, reply: CommandReply) {
    let Ok(json) = serde_json::to_string(&reply) else {
        return;
    };
    let key = link.keys.ack(id);
    let mut pipe = redis::pipe();
    pipe.cmd("LPUSH").arg(&key).arg(json).ignore();
    pipe.cmd("EXPIRE").arg(&key).arg(ACK_TTL_SECS).ignore();
    let mut conn = link.conn();
    let _ = link
        .call("acknowledging a command", pipe.query_async::<()>(&mut conn))
        .await;
}

/// Removes a follower's subscription when its stream is dropped.
struct Unfollow {
    hub: Weak<Hub>,
    session: SessionId,
}

impl Drop for Unfollow {
    fn drop(&mut self) {
        let (Some(hub), Ok(handle)) = (self.hub.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let session = self.session;
        handle.spawn(async move { hub.unfollow(session).await });
    }
}

/// Keeps a pub/sub connection up while the hub lives.
async fn supervise(hub: Weak<Hub>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let Some(strong) = hub.upgrade() else { return };
        let link = strong.link.clone();
        let connected = link
            .call("connecting for pub/sub", link.client.get_async_pubsub())
            .await;
        let mut stream = match connected {
            Ok(pubsub) => {
                let (mut sink, stream) = pubsub.split();
                let channels = strong.channels();
                let mut guard = strong.sink.lock().await;
                let resubscribed = link.call("subscribing", sink.subscribe(channels)).await;
                if resubscribed.is_ok() {
                    *guard = Some(sink);
                    backoff = BACKOFF_MIN;
                    Some(stream)
                } else {
                    None
                }
            }
            Err(_) => None,
        };
        drop(strong);
        if let Some(stream) = stream.as_mut() {
            while let Some(message) = stream.next().await {
                let Some(hub) = hub.upgrade() else { return };
                hub.dispatch(&message);
            }
            let Some(strong) = hub.upgrade() else { return };
            *strong.sink.lock().await = None;
            // Followers' streams end so they read the gap from the database.
            strong.wanted().sessions.clear();
            strong.link.failed("pub/sub connection", &"connection lost");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Parses the reply a sender popped.
pub(crate) fn parse_reply(raw: &str) -> Result<CommandReply, ClusterError> {
    serde_json::from_str(raw).map_err(|e| ClusterError::Malformed(e.to_string()))
}

/// The first `seq` a stream read after `after` starts at.
pub(crate) fn stream_start(after: EventSeq) -> String {
    format!("{}-0", after.saturating_add(1))
}
