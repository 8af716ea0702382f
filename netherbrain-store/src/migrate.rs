//! Embedded, forward-only schema migrations, one set per backend, for
//! `netherbrain db upgrade | current | history`.
//!
//! Migrations are compiled into the binary (`migrations/sqlite/` and
//! `migrations/postgres/`) and recorded in the `_sqlx_migrations` table.
//! [`SqliteStore`](crate::SqliteStore) and
//! [`PostgresStore`](crate::PostgresStore) apply pending migrations when
//! they connect; these functions let an operator do it explicitly and see
//! where a database stands.

use chrono::{DateTime, NaiveDateTime, Utc};
use futures::future::BoxFuture;
use netherbrain_core::store::{StoreError, StoreResult};
use sqlx::Row;
use sqlx::migrate::{Migration, MigrationSource, Migrator};

use crate::Backend;
use crate::common::{db_err, migrate_err};

/// One schema migration and whether (and when) it was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationInfo {
    /// Version number (increasing).
    pub version: i64,
    /// What it does.
    pub description: String,
    /// When it was applied to this database; `None` while pending.
    pub applied_at: Option<DateTime<Utc>>,
}

impl MigrationInfo {
    fn pending(m: &Migration) -> Self {
        Self {
            version: m.version,
            description: m.description.to_string(),
            applied_at: None,
        }
    }
}

/// The migrations compiled into this build for a backend, all pending.
#[must_use]
pub fn available(backend: Backend) -> Vec<MigrationInfo> {
    migrator(backend)
        .iter()
        .map(MigrationInfo::pending)
        .collect()
}

fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &crate::sqlite::MIGRATOR,
        Backend::Postgres => &crate::postgres::MIGRATOR,
    }
}

/// Applies every pending migration. Returns the ones applied by this call.
///
/// # Errors
///
/// [`StoreError::Invalid`] for an unsupported URL, [`StoreError::Unavailable`]
/// when the database cannot be reached, [`StoreError::Backend`] when a
/// migration fails or the database has migrations this build does not know.
pub async fn upgrade(url: &str) -> StoreResult<Vec<MigrationInfo>> {
    upgrade_to(url, i64::MAX).await
}

/// Applies pending migrations up to and including `version`. Returns the
/// ones applied by this call.
///
/// # Errors
///
/// As [`upgrade`].
pub async fn upgrade_to(url: &str, version: i64) -> StoreResult<Vec<MigrationInfo>> {
    let backend = Backend::from_url(url)?;
    let before = history(url).await?;
    let selected: Vec<Migration> = migrator(backend)
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect();
    let mut partial = Migrator::new(Selected(selected))
        .await
        .map_err(migrate_err)?;
    // Newer migrations already applied are fine when upgrading to an older version.
    partial.set_ignore_missing(true);
    match backend {
        Backend::Sqlite => {
            let pool = crate::sqlite::open_pool(url).await?;
            let res = partial.run(&pool).await.map_err(migrate_err);
            pool.close().await;
            res?;
        }
        Backend::Postgres => {
            let pool = crate::postgres::open_pool(url).await?;
            let res = partial.run(&pool).await.map_err(migrate_err);
            pool.close().await;
            res?;
        }
    }
    let after = history(url).await?;
    Ok(after
        .into_iter()
        .filter(|m| {
            m.applied_at.is_some()
                && before
                    .iter()
                    .any(|b| b.version == m.version && b.applied_at.is_none())
        })
        .collect())
}

/// The newest applied migration, `None` for an empty database.
///
/// # Errors
///
/// As [`upgrade`].
pub async fn current(url: &str) -> StoreResult<Option<MigrationInfo>> {
    Ok(history(url)
        .await?
        .into_iter()
        .filter(|m| m.applied_at.is_some())
        .max_by_key(|m| m.version))
}

/// Every migration this build knows, oldest first, with when each was
/// applied (`None`: pending), followed by any applied migration this build
/// does not know (a newer build touched the database).
///
/// # Errors
///
/// As [`upgrade`].
pub async fn history(url: &str) -> StoreResult<Vec<MigrationInfo>> {
    let backend = Backend::from_url(url)?;
    let applied = applied(backend, url).await?;
    let mut out: Vec<MigrationInfo> = migrator(backend)
        .iter()
        .map(|m| {
            let mut info = MigrationInfo::pending(m);
            info.applied_at = applied
                .iter()
                .find(|a| a.version == m.version)
                .and_then(|a| a.applied_at);
            info
        })
        .collect();
    for a in applied {
        if !out.iter().any(|m| m.version == a.version) {
            out.push(a);
        }
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

/// Successfully applied migrations recorded in the database.
async fn applied(backend: Backend, url: &str) -> StoreResult<Vec<MigrationInfo>> {
    let mut out = Vec::new();
    match backend {
        Backend::Sqlite => {
            let pool = crate::sqlite::open_pool(url).await?;
            let result = async {
                let exists = sqlx::query(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_optional(&pool)
                .await
                .map_err(db_err)?;
                if exists.is_none() {
                    return Ok(());
                }
                let rows = sqlx::query(
                    "SELECT version, description, CAST(installed_on AS TEXT) AS installed_on \
                     FROM _sqlx_migrations WHERE success ORDER BY version",
                )
                .fetch_all(&pool)
                .await
                .map_err(db_err)?;
                for r in rows {
                    let at: String = r.try_get("installed_on").map_err(db_err)?;
                    out.push(MigrationInfo {
                        version: r.try_get("version").map_err(db_err)?,
                        description: r.try_get("description").map_err(db_err)?,
                        applied_at: Some(parse_sqlite_time(&at)?),
                    });
                }
                Ok::<(), StoreError>(())
            }
            .await;
            pool.close().await;
            result?;
        }
        Backend::Postgres => {
            let pool = crate::postgres::open_pool(url).await?;
            let result = async {
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                        .fetch_one(&pool)
                        .await
                        .map_err(db_err)?;
                if exists.is_none() {
                    return Ok(());
                }
                let rows = sqlx::query(
                    "SELECT version, description, installed_on FROM _sqlx_migrations \
                     WHERE success ORDER BY version",
                )
                .fetch_all(&pool)
                .await
                .map_err(db_err)?;
                for r in rows {
                    out.push(MigrationInfo {
                        version: r.try_get("version").map_err(db_err)?,
                        description: r.try_get("description").map_err(db_err)?,
                        applied_at: Some(r.try_get("installed_on").map_err(db_err)?),
                    });
                }
                Ok::<(), StoreError>(())
            }
            .await;
            pool.close().await;
            result?;
        }
    }
    Ok(out)
}

fn parse_sqlite_time(s: &str) -> StoreResult<DateTime<Utc>> {
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|t| t.and_utc())
    .ok_or_else(|| StoreError::Backend(format!("bad migration timestamp `{s}`")))
}

/// A fixed list of migrations (a prefix of the embedded ones).
#[derive(Debug)]
struct Selected(Vec<Migration>);

impl<'s> MigrationSource<'s> for Selected {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}
