//! Conversations: CRUD, listing and search.

use std::collections::HashSet;

use serde_json::json;

use super::{
    conversation_ids, expect_invalid, expect_not_found, meta, new_conversation, new_preset,
    new_user, new_workspace, ok, start_session, tick,
};
use crate::ids::{ConversationId, PresetId, UserId, WorkspaceId};
use crate::message::Message;
use crate::session::SessionStatus;
use crate::store::{
    ConversationCursor, ConversationPatch, ConversationQuery, ConversationStatus, DelegatedFrom,
    ForkOrigin, NewConversation, SessionAppend, SessionFinish, StateStore, StoreError, validate,
};

/// A conversation keeps the id, owner, workspace, title, preset and
/// metadata it was created with; a second create with the same id
/// conflicts.
pub async fn conversation_create_and_get(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let ws = new_workspace(store, "ws").await;
    let preset = new_preset(store, "preset").await;
    let id = ConversationId::new();
    let mut new = NewConversation::new(user.id)
        .with_title("Trip planning")
        .with_workspace(ws.id)
        .with_default_preset(preset.id)
        .with_metadata(meta(json!({"source": "telegram", "chat": {"id": 42}})));
    new.id = id;
    let created = ok(
        store.create_conversation(new.clone()).await,
        "create_conversation",
    );
    assert_eq!(created.id, id, "the caller's id must be used");
    assert_eq!(created.owner, user.id);
    assert_eq!(created.workspace_id, Some(ws.id));
    assert_eq!(created.title.as_deref(), Some("Trip planning"));
    assert_eq!(created.summary, None);
    assert_eq!(created.default_preset, Some(preset.id));
    assert_eq!(created.metadata, new.metadata);
    assert_eq!(
        created.status,
        ConversationStatus::Active,
        "new conversations are active"
    );
    assert_eq!(
        created.last_activity_at, created.created_at,
        "last activity starts at creation"
    );
    assert_eq!(
        ok(store.get_conversation(id).await, "get_conversation"),
        created,
        "get_conversation must return what create_conversation returned"
    );

    let e = store.create_conversation(new).await;
    assert!(
        matches!(e, Err(StoreError::Conflict(_))),
        "create_conversation with a taken id: expected Conflict, got {e:?}"
    );
    expect_not_found(
        store.get_conversation(ConversationId::new()).await,
        "get_conversation(unknown)",
    );
    expect_not_found(
        store
            .update_conversation(ConversationId::new(), ConversationPatch::default())
            .await,
        "update_conversation(unknown)",
    );
}

/// Unknown owner, workspace or preset are `NotFound`; invalid title or
/// metadata are `Invalid`; nothing is created.
pub async fn conversation_create_requires_references(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    expect_not_found(
        store
            .create_conversation(NewConversation::new(UserId::new()))
            .await,
        "create_conversation with an unknown owner",
    );
    expect_not_found(
        store
            .create_conversation(NewConversation::new(user.id).with_workspace(WorkspaceId::new()))
            .await,
        "create_conversation with an unknown workspace",
    );
    expect_not_found(
        store
            .create_conversation(NewConversation::new(user.id).with_default_preset(PresetId::new()))
            .await,
        "create_conversation with an unknown default preset",
    );
    expect_invalid(
        store
            .create_conversation(
                NewConversation::new(user.id).with_title("t".repeat(validate::MAX_TITLE_LEN + 1)),
            )
            .await,
        "create_conversation with an over-long title",
    );
    expect_invalid(
        store
            .create_conversation(NewConversation::new(user.id).with_metadata(meta(
                json!({"big": "z".repeat(validate::MAX_METADATA_BYTES + 1)}),
            )))
            .await,
        "create_conversation with oversized metadata",
    );
    let page = ok(
        store.list_conversations(ConversationQuery::default()).await,
        "list_conversations",
    );
    assert!(
        page.items.is_empty(),
        "rejected conversations must not be stored"
    );
}

