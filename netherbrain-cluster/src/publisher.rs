//! Publishing a run's events: each is appended to its session's stream
//! (for readers that attach or resume later) and published on its live
//! channel (for readers attached now), in batched pipelines off the run's
//! path.

use std::collections::HashSet;
use std::sync::Arc;

use netherbrain_core::{EventEnvelope, SessionId};
use tokio::sync::mpsc;

use crate::link::Link;

/// Events queued for Redis before new ones are dropped (readers fill the
/// gap from the database).
pub(crate) const QUEUE: usize = 65_536;
/// Items per pipeline at most.
const BATCH: usize = 512;
/// Counter: events not published because the queue was full.
pub(crate) const DROPPED: &str = "netherbrain_cluster_events_dropped_total";

/// What the publisher writes.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Event(EventEnvelope),
    /// The run ended: its stream may expire soon.
    Ended(SessionId),
    /// A conversation-feed notice (JSON) for the other replicas.
    Notice(String),
}

/// Writes queued items until every sender is gone.
pub(crate) async fn run(link: Arc<Link>, mut queue: mpsc::Receiver<Outgoing>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let pipe = pipeline(&link, &batch);
        batch.clear();
        let mut conn = link.conn();
        // A failed batch is not retried: readers read what Redis lost from
        // the database.
        let _ = link
            .call("publishing events", pipe.query_async::<()>(&mut conn))
            .await;
    }
}

/// One pipeline for a batch: per event `XADD` (trimmed, with the sequence
/// number as entry id) and `PUBLISH`; per session its stream's expiry
/// (set with its first events, renewed with each batch, shortened at the
/// end).
fn pipeline(link: &Link, batch: &[Outgoing]) -> redis::Pipeline {
    let config = &link.config;
    let keys = &link.keys;
    let mut pipe = redis::pipe();
    let mut running: HashSet<SessionId> = HashSet::new();
    for item in batch {
        match item {
            Outgoing::Event(envelope) => {
                let Ok(json) = serde_json::to_string(envelope) else {
                    continue;
                };
                let stream = keys.events(envelope.session_id);
                pipe.cmd("XADD")
                    .arg(&stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(config.stream_max_len)
                    .arg(format!("{}-0", envelope.seq))
                    .arg("e")
                    .arg(&json)
                    .ignore();
                pipe.cmd("PUBLISH")
                    .arg(keys.live(envelope.session_id))
                    .arg(&json)
                    .ignore();
                running.insert(envelope.session_id);
            }
            Outgoing::Notice(json) => {
                pipe.cmd("PUBLISH").arg(keys.feed()).arg(json).ignore();
            }
            Outgoing::Ended(session) => {
                running.remove(session);
                pipe.cmd("EXPIRE")
                    .arg(keys.events(*session))
                    .arg(config.ended_ttl.as_secs().max(1))
                    .ignore();
            }
        }
    }
    for session in running {
        pipe.cmd("EXPIRE")
            .arg(keys.events(session))
            .arg(config.stream_ttl.as_secs().max(1))
            .ignore();
    }
    pipe
}
