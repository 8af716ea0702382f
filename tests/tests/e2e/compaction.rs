//! Compaction survives a restart: a summary written by context compaction
//! is persisted, and after the binary restarts on the same data directory
//! the model is sent the summary instead of the turns it replaced.

use anyhow::{Result, anyhow};
use netherbrain_tests::{Agent, FakeProvider, PresetDoc, Reply};
use serde_json::{Value, json};

/// What the fake model answers a compaction request with.
const SUMMARY: &str = "SUMMARY-7F3A: the user shared two long notes about their garden.";
/// The system prompt of core's compaction call.
const COMPACTION_REQUEST: &str = "You compact conversations";

/// A user turn long enough that two of them exceed the budget.
fn long_turn(marker: &str) -> String {
    format!("{marker} {}", "tomatoes need sun and water. ".repeat(20))
}

/// Every `summary` content part in a conversation's turns.
fn summary_parts(turns: &Value) -> Vec<String> {
    turns["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["type"] == "summary")
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_summary_replaces_old_turns_across_a_restart() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer_when(COMPACTION_REQUEST, Reply::text(&[SUMMARY]))
        .await;
    provider.answer(Reply::text(&["Noted."])).await;
    let mut agent = Agent::start(
        &provider,
        &[PresetDoc::new("gardener").with_summarizing_budget(200)],
    )
    .await?;
    let admin = agent.admin();
    let preset = admin.preset_id("gardener").await?;

    let first = admin
        .run_streamed(json!({"preset_id": preset, "input": long_turn("MARKER-ONE")}))
        .await?;
    assert_eq!(first.status().as_deref(), Some("committed"));
    let cid = first.conversation_id.clone();
    assert_eq!(
        provider.requests().await.len(),
        1,
        "one turn fits: no compaction"
    );

    // The second long turn puts the history over budget: compacted first.
    let second = admin
        .run_streamed(json!({"conversation_id": cid, "input": long_turn("MARKER-TWO")}))
        .await?;
    assert_eq!(second.status().as_deref(), Some("committed"));
    assert!(
        second
            .events
            .iter()
            .any(|e| e.event == "CUSTOM" && e.data["name"] == "compaction"),
        "the run reports its compaction: {:?}",
        second.events
    );
    let requests = provider.requests().await;
    assert_eq!(requests.len(), 3, "compaction + answer: {requests:?}");
    assert!(requests[1].mentions(COMPACTION_REQUEST) && requests[1].mentions("MARKER-ONE"));
    let turns = admin
        .get(&format!("/api/conversations/{cid}/turns"))
        .await?;
    assert_eq!(summary_parts(&turns), [SUMMARY], "{turns}");

    agent.restart().await?;
    let admin = agent.admin();

    let third = admin
        .run_streamed(json!({"conversation_id": cid, "input": "MARKER-THREE what now?"}))
        .await?;
    assert_eq!(third.status().as_deref(), Some("committed"));
    let requests = provider.requests().await;
    let after_restart = requests
        .get(3)
        .ok_or_else(|| anyhow!("no request after the restart: {requests:?}"))?;
    let sent = after_restart.conversation();
    assert_eq!(
        sent.first().map(|(_, text)| text.as_str()),
        Some(SUMMARY),
        "the history starts from the stored summary: {sent:?}"
    );
    assert!(
        !after_restart.mentions("MARKER-ONE"),
        "a summarised turn was sent again: {sent:?}"
    );
    assert!(
        sent.last()
            .is_some_and(|(role, text)| role == "user" && text.starts_with("MARKER-THREE")),
        "{sent:?}"
    );
    let turns = admin
        .get(&format!("/api/conversations/{cid}/turns"))
        .await?;
    assert_eq!(turns["items"].as_array().map(Vec::len), Some(3), "{turns}");
    assert_eq!(summary_parts(&turns), [SUMMARY], "{turns}");
    Ok(())
}
