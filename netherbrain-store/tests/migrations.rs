//! Schema migrations: data written at version 1 survives the upgrade to the
//! newest version, and `current`/`history` report where a database stands.

mod support;

use netherbrain_core::store::ConversationQuery;
use netherbrain_core::{ConversationId, SessionId, UserId};
use netherbrain_store::migrate;
use uuid::Uuid;

const V1: i64 = 1;

struct Seed {
    user: Uuid,
    conversation: Uuid,
    session: Uuid,
}

/// The API keys version 1 wrote: the operator token's stored copy (dropped
/// by version 8) and a generated key (kept), as (name, prefix).
const OLD_KEYS: [(&str, &str); 2] = [("bootstrap", "t-0123456789ab"), ("laptop", "abcdefgh")];

fn seed() -> Seed {
    Seed {
        user: Uuid::now_v7(),
        conversation: Uuid::now_v7(),
        session: Uuid::now_v7(),
    }
}

const MESSAGE: &str = r#"{"role":"user","content":[{"type":"text","text":"remember the zebra"}]}"#;

async fn check_head(url: &str, s: &Seed) {
    let history = migrate::history(url).await.unwrap();
    assert!(history.len() >= 2);
    assert!(
        history.iter().all(|m| m.applied_at.is_some()),
        "{history:?}"
    );
    let head = history.last().unwrap().version;
    assert_eq!(migrate::current(url).await.unwrap().unwrap().version, head);
    assert!(
        migrate::upgrade(url).await.unwrap().is_empty(),
        "nothing left to apply"
    );

    let store = netherbrain_store::connect(url).await.unwrap();
    let user = store.get_user(UserId::from_uuid(s.user)).await.unwrap();
    assert_eq!(user.username, "old-timer");
    let keys = store.list_api_keys(user.id).await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.prefix.as_str()).collect::<Vec<_>>(),
        ["abcdefgh"],
        "the stored operator token is gone, the generated key stays"
    );
    let conversation = store
        .get_conversation(ConversationId::from_uuid(s.conversation))
        .await
        .unwrap();
    assert_eq!(conversation.title.as_deref(), Some("From version one"));
    let page = store
        .list_conversations(ConversationQuery::for_owner(user.id))
        .await
        .unwrap();
    assert_eq!(page.items, vec![conversation.clone()]);
    let messages = store
        .session_messages(SessionId::from_uuid(s.session))
        .await
        .unwrap();
    assert_eq!(messages[0].text(), "remember the zebra");
    let hits = store.search_conversations(None, "zebra", 10).await.unwrap();
    assert_eq!(hits, vec![conversation]);
    // The old running session is recovered like any other.
    assert_eq!(
        store.recover_sessions(chrono::Utc::now()).await.unwrap(),
        [SessionId::from_uuid(s.session)]
    );
}

#[tokio::test]
async fn sqlite_v1_data_survives_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/old/nb.db", dir.path().display());
    assert!(
        migrate::current(&url).await.unwrap().is_none(),
        "empty database"
    );
    let pending = migrate::history(&url).await.unwrap();
    assert!(pending.iter().all(|m| m.applied_at.is_none()));
    assert_eq!(
        pending,
        migrate::available(netherbrain_store::Backend::Sqlite)
    );

    let applied = migrate::upgrade_to(&url, V1).await.unwrap();
    assert_eq!(applied.iter().map(|m| m.version).collect::<Vec<_>>(), [V1]);
    assert_eq!(migrate::current(&url).await.unwrap().unwrap().version, V1);

    // Write rows the way version 1 of the schema stores them.
    let s = seed();
    {
        use sqlx::Connection;
        let path = dir.path().join("old/nb.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let now = chrono::Utc::now().timestamp_micros();
        sqlx::query("INSERT INTO users (id, username, role, active, created_at, updated_at) VALUES (?, 'old-timer', 'user', 1, ?, ?)")
            .bind(s.user).bind(now).bind(now).execute(&mut conn).await.unwrap();
        for (name, prefix) in OLD_KEYS {
            sqlx::query("INSERT INTO api_keys (id, user_id, name, prefix, hash, created_at) VALUES (?, ?, ?, ?, 'ab', ?)")
                .bind(Uuid::now_v7()).bind(s.user).bind(name).bind(prefix).bind(now).execute(&mut conn).await.unwrap();
        }
        sqlx::query("INSERT INTO conversations (id, owner_id, title, metadata, status, created_at, updated_at, last_activity_at) VALUES (?, ?, 'From version one', '{}', 'active', ?, ?, ?)")
            .bind(s.conversation).bind(s.user).bind(now).bind(now).bind(now).execute(&mut conn).await.unwrap();
        sqlx::query("INSERT INTO sessions (id, conversation_id, status, input, deferred_tool_calls, usage, created_at, updated_at) VALUES (?, ?, 'running', ?, '[]', '{}', ?, ?)")
            .bind(s.session).bind(s.conversation).bind(format!("[{MESSAGE}]")).bind(now).bind(now).execute(&mut conn).await.unwrap();
        let index: String =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'sessions_one_running'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(index.contains("'created', 'running'"), "{index}");
        sqlx::query("INSERT INTO session_messages (session_id, conversation_id, seq, message, text) VALUES (?, ?, 0, ?, 'remember the zebra')")
            .bind(s.session).bind(s.conversation).bind(MESSAGE).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }

    let applied = migrate::upgrade(&url).await.unwrap();
    assert!(!applied.is_empty());
    assert!(applied.iter().all(|m| m.version > V1));
    check_head(&url, &s).await;
}

