//! `RedisCluster` against the machine's Redis (`NETHER_TEST_REDIS_URL`,
//! else `redis://127.0.0.1:6379`); every test uses a key prefix of its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use async_trait::async_trait;
use futures::StreamExt;
use netherbrain_cluster::{RedisCluster, RedisConfig};
use netherbrain_core::cluster::{Cluster, ClusterError, CommandHandler, CommandReply, RunCommand};
use netherbrain_core::conversation::FeedNotice;
use netherbrain_core::{AgentEvent, ConversationId, EventEnvelope, SessionId};

fn url() -> String {
    std::env::var("NETHER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn config() -> RedisConfig {
    RedisConfig::default().with_prefix(format!("nbtest-{}", uuid::Uuid::new_v4().simple()))
}

/// Two replicas of one deployment (one prefix), both connected.
async fn replicas(config: RedisConfig) -> Result<(Arc<RedisCluster>, Arc<RedisCluster>)> {
    let a = RedisCluster::connect(&url(), config.clone())?;
    let b = RedisCluster::connect(&url(), config)?;
    a.ping_now()
        .await
        .context("Redis must run on 127.0.0.1:6379")?;
    b.ping_now().await?;
    // Let the pub/sub connections come up.
    for _ in 0..100 {
        if b.live_events(SessionId::new(), 0).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((a, b))
}

fn event(session: SessionId, seq: u64) -> EventEnvelope {
    EventEnvelope::new(
        session,
        seq,
        AgentEvent::TextMessageContent {
            message_id: "m".into(),
            delta: format!("part {seq}"),
        },
    )
}

async fn raw(args: &[&str]) -> Result<redis::Value> {
    let client = redis::Client::open(url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    Ok(cmd.query_async(&mut conn).await?)
}

async fn int(args: &[&str]) -> Result<i64> {
    match raw(args).await? {
        redis::Value::Int(n) => Ok(n),
        other => anyhow::bail!("not an integer: {other:?}"),
    }
}

/// Waits until `b` holds `n` events of the session in its stream.
async fn published(config: &RedisConfig, session: SessionId, n: i64) -> Result<()> {
    let key = format!("{}:events:{session}", config.prefix);
    for _ in 0..200 {
        if int(&["XLEN", &key]).await? >= n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("{n} events never reached {key}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_on_another_replica_gets_held_then_live_events_in_order() -> Result<()> {
    let config = config();
    let (a, b) = replicas(config.clone()).await?;
    let session = SessionId::new();
    for seq in 1..=5 {
        a.publish(&event(session, seq));
    }
    published(&config, session, 5).await?;
    // A reader resuming after 2 gets 3..=5 from the stream ...
    let mut live = b.live_events(session, 2).await?;
    for seq in 6..=8 {
        a.publish(&event(session, seq));
    }
    // ... then 6..=8 as they are published, each once.
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let next = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .context("live events stalled")?
            .context("the stream ended")?;
        seen.push(next);
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    ensure!(seqs == vec![3, 4, 5, 6, 7, 8], "{seqs:?}");
    ensure!(seen[0] == event(session, 3) || seen[0].seq == 3);
    let json_a = serde_json::to_string(&seen[5])?;
    ensure!(json_a.contains("part 8"), "{json_a}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_bounded_and_expire_sooner_once_the_run_ends() -> Result<()> {
    let config = config()
        .with_stream_max_len(16)
        .with_stream_ttl(Duration::from_secs(600), Duration::from_secs(30));
    let (a, _b) = replicas(config.clone()).await?;
    let session = SessionId::new();
    for seq in 1..=2000 {
        a.publish(&event(session, seq));
    }
    let key = format!("{}:events:{session}", config.prefix);
    // Trimming is approximate (whole nodes of 100 entries): the stream stays
    // near the bound whatever the run's length.
    for _ in 0..300 {
        let last: redis::Value = raw(&["XREVRANGE", &key, "+", "-", "COUNT", "1"]).await?;
        if format!("{last:?}").contains("2000-0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let len = int(&["XLEN", &key]).await?;
    ensure!((16..=250).contains(&len), "{len} entries kept");
    let ttl = int(&["TTL", &key]).await?;
    ensure!((500..=600).contains(&ttl), "running ttl {ttl}");
    a.run_ended(session);
    let mut ended = ttl;
    for _ in 0..200 {
        ended = int(&["TTL", &key]).await?;
        if ended <= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure!((1..=30).contains(&ended), "ended ttl {ended}");
    Ok(())
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(SessionId, RunCommand)>>);

#[async_trait]
impl CommandHandler for Recorder {
    async fn handle(&self, session_id: SessionId, command: RunCommand) -> CommandReply {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.push((session_id, command.clone()));
        match command {
            RunCommand::Steer { .. } => CommandReply::Done,
            _ => CommandReply::NotRunning,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_their_owner_and_come_back_acknowledged() -> Result<()> {
    let (a, b) = replicas(config()).await?;
    let recorder = Arc::new(Recorder::default());
    b.serve_commands("replica-b", recorder.clone());
    let session = SessionId::new();
    let steer = RunCommand::Steer {
        text: "shorter".into(),
    };
    let mut reply = Err(ClusterError::NoListener(String::new()));
    for _ in 0..100 {
        reply = a.send_command("replica-b", session, steer.clone()).await;
        if !matches!(reply, Err(ClusterError::NoListener(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure!(reply == Ok(CommandReply::Done), "{reply:?}");
    let interrupt = a
        .send_command("replica-b", session, RunCommand::Interrupt)
        .await;
    ensure!(interrupt == Ok(CommandReply::NotRunning), "{interrupt:?}");
    let seen = recorder.0.lock().map(|s| s.clone()).unwrap_or_default();
    ensure!(
        seen == vec![(session, steer), (session, RunCommand::Interrupt)],
        "{seen:?}"
    );
    let nobody = a
        .send_command("replica-gone", session, RunCommand::Interrupt)
        .await;
    ensure!(
        matches!(nobody, Err(ClusterError::NoListener(ref owner)) if owner == "replica-gone"),
        "{nobody:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_reported_and_never_blocks_publishing() -> Result<()> {
    // Nothing listens on port 1.
    let cluster = RedisCluster::connect(
        "redis://127.0.0.1:1",
        config().with_response_timeout(Duration::from_millis(200)),
    )?;
    for seq in 1..=10_000 {
        cluster.publish(&event(SessionId::new(), seq));
    }
    ensure!(cluster.ping_now().await.is_err());
    ensure!(!cluster.is_up());
    let live = cluster.live_events(SessionId::new(), 0).await;
    ensure!(
        matches!(live, Err(ClusterError::Unavailable(_))),
        "{:?}",
        live.err()
    );
    let command = cluster
        .send_command("x", SessionId::new(), RunCommand::Interrupt)
        .await;
    ensure!(
        matches!(command, Err(ClusterError::Unavailable(_))),
        "{command:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_notices_reach_the_other_replicas_once() -> Result<()> {
    let (a, b) = replicas(config()).await?;
    let (feed_a, feed_b) = (a.feed().context("a feed")?, b.feed().context("a feed")?);
    let conversation = ConversationId::new();
    let mut on_a = feed_a.watch(conversation);
    let mut on_b = feed_b.watch(conversation);
    let notice = FeedNotice::RunStarted {
        conversation_id: conversation,
        session_id: SessionId::new(),
    };
    feed_a.publish(notice);
    let heard = tokio::time::timeout(Duration::from_secs(5), on_b.next()).await?;
    ensure!(heard == Some(notice), "{heard:?}");
    ensure!(on_a.next().await == Some(notice));
    // A's own notice does not come back to it through Redis.
    let echo = tokio::time::timeout(Duration::from_millis(300), on_a.next()).await;
    ensure!(echo.is_err(), "{echo:?}");
    Ok(())
}
