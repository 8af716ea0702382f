//! Users' long-term memories.

#![allow(clippy::float_cmp)]

use super::{
    expect_conflict, expect_invalid, expect_not_found, new_conversation, new_user, new_workspace,
    ok, tick,
};
use crate::ids::{MemoryId, SessionId, UserId, WorkspaceId};
use crate::store::{MemoryPatch, MemoryQuery, NewMemory, StateStore};

/// A memory is created with its source, read back equal, listed newest
/// first per user, changed (a content change drops a stale embedding) and
/// deleted.
pub async fn memory_create_get_list_update_delete(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let bob = new_user(store, "bob").await;
    let conversation = new_conversation(store, ada.id, "tea talk").await;
    let session = SessionId::new();
    let first = ok(
        store
            .create_memory(
                NewMemory::new(ada.id, "Ada prefers green tea")
                    .with_source(Some(conversation.id), Some(session))
                    .with_embedding(Some(vec![0.25, -1.5, 3.0])),
                10,
            )
            .await,
        "create_memory",
    );
    assert_eq!(first.user_id, ada.id);
    assert_eq!(first.source_conversation_id, Some(conversation.id));
    assert_eq!(first.source_session_id, Some(session));
    assert_eq!(first.embedding, Some(vec![0.25, -1.5, 3.0]));
    assert_eq!(first.created_at, first.updated_at);
    assert_eq!(
        ok(store.get_memory(first.id).await, "get_memory"),
        first,
        "a memory reads back as created"
    );
    tick().await;
    let second = ok(
        store
            .create_memory(NewMemory::new(ada.id, "Ada lives in Lisbon"), 10)
            .await,
        "create second",
    );
    ok(
        store
            .create_memory(NewMemory::new(bob.id, "Bob likes coffee"), 10)
            .await,
        "create bob's",
    );
    let listed = ok(store.list_memories(ada.id).await, "list_memories");
    assert_eq!(
        listed.iter().map(|m| m.id).collect::<Vec<_>>(),
        [second.id, first.id],
        "a user's memories, newest first, and only theirs"
    );
    assert_eq!(ok(store.count_memories(ada.id).await, "count"), 2);
    assert_eq!(ok(store.count_memories(bob.id).await, "count"), 1);
    assert_eq!(
        ok(store.list_memories(UserId::new()).await, "list unknown"),
        []
    );

    tick().await;
    let edited = ok(
        store
            .update_memory(first.id, MemoryPatch::content("Ada prefers jasmine tea"))
            .await,
        "update_memory",
    );
    assert_eq!(edited.content, "Ada prefers jasmine tea");
    assert_eq!(edited.embedding, None, "a new text drops the old embedding");
    assert!(edited.updated_at > first.updated_at);
    assert_eq!(edited.created_at, first.created_at);
    assert_eq!(edited.source_conversation_id, Some(conversation.id));
    assert_eq!(ok(store.get_memory(first.id).await, "get edited"), edited);
    let embedded = ok(
        store
            .update_memory(
                first.id,
                MemoryPatch::content("Ada prefers jasmine tea").with_embedding(Some(vec![1.0])),
            )
            .await,
        "update with embedding",
    );
    assert_eq!(embedded.embedding, Some(vec![1.0]));

    ok(store.delete_memory(first.id).await, "delete_memory");
    expect_not_found(store.get_memory(first.id).await, "get deleted");
    expect_not_found(store.delete_memory(first.id).await, "delete twice");
    expect_not_found(
        store
            .update_memory(MemoryId::new(), MemoryPatch::content("x"))
            .await,
        "update unknown",
    );
    assert_eq!(ok(store.count_memories(ada.id).await, "count"), 1);
}

/// A user with `max_per_user` memories gets a conflict; others are not
/// affected; deleting one makes room again.
pub async fn memory_full_is_a_conflict(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let bob = new_user(store, "bob").await;
    let one = ok(
        store.create_memory(NewMemory::new(ada.id, "one"), 2).await,
        "first",
    );
    ok(
        store.create_memory(NewMemory::new(ada.id, "two"), 2).await,
        "second",
    );
    expect_conflict(
        store
            .create_memory(NewMemory::new(ada.id, "three"), 2)
            .await,
        "a full memory",
    );
    assert_eq!(ok(store.count_memories(ada.id).await, "count"), 2);
    ok(
        store
            .create_memory(NewMemory::new(bob.id, "bob's"), 2)
            .await,
        "another user has room",
    );
    ok(store.delete_memory(one.id).await, "delete");
    ok(
        store
            .create_memory(NewMemory::new(ada.id, "three"), 2)
            .await,
        "room again",
    );
    expect_not_found(
        store
            .create_memory(NewMemory::new(UserId::new(), "nobody"), 2)
            .await,
        "unknown user",
    );
    expect_not_found(
        store
            .create_memory(
                NewMemory::new(ada.id, "nowhere").with_workspace(Some(WorkspaceId::new())),
                10,
            )
            .await,
        "unknown workspace",
    );
}

