//! The chat gateway's records.

use chrono::{Duration, Utc};

use super::{
    expect_conflict, expect_invalid, expect_not_found, new_conversation, new_preset, new_user, ok,
    tick,
};
use crate::ids::{ConversationId, SessionId, UserId};
use crate::store::{NewChatBinding, NewPairing, StateStore};

/// A chat binds to a conversation; the delivery mark is kept while the
/// conversation stays and cleared when it changes; bindings list per channel.
pub async fn gateway_bind_chat_and_delivery_mark(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let first = new_conversation(store, ada.id, "first").await;
    let second = new_conversation(store, ada.id, "second").await;
    let preset = new_preset(store, "chat").await;

    assert_eq!(
        ok(store.chat_binding("telegram", "42").await, "chat_binding"),
        None
    );
    let bound = ok(
        store
            .bind_chat(NewChatBinding::new("telegram", "42", ada.id, first.id))
            .await,
        "bind_chat",
    );
    assert_eq!(bound.conversation_id, first.id);
    assert_eq!(bound.delivered_session_id, None);
    assert_eq!(bound.delivered_seq, 0);

    let session = SessionId::new();
    ok(
        store.mark_delivered("telegram", "42", session, 17).await,
        "mark_delivered",
    );
    tick().await;
    // The same conversation with a preset keeps the mark.
    let rebound = ok(
        store
            .bind_chat(
                NewChatBinding::new("telegram", "42", ada.id, first.id)
                    .with_preset(Some(preset.id)),
            )
            .await,
        "bind_chat again",
    );
    assert_eq!(rebound.preset_id, Some(preset.id));
    assert_eq!(rebound.delivered_session_id, Some(session));
    assert_eq!(rebound.delivered_seq, 17);
    assert!(rebound.updated_at > bound.updated_at);
    assert_eq!(
        ok(store.chat_binding("telegram", "42").await, "chat_binding"),
        Some(rebound)
    );

    // Another conversation (`/new`) clears it.
    let moved = ok(
        store
            .bind_chat(NewChatBinding::new("telegram", "42", ada.id, second.id))
            .await,
        "bind_chat to another conversation",
    );
    assert_eq!(moved.conversation_id, second.id);
    assert_eq!(moved.preset_id, None);
    assert_eq!(moved.delivered_session_id, None);
    assert_eq!(moved.delivered_seq, 0);

    ok(
        store
            .bind_chat(NewChatBinding::new("telegram", "7", ada.id, first.id))
            .await,
        "bind another chat",
    );
    ok(
        store
            .bind_chat(NewChatBinding::new("discord", "42", ada.id, first.id))
            .await,
        "bind on another channel",
    );
    let chats: Vec<String> = ok(store.list_chat_bindings("telegram").await, "list")
        .into_iter()
        .map(|b| b.chat_id)
        .collect();
    assert_eq!(chats, ["42", "7"]);

    expect_not_found(
        store.mark_delivered("telegram", "nope", session, 1).await,
        "mark_delivered on an unbound chat",
    );
    expect_not_found(
        store
            .bind_chat(NewChatBinding::new(
                "telegram",
                "1",
                UserId::new(),
                first.id,
            ))
            .await,
        "bind_chat with a missing user",
    );
    expect_not_found(
        store
            .bind_chat(NewChatBinding::new(
                "telegram",
                "1",
                ada.id,
                ConversationId::new(),
            ))
            .await,
        "bind_chat with a missing conversation",
    );
}

/// A pairing request replaces the sender's earlier one; approving removes
/// it and pairs the sender; expired or unknown codes are not found; a
/// taken code conflicts.
pub async fn gateway_pairing_approve_and_expiry(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let now = Utc::now();
    let later = now + Duration::minutes(10);

    let first = ok(
        store
            .create_pairing(NewPairing::new("AAAA1111", "telegram", "42", "42", later))
            .await,
        "create_pairing",
    );
    assert_eq!(first.sender_id, "42");
    tick().await;
    ok(
        store
            .create_pairing(
                NewPairing::new("BBBB2222", "telegram", "42", "42", later)
                    .with_display_name("Ada L."),
            )
            .await,
        "create_pairing again",
    );
    tick().await;
    ok(
        store
            .create_pairing(NewPairing::new("CCCC3333", "telegram", "9", "9", now))
            .await,
        "create an expired pairing",
    );
    expect_conflict(
        store
            .create_pairing(NewPairing::new("BBBB2222", "discord", "1", "1", later))
            .await,
        "a taken code",
    );
    let pending = ok(store.pending_pairings(now).await, "pending_pairings");
    let codes: Vec<&str> = pending.iter().map(|p| p.code.as_str()).collect();
    assert_eq!(
        codes,
        ["BBBB2222"],
        "replaced and expired requests are gone"
    );
    assert_eq!(pending[0].display_name.as_deref(), Some("Ada L."));

    expect_not_found(
        store.approve_pairing("AAAA1111", ada.id, now).await,
        "a replaced code",
    );
    expect_not_found(
        store.approve_pairing("CCCC3333", ada.id, now).await,
        "an expired code",
    );
    expect_not_found(
        store.approve_pairing("BBBB2222", UserId::new(), now).await,
        "a missing user",
    );
    assert_eq!(
        ok(store.gateway_identity("telegram", "42").await, "identity"),
        None
    );
    let identity = ok(
        store.approve_pairing("BBBB2222", ada.id, now).await,
        "approve_pairing",
    );
    assert_eq!(identity.user_id, ada.id);
    assert_eq!(
        ok(store.gateway_identity("telegram", "42").await, "identity"),
        Some(identity)
    );
    assert_eq!(
        ok(store.gateway_identity("discord", "42").await, "identity"),
        None,
        "pairings are per channel"
    );
    expect_not_found(
        store.approve_pairing("BBBB2222", ada.id, now).await,
        "a used code",
    );
    assert!(ok(store.pending_pairings(now).await, "pending").is_empty());
}

/// Blank ids and NUL characters are refused.
pub async fn gateway_rejects_bad_input(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let c = new_conversation(store, ada.id, "c").await;
    expect_invalid(
        store
            .bind_chat(NewChatBinding::new("", "1", ada.id, c.id))
            .await,
        "blank channel",
    );
    expect_invalid(
        store
            .bind_chat(NewChatBinding::new("telegram", "a\0b", ada.id, c.id))
            .await,
        "NUL in chat id",
    );
    let later = Utc::now() + Duration::minutes(1);
    expect_invalid(
        store
            .create_pairing(NewPairing::new(" ", "telegram", "1", "1", later))
            .await,
        "blank code",
    );
    expect_invalid(
        store
            .create_pairing(
                NewPairing::new("CODE", "telegram", "1", "1", later).with_display_name("x\0"),
            )
            .await,
        "NUL in display name",
    );
}