/// Updates change title, summary and default preset; metadata is
/// shallow-merged and `null` removes a key; last activity does not move.
pub async fn conversation_update_merges_metadata(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let preset = new_preset(store, "p").await;
    let conversation = ok(
        store
            .create_conversation(
                NewConversation::new(user.id)
                    .with_title("old")
                    .with_metadata(meta(json!({"keep": 1, "drop": 2, "nested": {"a": 1}}))),
            )
            .await,
        "create_conversation",
    );
    tick().await;
    let mut patch = ConversationPatch::default();
    patch.title = Some(Some("new".into()));
    patch.summary = Some(Some("a summary".into()));
    patch.default_preset = Some(Some(preset.id));
    patch.metadata = Some(meta(
        json!({"drop": null, "nested": {"b": 2}, "added": true}),
    ));
    let updated = ok(
        store.update_conversation(conversation.id, patch).await,
        "update_conversation",
    );
    assert_eq!(updated.title.as_deref(), Some("new"));
    assert_eq!(updated.summary.as_deref(), Some("a summary"));
    assert_eq!(updated.default_preset, Some(preset.id));
    assert_eq!(
        updated.metadata,
        meta(json!({"keep": 1, "nested": {"b": 2}, "added": true})),
        "metadata must be shallow-merged with null removing keys"
    );
    assert_eq!(updated.owner, user.id);
    assert_eq!(updated.created_at, conversation.created_at);
    assert!(
        updated.updated_at > conversation.updated_at,
        "updated_at must advance"
    );
    assert_eq!(
        updated.last_activity_at, conversation.last_activity_at,
        "editing a conversation is not activity"
    );
    assert_eq!(
        ok(
            store.get_conversation(conversation.id).await,
            "get_conversation"
        ),
        updated
    );

    let mut patch = ConversationPatch::default();
    patch.title = Some(None);
    patch.summary = Some(None);
    patch.default_preset = Some(None);
    let cleared = ok(
        store.update_conversation(conversation.id, patch).await,
        "update_conversation clearing fields",
    );
    assert_eq!(cleared.title, None, "Some(None) clears the title");
    assert_eq!(cleared.summary, None, "Some(None) clears the summary");
    assert_eq!(cleared.default_preset, None, "Some(None) clears the preset");
    assert_eq!(
        cleared.metadata, updated.metadata,
        "metadata untouched without a patch"
    );

    let mut patch = ConversationPatch::default();
    patch.default_preset = Some(Some(PresetId::new()));
    expect_not_found(
        store.update_conversation(conversation.id, patch).await,
        "update_conversation with an unknown default preset",
    );
}

