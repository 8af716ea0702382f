//! The chat gateway's records ([`GatewayStore`](netherbrain_core::store::GatewayStore)),
//! in SQL both dialects run verbatim: reads over the pool ([`Portable`]),
//! writes inside the backend's transaction ([`InTx`]). Upserts are
//! `INSERT … ON CONFLICT … DO UPDATE`, which SQLite and Postgres share.

use chrono::{DateTime, Utc};
use netherbrain_core::store::{
    ChatBinding, GatewayIdentity, NewChatBinding, NewPairing, PairingRequest, StoreError,
    StoreResult, validate,
};
use netherbrain_core::{EventSeq, SessionId, UserId};
use sqlx::{Encode, Executor, IntoArguments, Pool, Type};
use uuid::Uuid;

use crate::common::{DbFailure, classify, db_err, now, record};
use crate::portable::{Dialect, InTx, Portable};
use crate::rows::{Fields, RowGet};

const CHAT_COLS: &str = "channel, chat_id, user_id, conversation_id, preset_id, delivered_session_id, delivered_seq, updated_at";
const IDENTITY_COLS: &str = "channel, sender_id, user_id, created_at";
const PAIRING_COLS: &str =
    "code, channel, sender_id, display_name, chat_id, created_at, expires_at";

fn chat<R: RowGet>(r: &R) -> StoreResult<ChatBinding> {
    let mut f = Fields::new();
    let seq = u64::try_from(r.int("delivered_seq")?).unwrap_or(0);
    f.set("channel", r.text("channel")?)?
        .set("chat_id", r.text("chat_id")?)?
        .set("user_id", r.uuid("user_id")?)?
        .set("conversation_id", r.uuid("conversation_id")?)?
        .set("preset_id", r.opt_uuid("preset_id")?)?
        .set("delivered_session_id", r.opt_uuid("delivered_session_id")?)?
        .set("delivered_seq", seq)?
        .set("updated_at", r.ts("updated_at")?)?;
    record("chat binding", f.0)
}

fn identity<R: RowGet>(r: &R) -> StoreResult<GatewayIdentity> {
    let mut f = Fields::new();
    f.set("channel", r.text("channel")?)?
        .set("sender_id", r.text("sender_id")?)?
        .set("user_id", r.uuid("user_id")?)?
        .set("created_at", r.ts("created_at")?)?;
    record("gateway identity", f.0)
}

fn pairing<R: RowGet>(r: &R) -> StoreResult<PairingRequest> {
    let mut f = Fields::new();
    f.set("code", r.text("code")?)?
        .set("channel", r.text("channel")?)?
        .set("sender_id", r.text("sender_id")?)?
        .set("display_name", r.opt_text("display_name")?)?
        .set("chat_id", r.text("chat_id")?)?
        .set("created_at", r.ts("created_at")?)?
        .set("expires_at", r.ts("expires_at")?)?;
    record("pairing request", f.0)
}