#[tokio::test]
async fn postgres_v1_data_survives_upgrade() {
    let db = support::PgDatabase::create().await;
    let url = db.url.clone();
    assert!(
        migrate::current(&url).await.unwrap().is_none(),
        "empty database"
    );

    let applied = migrate::upgrade_to(&url, V1).await.unwrap();
    assert_eq!(applied.iter().map(|m| m.version).collect::<Vec<_>>(), [V1]);
    assert_eq!(migrate::current(&url).await.unwrap().unwrap().version, V1);

    let s = seed();
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let now = chrono::Utc::now();
        sqlx::query("INSERT INTO users (id, username, role, active, created_at, updated_at) VALUES ($1, 'old-timer', 'user', TRUE, $2, $2)")
            .bind(s.user).bind(now).execute(&mut conn).await.unwrap();
        for (name, prefix) in OLD_KEYS {
            sqlx::query("INSERT INTO api_keys (id, user_id, name, prefix, hash, created_at) VALUES ($1, $2, $3, $4, 'ab', $5)")
                .bind(Uuid::now_v7()).bind(s.user).bind(name).bind(prefix).bind(now).execute(&mut conn).await.unwrap();
        }
        sqlx::query("INSERT INTO conversations (id, owner_id, title, metadata, status, created_at, updated_at, last_activity_at) VALUES ($1, $2, 'From version one', '{}', 'active', $3, $3, $3)")
            .bind(s.conversation).bind(s.user).bind(now).execute(&mut conn).await.unwrap();
        sqlx::query("INSERT INTO sessions (id, conversation_id, status, input, deferred_tool_calls, usage, created_at, updated_at) VALUES ($1, $2, 'running', $3::json, '[]', '{}', $4, $4)")
            .bind(s.session).bind(s.conversation).bind(format!("[{MESSAGE}]")).bind(now).execute(&mut conn).await.unwrap();
        let index: String = sqlx::query_scalar(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'sessions_one_running'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(index.contains("created"), "{index}");
        sqlx::query("INSERT INTO session_messages (session_id, seq, conversation_id, message, text) VALUES ($1, 0, $2, $3::json, 'remember the zebra')")
            .bind(s.session).bind(s.conversation).bind(MESSAGE).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }

    let applied = migrate::upgrade(&url).await.unwrap();
    assert!(!applied.is_empty());
    check_head(&url, &s).await;
}