/// An over-long title or summary, or oversized merged metadata, is
/// `Invalid` and changes nothing (not even the other patched fields).
pub async fn conversation_invalid_update_changes_nothing(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "title").await;

    let mut patch = ConversationPatch::default();
    patch.title = Some(Some("t".repeat(validate::MAX_TITLE_LEN + 1)));
    patch.status = Some(ConversationStatus::Archived);
    expect_invalid(
        store.update_conversation(conversation.id, patch).await,
        "update_conversation with an over-long title",
    );
    let mut patch = ConversationPatch::default();
    patch.summary = Some(Some("s".repeat(validate::MAX_TEXT_LEN + 1)));
    patch.title = Some(Some("fine".into()));
    expect_invalid(
        store.update_conversation(conversation.id, patch).await,
        "update_conversation with an over-long summary",
    );
    let mut patch = ConversationPatch::default();
    patch.metadata = Some(meta(
        json!({"big": "z".repeat(validate::MAX_METADATA_BYTES + 1)}),
    ));
    patch.title = Some(Some("fine".into()));
    expect_invalid(
        store.update_conversation(conversation.id, patch).await,
        "update_conversation with oversized metadata",
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

/// Conversations can be archived and reactivated.
pub async fn conversation_status(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let mut patch = ConversationPatch::default();
    patch.status = Some(ConversationStatus::Archived);
    let archived = ok(
        store.update_conversation(conversation.id, patch).await,
        "archive",
    );
    assert_eq!(archived.status, ConversationStatus::Archived);
    assert_eq!(
        ok(
            store.get_conversation(conversation.id).await,
            "get_conversation"
        )
        .status,
        ConversationStatus::Archived
    );
    let mut patch = ConversationPatch::default();
    patch.status = Some(ConversationStatus::Active);
    let active = ok(
        store.update_conversation(conversation.id, patch).await,
        "reactivate",
    );
    assert_eq!(active.status, ConversationStatus::Active);
}

/// Listing is newest activity first; starting or finishing a session
/// moves a conversation to the top.
pub async fn list_orders_by_last_activity(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let a = new_conversation(store, user.id, "a").await;
    tick().await;
    let b = new_conversation(store, user.id, "b").await;
    tick().await;
    let c = new_conversation(store, user.id, "c").await;
    tick().await;

    let list = || {
        let query = ConversationQuery::for_owner(user.id);
        async move {
            conversation_ids(&ok(store.list_conversations(query).await, "list_conversations").items)
        }
    };
    assert_eq!(list().await, [c.id, b.id, a.id], "newest first");

    let session = start_session(store, a.id, "hello").await;
    let a_now = ok(store.get_conversation(a.id).await, "get_conversation");
    assert!(
        a_now.last_activity_at > c.last_activity_at,
        "create_session must bump last_activity_at"
    );
    assert_eq!(
        list().await,
        [a.id, c.id, b.id],
        "starting a session moves the conversation to the top"
    );
    tick().await;
    start_session(store, b.id, "hi").await;
    tick().await;
    ok(
        store
            .finish_session(session.id, SessionFinish::new(SessionStatus::Committed))
            .await,
        "finish_session",
    );
    let a_finished = ok(store.get_conversation(a.id).await, "get_conversation");
    assert!(
        a_finished.last_activity_at > a_now.last_activity_at,
        "finish_session must bump last_activity_at"
    );
    assert_eq!(
        list().await,
        [a.id, b.id, c.id],
        "finishing a session moves the conversation to the top"
    );
}

/// Keyset paging: 7 conversations with limit 3 come in pages of 3, 3, 1,
/// in order, with no duplicates or gaps, and the last page has no cursor.
/// A conversation that becomes active during paging does not break it.
pub async fn list_pages_with_cursor(store: &dyn StateStore) {
    let user = new_user(store, "pager").await;
    let mut all = Vec::new();
    for i in 0..7 {
        all.push(new_conversation(store, user.id, &format!("c{i}")).await.id);
        if i % 2 == 0 {
            tick().await;
        }
    }
    let full = ok(
        store
            .list_conversations(ConversationQuery::for_owner(user.id).with_limit(50))
            .await,
        "list_conversations",
    );
    assert_eq!(full.items.len(), 7);
    assert_eq!(full.next_cursor, None, "a single page has no next cursor");
    let expected = conversation_ids(&full.items);
    let mut sorted = full.items.clone();
    sorted.sort_by_key(|c| std::cmp::Reverse((c.last_activity_at, c.id)));
    assert_eq!(
        conversation_ids(&sorted),
        expected,
        "order must be last_activity_at desc, then id desc"
    );

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let page = ok(
            store
                .list_conversations(
                    ConversationQuery::for_owner(user.id)
                        .with_limit(3)
                        .with_cursor(cursor.clone()),
                )
                .await,
            "list_conversations page",
        );
        sizes.push(page.items.len());
        seen.extend(conversation_ids(&page.items));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
        assert!(sizes.len() < 10, "paging must terminate");
    }
    assert_eq!(sizes, [3, 3, 1], "7 items with limit 3 come as 3, 3, 1");
    assert_eq!(seen, expected, "pages must concatenate to the full listing");
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 7, "no conversation may appear twice");

    let page1 = ok(
        store
            .list_conversations(ConversationQuery::for_owner(user.id).with_limit(3))
            .await,
        "list_conversations",
    );
    // Activity on an item already seen must not make later pages repeat
    // or skip the others.
    start_session(store, page1.items[0].id, "bump").await;
    let page2 = ok(
        store
            .list_conversations(
                ConversationQuery::for_owner(user.id)
                    .with_limit(3)
                    .with_cursor(page1.next_cursor.clone()),
            )
            .await,
        "list_conversations after activity",
    );
    assert_eq!(
        conversation_ids(&page2.items),
        expected[3..6],
        "a cursor marks a position, unaffected by later activity of earlier items"
    );
}