impl<DB> Portable<'_, DB>
where
    DB: Dialect,
    DB::Row: RowGet,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    pub(crate) async fn chat_binding(
        &self,
        channel: &str,
        chat_id: &str,
    ) -> StoreResult<Option<ChatBinding>> {
        let sql =
            format!("SELECT {CHAT_COLS} FROM gateway_chats WHERE channel = $1 AND chat_id = $2");
        let row = sqlx::query(&sql)
            .bind(channel.to_owned())
            .bind(chat_id.to_owned())
            .fetch_optional(self.0)
            .await
            .map_err(db_err)?;
        row.as_ref().map(chat).transpose()
    }

    pub(crate) async fn list_chat_bindings(&self, channel: &str) -> StoreResult<Vec<ChatBinding>> {
        let sql = format!(
            "SELECT {CHAT_COLS} FROM gateway_chats WHERE channel = $1 ORDER BY chat_id{}",
            DB::BY_CODE_POINT
        );
        let rows = sqlx::query(&sql)
            .bind(channel.to_owned())
            .fetch_all(self.0)
            .await
            .map_err(db_err)?;
        rows.iter().map(chat).collect()
    }

    pub(crate) async fn gateway_identity(
        &self,
        channel: &str,
        sender_id: &str,
    ) -> StoreResult<Option<GatewayIdentity>> {
        let sql = format!(
            "SELECT {IDENTITY_COLS} FROM gateway_identities WHERE channel = $1 AND sender_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(channel.to_owned())
            .bind(sender_id.to_owned())
            .fetch_optional(self.0)
            .await
            .map_err(db_err)?;
        row.as_ref().map(identity).transpose()
    }

    pub(crate) async fn pending_pairings(
        &self,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<PairingRequest>> {
        let sql = format!(
            "SELECT {PAIRING_COLS} FROM gateway_pairings WHERE expires_at > $1 ORDER BY created_at, code{}",
            DB::BY_CODE_POINT
        );
        let rows = sqlx::query(&sql)
            .bind(DB::time(at))
            .fetch_all(self.0)
            .await
            .map_err(db_err)?;
        rows.iter().map(pairing).collect()
    }
}

impl<DB> InTx<'_, DB>
where
    DB: Dialect,
    DB::Row: RowGet,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DB::Time>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    pub(crate) async fn bind_chat(&mut self, binding: NewChatBinding) -> StoreResult<ChatBinding> {
        validate::new_chat_binding(&binding)?;
        self.require("users", "user", binding.user_id).await?;
        self.require("conversations", "conversation", binding.conversation_id)
            .await?;
        if let Some(preset) = binding.preset_id {
            self.require("presets", "preset", preset).await?;
        }
        let sql = format!(
            "INSERT INTO gateway_chats ({CHAT_COLS}) VALUES ($1, $2, $3, $4, $5, NULL, 0, $6) \
             ON CONFLICT (channel, chat_id) DO UPDATE SET \
               user_id = excluded.user_id, preset_id = excluded.preset_id, \
               delivered_session_id = CASE WHEN gateway_chats.conversation_id = excluded.conversation_id \
                 THEN gateway_chats.delivered_session_id ELSE NULL END, \
               delivered_seq = CASE WHEN gateway_chats.conversation_id = excluded.conversation_id \
                 THEN gateway_chats.delivered_seq ELSE 0 END, \
               conversation_id = excluded.conversation_id, updated_at = excluded.updated_at \
             RETURNING {CHAT_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(binding.channel)
            .bind(binding.chat_id)
            .bind(Uuid::from(binding.user_id))
            .bind(Uuid::from(binding.conversation_id))
            .bind(binding.preset_id.map(Uuid::from))
            .bind(DB::time(now()))
            .fetch_one(&mut *self.0)
            .await
            .map_err(db_err)?;
        chat(&row)
    }

    pub(crate) async fn mark_delivered(
        &mut self,
        channel: &str,
        chat_id: &str,
        session_id: SessionId,
        seq: EventSeq,
    ) -> StoreResult<()> {
        let seq = i64::try_from(seq)
            .map_err(|_| StoreError::Invalid("delivered seq is out of range".into()))?;
        let done = sqlx::query(
            "UPDATE gateway_chats SET delivered_session_id = $1, delivered_seq = $2, updated_at = $3 \
             WHERE channel = $4 AND chat_id = $5 RETURNING channel",
        )
        .bind(Uuid::from(session_id))
        .bind(seq)
        .bind(DB::time(now()))
        .bind(channel.to_owned())
        .bind(chat_id.to_owned())
        .fetch_optional(&mut *self.0)
        .await
        .map_err(db_err)?;
        if done.is_none() {
            return Err(StoreError::not_found(
                "chat binding",
                format!("{channel}:{chat_id}"),
            ));
        }
        Ok(())
    }

    pub(crate) async fn create_pairing(
        &mut self,
        request: NewPairing,
    ) -> StoreResult<PairingRequest> {
        validate::new_pairing(&request)?;
        let taken = sqlx::query("SELECT 1 AS n FROM gateway_pairings WHERE code = $1")
            .bind(request.code.clone())
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        if taken.is_some() {
            return Err(StoreError::Conflict("pairing code is taken".into()));
        }
        sqlx::query("DELETE FROM gateway_pairings WHERE channel = $1 AND sender_id = $2")
            .bind(request.channel.clone())
            .bind(request.sender_id.clone())
            .execute(&mut *self.0)
            .await
            .map_err(db_err)?;
        let sql = format!(
            "INSERT INTO gateway_pairings ({PAIRING_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING {PAIRING_COLS}"
        );
        let query = sqlx::query(&sql)
            .bind(request.code)
            .bind(request.channel)
            .bind(request.sender_id)
            .bind(request.display_name)
            .bind(request.chat_id)
            .bind(DB::time(now()))
            .bind(DB::time(request.expires_at));
        match query.fetch_one(&mut *self.0).await.map_err(classify) {
            Ok(row) => pairing(&row),
            Err(DbFailure::Unique(_)) => Err(StoreError::Conflict("pairing code is taken".into())),
            Err(DbFailure::ForeignKey(c)) => Err(StoreError::Conflict(c)),
            Err(DbFailure::Other(e)) => Err(e),
        }
    }

    pub(crate) async fn approve_pairing(
        &mut self,
        code: &str,
        user_id: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<GatewayIdentity> {
        self.require("users", "user", user_id).await?;
        let sql = format!(
            "SELECT {PAIRING_COLS} FROM gateway_pairings WHERE code = $1 AND expires_at > $2{}",
            DB::FOR_UPDATE
        );
        let row = sqlx::query(&sql)
            .bind(code.to_owned())
            .bind(DB::time(at))
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db_err)?;
        let request = row
            .as_ref()
            .map(pairing)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("pairing code", code))?;
        sqlx::query("DELETE FROM gateway_pairings WHERE code = $1")
            .bind(code.to_owned())
            .execute(&mut *self.0)
            .await
            .map_err(db_err)?;
        let sql = format!(
            "INSERT INTO gateway_identities ({IDENTITY_COLS}) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (channel, sender_id) DO UPDATE SET user_id = excluded.user_id, \
               created_at = excluded.created_at \
             RETURNING {IDENTITY_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(request.channel)
            .bind(request.sender_id)
            .bind(Uuid::from(user_id))
            .bind(DB::time(now()))
            .fetch_one(&mut *self.0)
            .await
            .map_err(db_err)?;
        identity(&row)
    }
}

/// `impl GatewayStore` for a backend with `portable()` and `begin()`;
/// `|tx| conn` turns its transaction into the connection [`InTx`] takes;
/// `commit` commits it into a `StoreResult`.
macro_rules! gateway_store_impl {
    ($store:ty, $db:ty, |$tx:ident| $conn:expr, $commit:expr) => {
        #[async_trait::async_trait]
        impl netherbrain_core::store::GatewayStore for $store {
            async fn chat_binding(
                &self,
                channel: &str,
                chat_id: &str,
            ) -> netherbrain_core::store::StoreResult<Option<netherbrain_core::store::ChatBinding>>
            {
                self.portable().chat_binding(channel, chat_id).await
            }
            async fn bind_chat(
                &self,
                binding: netherbrain_core::store::NewChatBinding,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::ChatBinding> {
                let mut $tx = self.begin().await?;
                let bound = crate::portable::InTx::<$db>($conn)
                    .bind_chat(binding)
                    .await?;
                ($commit)($tx).await?;
                Ok(bound)
            }
            async fn mark_delivered(
                &self,
                channel: &str,
                chat_id: &str,
                session_id: netherbrain_core::SessionId,
                seq: netherbrain_core::EventSeq,
            ) -> netherbrain_core::store::StoreResult<()> {
                let mut $tx = self.begin().await?;
                crate::portable::InTx::<$db>($conn)
                    .mark_delivered(channel, chat_id, session_id, seq)
                    .await?;
                ($commit)($tx).await?;
                Ok(())
            }
            async fn list_chat_bindings(
                &self,
                channel: &str,
            ) -> netherbrain_core::store::StoreResult<Vec<netherbrain_core::store::ChatBinding>>
            {
                self.portable().list_chat_bindings(channel).await
            }
            async fn gateway_identity(
                &self,
                channel: &str,
                sender_id: &str,
            ) -> netherbrain_core::store::StoreResult<
                Option<netherbrain_core::store::GatewayIdentity>,
            > {
                self.portable().gateway_identity(channel, sender_id).await
            }
            async fn create_pairing(
                &self,
                pairing: netherbrain_core::store::NewPairing,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::PairingRequest> {
                let mut $tx = self.begin().await?;
                let created = crate::portable::InTx::<$db>($conn)
                    .create_pairing(pairing)
                    .await?;
                ($commit)($tx).await?;
                Ok(created)
            }
            async fn pending_pairings(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> netherbrain_core::store::StoreResult<Vec<netherbrain_core::store::PairingRequest>>
            {
                self.portable().pending_pairings(now).await
            }
            async fn approve_pairing(
                &self,
                code: &str,
                user_id: netherbrain_core::UserId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::GatewayIdentity>
            {
                let mut $tx = self.begin().await?;
                let identity = crate::portable::InTx::<$db>($conn)
                    .approve_pairing(code, user_id, now)
                    .await?;
                ($commit)($tx).await?;
                Ok(identity)
            }
        }
    };
}
pub(crate) use gateway_store_impl;
