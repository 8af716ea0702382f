//! `/api/memories/*` over HTTP: each user's own memories, isolation
//! between users, the admin's `user_id`, the limits as 409 / 422 JSON
//! errors, and the export.

mod common;

use common::{assert_error, start_memories};
use netherbrain_core::memory::MemoryConfig;
use serde_json::{Value, json};

#[tokio::test]
async fn memories_are_their_users_and_the_limits_are_clear() {
    let s = start_memories(MemoryConfig::default().with_limits(2, 40)).await;
    let (ada, _, ada_token) = s.user_token("ada").await;
    let (bob, _, bob_token) = s.user_token("bob").await;
    let post = |token: &str, path: &str, body: Value| {
        s.http
            .post(s.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let get = |token: &str, path: &str| s.http.get(s.url(path)).bearer_auth(token).send();

    let resp = post(
        &ada_token,
        "/api/memories/create",
        json!({"content": "likes tea"}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let tea: Value = resp.json().await.unwrap();
    assert_eq!(tea["content"], "likes tea");
    assert_eq!(tea["user_id"], json!(ada.id));
    assert_eq!(tea["source_conversation_id"], Value::Null);
    assert_eq!(tea["has_embedding"], false);
    let id = tea["id"].as_str().unwrap().to_owned();

    // over-long and blank: 422
    let long = post(
        &ada_token,
        "/api/memories/create",
        json!({"content": "x".repeat(41)}),
    )
    .await
    .unwrap();
    let body = assert_error(long, 422, "invalid").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 40 characters"),
        "{body}"
    );
    let blank = post(
        &ada_token,
        "/api/memories/create",
        json!({"content": "   "}),
    )
    .await
    .unwrap();
    assert_error(blank, 422, "invalid").await;

    // full: 409 with a clear message
    post(
        &ada_token,
        "/api/memories/create",
        json!({"content": "lives in Lisbon"}),
    )
    .await
    .unwrap();
    let full = post(
        &ada_token,
        "/api/memories/create",
        json!({"content": "one more"}),
    )
    .await
    .unwrap();
    let body = assert_error(full, 409, "conflict").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory is full"),
        "{body}"
    );

    // bob sees none of it and cannot touch it
    let listed: Value = get(&bob_token, "/api/memories/list")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));
    for path in [
        format!("/api/memories/{id}/delete"),
        format!("/api/memories/{id}/update"),
    ] {
        let resp = post(&bob_token, &path, json!({"content": "mine now"}))
            .await
            .unwrap();
        assert_error(resp, 404, "not_found").await;
    }
    let peek = get(
        &bob_token,
        &format!("/api/memories/list?user_id={}", ada.id),
    )
    .await
    .unwrap();
    assert_error(peek, 403, "forbidden").await;
    let export = get(
        &bob_token,
        &format!("/api/memories/export?user_id={}", ada.id),
    )
    .await
    .unwrap();
    assert_error(export, 403, "forbidden").await;
    // bob's own memory is not ada's
    post(
        &bob_token,
        "/api/memories/create",
        json!({"content": "likes coffee"}),
    )
    .await
    .unwrap();

    // ada's list: newest first, only hers
    let listed: Value = get(&ada_token, "/api/memories/list")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contents: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["lives in Lisbon", "likes tea"]);

    // edit and delete her own
    let edited: Value = post(
        &ada_token,
        &format!("/api/memories/{id}/update"),
        json!({"content": "likes green tea"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(edited["content"], "likes green tea");
    let deleted = post(&ada_token, &format!("/api/memories/{id}/delete"), json!({}))
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let again = post(&ada_token, &format!("/api/memories/{id}/delete"), json!({}))
        .await
        .unwrap();
    assert_error(again, 404, "not_found").await;

    // an admin reaches another user's memories only by naming the user
    let admin_own: Value = get(&s.admin_token, "/api/memories/list")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        admin_own["items"],
        json!([]),
        "the admin's own, not everyone's"
    );
    let export: Value = get(
        &s.admin_token,
        &format!("/api/memories/export?user_id={}", bob.id),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(export["user_id"], json!(bob.id));
    assert_eq!(export["memories"][0]["content"], "likes coffee");
    assert_eq!(export["memories"].as_array().unwrap().len(), 1);
    s.stop().await;
}
