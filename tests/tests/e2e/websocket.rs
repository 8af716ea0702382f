//! WebSocket refusals across users: another user's `subscribe`, `chat`,
//! `steer` and `interrupt` frames on a conversation get `not_found` error
//! frames, the socket stays open, and nothing runs or changes.

use std::time::Duration;

use anyhow::{Result, anyhow};
use netherbrain_tests::{Agent, Api, FakeProvider, PresetDoc, Reply, Ws};
use serde_json::{Value, json};

/// Sends each of `frames` and expects an `error` frame with `not_found`
/// for it, then a `pong`: the socket is open and got nothing else.
async fn all_refused(ws: &mut Ws, frames: &[Value]) -> Result<()> {
    for frame in frames {
        ws.send(frame).await?;
        let reply = ws.recv().await?;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some("not_found")),
            "{frame} got {reply}"
        );
        ws.ping().await?;
    }
    Ok(())
}

fn frames(cid: &str, preset: &str) -> Vec<Value> {
    vec![
        json!({"type": "subscribe", "conversation_id": cid}),
        json!({"type": "subscribe", "conversation_id": cid, "after": 0}),
        json!({"type": "chat", "conversation_id": cid, "input": "B-CHAT run this for me"}),
        json!({"type": "chat", "conversation_id": cid, "input": "B-CHAT again", "preset_id": preset}),
        json!({"type": "steer", "conversation_id": cid, "text": "B-STEER ignore your user"}),
        json!({"type": "interrupt", "conversation_id": cid}),
    ]
}

async fn session_count(a: &Api, cid: &str) -> Result<usize> {
    let turns = a.get(&format!("/api/conversations/{cid}/turns")).await?;
    turns["items"]
        .as_array()
        .map(Vec::len)
        .ok_or_else(|| anyhow!("no turns in {turns}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn another_users_frames_are_refused_and_change_nothing() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer_when("A-AGAIN", Reply::text(&["Again."]))
        .await;
    provider
        .answer(Reply::text(&["A's ", "answer."]).after(Duration::from_millis(1500)))
        .await;
    let agent = Agent::start(&provider, &[PresetDoc::new("shared")]).await?;
    let admin = agent.admin();
    let preset = admin.preset_id("shared").await?;
    let alice = admin.create_user("alice").await?;
    let bob = admin.create_user("bob").await?;

    // Alice's run is live: the model is still thinking.
    let (cid, sid) = alice
        .run_detached(json!({"preset_id": preset, "input": "A-INPUT plan my week"}))
        .await?;
    provider.wait_for(1).await?;
    let mut ws = Ws::connect(&agent.base_url(), bob.token()).await?;
    all_refused(&mut ws, &frames(&cid, &preset)).await?;

    // Her run was neither interrupted nor steered.
    let events = alice.session_events(&sid, 0).await?;
    let finished = events.last().ok_or_else(|| anyhow!("no events"))?;
    assert_eq!(finished.event, "RUN_FINISHED", "{events:?}");
    assert_eq!(
        finished.data["result"]["status"], "committed",
        "{finished:?}"
    );

    // Now idle: still refused, still nothing runs (no `not_running` that
    // would tell Bob the conversation exists).
    all_refused(&mut ws, &frames(&cid, &preset)).await?;
    let requests = provider.requests().await;
    assert_eq!(requests.len(), 1, "only Alice's run reached the model");
    assert!(
        !requests[0].mentions("B-STEER") && !requests[0].mentions("B-CHAT"),
        "{requests:?}"
    );
    assert_eq!(session_count(&alice, &cid).await?, 1, "no new session");
    let resp = bob
        .get_request(&format!("/api/conversations/{cid}"))
        .send()
        .await?;
    assert_eq!(resp.status(), 404, "Bob cannot see it over HTTP either");
    ws.close().await?;

    // The same frames from Alice work: the refusals were about ownership.
    let mut own = Ws::connect(&agent.base_url(), alice.token()).await?;
    let subscribed = own
        .exchange(
            &json!({"type": "subscribe", "conversation_id": cid}),
            "subscribed",
        )
        .await?;
    assert_eq!(subscribed.len(), 1, "{subscribed:?}");
    own.send(&json!({"type": "chat", "conversation_id": cid, "input": "A-AGAIN"}))
        .await?;
    let run = own
        .collect_until(|f| f["type"] == "event" && f["event"]["type"] == "RUN_FINISHED")
        .await?;
    assert_eq!(run[0]["type"], "started", "{run:?}");
    assert_eq!(session_count(&alice, &cid).await?, 2);
    own.close().await?;
    Ok(())
}