#[tokio::test]
async fn unsupported_urls_are_invalid() {
    for url in ["mysql://localhost/x", "", "file:///tmp/x"] {
        assert!(matches!(
            migrate::history(url).await,
            Err(netherbrain_core::store::StoreError::Invalid(_))
        ));
        assert!(matches!(
            netherbrain_store::connect(url).await,
            Err(netherbrain_core::store::StoreError::Invalid(_))
        ));
    }
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    // Nothing listens on port 1.
    let err = netherbrain_store::connect("postgres://postgres@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(
        matches!(err, netherbrain_core::store::StoreError::Unavailable(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn postgres_over_tls_when_the_server_offers_it() {
    use sqlx::Connection;
    let db = support::PgDatabase::create().await;
    let url = format!("{}?sslmode=require", db.url);
    // Skip when the test server has TLS off.
    if sqlx::PgConnection::connect(&url).await.is_err() {
        eprintln!("skipped: the test server does not offer TLS");
        return;
    }
    let store = netherbrain_store::connect(&url).await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(
        migrate::current(&url).await.unwrap().map(|m| m.version),
        migrate::available(netherbrain_store::Backend::Postgres)
            .last()
            .map(|m| m.version)
    );
}

/// Rows of version 2 with a fork origin in user-writable metadata: the
/// owner's own fork keeps its origin (moved to the server-owned columns),
/// another user's planted origin is dropped, and the key leaves metadata.
struct ForkSeed {
    alice: Uuid,
    bob: Uuid,
    source: Uuid,
    session: Uuid,
    own_fork: Uuid,
    planted: Uuid,
}

fn fork_seed() -> ForkSeed {
    ForkSeed {
        alice: Uuid::now_v7(),
        bob: Uuid::now_v7(),
        source: Uuid::now_v7(),
        session: Uuid::now_v7(),
        own_fork: Uuid::now_v7(),
        planted: Uuid::now_v7(),
    }
}

fn forked_from_metadata(s: &ForkSeed) -> String {
    serde_json::json!({"source": "web", "forked_from": {"conversation_id": s.source, "session_id": s.session}})
        .to_string()
}

async fn check_fork_origins(url: &str, s: &ForkSeed) {
    use netherbrain_core::store::ForkOrigin;
    let store = netherbrain_store::connect(url).await.unwrap();
    let own = store
        .get_conversation(ConversationId::from_uuid(s.own_fork))
        .await
        .unwrap();
    assert_eq!(
        own.forked_from,
        Some(ForkOrigin::new(
            ConversationId::from_uuid(s.source),
            SessionId::from_uuid(s.session)
        )),
        "the owner's fork keeps its origin"
    );
    let planted = store
        .get_conversation(ConversationId::from_uuid(s.planted))
        .await
        .unwrap();
    assert_eq!(planted.forked_from, None, "a foreign origin is dropped");
    for c in [&own, &planted] {
        assert!(c.metadata.get("forked_from").is_none(), "{:?}", c.metadata);
        assert_eq!(c.metadata["source"], "web", "other metadata stays");
    }
}

#[tokio::test]
async fn sqlite_fork_origins_leave_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nb.db");
    let url = format!("sqlite://{}", path.display());
    migrate::upgrade_to(&url, 2).await.unwrap();
    let s = fork_seed();
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let now = chrono::Utc::now().timestamp_micros();
        for (id, name) in [(s.alice, "alice"), (s.bob, "bob")] {
            sqlx::query("INSERT INTO users (id, username, role, active, created_at, updated_at) VALUES (?, ?, 'user', 1, ?, ?)")
                .bind(id).bind(name).bind(now).bind(now).execute(&mut conn).await.unwrap();
        }
        let meta = forked_from_metadata(&s);
        for (id, owner, metadata) in [
            (s.source, s.alice, "{}".to_owned()),
            (s.own_fork, s.alice, meta.clone()),
            (s.planted, s.bob, meta),
        ] {
            sqlx::query("INSERT INTO conversations (id, owner_id, metadata, status, created_at, updated_at, last_activity_at) VALUES (?, ?, ?, 'active', ?, ?, ?)")
                .bind(id).bind(owner).bind(metadata).bind(now).bind(now).bind(now).execute(&mut conn).await.unwrap();
        }
        sqlx::query("INSERT INTO sessions (id, conversation_id, status, input, deferred_tool_calls, usage, created_at, updated_at) VALUES (?, ?, 'committed', '[]', '[]', '{}', ?, ?)")
            .bind(s.session).bind(s.source).bind(now).bind(now).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    migrate::upgrade(&url).await.unwrap();
    check_fork_origins(&url, &s).await;
}

#[tokio::test]
async fn postgres_fork_origins_leave_metadata() {
    let db = support::PgDatabase::create().await;
    let url = db.url.clone();
    migrate::upgrade_to(&url, 2).await.unwrap();
    let s = fork_seed();
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let now = chrono::Utc::now();
        for (id, name) in [(s.alice, "alice"), (s.bob, "bob")] {
            sqlx::query("INSERT INTO users (id, username, role, active, created_at, updated_at) VALUES ($1, $2, 'user', TRUE, $3, $3)")
                .bind(id).bind(name).bind(now).execute(&mut conn).await.unwrap();
        }
        let meta = forked_from_metadata(&s);
        for (id, owner, metadata) in [
            (s.source, s.alice, "{}".to_owned()),
            (s.own_fork, s.alice, meta.clone()),
            (s.planted, s.bob, meta),
        ] {
            sqlx::query("INSERT INTO conversations (id, owner_id, metadata, status, created_at, updated_at, last_activity_at) VALUES ($1, $2, $3::jsonb, 'active', $4, $4, $4)")
                .bind(id).bind(owner).bind(metadata).bind(now).execute(&mut conn).await.unwrap();
        }
        sqlx::query("INSERT INTO sessions (id, conversation_id, status, input, deferred_tool_calls, usage, created_at, updated_at) VALUES ($1, $2, 'committed', '[]', '[]', '{}', $3, $3)")
            .bind(s.session).bind(s.source).bind(now).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    migrate::upgrade(&url).await.unwrap();
    check_fork_origins(&url, &s).await;
}
