//! Shared test support: fresh, isolated stores for each test.
//!
//! SQLite: a temporary directory per test. Postgres: a database per test
//! (`nb_test_<uuid>`) on the local server (`NETHER_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the store is.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use async_trait::async_trait;
use netherbrain_core::store::{StateStore, StoreHealth, StoreParts, StoreResult};

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
    guarded(store, Box::new(dir))
}

/// A fresh Postgres store in its own database.
pub async fn postgres() -> Arc<dyn StateStore> {
    let db = PgDatabase::create().await;
    let store = netherbrain_store::connect(&db.url)
        .await
        .expect("open Postgres store");
    guarded(store, Box::new(db))
}

/// `store`, keeping `guard` (a temp dir, a test database) alive as long as
/// the store: it rides along in the health part.
fn guarded(
    store: Arc<dyn StateStore>,
    guard: Box<dyn std::fmt::Debug + Send + Sync>,
) -> Arc<dyn StateStore> {
    let health = Arc::new(Guarded {
        store: store.clone(),
        _guard: guard,
    });
    Arc::new(StoreParts::new(store).with_health(health))
}

#[derive(Debug)]
struct Guarded {
    store: Arc<dyn StateStore>,
    _guard: Box<dyn std::fmt::Debug + Send + Sync>,
}

#[async_trait]
impl StoreHealth for Guarded {
    async fn ping(&self) -> StoreResult<()> {
        self.store.ping().await
    }
}
