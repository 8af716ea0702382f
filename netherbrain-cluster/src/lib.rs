//! # netherbrain-cluster
//!
//! Several `netherbrain agent` replicas behind one load balancer, sharing
//! one Postgres database: [`RedisCluster`] implements core's
//! [`Cluster`] over Redis.
//!
//! - **Events.** The replica running a session appends each event to the
//!   session's stream, `<prefix>:events:<session>` (entry id `<seq>-0`,
//!   trimmed to [`RedisConfig::stream_max_len`], expiring
//!   [`RedisConfig::stream_ttl`] after its last event and
//!   [`RedisConfig::ended_ttl`] after the run ends), and publishes it on
//!   `<prefix>:live:<session>`. A reader on another replica subscribes to
//!   the channel, reads the stream after its position, then takes the
//!   channel's events; the runtime replays the database first and fills
//!   any gap from it.
//! - **Commands.** Each replica listens on `<prefix>:commands:<owner>`,
//!   its lease owner name. A sender publishes the command there and waits
//!   on `<prefix>:ack:<id>` (`BLPOP`) for the reply.
//! - **The conversation feed.** [`RedisFeed`] (the cluster's
//!   [`feed`](Cluster::feed), which the conversation service of a joined
//!   runtime uses) publishes run notices on `<prefix>:feed`, so followers
//!   on every replica hear of a run at once.
//! - **Outages.** Publishing never blocks a run; what Redis misses, readers
//!   read from the database. While Redis is down, [`is_up`](RedisCluster::is_up)
//!   is false, the gauge `netherbrain_redis_up` is 0, readers of other
//!   replicas' runs poll the database, and commands for other replicas'
//!   runs are refused; everything resumes when Redis returns.
//!
//! ```no_run
//! use std::sync::Arc;
//! use netherbrain_cluster::{RedisCluster, RedisConfig};
//! use netherbrain_core::runtime::Runtime;
//! use netherbrain_core::store::MemoryStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = RedisCluster::connect("redis://127.0.0.1:6379", RedisConfig::default())?;
//! let runtime = Runtime::new(Arc::new(MemoryStore::new()));
//! runtime.join_cluster(cluster.clone());
//! cluster.ping_now().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod config;
mod feed;
mod hub;
mod keys;
mod link;
mod publisher;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use netherbrain_core::cluster::{Cluster, ClusterError, CommandHandler, CommandReply, RunCommand};
use netherbrain_core::{EventEnvelope, EventSeq, SessionId};
use redis::streams::StreamRangeReply;
use tokio::sync::mpsc;

pub use self::config::RedisConfig;
pub use self::feed::RedisFeed;

use self::hub::Hub;
use self::link::Link;
use self::publisher::Outgoing;

/// Why a [`RedisCluster`] could not be set up.
///
/// ```
/// use netherbrain_cluster::{ConnectError, RedisCluster, RedisConfig};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let err = RedisCluster::connect("http://nope", RedisConfig::default()).unwrap_err();
/// assert!(matches!(err, ConnectError::InvalidUrl(_)));
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a Redis URL (`redis://`, `rediss://`, `unix://`).
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
}

/// Core's [`Cluster`] over Redis; see the [crate docs](crate).
#[derive(Debug)]
pub struct RedisCluster {
    link: Arc<Link>,
    hub: Arc<Hub>,
    queue: mpsc::Sender<Outgoing>,
    feed: Arc<RedisFeed>,
}

impl RedisCluster {
    /// Sets up the cluster for the Redis at `url` and starts its
    /// background tasks (needs a Tokio runtime). It connects lazily and
    /// keeps reconnecting, so a Redis that is down at start is joined when
    /// it comes up.
    ///
    /// # Errors
    ///
    /// [`ConnectError::InvalidUrl`].
    pub fn connect(url: &str, config: RedisConfig) -> Result<Arc<Self>, ConnectError> {
        let client =
            redis::Client::open(url).map_err(|e| ConnectError::InvalidUrl(e.to_string()))?;
        let link = Arc::new(
            Link::new(client, config).map_err(|e| ConnectError::InvalidUrl(e.to_string()))?,
        );
        let (queue, rx) = mpsc::channel(publisher::QUEUE);
        tokio::spawn(publisher::run(link.clone(), rx));
        metrics::describe_counter!(
            publisher::DROPPED,
            "events not published to Redis because its queue was full"
        );
        let origin = uuid::Uuid::new_v4().simple().to_string();
        let local = Arc::new(netherbrain_core::conversation::LocalFeed::new());
        let hub = Hub::start(link.clone(), local.clone(), origin.clone());
        let feed = Arc::new(RedisFeed::new(local, queue.clone(), origin));
        Ok(Arc::new(Self {
            link,
            hub,
            queue,
            feed,
        }))
    }