/// Search finds word prefixes of any query word, ranks by how many words
/// match (ties newest first), keeps to the user and the workspace scope.
pub async fn memory_search_ranks_and_isolates(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let bob = new_user(store, "bob").await;
    let home = new_workspace(store, "home").await;
    let work = new_workspace(store, "work").await;
    let tea = ok(
        store
            .create_memory(
                NewMemory::new(ada.id, "Ada drinks green tea every morning"),
                50,
            )
            .await,
        "tea",
    );
    tick().await;
    let garden = ok(
        store
            .create_memory(NewMemory::new(ada.id, "The garden is green in May"), 50)
            .await,
        "garden",
    );
    tick().await;
    let at_home = ok(
        store
            .create_memory(
                NewMemory::new(ada.id, "The green kettle is in the cupboard")
                    .with_workspace(Some(home.id)),
                50,
            )
            .await,
        "home",
    );
    ok(
        store
            .create_memory(NewMemory::new(bob.id, "Bob drinks green tea too"), 50)
            .await,
        "bob",
    );
    ok(
        store
            .create_memory(NewMemory::new(ada.id, "Unrelated: the cat sleeps"), 50)
            .await,
        "unrelated",
    );

    let ids = |found: Vec<crate::store::MemoryRecord>| {
        found.into_iter().map(|m| m.id).collect::<Vec<_>>()
    };
    let found = ok(
        store
            .search_memories(MemoryQuery::new(ada.id, "What TEA, green?", 10))
            .await,
        "search",
    );
    assert_eq!(
        ids(found),
        [tea.id, garden.id],
        "two words beat one; other users and other workspaces are left out"
    );
    let found = ok(
        store
            .search_memories(MemoryQuery::new(ada.id, "gree", 10).in_workspace(Some(home.id)))
            .await,
        "search in a workspace",
    );
    assert_eq!(
        ids(found),
        [at_home.id, garden.id, tea.id],
        "prefixes match; the workspace's memories join the user's; ties newest first"
    );
    let found = ok(
        store
            .search_memories(MemoryQuery::new(ada.id, "green", 10).in_workspace(Some(work.id)))
            .await,
        "search in another workspace",
    );
    assert_eq!(ids(found), [garden.id, tea.id]);
    let found = ok(
        store
            .search_memories(MemoryQuery::new(ada.id, "green", 1))
            .await,
        "limit",
    );
    assert_eq!(ids(found), [garden.id]);
    assert_eq!(
        ok(
            store
                .search_memories(MemoryQuery::new(ada.id, "zebra", 10))
                .await,
            "no match"
        ),
        []
    );
    assert_eq!(
        ok(
            store
                .search_memories(MemoryQuery::new(ada.id, "?!", 10))
                .await,
            "no words"
        ),
        []
    );
}

/// Blank, NUL-holding or over-long content, bad embeddings and bad
/// queries are invalid and change nothing.
pub async fn memory_rejects_bad_input(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    for (content, what) in [("   ", "blank"), ("a\0b", "NUL")] {
        expect_invalid(
            store
                .create_memory(NewMemory::new(ada.id, content), 10)
                .await,
            what,
        );
    }
    let long = "x".repeat(crate::store::validate::MAX_MEMORY_LEN + 1);
    expect_invalid(
        store.create_memory(NewMemory::new(ada.id, long), 10).await,
        "over-long",
    );
    expect_invalid(
        store
            .create_memory(
                NewMemory::new(ada.id, "nan").with_embedding(Some(vec![f32::NAN])),
                10,
            )
            .await,
        "a NaN embedding",
    );
    expect_invalid(
        store
            .create_memory(
                NewMemory::new(ada.id, "empty").with_embedding(Some(vec![])),
                10,
            )
            .await,
        "an empty embedding",
    );
    assert_eq!(ok(store.count_memories(ada.id).await, "count"), 0);
    let kept = ok(
        store
            .create_memory(NewMemory::new(ada.id, "kept"), 10)
            .await,
        "create",
    );
    expect_invalid(
        store.update_memory(kept.id, MemoryPatch::content("")).await,
        "blank update",
    );
    assert_eq!(
        ok(store.get_memory(kept.id).await, "unchanged").content,
        "kept"
    );
    expect_invalid(
        store
            .search_memories(MemoryQuery::new(ada.id, " ", 10))
            .await,
        "blank query",
    );
    expect_invalid(
        store
            .search_memories(MemoryQuery::new(ada.id, "kept", 0))
            .await,
        "zero limit",
    );
}