/// Each owner sees only their conversations; no owner filter lists all.
pub async fn list_owner_isolation(store: &dyn StateStore) {
    let alice = new_user(store, "alice").await;
    let bob = new_user(store, "bob").await;
    let a1 = new_conversation(store, alice.id, "a1").await;
    let b1 = new_conversation(store, bob.id, "b1").await;
    let a2 = new_conversation(store, alice.id, "a2").await;

    let alices = ok(
        store
            .list_conversations(ConversationQuery::for_owner(alice.id))
            .await,
        "list_conversations alice",
    );
    let mut ids = conversation_ids(&alices.items);
    ids.sort();
    let mut want = vec![a1.id, a2.id];
    want.sort();
    assert_eq!(ids, want, "an owner sees only their own conversations");
    let bobs = ok(
        store
            .list_conversations(ConversationQuery::for_owner(bob.id))
            .await,
        "list_conversations bob",
    );
    assert_eq!(conversation_ids(&bobs.items), [b1.id]);
    let nobody = ok(
        store
            .list_conversations(ConversationQuery::for_owner(UserId::new()))
            .await,
        "list_conversations unknown owner",
    );
    assert!(
        nobody.items.is_empty(),
        "an unknown owner has no conversations"
    );
    let everyone = ok(
        store.list_conversations(ConversationQuery::default()).await,
        "list_conversations all",
    );
    assert_eq!(everyone.items.len(), 3, "no owner filter lists everyone's");
}

/// The status filter selects active or archived; no filter lists both.
pub async fn list_status_filter(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let active = new_conversation(store, user.id, "active").await;
    let archived = new_conversation(store, user.id, "archived").await;
    let mut patch = ConversationPatch::default();
    patch.status = Some(ConversationStatus::Archived);
    ok(
        store.update_conversation(archived.id, patch).await,
        "archive",
    );
    let query = ConversationQuery::for_owner(user.id);
    let only_active = ok(
        store
            .list_conversations(query.clone().with_status(ConversationStatus::Active))
            .await,
        "list active",
    );
    assert_eq!(conversation_ids(&only_active.items), [active.id]);
    let only_archived = ok(
        store
            .list_conversations(query.clone().with_status(ConversationStatus::Archived))
            .await,
        "list archived",
    );
    assert_eq!(conversation_ids(&only_archived.items), [archived.id]);
    let both = ok(store.list_conversations(query).await, "list all statuses");
    assert_eq!(both.items.len(), 2, "no status filter lists every status");
}

/// The workspace filter selects one workspace's conversations.
pub async fn list_workspace_filter(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let ws = new_workspace(store, "ws").await;
    let other = new_workspace(store, "other").await;
    let inside = ok(
        store
            .create_conversation(NewConversation::new(user.id).with_workspace(ws.id))
            .await,
        "create_conversation",
    );
    ok(
        store
            .create_conversation(NewConversation::new(user.id).with_workspace(other.id))
            .await,
        "create_conversation",
    );
    new_conversation(store, user.id, "no workspace").await;
    let page = ok(
        store
            .list_conversations(ConversationQuery::for_owner(user.id).with_workspace(ws.id))
            .await,
        "list by workspace",
    );
    assert_eq!(conversation_ids(&page.items), [inside.id]);
}

