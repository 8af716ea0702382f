//! [`GatewayStore`]: what the chat gateway persists — which conversation a
//! chat is bound to (and how far its replies were delivered), which
//! platform users are paired with a Netherbrain user, and the pending
//! pairing requests of unknown users.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::ids::{ConversationId, EventSeq, PresetId, SessionId, UserId};

/// A chat bound to a conversation, with the delivery mark: the last event
/// of which session the chat has been shown, so a restarted gateway
/// delivers what the chat missed.
///
/// ```
/// use netherbrain_core::store::ChatBinding;
/// fn delivered(binding: &ChatBinding) -> bool {
///     binding.delivered_session_id.is_some()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatBinding {
    /// The channel's id (`"telegram"`).
    pub channel: String,
    /// The platform's chat id (with the thread, for a group topic).
    pub chat_id: String,
    /// The Netherbrain user the chat acts as.
    pub user_id: UserId,
    /// The conversation the chat talks to.
    pub conversation_id: ConversationId,
    /// The preset chosen with `/preset`, if any.
    pub preset_id: Option<PresetId>,
    /// The session whose events were last delivered.
    pub delivered_session_id: Option<SessionId>,
    /// The last delivered event of that session.
    pub delivered_seq: EventSeq,
    /// When the binding last changed.
    pub updated_at: DateTime<Utc>,
}

/// Binds a chat to a conversation (an upsert): rebinding to another
/// conversation clears the delivery mark; the same conversation keeps it.
///
/// ```
/// use netherbrain_core::store::NewChatBinding;
/// use netherbrain_core::{ConversationId, UserId};
/// let b = NewChatBinding::new("telegram", "42", UserId::new(), ConversationId::new());
/// assert_eq!(b.preset_id, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewChatBinding {
    /// The channel's id.
    pub channel: String,
    /// The platform's chat id.
    pub chat_id: String,
    /// The user the chat acts as.
    pub user_id: UserId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The chosen preset.
    pub preset_id: Option<PresetId>,
}

impl NewChatBinding {
    /// A binding without a chosen preset.
    ///
    /// ```
    /// use netherbrain_core::store::NewChatBinding;
    /// use netherbrain_core::{ConversationId, UserId};
    /// let b = NewChatBinding::new("discord", "9", UserId::new(), ConversationId::new());
    /// assert_eq!(b.chat_id, "9");
    /// ```
    #[must_use]
    pub fn new(
        channel: impl Into<String>,
        chat_id: impl Into<String>,
        user_id: UserId,
        conversation_id: ConversationId,
    ) -> Self {
        Self {
            channel: channel.into(),
            chat_id: chat_id.into(),
            user_id,
            conversation_id,
            preset_id: None,
        }
    }

    /// Sets the preset.
    ///
    /// ```
    /// use netherbrain_core::store::NewChatBinding;
    /// use netherbrain_core::{ConversationId, PresetId, UserId};
    /// let p = PresetId::new();
    /// let b = NewChatBinding::new("t", "1", UserId::new(), ConversationId::new()).with_preset(Some(p));
    /// assert_eq!(b.preset_id, Some(p));
    /// ```
    #[must_use]
    pub fn with_preset(mut self, preset_id: Option<PresetId>) -> Self {
        self.preset_id = preset_id;
        self
    }
}

/// A platform user paired with a Netherbrain user: the gateway serves them.
///
/// ```
/// use netherbrain_core::store::GatewayIdentity;
/// fn who(identity: &GatewayIdentity) -> String {
///     format!("{}:{}", identity.channel, identity.sender_id)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GatewayIdentity {
    /// The channel's id.
    pub channel: String,
    /// The platform's user id.
    pub sender_id: String,
    /// The Netherbrain user they act as.
    pub user_id: UserId,
    /// When they were paired.
    pub created_at: DateTime<Utc>,
}

/// An unknown user's request to be served, with its one-time code.
///
/// ```
/// use netherbrain_core::store::PairingRequest;
/// fn expired(p: &PairingRequest, now: chrono::DateTime<chrono::Utc>) -> bool {
///     p.expires_at <= now
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PairingRequest {
    /// The one-time code an admin approves.
    pub code: String,
    /// The channel's id.
    pub channel: String,
    /// The platform's user id.
    pub sender_id: String,
    /// The name the platform shows, if any.
    pub display_name: Option<String>,
    /// The chat the request came from.
    pub chat_id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
}

