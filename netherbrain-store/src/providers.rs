//! Provider profiles stored from Settings
//! ([`ProviderStore`](netherbrain_core::store::ProviderStore)), in SQL both
//! dialects run verbatim: reads over the pool ([`Portable`]), writes inside
//! the backend's transaction ([`InTx`]). The API key arrives sealed and is
//! stored as its ciphertext and nonce (`BLOB` / `BYTEA`).

use netherbrain_core::store::{
    NewStoredProvider, ProviderPatch, SealedSecret, StoreError, StoreResult, StoredProvider,
    validate,
};
use sqlx::{Encode, Executor, IntoArguments, Pool, Type};

use crate::common::{DbFailure, classify, db_err, now, record, to_json};
use crate::portable::{Dialect, InTx, Portable};
use crate::rows::{Fields, RowGet};

const PROVIDER_COLS: &str = "name, kind, base_url, models, default_model, headers, api_key_ciphertext, api_key_nonce, created_at, updated_at";

fn provider<R: RowGet>(r: &R) -> StoreResult<StoredProvider> {
    let api_key = match (
        r.opt_bytes("api_key_ciphertext")?,
        r.opt_bytes("api_key_nonce")?,
    ) {
        (Some(ciphertext), Some(nonce)) => Some(SealedSecret::new(nonce, ciphertext)),
        _ => None,
    };
    let mut f = Fields::new();
    f.set("name", r.text("name")?)?
        .set("kind", r.text("kind")?)?
        .set("base_url", r.opt_text("base_url")?)?
        .set("models", r.json("models")?)?
        .set("default_model", r.opt_text("default_model")?)?
        .set("headers", r.json("headers")?)?
        .set("api_key", api_key)?
        .set("created_at", r.ts("created_at")?)?
        .set("updated_at", r.ts("updated_at")?)?;
    record("provider profile", f.0)
}

impl<DB> Portable<'_, DB>
where
    DB: Dialect,
    DB::Row: RowGet,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    pub(crate) async fn get_provider(&self, name: &str) -> StoreResult<StoredProvider> {
        let sql = format!("SELECT {PROVIDER_COLS} FROM provider_profiles WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name.to_owned())
            .fetch_optional(self.0)
            .await
            .map_err(db_err)?;
        row.as_ref()
            .map(provider)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("provider", name))
    }

    pub(crate) async fn list_providers(&self) -> StoreResult<Vec<StoredProvider>> {
        let sql = format!(
            "SELECT {PROVIDER_COLS} FROM provider_profiles ORDER BY name{}",
            DB::BY_CODE_POINT
        );
        let rows = sqlx::query(&sql).fetch_all(self.0).await.map_err(db_err)?;
        rows.iter().map(provider).collect()
    }
}

