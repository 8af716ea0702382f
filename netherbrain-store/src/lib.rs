//! # netherbrain-store
//!
//! Persistent [`StateStore`] backends for Netherbrain and blob storage.
//!
//! - [`SqliteStore`]: one file under the data directory; the default.
//! - [`PostgresStore`]: for several replicas sharing state.
//! - [`connect`] picks the backend from a URL at run time.
//! - [`migrate`]: the embedded, forward-only schema migrations
//!   (`netherbrain db upgrade|current|history`).
//! - [`blob`]: blob storage through `object_store` (local files or S3).
//!
//! Both backends pass core's `StateStore` conformance suite. Driver (sqlx)
//! types appear only in the constructors that take a ready pool.
//!
//! ```no_run
//! # async fn demo() -> Result<(), netherbrain_core::store::StoreError> {
//! let store = netherbrain_store::connect("sqlite::memory:").await?;
//! store.ping().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod blob;
mod common;
mod config;
mod gateway;
mod memories;
pub mod migrate;
mod portable;
mod postgres;
mod providers;
mod rows;
pub mod secret;
mod sqlite;
mod tasks;

use std::sync::Arc;

pub use config::{DATA_DIR_ENV, DATABASE_URL_ENV, default_data_dir, default_database_url};
pub use netherbrain_core::store::{StateStore, StoreError, StoreResult};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres:` and `postgresql:` URLs.
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    ///
    /// ```
    /// use netherbrain_store::Backend;
    /// assert_eq!(Backend::from_url("sqlite:///tmp/x.db").unwrap(), Backend::Sqlite);
    /// assert_eq!(Backend::from_url("postgresql://localhost/nb").unwrap(), Backend::Postgres);
    /// assert!(Backend::from_url("mysql://localhost").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for any other scheme.
    pub fn from_url(url: &str) -> StoreResult<Self> {
        let scheme = url
            .split_once(':')
            .map_or("", |(s, _)| s)
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(StoreError::Invalid(
                "database URL must start with sqlite:, postgres: or postgresql:".into(),
            )),
        }
    }
}

/// Opens the store a URL names (`sqlite://…`, `postgres://…`,
/// `postgresql://…`), migrating its schema to the newest version.
///
/// # Errors
///
/// [`StoreError::Invalid`] for an unsupported URL, [`StoreError::Unavailable`]
/// when the database cannot be reached, [`StoreError::Backend`] when
/// migrating fails.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn StateStore>> {
    Ok(match Backend::from_url(url)? {
        Backend::Sqlite => Arc::new(SqliteStore::connect(url).await?),
        Backend::Postgres => Arc::new(PostgresStore::connect(url).await?),
    })
}
