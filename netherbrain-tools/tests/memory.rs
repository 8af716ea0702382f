//! The `memory` tool set: it acts for the owner of the run's conversation
//! (from the store, never from the arguments), keeps to that user, and
//! reports limits and unknown ids as error results.

use std::sync::Arc;
use std::time::Duration;

use netherbrain_core::SessionId;
use netherbrain_core::memory::{Memories, MemoryConfig};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewConversation, NewUser, UserRole};
use netherbrain_core::tool::{ToolContext, ToolError};
use netherbrain_tools::memory::MemoryTools;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn remember_recall_forget_act_for_the_conversation_owner_only() {
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    let bob = store
        .create_user(NewUser::new("bob", UserRole::User))
        .await
        .unwrap();
    let ada_chat = store
        .create_conversation(NewConversation::new(ada.id))
        .await
        .unwrap();
    let bob_chat = store
        .create_conversation(NewConversation::new(bob.id))
        .await
        .unwrap();
    let memories = Memories::new(store.clone(), MemoryConfig::default().with_limits(2, 100));
    let tools = MemoryTools::new(memories).registry().unwrap();
    let session = SessionId::new();
    let in_ada = || ToolContext::new(session, ada_chat.id);
    let in_bob = || ToolContext::new(SessionId::new(), bob_chat.id);

    let out = tools
        .call(
            "memory_remember",
            json!({"content": "Ada prefers green tea"}),
            in_ada(),
            T,
        )
        .await
        .unwrap();
    let remembered: Value = serde_json::from_str(&out.content).unwrap();
    let id = remembered["remembered"]["id"].as_str().unwrap().to_owned();
    let stored = store.list_memories(ada.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].source_conversation_id, Some(ada_chat.id));
    assert_eq!(stored[0].source_session_id, Some(session));
    // no argument can name another user
    let err = tools
        .call(
            "memory_remember",
            json!({"content": "x", "user_id": bob.id}),
            in_ada(),
            T,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::InvalidArguments(_)), "{err:?}");

    let found = tools
        .call("memory_recall", json!({"query": "which tea?"}), in_ada(), T)
        .await
        .unwrap();
    assert!(
        found.content.contains("Ada prefers green tea"),
        "{}",
        found.content
    );
    let bobs = tools
        .call("memory_recall", json!({"query": "which tea?"}), in_bob(), T)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&bobs.content).unwrap(),
        json!({"memories": []})
    );
    let err = tools
        .call("memory_forget", json!({"id": id}), in_bob(), T)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no memory"), "{err}");
    assert_eq!(store.count_memories(ada.id).await.unwrap(), 1);

    tools
        .call(
            "memory_remember",
            json!({"content": "Ada lives in Lisbon"}),
            in_ada(),
            T,
        )
        .await
        .unwrap();
    let full = tools
        .call(
            "memory_remember",
            json!({"content": "one more"}),
            in_ada(),
            T,
        )
        .await
        .unwrap_err();
    assert!(full.to_string().contains("memory is full"), "{full}");
    let bad = tools
        .call("memory_forget", json!({"id": "not-an-id"}), in_ada(), T)
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("not a memory id"), "{bad}");

    tools
        .call("memory_forget", json!({"id": id}), in_ada(), T)
        .await
        .unwrap();
    assert_eq!(store.count_memories(ada.id).await.unwrap(), 1);
}