/// The metadata filter is JSON containment, including nested objects and
/// arrays.
pub async fn list_metadata_filter(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let create = |metadata: serde_json::Value| {
        let new = NewConversation::new(user.id).with_metadata(meta(metadata));
        async move { ok(store.create_conversation(new).await, "create_conversation").id }
    };
    let tg = create(
        json!({"channel": "telegram", "chat": {"id": 42, "kind": "group"}, "tags": ["x", "y"]}),
    )
    .await;
    let tg_other = create(json!({"channel": "telegram", "chat": {"id": 7}})).await;
    let discord = create(json!({"channel": "discord"})).await;
    create(json!({})).await;

    let find = |filter: serde_json::Value| {
        let query = ConversationQuery::for_owner(user.id).with_metadata(meta(filter));
        async move {
            let mut ids = conversation_ids(
                &ok(store.list_conversations(query).await, "list by metadata").items,
            );
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<ConversationId>| {
        v.sort();
        v
    };
    assert_eq!(
        find(json!({"channel": "telegram"})).await,
        sorted(vec![tg, tg_other]),
        "top-level key match"
    );
    assert_eq!(find(json!({"channel": "discord"})).await, [discord]);
    assert_eq!(
        find(json!({"chat": {"id": 42}})).await,
        [tg],
        "nested containment"
    );
    assert_eq!(
        find(json!({"channel": "telegram", "chat": {"kind": "group"}})).await,
        [tg],
        "every key must match"
    );
    assert_eq!(
        find(json!({"tags": ["y"]})).await,
        [tg],
        "array containment"
    );
    assert!(
        find(json!({"channel": "slack"})).await.is_empty(),
        "no match"
    );
    assert!(
        find(json!({"chat": {"id": "42"}})).await.is_empty(),
        "values compare with their JSON type"
    );
    assert_eq!(
        find(json!({})).await.len(),
        4,
        "an empty filter matches all"
    );
}

/// A malformed cursor and page sizes outside 1–200 are `Invalid`.
pub async fn list_rejects_bad_cursor_and_limit(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    new_conversation(store, user.id, "c").await;
    for bad in [
        "garbage",
        "",
        "123_not-a-uuid",
        "x_00000000-0000-0000-0000-000000000000",
    ] {
        expect_invalid(
            store
                .list_conversations(
                    ConversationQuery::for_owner(user.id).with_cursor(Some(bad.into())),
                )
                .await,
            &format!("list_conversations with cursor {bad:?}"),
        );
    }
    expect_invalid(
        store
            .list_conversations(ConversationQuery::for_owner(user.id).with_limit(0))
            .await,
        "list_conversations with limit 0",
    );
    expect_invalid(
        store
            .list_conversations(
                ConversationQuery::for_owner(user.id).with_limit(validate::MAX_PAGE_SIZE + 1),
            )
            .await,
        "list_conversations with limit above the maximum",
    );
    // A well-formed cursor pointing nowhere is fine.
    let cursor = ConversationCursor {
        last_activity_at: chrono::Utc::now() + chrono::Duration::days(1),
        id: ConversationId::new(),
    };
    let page = ok(
        store
            .list_conversations(
                ConversationQuery::for_owner(user.id).with_cursor(Some(cursor.encode())),
            )
            .await,
        "list_conversations with a valid foreign cursor",
    );
    assert_eq!(
        page.items.len(),
        1,
        "a cursor in the future lists everything older"
    );
}

/// Search finds words in the title, the summary and message text
/// (input and appended), case-insensitively; every word must match; no
/// match is an empty result.
pub async fn search_title_summary_and_messages(store: &dyn StateStore) {
    let user = new_user(store, "searcher").await;
    let by_title = new_conversation(store, user.id, "Kubernetes upgrade notes").await;
    let by_summary = new_conversation(store, user.id, "untitled").await;
    let mut patch = ConversationPatch::default();
    patch.summary = Some(Some("Discussed the SOURDOUGH starter".into()));
    ok(
        store.update_conversation(by_summary.id, patch).await,
        "update_conversation",
    );
    let by_input = new_conversation(store, user.id, "chat one").await;
    start_session(store, by_input.id, "How do I configure Zigbee pairing?").await;
    let by_reply = new_conversation(store, user.id, "chat two").await;
    let session = start_session(store, by_reply.id, "hello").await;
    ok(
        store
            .append(
                session.id,
                SessionAppend::new(
                    vec![Message::assistant("Try the Mosquitto broker.")],
                    vec![],
                ),
            )
            .await,
        "append",
    );

    let search = |q: &'static str| async move {
        conversation_ids(&ok(
            store.search_conversations(Some(user.id), q, 20).await,
            q,
        ))
    };
    assert_eq!(search("kubernetes").await, [by_title.id], "title match");
    assert_eq!(
        search("KUBERNETES Upgrade").await,
        [by_title.id],
        "case-insensitive, all words"
    );
    assert_eq!(search("sourdough").await, [by_summary.id], "summary match");
    assert_eq!(search("zigbee").await, [by_input.id], "session input match");
    assert_eq!(
        search("mosquitto").await,
        [by_reply.id],
        "appended message match"
    );
    assert!(
        search("kubernetes sourdough").await.is_empty(),
        "every word must match"
    );
    assert!(search("nonexistentword").await.is_empty(), "no match");
    assert_eq!(
        ok(
            store.search_conversations(None, "zigbee", 20).await,
            "search without owner"
        )
        .len(),
        1,
        "no owner filter searches everyone's"
    );
}

/// A giant answer (2 MB of distinct words, past Postgres' 1 MB `tsvector`
/// limit) is stored whole and read back intact; search finds a word from its
/// start.
pub async fn giant_messages_are_kept_and_searchable(store: &dyn StateStore) {
    let user = new_user(store, "verbose").await;
    let conversation = new_conversation(store, user.id, "long answer").await;
    let session = start_session(store, conversation.id, "write a lot").await;
    let mut text = String::from("Opening quasar ");
    let mut i = 0u32;
    while text.len() < 2 * 1024 * 1024 {
        text.push_str(&format!("w{i:x}z "));
        i += 1;
    }
    ok(
        store
            .append(
                session.id,
                SessionAppend::new(vec![Message::assistant(text.clone())], vec![]),
            )
            .await,
        "append a giant message",
    );
    let history = ok(store.session_history(session.id).await, "session_history");
    assert_eq!(
        history.last().map(Message::text).as_deref(),
        Some(text.as_str()),
        "the whole text is kept"
    );
    let hits = conversation_ids(&ok(
        store
            .search_conversations(Some(user.id), "quasar", 20)
            .await,
        "search",
    ));
    assert_eq!(hits, [conversation.id], "a word of its start is found");
}

/// A title match ranks before a match in message text only, even when the
/// latter is newer; `limit` caps the results.
pub async fn search_prefers_title_matches(store: &dyn StateStore) {
    let user = new_user(store, "ranker").await;
    let titled = new_conversation(store, user.id, "Homelab backup plan").await;
    tick().await;
    let mentioned = new_conversation(store, user.id, "misc").await;
    start_session(store, mentioned.id, "my backup failed again").await;
    tick().await;
    let also = new_conversation(store, user.id, "other").await;
    start_session(store, also.id, "backup please").await;
    let hits = conversation_ids(&ok(
        store
            .search_conversations(Some(user.id), "backup", 20)
            .await,
        "search",
    ));
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0], titled.id, "the title match must come first");
    let hits = ok(
        store.search_conversations(Some(user.id), "backup", 2).await,
        "search with limit",
    );
    assert_eq!(hits.len(), 2, "limit caps the results");
}

