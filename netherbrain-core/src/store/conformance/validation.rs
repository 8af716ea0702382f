//! Input checks that once differed between backends: each backend now
//! calls the same [`validate`] function, and these cases prove it.

use serde_json::json;

use super::{
    conversation_ids, expect_invalid, expect_not_found, meta, new_conversation, new_preset,
    new_user, new_workspace, ok, start_session,
};
use crate::event::{AgentEvent, EventEnvelope};
use crate::ids::PresetId;
use crate::message::Message;
use crate::preset::PresetConfig;
use crate::store::{
    ConversationPatch, NewApiKey, NewConversation, NewPreset, NewSession, NewUser, NewWorkspace,
    PresetPatch, SessionAppend, StateStore, UserPatch, UserRole, WorkspacePatch, validate,
};

/// An over-long password hash is rejected on create and on update, and
/// changes nothing.
pub async fn user_password_hash_is_checked(store: &dyn StateStore) {
    let long = "h".repeat(validate::MAX_TEXT_LEN + 1);
    expect_invalid(
        store
            .create_user(NewUser::new("ada", UserRole::User).with_password_hash(long.clone()))
            .await,
        "create_user with an over-long password hash",
    );
    assert_eq!(ok(store.count_users().await, "count_users"), 0);
    let user = new_user(store, "bob").await;
    let mut patch = UserPatch::default();
    patch.password_hash = Some(long);
    expect_invalid(
        store.update_user(user.id, patch).await,
        "update_user with an over-long password hash",
    );
    assert_eq!(
        ok(store.get_user(user.id).await, "get_user"),
        user,
        "a rejected update must change nothing"
    );
}

/// Text and JSON documents with NUL characters are rejected everywhere
/// (Postgres cannot store them), and nothing is stored.
pub async fn nul_characters_are_rejected(store: &dyn StateStore) {
    let nul = "a\0b";
    expect_invalid(
        store
            .create_user(NewUser::new("ada", UserRole::User).with_display_name(nul))
            .await,
        "create_user with NUL in the display name",
    );
    let user = new_user(store, "bob").await;
    expect_invalid(
        store
            .create_api_key(NewApiKey::new(user.id, "key", "nb_abc", nul))
            .await,
        "create_api_key with NUL in the hash",
    );
    assert!(ok(store.list_api_keys(user.id).await, "list_api_keys").is_empty());

    let mut config = PresetConfig::new("openai", "gpt-test");
    config.system_prompt = Some(nul.into());
    expect_invalid(
        store
            .create_preset(NewPreset::new("p", config.clone()))
            .await,
        "create_preset with NUL in the system prompt",
    );
    expect_invalid(
        store
            .create_preset(
                NewPreset::new("p", PresetConfig::new("openai", "m")).with_description(nul),
            )
            .await,
        "create_preset with NUL in the description",
    );
    assert!(ok(store.list_presets().await, "list_presets").is_empty());
    let preset = new_preset(store, "valid").await;
    let mut patch = PresetPatch::default();
    patch.config = Some(config);
    expect_invalid(
        store.update_preset(preset.id, patch).await,
        "update_preset with NUL in the system prompt",
    );
    assert_eq!(ok(store.get_preset(preset.id).await, "get_preset"), preset);

    expect_invalid(
        store
            .create_conversation(NewConversation::new(user.id).with_title(nul))
            .await,
        "create_conversation with NUL in the title",
    );
    expect_invalid(
        store
            .create_conversation(
                NewConversation::new(user.id).with_metadata(meta(json!({"k": {"deep": nul}}))),
            )
            .await,
        "create_conversation with NUL in metadata",
    );
    expect_invalid(
        store
            .create_conversation(NewConversation::new(user.id).with_metadata(meta(json!({nul: 1}))))
            .await,
        "create_conversation with NUL in a metadata key",
    );
    let conversation = new_conversation(store, user.id, "fine").await;
    let mut patch = ConversationPatch::default();
    patch.summary = Some(Some(nul.into()));
    expect_invalid(
        store.update_conversation(conversation.id, patch).await,
        "update_conversation with NUL in the summary",
    );
    let mut patch = ConversationPatch::default();
    patch.metadata = Some(meta(json!({"tags": [nul]})));
    expect_invalid(
        store.update_conversation(conversation.id, patch).await,
        "update_conversation with NUL in metadata",
    );
    assert_eq!(
        ok(
            store.get_conversation(conversation.id).await,
            "get_conversation"
        ),
        conversation,
        "rejected updates must change nothing"
    );
}