impl<DB> InTx<'_, DB>
where
    DB: Dialect,
    DB::Row: RowGet,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
{
    pub(crate) async fn create_provider(
        &mut self,
        new: NewStoredProvider,
    ) -> StoreResult<StoredProvider> {
        validate::new_provider(&new)?;
        let at = DB::time(now());
        let sql = format!(
            "INSERT INTO provider_profiles ({PROVIDER_COLS}) \
             VALUES ($1, $2, $3, $4{j}, $5, $6{j}, $7, $8, $9, $9) RETURNING {PROVIDER_COLS}",
            j = DB::AS_JSONB
        );
        let (ciphertext, nonce) = match new.api_key {
            Some(sealed) => (Some(sealed.ciphertext), Some(sealed.nonce)),
            None => (None, None),
        };
        let query = sqlx::query(&sql)
            .bind(new.name.clone())
            .bind(new.kind.as_str().to_owned())
            .bind(new.base_url)
            .bind(to_json(&new.models)?)
            .bind(new.default_model)
            .bind(to_json(&new.headers)?)
            .bind(ciphertext)
            .bind(nonce)
            .bind(at);
        match query.fetch_one(&mut *self.0).await.map_err(classify) {
            Ok(row) => provider(&row),
            Err(DbFailure::Unique(_)) => Err(StoreError::Conflict(format!(
                "provider `{}` exists",
                new.name
            ))),
            Err(DbFailure::ForeignKey(c)) => Err(StoreError::Conflict(c)),
            Err(DbFailure::Other(e)) => Err(e),
        }
    }

    pub(crate) async fn update_provider(
        &mut self,
        name: &str,
        patch: ProviderPatch,
    ) -> StoreResult<StoredProvider> {
        let sql = format!(
            "SELECT {PROVIDER_COLS} FROM provider_profiles WHERE name = $1{}",
            DB::FOR_UPDATE
        );
        let row = sqlx::query(&sql)
            .bind(name.to_owned())
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        let mut current = row
            .as_ref()
            .map(provider)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("provider", name))?;
        patch.apply(&mut current)?;
        let (ciphertext, nonce) = match current.api_key.clone() {
            Some(sealed) => (Some(sealed.ciphertext), Some(sealed.nonce)),
            None => (None, None),
        };
        let sql = format!(
            "UPDATE provider_profiles SET kind = $1, base_url = $2, models = $3{j}, \
               default_model = $4, headers = $5{j}, api_key_ciphertext = $6, api_key_nonce = $7, \
               updated_at = $8 WHERE name = $9 RETURNING {PROVIDER_COLS}",
            j = DB::AS_JSONB
        );
        let row = sqlx::query(&sql)
            .bind(current.kind.as_str().to_owned())
            .bind(current.base_url.clone())
            .bind(to_json(&current.models)?)
            .bind(current.default_model.clone())
            .bind(to_json(&current.headers)?)
            .bind(ciphertext)
            .bind(nonce)
            .bind(DB::time(now()))
            .bind(name.to_owned())
            .fetch_one(&mut *self.0)
            .await
            .map_err(db_err)?;
        provider(&row)
    }

    pub(crate) async fn delete_provider(&mut self, name: &str) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM provider_profiles WHERE name = $1 RETURNING name")
            .bind(name.to_owned())
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        match done {
            Some(_) => Ok(()),
            None => Err(StoreError::not_found("provider", name)),
        }
    }
}

/// `impl ProviderStore` for a backend with `portable()` and `begin()`, as
/// [`gateway_store_impl`](crate::gateway) does for the gateway's records.
macro_rules! provider_store_impl {
    ($store:ty, $db:ty, |$tx:ident| $conn:expr, $commit:expr) => {
        #[async_trait::async_trait]
        impl netherbrain_core::store::ProviderStore for $store {
            async fn create_provider(
                &self,
                provider: netherbrain_core::store::NewStoredProvider,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::StoredProvider> {
                let mut $tx = self.begin().await?;
                let created = crate::portable::InTx::<$db>($conn)
                    .create_provider(provider)
                    .await?;
                ($commit)($tx).await?;
                Ok(created)
            }
            async fn get_provider(
                &self,
                name: &str,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::StoredProvider> {
                self.portable().get_provider(name).await
            }
            async fn list_providers(
                &self,
            ) -> netherbrain_core::store::StoreResult<Vec<netherbrain_core::store::StoredProvider>>
            {
                self.portable().list_providers().await
            }
            async fn update_provider(
                &self,
                name: &str,
                patch: netherbrain_core::store::ProviderPatch,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::StoredProvider> {
                let mut $tx = self.begin().await?;
                let updated = crate::portable::InTx::<$db>($conn)
                    .update_provider(name, patch)
                    .await?;
                ($commit)($tx).await?;
                Ok(updated)
            }
            async fn delete_provider(
                &self,
                name: &str,
            ) -> netherbrain_core::store::StoreResult<()> {
                let mut $tx = self.begin().await?;
                crate::portable::InTx::<$db>($conn)
                    .delete_provider(name)
                    .await?;
                ($commit)($tx).await?;
                Ok(())
            }
        }
    };
}
pub(crate) use provider_store_impl;