/// Search only returns the owner's conversations when an owner is given.
pub async fn search_owner_isolation(store: &dyn StateStore) {
    let alice = new_user(store, "alice").await;
    let bob = new_user(store, "bob").await;
    let mine = new_conversation(store, alice.id, "secret recipe").await;
    let theirs = new_conversation(store, bob.id, "secret plans").await;
    start_session(store, theirs.id, "alice must not see this recipe").await;
    let hits = conversation_ids(&ok(
        store
            .search_conversations(Some(alice.id), "secret", 20)
            .await,
        "search alice",
    ));
    assert_eq!(
        hits,
        [mine.id],
        "another owner's conversations must not match"
    );
    let hits = conversation_ids(&ok(
        store.search_conversations(Some(bob.id), "recipe", 20).await,
        "search bob",
    ));
    assert_eq!(hits, [theirs.id]);
    assert!(
        ok(
            store
                .search_conversations(Some(UserId::new()), "secret", 20)
                .await,
            "search"
        )
        .is_empty()
    );
}

/// Empty or over-long queries and bad limits are `Invalid`.
pub async fn search_rejects_bad_input(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    new_conversation(store, user.id, "anything").await;
    expect_invalid(
        store.search_conversations(Some(user.id), "", 10).await,
        "search with an empty query",
    );
    expect_invalid(
        store.search_conversations(Some(user.id), "   ", 10).await,
        "search with a blank query",
    );
    expect_invalid(
        store
            .search_conversations(Some(user.id), &"q".repeat(validate::MAX_QUERY_LEN + 1), 10)
            .await,
        "search with an over-long query",
    );
    expect_invalid(
        store
            .search_conversations(Some(user.id), "anything", 0)
            .await,
        "search with limit 0",
    );
    expect_invalid(
        store
            .search_conversations(Some(user.id), "anything", validate::MAX_PAGE_SIZE + 1)
            .await,
        "search with limit above the maximum",
    );
}

