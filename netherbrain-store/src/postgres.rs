//! Postgres (in progress).
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
/// wip
#[derive(Debug)]
pub struct PostgresStore;
impl PostgresStore { pub(crate) async fn connect(_u: &str) -> netherbrain_core::store::StoreResult<crate::sqlite::SqliteStore> { todo!() } }
pub(crate) async fn open_pool(_u: &str) -> netherbrain_core::store::StoreResult<sqlx::PgPool> { todo!() }
