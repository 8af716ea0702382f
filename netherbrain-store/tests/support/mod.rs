//! Shared test support: fresh, isolated stores for each test.
//!
//! SQLite: a temporary directory per test. Postgres: a database per test
//! (`nb_test_<uuid>`) on the local server (`NETHER_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the store is.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use async_trait::async_trait;
use netherbrain_core::store::*;
use netherbrain_core::{
    ApiKeyId, ConversationId, EventEnvelope, EventSeq, Message, PresetId, SessionId, UserId,
    WorkspaceId,
};

/// The admin URL of the test Postgres server.
pub fn postgres_admin_url() -> String {
    std::env::var("NETHER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A URL for database `name` on the test server.
pub fn postgres_url_for(name: &str) -> String {
    let admin = postgres_admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// A temporary Postgres database, dropped (forcibly) on drop.
#[derive(Debug)]
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        use sqlx::Connection;
        let name = format!("nb_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .expect("connect to the test Postgres server (see tests/support/mod.rs)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = postgres_url_for(&name);
        Self { name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime: use a thread with its own runtime.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut admin) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// A fresh SQLite store in its own temporary directory.
pub async fn sqlite() -> Arc<dyn StateStore> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/nb.db", dir.path().display());
    let store = netherbrain_store::connect(&url)
        .await
        .expect("open SQLite store");
    Arc::new(Guarded {
        inner: store,
        _guard: Box::new(dir),
    })
}

/// A fresh Postgres store in its own database.
pub async fn postgres() -> Arc<dyn StateStore> {
    let db = PgDatabase::create().await;
    let store = netherbrain_store::connect(&db.url)
        .await
        .expect("open Postgres store");
    Arc::new(Guarded {
        inner: store,
        _guard: Box::new(db),
    })
}

/// A store that keeps something alive (a temp dir, a test database) and
/// drops it after the store.
#[derive(Debug)]
pub struct Guarded {
    inner: Arc<dyn StateStore>,
    _guard: Box<dyn std::fmt::Debug + Send + Sync>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // `inner` is dropped after this body; replace it so the pool goes first.
        self.inner = Arc::new(Closed);
    }
}

#[derive(Debug)]
struct Closed;

macro_rules! closed {
    ($($name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty;)*) => {
        #[async_trait]
        impl StateStore for Closed {
            $(async fn $name(&self, $(_: $ty),*) -> StoreResult<$ret> {
                Err(StoreError::Unavailable("closed".into()))
            })*
        }
        #[async_trait]
        impl StateStore for Guarded {
            $(async fn $name(&self, $($arg: $ty),*) -> StoreResult<$ret> {
                self.inner.$name($($arg),*).await
            })*
        }
    };
}

closed! {
    ping() -> ();
    create_user(user: NewUser) -> User;
    get_user(id: UserId) -> User;
    get_user_by_username(username: &str) -> User;
    list_users() -> Vec<User>;
    update_user(id: UserId, patch: UserPatch) -> User;
    count_users() -> u64;
    create_api_key(key: NewApiKey) -> ApiKey;
    get_api_key_by_prefix(prefix: &str) -> ApiKey;
    list_api_keys(user_id: UserId) -> Vec<ApiKey>;
    revoke_api_key(id: ApiKeyId) -> ApiKey;
    create_preset(preset: NewPreset) -> Preset;
    get_preset(id: PresetId) -> Preset;
    get_preset_by_name(name: &str) -> Preset;
    list_presets() -> Vec<Preset>;
    update_preset(id: PresetId, patch: PresetPatch) -> Preset;
    delete_preset(id: PresetId) -> ();
    create_workspace(workspace: NewWorkspace) -> Workspace;
    get_workspace(id: WorkspaceId) -> Workspace;
    list_workspaces() -> Vec<Workspace>;
    update_workspace(id: WorkspaceId, patch: WorkspacePatch) -> Workspace;
    delete_workspace(id: WorkspaceId) -> ();
    create_conversation(conversation: NewConversation) -> Conversation;
    get_conversation(id: ConversationId) -> Conversation;
    list_conversations(query: ConversationQuery) -> Page<Conversation>;
    update_conversation(id: ConversationId, patch: ConversationPatch) -> Conversation;
    search_conversations(owner: Option<UserId>, query: &str, limit: u32) -> Vec<Conversation>;
    create_session(session: NewSession) -> Session;
    get_session(id: SessionId) -> Session;
    list_sessions(conversation_id: ConversationId) -> Vec<Session>;
    active_session(conversation_id: ConversationId) -> Option<Session>;
    finish_session(id: SessionId, finish: SessionFinish) -> Session;
    recover_sessions() -> Vec<SessionId>;
    append(session_id: SessionId, append: SessionAppend) -> ();
    session_messages(session_id: SessionId) -> Vec<Message>;
    list_events(session_id: SessionId, after: EventSeq, limit: u32) -> Vec<EventEnvelope>;
    last_event_seq(session_id: SessionId) -> EventSeq;
    post_mailbox(entry: NewMailboxEntry) -> MailboxEntry;
    take_mailbox(conversation_id: ConversationId) -> Vec<MailboxEntry>;
}
