//! Storage load test: durable turns per second and conversation-listing
//! latency on SQLite and Postgres, through the `StateStore` trait exactly
//! as the runtime uses it.
//!
//! A *turn* is one `append` of one user message, one assistant message and
//! ten events to a running session, committed in one transaction.
//!
//! ```text
//! cargo run --release -p netherbrain-benches --bin store_load -- [sqlite|postgres|all] [--turns N]
//! ```
//!
//! SQLite uses a file in a temporary directory (WAL, `synchronous =
//! NORMAL`, the store's defaults). Postgres uses a fresh database
//! `nb_bench_<uuid>` on `NETHER_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use netherbrain_core::store::{
    ConversationQuery, Metadata, NewConversation, NewSession, NewUser, SessionAppend, StateStore,
    UserRole,
};
use netherbrain_core::{
    AgentEvent, ConversationId, EventEnvelope, Message, Role, SessionId, UserId,
};
use serde_json::json;

type Store = Arc<dyn StateStore>;
type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Concurrent sessions in the concurrent run.
const CONCURRENCY: usize = 8;
/// Conversations of the listed owner.
const CONVERSATIONS: usize = 10_000;
/// Conversations of another owner (so the owner filter filters).
const OTHER_CONVERSATIONS: usize = 2_000;
/// Page size.
const PAGE: u32 = 50;
/// Timed repetitions per listing query.
const REPS: usize = 200;

fn main() -> Result<(), AnyError> {
    let mut backends = Vec::new();
    let mut turns = 4_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "sqlite" | "postgres" => backends.push(arg),
            "all" => backends.extend(["sqlite".into(), "postgres".into()]),
            "--turns" => {
                turns = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--turns needs a number")?;
            }
            "-h" | "--help" => {
                println!("usage: store_load [sqlite|postgres|all] [--turns N]");
                return Ok(());
            }
            // `cargo bench` passes `--bench`; ignore unknown flags.
            _ => {}
        }
    }
    if backends.is_empty() {
        backends.extend(["sqlite".into(), "postgres".into()]);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        for backend in backends {
            match backend.as_str() {
                "sqlite" => {
                    let dir = tempfile::tempdir()?;
                    let url = format!("sqlite://{}/bench.db", dir.path().display());
                    println!("== SQLite ({url})");
                    let store = netherbrain_store::connect(&url).await?;
                    run(&store, turns).await?;
                    drop(store);
                }
                _ => {
                    let db = PgDatabase::create().await?;
                    println!("== Postgres (database {})", db.name);
                    let store = netherbrain_store::connect(&db.url).await?;
                    let result = run(&store, turns).await;
                    drop(store);
                    db.drop_database().await;
                    result?;
                }
            }
        }
        Ok(())
    })
}

