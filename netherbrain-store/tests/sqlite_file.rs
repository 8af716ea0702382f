//! SQLite file behaviour: durability across a `kill -9`, reopening, paths,
//! and listing speed on a realistic number of conversations.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{
    ConversationQuery, Metadata, NewConversation, NewSession, NewUser, SessionAppend, UserRole,
};
use netherbrain_core::{AgentEvent, EventEnvelope, Message, SessionStatus};
use netherbrain_store::SqliteStore;
use sqlx::Connection;

const CHILD_ENV: &str = "NB_CRASH_CHILD_DB";

/// Runs only as the child of `kill_9_keeps_every_acknowledged_append`:
/// appends turns forever, printing each acknowledged sequence number.
#[tokio::test]
async fn crash_child_append_loop() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = SqliteStore::open(&path).await.unwrap();
    let user = store
        .create_user(NewUser::new("crash", UserRole::User))
        .await
        .unwrap();
    let c = store
        .create_conversation(NewConversation::new(user.id))
        .await
        .unwrap();
    let session = store
        .create_session(NewSession::new(c.id, vec![Message::user("go")]))
        .await
        .unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nSESSION {}", session.id).unwrap();
    out.flush().unwrap();
    for seq in 1u64.. {
        let event = EventEnvelope::new(
            session.id,
            seq,
            AgentEvent::TextMessageEnd {
                message_id: format!("m{seq}"),
            },
        );
        store
            .append(
                session.id,
                SessionAppend::new(vec![Message::assistant(format!("turn {seq}"))], vec![event]),
            )
            .await
            .unwrap();
        writeln!(out, "ACK {seq}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_append_loop",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut session = None;
    let mut acked = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked < 300 && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            break;
        };
        // The test harness may print its own text before ours on a line.
        if let Some(id) = line.split("SESSION ").nth(1) {
            session = Some(id.parse::<netherbrain_core::SessionId>().unwrap());
        } else if let Some(seq) = line.split("ACK ").nth(1) {
            acked = seq.parse().unwrap();
        }
    }
    // SIGKILL, mid-append most likely.
    child.kill().unwrap();
    child.wait().unwrap();
    // Acknowledgements already in the pipe count too.
    reader.join().unwrap();
    for line in rx.try_iter() {
        if let Some(seq) = line.split("ACK ").nth(1) {
            acked = acked.max(seq.parse().unwrap());
        }
    }
    let session = session.expect("child started a session");
    assert!(acked >= 10, "child made progress (acked {acked})");

    // The file is intact.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    conn.close().await.unwrap();

    let store = SqliteStore::open(&path).await.unwrap();
    let last = store.last_event_seq(session).await.unwrap();
    assert!(last >= acked, "acknowledged {acked}, stored only {last}");
    assert!(last <= acked + 1, "at most the in-flight append is extra");
    let events = store.list_events(session, 0, 100_000).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>()
    );
    let messages = store.session_messages(session).await.unwrap();
    assert_eq!(
        messages.len() as u64,
        last + 1,
        "messages and events were appended together"
    );
    assert_eq!(messages.last().unwrap().text(), format!("turn {last}"));
    assert_eq!(
        store.recover_sessions(chrono::Utc::now()).await.unwrap(),
        [session]
    );
    assert_eq!(
        store.get_session(session).await.unwrap().status,
        SessionStatus::Interrupted
    );
}

#[tokio::test]
async fn reopening_keeps_data_and_creates_directories() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/a/b/c/nb.db", dir.path().display());
    let store = SqliteStore::connect(&url).await.unwrap();
    let user = store
        .create_user(NewUser::new("ada", UserRole::Admin))
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let again = netherbrain_store::connect(&url).await.unwrap();
    assert_eq!(again.get_user(user.id).await.unwrap(), user);
    assert!(dir.path().join("a/b/c/nb.db").exists());
}

#[tokio::test]
async fn in_memory_database_works() {
    let store = netherbrain_store::connect("sqlite::memory:").await.unwrap();
    store.ping().await.unwrap();
    let user = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    assert_eq!(store.get_user(user.id).await.unwrap(), user);
}

#[tokio::test]
async fn listing_a_page_of_ten_thousand_is_fast() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("big.db")).await.unwrap();
    let owner = store
        .create_user(NewUser::new("big", UserRole::User))
        .await
        .unwrap();
    let other = store
        .create_user(NewUser::new("other", UserRole::User))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..10_000u32 {
        let mut meta = Metadata::new();
        meta.insert("bucket".into(), serde_json::json!(i % 10));
        let who = if i % 2 == 0 { owner.id } else { other.id };
        tasks.push(
            NewConversation::new(who)
                .with_title(format!("conversation {i}"))
                .with_metadata(meta),
        );
    }
    for c in tasks {
        store.create_conversation(c).await.unwrap();
    }
    let mut worst = Duration::ZERO;
    let mut cursor = None;
    for _ in 0..5 {
        let started = Instant::now();
        let page = store
            .list_conversations(
                ConversationQuery::for_owner(owner.id)
                    .with_limit(50)
                    .with_cursor(cursor),
            )
            .await
            .unwrap();
        worst = worst.max(started.elapsed());
        assert_eq!(page.items.len(), 50);
        cursor = page.next_cursor;
    }
    let started = Instant::now();
    let filtered = store
        .list_conversations(
            ConversationQuery::for_owner(owner.id)
                .with_limit(50)
                .with_metadata(
                    serde_json::json!({"bucket": 4})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
        )
        .await
        .unwrap();
    let filtered_time = started.elapsed();
    assert_eq!(filtered.items.len(), 50);
    eprintln!("page of 50 of 10,000: worst {worst:?}; with metadata filter {filtered_time:?}");
    // Generous bounds (debug builds on a busy 2-core machine): these catch
    // full scans, not milliseconds. Typical: 3-5 ms and 10-30 ms.
    assert!(worst < Duration::from_millis(100), "{worst:?}");
    assert!(
        filtered_time < Duration::from_millis(400),
        "{filtered_time:?}"
    );
}

#[tokio::test]
async fn unopenable_file_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    // The "file" is a directory.
    let err = SqliteStore::open(dir.path()).await.unwrap_err();
    assert!(
        matches!(err, netherbrain_core::store::StoreError::Unavailable(_)),
        "{err:?}"
    );
}
