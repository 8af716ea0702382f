//! Long-term memory through the binary: the model (the real OpenAI
//! adapter against the fake provider) calls `memory_remember` in one
//! conversation; a later conversation's run, with a preset that injects
//! memories, gets it in the system prompt the provider receives and names
//! it in a `memories_recalled` event. The memory is the user's: listed,
//! edited, exported and deleted over the API, and never seen by another
//! user.

use anyhow::Result;
use netherbrain_tests::{Agent, FakeProvider, PresetDoc, Reply, redact, sse};
use serde_json::{Value, json};

fn wire(events: &[sse::Sse]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut v = json!({"id": e.id, "event": e.event, "data": e.data});
            redact(&mut v);
            v
        })
        .collect()
}

const REMEMBERED: &str = "Prefers jasmine tea in the morning";

#[tokio::test(flavor = "multi_thread")]
async fn a_remembered_fact_is_recalled_in_a_later_conversation() -> Result<()> {
    let provider = FakeProvider::start().await;
    // Rules mounted earlier win: the later conversation, then the answer
    // after the tool result, then the first request.
    provider
        .answer_when(
            "Which tea should I make",
            Reply::text(&["Jasmine tea, as you like it."]),
        )
        .await;
    provider
        .answer_when(REMEMBERED, Reply::text(&["Noted."]))
        .await;
    provider
        .answer_when(
            "I always drink jasmine tea",
            Reply::tool_calls(&[(
                "call_remember",
                "memory_remember",
                json!({"content": REMEMBERED}),
            )]),
        )
        .await;
    let agent = Agent::start(
        &provider,
        &[PresetDoc::new("companion")
            .with_system_prompt("You are a helpful companion.")
            .with_config(r#"toolsets = ["memory"]"#)
            .with_config("memory = { inject = true, top_k = 3 }")],
    )
    .await?;
    let admin = agent.admin();
    let preset = admin.preset_id("companion").await?;

    let first = admin
        .run_streamed(json!({
            "preset_id": preset,
            "input": "I always drink jasmine tea in the morning.",
        }))
        .await?;
    assert_eq!(first.status().as_deref(), Some("committed"));
    assert_eq!(first.text(), "Noted.");
    let results: Vec<&Value> = first
        .events
        .iter()
        .filter(|e| e.event == "TOOL_CALL_RESULT")
        .map(|e| &e.data)
        .collect();
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(
        results[0].to_string().contains(REMEMBERED),
        "the tool result names the memory: {results:?}"
    );
    // nothing was remembered before this run: no recall event
    assert!(
        !first
            .events
            .iter()
            .any(|e| e.data["name"] == "memories_recalled")
    );

    let listed = admin.get("/api/memories/list").await?;
    let items = listed["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{listed}");
    let memory = &items[0];
    assert_eq!(memory["content"], REMEMBERED);
    assert_eq!(
        memory["source_conversation_id"],
        json!(first.conversation_id)
    );
    assert_eq!(memory["source_session_id"], json!(first.session_id));
    let memory_id = memory["id"].as_str().unwrap_or_default().to_owned();

    // A new conversation: the memory is injected and the event names it.
    let second = admin
        .run_streamed(json!({
            "preset_id": preset,
            "input": "Which tea should I make?",
        }))
        .await?;
    assert_ne!(second.conversation_id, first.conversation_id);
    assert_eq!(second.text(), "Jasmine tea, as you like it.");
    let recalled: Vec<&Value> = second
        .events
        .iter()
        .filter(|e| e.event == "CUSTOM" && e.data["name"] == "memories_recalled")
        .map(|e| &e.data["value"])
        .collect();
    assert_eq!(recalled, [&json!({"ids": [memory_id], "count": 1})]);
    insta::assert_json_snapshot!("memory_recalled_run", wire(&second.events));

    let requests = provider.requests().await;
    let last = requests.last().cloned().expect("the provider was called");
    let system: Vec<String> = last
        .messages()
        .into_iter()
        .filter(|(role, _)| role == "system")
        .map(|(_, text)| text)
        .collect();
    assert_eq!(system.len(), 1, "{system:?}");
    assert!(
        system[0].starts_with("You are a helpful companion."),
        "{system:?}"
    );
    assert!(system[0].contains(&format!("- {REMEMBERED}")), "{system:?}");

    // Another user sees none of it and cannot touch it.
    let bob = admin.create_user("bob").await?;
    assert_eq!(bob.get("/api/memories/list").await?["items"], json!([]));
    let foreign = bob
        .post_request(&format!("/api/memories/{memory_id}/delete"), &json!({}))
        .send()
        .await?;
    assert_eq!(foreign.status(), 404);
    let foreign = bob
        .post_request(
            &format!("/api/memories/{memory_id}/update"),
            &json!({"content": "hijacked"}),
        )
        .send()
        .await?;
    assert_eq!(foreign.status(), 404);
    let admin_id = admin.get("/api/auth/me").await?["id"].clone();
    let peek = bob
        .get_request(&format!(
            "/api/memories/list?user_id={}",
            admin_id.as_str().unwrap_or_default()
        ))
        .send()
        .await?;
    assert_eq!(peek.status(), 403);
    // bob's own run recalls nothing of the admin's
    let bobs = bob
        .run_streamed(json!({
            "preset_id": preset,
            "input": "Which tea should I make?",
        }))
        .await?;
    assert!(
        !bobs
            .events
            .iter()
            .any(|e| e.data["name"] == "memories_recalled")
    );

    // The owner edits, exports and deletes it.
    let edited = admin
        .post(
            &format!("/api/memories/{memory_id}/update"),
            &json!({"content": "Prefers green tea"}),
        )
        .await?;
    assert_eq!(edited["content"], "Prefers green tea");
    let export = admin.get("/api/memories/export").await?;
    assert_eq!(export["user_id"], admin_id);
    assert_eq!(export["memories"][0]["content"], "Prefers green tea");
    let deleted = admin
        .post_request(&format!("/api/memories/{memory_id}/delete"), &json!({}))
        .send()
        .await?;
    assert_eq!(deleted.status(), 204);
    assert_eq!(admin.get("/api/memories/list").await?["items"], json!([]));
    Ok(())
}