    /// Whether the last Redis request succeeded.
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// Checks that Redis answers now.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Unavailable`].
    pub async fn ping_now(&self) -> Result<(), ClusterError> {
        let mut conn = self.link.conn();
        self.link
            .call("ping", redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(drop)
    }

    /// The events Redis still holds for a session, after `after`.
    async fn read_stream(
        &self,
        session: SessionId,
        after: EventSeq,
    ) -> Result<Vec<EventEnvelope>, ClusterError> {
        let mut conn = self.link.conn();
        let reply: StreamRangeReply = self
            .link
            .call(
                "reading a session's stream",
                redis::cmd("XRANGE")
                    .arg(self.link.keys.events(session))
                    .arg(hub::stream_start(after))
                    .arg("+")
                    .query_async(&mut conn),
            )
            .await?;
        let mut events = Vec::with_capacity(reply.ids.len());
        for entry in reply.ids {
            let Some(json) = entry.get::<String>("e") else {
                continue;
            };
            match serde_json::from_str::<EventEnvelope>(&json) {
                Ok(envelope) => events.push(envelope),
                Err(err) => {
                    tracing::warn!(%session, error = %err, "unreadable event in a Redis stream");
                }
            }
        }
        Ok(events)
    }
}

#[async_trait]
impl Cluster for RedisCluster {
    fn publish(&self, envelope: &EventEnvelope) {
        if self
            .queue
            .try_send(Outgoing::Event(envelope.clone()))
            .is_err()
        {
            metrics::counter!(publisher::DROPPED).increment(1);
        }
    }

    fn run_ended(&self, session_id: SessionId) {
        if self.queue.try_send(Outgoing::Ended(session_id)).is_err() {
            metrics::counter!(publisher::DROPPED).increment(1);
        }
    }

    async fn live_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
    ) -> Result<BoxStream<'static, EventEnvelope>, ClusterError> {
        // Subscribe first, then read what the stream holds: an event
        // published in between comes twice and is skipped, never missed.
        let live = self.hub.follow(session_id).await?;
        let held = self.read_stream(session_id, after).await?;
        let last = held.last().map_or(after, |e| e.seq);
        let live = live.filter(move |e| std::future::ready(e.seq > last));
        Ok(futures::stream::iter(held).chain(live).boxed())
    }

    async fn held_events(
        &self,
        session_id: SessionId,
        after: EventSeq,
    ) -> Result<Vec<EventEnvelope>, ClusterError> {
        self.read_stream(session_id, after).await
    }

    async fn send_command(
        &self,
        owner: &str,
        session_id: SessionId,
        command: RunCommand,
    ) -> Result<CommandReply, ClusterError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let message = serde_json::to_string(&hub::Envelope {
            id: id.clone(),
            session_id,
            command,
        })
        .map_err(|e| ClusterError::Malformed(e.to_string()))?;
        let mut conn = self.link.conn();
        let listeners: i64 = self
            .link
            .call(
                "sending a command",
                redis::cmd("PUBLISH")
                    .arg(self.link.keys.commands(owner))
                    .arg(message)
                    .query_async(&mut conn),
            )
            .await?;
        if listeners == 0 {
            return Err(ClusterError::NoListener(owner.to_owned()));
        }
        // `BLPOP` blocks its connection: it gets one of its own.
        let timeout = self.link.config.command_timeout;
        let waited = tokio::time::timeout(timeout + self.link.config.response_timeout, async {
            let mut own = self.link.client.get_multiplexed_async_connection().await?;
            redis::cmd("BLPOP")
                .arg(self.link.keys.ack(&id))
                .arg(timeout.as_secs_f64())
                .query_async::<Option<(String, String)>>(&mut own)
                .await
        })
        .await;
        match waited {
            Ok(Ok(Some((_, raw)))) => hub::parse_reply(&raw),
            Ok(Ok(None)) | Err(_) => Err(ClusterError::Timeout {
                owner: owner.to_owned(),
                timeout,
            }),
            Ok(Err(err)) => {
                self.link.failed("waiting for a command's reply", &err);
                Err(ClusterError::Unavailable(err.to_string()))
            }
        }
    }

    fn serve_commands(&self, owner: &str, handler: Arc<dyn CommandHandler>) {
        let hub = self.hub.clone();
        let owner = owner.to_owned();
        tokio::spawn(async move { hub.serve_commands(&owner, handler).await });
    }

    async fn ping(&self) -> Result<(), ClusterError> {
        self.ping_now().await
    }

    fn feed(&self) -> Option<Arc<dyn netherbrain_core::conversation::ConversationFeed>> {
        Some(self.feed.clone())
    }
}
