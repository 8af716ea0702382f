//! Recall of long-term memories with and without embeddings: the real
//! OpenAI embeddings adapter against a fake `/v1/embeddings` on loopback
//! (wiremock), the limits, and the memories a preset injects.

use std::sync::Arc;

use netherbrain_core::MemorySettings;
use netherbrain_core::conversation::ServiceError;
use netherbrain_core::memory::{Embedder, Memories, MemoryConfig};
use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiEmbeddings};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewUser, UserRole};
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A fake embeddings endpoint: each text whose request contains `needle`
/// gets `vector`; mounted in order, the first match wins.
async fn embeddings(server: &MockServer, needle: &str, vector: [f32; 3]) {
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(header("authorization", "Bearer sk-test"))
        .and(body_string_contains(needle))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": "embed-test",
        })))
        .mount(server)
        .await;
}

fn embedder(server: &MockServer) -> Arc<dyn Embedder> {
    Arc::new(OpenAiEmbeddings::new(
        OpenAiConfig::new(format!("{}/v1", server.uri())).with_api_key("sk-test"),
        "embed-test",
    ))
}

#[tokio::test]
async fn embeddings_rank_by_meaning_where_words_do_not_match() {
    let server = MockServer::start().await;
    // texts about drinks point one way, the garden another
    embeddings(&server, "jasmine", [1.0, 0.1, 0.0]).await;
    embeddings(&server, "roses", [0.0, 1.0, 0.2]).await;
    embeddings(&server, "beverage", [0.9, 0.2, 0.0]).await;
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    let plain = Memories::new(store.clone(), MemoryConfig::default());
    let embedded = Memories::new(store.clone(), MemoryConfig::default())
        .with_embedder(Some(embedder(&server)));

    let tea = embedded
        .remember(ada.id, None, "Drinks jasmine tea", None, None)
        .await
        .unwrap();
    let roses = embedded
        .remember(ada.id, None, "Grows roses in the garden", None, None)
        .await
        .unwrap();
    assert_eq!(tea.embedding, Some(vec![1.0, 0.1, 0.0]));
    assert!(roses.embedding.is_some());

    // No word of the query is in any memory: full-text finds nothing …
    let query = "favourite beverage?";
    assert!(
        plain
            .recall(ada.id, None, query, 5)
            .await
            .unwrap()
            .is_empty()
    );
    // … the embeddings find the drink, and only it (the garden is far).
    let found = embedded.recall(ada.id, None, query, 5).await.unwrap();
    assert_eq!(
        found.iter().map(|m| m.id).collect::<Vec<_>>(),
        [tea.id],
        "{found:?}"
    );

    // A word match still counts, after the similar ones.
    let found = embedded
        .recall(ada.id, None, "beverage or garden", 5)
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|m| m.id).collect::<Vec<_>>(),
        [tea.id, roses.id]
    );
}

#[tokio::test]
async fn a_failing_embeddings_endpoint_falls_back_to_full_text() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(500).set_body_string("down"))
        .mount(&server)
        .await;
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    let memories = Memories::new(store.clone(), MemoryConfig::default())
        .with_embedder(Some(embedder(&server)));
    let tea = memories
        .remember(ada.id, None, "Drinks jasmine tea", None, None)
        .await
        .unwrap();
    assert_eq!(tea.embedding, None, "stored without an embedding");
    let found = memories.recall(ada.id, None, "which tea", 5).await.unwrap();
    assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [tea.id]);
}

#[tokio::test]
async fn limits_are_clear_and_injection_keeps_to_its_budget() {
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    let memories = Memories::new(store.clone(), MemoryConfig::default().with_limits(2, 40));
    let long = memories
        .remember(ada.id, None, &"x".repeat(41), None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&long, ServiceError::Invalid(m) if m.contains("at most 40 characters")),
        "{long:?}"
    );
    memories
        .remember(
            ada.id,
            None,
            "tea in the morning with a slice of lemon",
            None,
            None,
        )
        .await
        .unwrap();
    memories
        .remember(
            ada.id,
            None,
            "tea with honey, never any sugar at all",
            None,
            None,
        )
        .await
        .unwrap();
    let full = memories
        .remember(ada.id, None, "tea again", None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&full, ServiceError::Conflict(m) if m.contains("memory is full") && m.contains("2")),
        "{full:?}"
    );

    let off = memories
        .for_prompt(ada.id, None, "tea?", MemorySettings::default())
        .await;
    assert!(off.is_none(), "injection is off by default");
    let both = memories
        .for_prompt(ada.id, None, "tea?", MemorySettings::injected())
        .await
        .unwrap();
    assert_eq!(both.memories.len(), 2);
    assert!(both.prompt.contains(
        "- tea with honey, never any sugar at all\n- tea in the morning with a slice of lemon"
    ));
    assert_eq!(both.event().count, 2);
    // top_k 1: only the best; the smallest budget (16 tokens, ~64
    // characters) holds one of these lines, not two.
    let one = memories
        .for_prompt(
            ada.id,
            None,
            "tea?",
            MemorySettings::injected().with_top_k(1),
        )
        .await
        .unwrap();
    assert_eq!(one.memories.len(), 1);
    let tight = memories
        .for_prompt(
            ada.id,
            None,
            "tea?",
            MemorySettings::injected().with_token_budget(6),
        )
        .await
        .unwrap();
    assert_eq!(tight.memories.len(), 1, "{tight:?}");
    assert!(
        memories
            .for_prompt(ada.id, None, "coffee?", MemorySettings::injected())
            .await
            .is_none(),
        "nothing relevant: nothing injected"
    );
}