/// A pairing request to record.
///
/// ```
/// use netherbrain_core::store::NewPairing;
/// let p = NewPairing::new("ABCD2345", "telegram", "7", "7", chrono::Utc::now());
/// assert_eq!(p.display_name, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewPairing {
    /// The code.
    pub code: String,
    /// The channel's id.
    pub channel: String,
    /// The platform's user id.
    pub sender_id: String,
    /// The chat it came from.
    pub chat_id: String,
    /// The name the platform shows.
    pub display_name: Option<String>,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
}

impl NewPairing {
    /// A request without display name.
    ///
    /// ```
    /// use netherbrain_core::store::NewPairing;
    /// let p = NewPairing::new("C0DE", "discord", "u", "c", chrono::Utc::now());
    /// assert_eq!(p.sender_id, "u");
    /// ```
    #[must_use]
    pub fn new(
        code: impl Into<String>,
        channel: impl Into<String>,
        sender_id: impl Into<String>,
        chat_id: impl Into<String>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            code: code.into(),
            channel: channel.into(),
            sender_id: sender_id.into(),
            chat_id: chat_id.into(),
            display_name: None,
            expires_at,
        }
    }

    /// Sets the display name.
    ///
    /// ```
    /// use netherbrain_core::store::NewPairing;
    /// let p = NewPairing::new("C", "t", "u", "c", chrono::Utc::now()).with_display_name("Ada");
    /// assert_eq!(p.display_name.as_deref(), Some("Ada"));
    /// ```
    #[must_use]
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
}

/// The gateway's records: chat bindings with their delivery mark, paired
/// identities, pairing requests.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::store::prelude::*;
/// use netherbrain_core::store::{MemoryStore, NewConversation, NewChatBinding, NewPairing, NewUser, UserRole};
///
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
/// let expires = chrono::Utc::now() + chrono::Duration::minutes(10);
/// store.create_pairing(NewPairing::new("K7QX2M9P", "telegram", "42", "42", expires)).await?;
/// let identity = store.approve_pairing("K7QX2M9P", ada.id, chrono::Utc::now()).await?;
/// assert_eq!(identity.user_id, ada.id);
///
/// let conversation = store.create_conversation(NewConversation::new(ada.id)).await?;
/// store.bind_chat(NewChatBinding::new("telegram", "42", ada.id, conversation.id)).await?;
/// let bound = store.chat_binding("telegram", "42").await?.unwrap();
/// assert_eq!(bound.conversation_id, conversation.id);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait GatewayStore: Send + Sync + std::fmt::Debug {
    /// The binding of a chat, if any.
    async fn chat_binding(&self, channel: &str, chat_id: &str) -> StoreResult<Option<ChatBinding>>;

    /// Binds a chat (an upsert). The user and the conversation must exist;
    /// a different conversation than before clears the delivery mark.
    async fn bind_chat(&self, binding: NewChatBinding) -> StoreResult<ChatBinding>;

    /// Records that the chat was shown `session_id` up to `seq`.
    /// `NotFound` for an unbound chat.
    async fn mark_delivered(
        &self,
        channel: &str,
        chat_id: &str,
        session_id: SessionId,
        seq: EventSeq,
    ) -> StoreResult<()>;

    /// Every chat bound on a channel, by chat id.
    async fn list_chat_bindings(&self, channel: &str) -> StoreResult<Vec<ChatBinding>>;

    /// The pairing of a platform user, if any.
    async fn gateway_identity(
        &self,
        channel: &str,
        sender_id: &str,
    ) -> StoreResult<Option<GatewayIdentity>>;

    /// Records a pairing request, replacing an earlier one of the same
    /// sender. `Conflict` if the code is taken.
    async fn create_pairing(&self, pairing: NewPairing) -> StoreResult<PairingRequest>;

    /// The requests not expired at `now`, oldest first.
    async fn pending_pairings(&self, now: DateTime<Utc>) -> StoreResult<Vec<PairingRequest>>;

    /// Approves a code not expired at `now`: the request is removed and its
    /// sender paired with `user_id` (replacing an earlier pairing).
    /// `NotFound` for an unknown or expired code or user.
    async fn approve_pairing(
        &self,
        code: &str,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<GatewayIdentity>;
}