async fn run(store: &Store, turns: usize) -> Result<(), AnyError> {
    let owner = store
        .create_user(NewUser::new(
            format!("bench-{}", uuid::Uuid::new_v4()),
            UserRole::User,
        ))
        .await?
        .id;

    // (a) turns per second.
    let [session] = running_sessions(store, owner, 1).await?[..] else {
        unreachable!()
    };
    // Warm up (connections, statement caches).
    let warm = turns / 20;
    append_turns(store, session, 0, warm).await?;
    let started = Instant::now();
    append_turns(store, session, warm, turns).await?;
    report_rate("sequential, 1 session", turns, started.elapsed());

    let sessions = running_sessions(store, owner, CONCURRENCY).await?;
    let per_session = turns / CONCURRENCY;
    let started = Instant::now();
    let tasks: Vec<_> = sessions
        .iter()
        .map(|&session| {
            let store = store.clone();
            tokio::spawn(async move { append_turns(&store, session, 0, per_session).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    report_rate(
        &format!("concurrent, {CONCURRENCY} sessions"),
        per_session * CONCURRENCY,
        started.elapsed(),
    );

    // (b) one page of 50 out of 10,000.
    let other = store
        .create_user(NewUser::new(
            format!("other-{}", uuid::Uuid::new_v4()),
            UserRole::User,
        ))
        .await?
        .id;
    let started = Instant::now();
    create_conversations(store, owner, CONVERSATIONS).await?;
    create_conversations(store, other, OTHER_CONVERSATIONS).await?;
    println!(
        "  created {} conversations in {:.1} s",
        CONVERSATIONS + OTHER_CONVERSATIONS,
        started.elapsed().as_secs_f64()
    );

    let first = ConversationQuery::for_owner(owner).with_limit(PAGE);
    let page = store.list_conversations(first.clone()).await?;
    assert_eq!(page.items.len(), PAGE as usize);
    time_query(store, "list: first page", &first).await?;

    // Walk to page 100 (conversations 5,000–5,049) for the deep cursor.
    let mut cursor = page.next_cursor;
    for _ in 1..100 {
        let page = store
            .list_conversations(first.clone().with_cursor(cursor.clone()))
            .await?;
        cursor = page.next_cursor;
    }
    let deep = first.clone().with_cursor(cursor);
    assert_eq!(
        store.list_conversations(deep.clone()).await?.items.len(),
        PAGE as usize
    );
    time_query(store, "list: page 101 (cursor)", &deep).await?;

    let filtered = first
        .clone()
        .with_metadata(meta(json!({ "project": "p3" })));
    let page = store.list_conversations(filtered.clone()).await?;
    assert_eq!(page.items.len(), PAGE as usize);
    time_query(
        store,
        "list: first page, metadata filter (1 in 10)",
        &filtered,
    )
    .await?;

    let rare = first.with_metadata(meta(json!({ "tier": "gold" })));
    let page = store.list_conversations(rare.clone()).await?;
    assert_eq!(page.items.len(), PAGE as usize);
    time_query(store, "list: first page, metadata filter (1 in 100)", &rare).await?;
    Ok(())
}

fn meta(value: serde_json::Value) -> Metadata {
    value.as_object().cloned().unwrap_or_default()
}

/// `n` conversations of `owner`, each with a running session.
async fn running_sessions(
    store: &Store,
    owner: UserId,
    n: usize,
) -> Result<Vec<SessionId>, AnyError> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let conversation = store
            .create_conversation(NewConversation::new(owner).with_title(format!("turns {i}")))
            .await?;
        let session = store
            .create_session(NewSession::new(
                conversation.id,
                vec![Message::user("start the bench")],
            ))
            .await?;
        out.push(session.id);
    }
    Ok(out)
}

/// Appends turns `from..to` (by index) to a session.
async fn append_turns(
    store: &Store,
    session: SessionId,
    from: usize,
    to: usize,
) -> Result<(), AnyError> {
    for turn in from..to {
        store.append(session, turn_of(session, turn)).await?;
    }
    Ok(())
}

/// One turn: a user message, an assistant message and ten events.
fn turn_of(session: SessionId, turn: usize) -> SessionAppend {
    let base = (turn as u64) * 10;
    let message_id = format!("msg-{turn}");
    let mut events = Vec::with_capacity(10);
    events.push(AgentEvent::TextMessageStart {
        message_id: message_id.clone(),
        role: Role::Assistant,
    });
    for chunk in 0..8 {
        events.push(AgentEvent::TextMessageContent {
            message_id: message_id.clone(),
            delta: format!("chunk {chunk} of a streamed answer, about sixty bytes long. "),
        });
    }
    events.push(AgentEvent::TextMessageEnd { message_id });
    let events = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| EventEnvelope::new(session, base + i as u64 + 1, event))
        .collect();
    SessionAppend::new(
        vec![
            Message::user(format!(
                "question {turn}: what does the next step look like?"
            )),
            Message::assistant(format!(
                "answer {turn}: the next step reads the file, edits it and runs the tests."
            )),
        ],
        events,
    )
}

/// Creates conversations from 4 tasks, with metadata `project` (1 in 10)
/// and `tier` (1 in 100).
async fn create_conversations(store: &Store, owner: UserId, n: usize) -> Result<(), AnyError> {
    const WRITERS: usize = 4;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids: Vec<ConversationId> = Vec::new();
                for i in (w..n).step_by(WRITERS) {
                    let tier = if i % 100 == 0 { "gold" } else { "std" };
                    let metadata = meta(json!({ "project": format!("p{}", i % 10), "tier": tier }));
                    let c = store
                        .create_conversation(
                            NewConversation::new(owner)
                                .with_title(format!("conversation {i}"))
                                .with_metadata(metadata),
                        )
                        .await?;
                    ids.push(c.id);
                }
                Ok::<_, AnyError>(ids)
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn time_query(store: &Store, label: &str, query: &ConversationQuery) -> Result<(), AnyError> {
    for _ in 0..10 {
        store.list_conversations(query.clone()).await?;
    }
    let mut samples = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let started = Instant::now();
        let page = store.list_conversations(query.clone()).await?;
        samples.push(started.elapsed());
        std::hint::black_box(page);
    }
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / REPS as u32;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  {label:<48} mean {:>6.2} ms  p50 {:>6.2} ms  p95 {:>6.2} ms  max {:>6.2} ms",
        ms(mean),
        ms(samples[REPS / 2]),
        ms(samples[REPS * 95 / 100]),
        ms(samples[REPS - 1]),
    );
    Ok(())
}

fn report_rate(label: &str, turns: usize, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!(
        "  turns: {label:<28} {turns:>6} turns in {secs:>6.2} s = {:>7.0} turns/s ({:.3} ms/turn)",
        turns as f64 / secs,
        secs * 1e3 / turns as f64
    );
}

/// A fresh Postgres database for the run.
struct PgDatabase {
    name: String,
    url: String,
    admin: String,
}

impl PgDatabase {
    async fn create() -> Result<Self, AnyError> {
        use sqlx::Connection;
        let admin = std::env::var("NETHER_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("nb_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Ok(Self { name, url, admin })
    }

    async fn drop_database(&self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        }
    }
}