/// A fork's origin is stored as given at creation, read back with the
/// conversation, untouched by patches; without one it is `None`.
pub async fn conversation_fork_origin_is_kept(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let source = new_conversation(store, user.id, "source").await;
    let session = start_session(store, source.id, "hi").await;
    let origin = ForkOrigin::new(source.id, session.id);
    let fork = ok(
        store
            .create_conversation(NewConversation::new(user.id).with_forked_from(origin))
            .await,
        "create_conversation(forked)",
    );
    assert_eq!(
        fork.forked_from,
        Some(origin),
        "create must return the origin"
    );
    let read = ok(store.get_conversation(fork.id).await, "get_conversation");
    assert_eq!(read, fork, "the origin must be stored");
    let mut patch = ConversationPatch::default();
    patch.title = Some(Some("renamed".into()));
    let patched = ok(
        store.update_conversation(fork.id, patch).await,
        "update_conversation",
    );
    assert_eq!(patched.forked_from, Some(origin), "patches keep the origin");
    assert_eq!(
        source.forked_from, None,
        "a plain conversation has no origin"
    );
    let listed = ok(
        store
            .list_conversations(ConversationQuery::for_owner(user.id))
            .await,
        "list_conversations",
    );
    assert!(
        listed
            .items
            .iter()
            .any(|c| c.id == fork.id && c.forked_from == Some(origin)),
        "listings carry the origin"
    );
}

/// A subagent's delegating run is stored as given at creation, read back
/// with the conversation (and in listings), untouched by patches; without
/// one it is `None`.
pub async fn conversation_delegated_from_is_kept(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let parent = new_conversation(store, user.id, "parent").await;
    let session = start_session(store, parent.id, "hi").await;
    let origin = DelegatedFrom::new(parent.id, session.id);
    let child = ok(
        store
            .create_conversation(NewConversation::new(user.id).with_delegated_from(origin))
            .await,
        "create_conversation(delegated)",
    );
    assert_eq!(child.delegated_from, Some(origin), "create must return it");
    assert_eq!(child.forked_from, None, "a child is no fork");
    let read = ok(store.get_conversation(child.id).await, "get_conversation");
    assert_eq!(read, child, "the origin must be stored");
    let mut patch = ConversationPatch::default();
    patch.title = Some(Some("renamed".into()));
    let patched = ok(
        store.update_conversation(child.id, patch).await,
        "update_conversation",
    );
    assert_eq!(patched.delegated_from, Some(origin), "patches keep it");
    assert_eq!(parent.delegated_from, None, "a plain conversation has none");
    let listed = ok(
        store
            .list_conversations(ConversationQuery::for_owner(user.id))
            .await,
        "list_conversations",
    );
    assert!(
        listed
            .items
            .iter()
            .any(|c| c.id == child.id && c.delegated_from == Some(origin)),
        "listings carry the origin"
    );
}

/// The metadata key `forked_from` is reserved for the server: setting it on
/// create or in a patch is invalid and changes nothing; `null` (removing
/// it) is allowed.
pub async fn conversation_reserved_metadata_is_rejected(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let planted =
        meta(json!({"forked_from": {"session_id": "0193b7c0-0000-7000-8000-000000000000"}}));
    expect_invalid(
        store
            .create_conversation(NewConversation::new(user.id).with_metadata(planted.clone()))
            .await,
        "create_conversation(reserved key)",
    );
    let conversation = new_conversation(store, user.id, "c").await;
    let mut patch = ConversationPatch::default();
    patch.metadata = Some(planted);
    expect_invalid(
        store.update_conversation(conversation.id, patch).await,
        "update_conversation(reserved key)",
    );
    let read = ok(
        store.get_conversation(conversation.id).await,
        "get_conversation",
    );
    assert_eq!(read, conversation, "a refused patch changes nothing");
    let mut removal = ConversationPatch::default();
    removal.metadata = Some(meta(json!({"forked_from": null})));
    ok(
        store.update_conversation(conversation.id, removal).await,
        "update_conversation(remove reserved key)",
    );
}