/// Workspace project directories must be non-blank paths without NUL;
/// metadata without NUL, on create and update.
pub async fn workspace_invalid_input_is_rejected(store: &dyn StateStore) {
    for dirs in [
        vec![String::new()],
        vec!["  ".into()],
        vec!["/srv/\0".into()],
    ] {
        expect_invalid(
            store
                .create_workspace(NewWorkspace::new("w").with_project_dirs(dirs.clone()))
                .await,
            &format!("create_workspace with project_dirs {dirs:?}"),
        );
    }
    expect_invalid(
        store
            .create_workspace(NewWorkspace::new("w").with_metadata(meta(json!({"k": "\0"}))))
            .await,
        "create_workspace with NUL in metadata",
    );
    assert!(ok(store.list_workspaces().await, "list_workspaces").is_empty());
    let workspace = new_workspace(store, "valid").await;
    let mut patch = WorkspacePatch::default();
    patch.project_dirs = Some(vec![String::new()]);
    expect_invalid(
        store.update_workspace(workspace.id, patch).await,
        "update_workspace with a blank project dir",
    );
    let mut patch = WorkspacePatch::default();
    patch.metadata = Some(meta(json!({"k": "\0"})));
    expect_invalid(
        store.update_workspace(workspace.id, patch).await,
        "update_workspace with NUL in metadata",
    );
    assert_eq!(
        ok(store.get_workspace(workspace.id).await, "get_workspace"),
        workspace,
        "rejected updates must change nothing"
    );
}

/// An event sequence number above [`validate::MAX_EVENT_SEQ`] is
/// rejected, and the append stores nothing.
pub async fn append_rejects_seq_above_max(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let session = start_session(store, conversation.id, "hi").await;
    let event = |seq| {
        EventEnvelope::new(
            session.id,
            seq,
            AgentEvent::TextMessageContent {
                message_id: "m".into(),
                delta: "x".into(),
            },
        )
    };
    expect_invalid(
        store
            .append(
                session.id,
                SessionAppend::new(
                    vec![Message::assistant("lost")],
                    vec![event(1), event(validate::MAX_EVENT_SEQ + 1)],
                ),
            )
            .await,
        "append with a sequence number above the maximum",
    );
    assert_eq!(
        ok(store.last_event_seq(session.id).await, "last_event_seq"),
        0
    );
    assert_eq!(
        ok(store.session_messages(session.id).await, "session_messages").len(),
        1,
        "a rejected append must store no message"
    );
    ok(
        store
            .append(
                session.id,
                SessionAppend::new(vec![], vec![event(validate::MAX_EVENT_SEQ)]),
            )
            .await,
        "append with the highest sequence number",
    );
    assert_eq!(
        ok(store.last_event_seq(session.id).await, "last_event_seq"),
        validate::MAX_EVENT_SEQ
    );
}

/// A query's length is counted after trimming: padding never makes a
/// query too long.
pub async fn search_query_is_trimmed_before_its_length_check(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    new_conversation(store, user.id, "anything").await;
    let longest = "q".repeat(validate::MAX_QUERY_LEN);
    ok(
        store
            .search_conversations(Some(user.id), &format!("  {longest}  "), 10)
            .await,
        "a padded query of the longest length",
    );
    expect_invalid(
        store
            .search_conversations(Some(user.id), &format!(" {longest}q "), 10)
            .await,
        "a padded over-long query",
    );
}

/// Search words match the beginnings of words, not their middles; a
/// query of punctuation only matches nothing.
pub async fn search_matches_word_prefixes(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let k8s = new_conversation(store, user.id, "Kubernetes upgrade").await;
    let chat = new_conversation(store, user.id, "chat").await;
    start_session(store, chat.id, "the re-install (finally) worked").await;
    let search = |q: &'static str| async move {
        conversation_ids(&ok(
            store.search_conversations(Some(user.id), q, 20).await,
            q,
        ))
    };
    assert_eq!(search("kube").await, [k8s.id], "a word's beginning");
    assert_eq!(search("KUBE upg").await, [k8s.id], "every word's beginning");
    assert!(search("netes").await.is_empty(), "not a word's middle");
    assert_eq!(
        search("install").await,
        [chat.id],
        "words split at punctuation"
    );
    assert_eq!(
        search("(finally)").await,
        [chat.id],
        "punctuation is ignored"
    );
    assert!(search("*** ???").await.is_empty(), "no words, no match");
}

/// A session naming an unknown preset is `NotFound` and stores nothing.
pub async fn session_create_requires_preset(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    expect_not_found(
        store
            .create_session(
                NewSession::new(conversation.id, vec![Message::user("x")])
                    .with_preset(Some(PresetId::new())),
            )
            .await,
        "create_session with an unknown preset",
    );
    assert!(
        ok(store.list_sessions(conversation.id).await, "list_sessions").is_empty(),
        "a failed create must not store a session"
    );
    let preset = new_preset(store, "p").await;
    let session = ok(
        store
            .create_session(
                NewSession::new(conversation.id, vec![Message::user("x")])
                    .with_preset(Some(preset.id)),
            )
            .await,
        "create_session with a preset",
    );
    assert_eq!(session.preset_id, Some(preset.id));
}
