//! Serve and stream: a run over HTTP streams AG-UI events, and the
//! conversation and its turns are then readable over the API.

use anyhow::Result;
use netherbrain_tests::{Agent, FakeProvider, PresetDoc, Reply, redact};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn a_run_streams_its_events_and_is_readable_afterwards() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer(Reply::text(&["Hello", " from", " the", " fake."]))
        .await;
    let agent = Agent::start(
        &provider,
        &[PresetDoc::new("helper").with_system_prompt("Be brief.")],
    )
    .await?;
    let admin = agent.admin();
    let preset = admin.preset_id("helper").await?;

    let run = admin
        .run_streamed(json!({"preset_id": preset, "input": "Say hello"}))
        .await?;
    let ids: Vec<u64> = run.events.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "ids are 1, 2, … without gaps"
    );
    assert_eq!(run.text(), "Hello from the fake.");
    assert_eq!(run.status().as_deref(), Some("committed"));
    // AG-UI names the conversation the thread and the session the run.
    assert_eq!(run.events[0].data["threadId"], json!(run.conversation_id));
    assert_eq!(run.events[0].data["runId"], json!(run.session_id));
    let mut stream: Vec<Value> = run
        .events
        .iter()
        .map(|e| json!({"id": e.id, "event": e.event, "data": e.data}))
        .collect();
    stream.iter_mut().for_each(redact);
    insta::assert_json_snapshot!("streamed_run", stream);

    // The model got the system prompt and the input through the adapter.
    let requests = provider.requests().await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].body["model"], "fake-model");
    assert_eq!(requests[0].body["stream"], true);
    // A preset without `max_tokens` gets the server's default output cap.
    assert_eq!(
        requests[0].body["max_tokens"], 4096,
        "{:?}",
        requests[0].body
    );
    assert_eq!(
        requests[0].messages(),
        [
            ("system".to_owned(), "Be brief.".to_owned()),
            ("user".to_owned(), "Say hello".to_owned())
        ]
    );

    // The conversation, its turns and the replayed log are readable.
    let cid = &run.conversation_id;
    let detail = admin.get(&format!("/api/conversations/{cid}")).await?;
    assert_eq!(detail["id"], json!(cid), "{detail}");
    assert!(detail["active_session"].is_null(), "{detail}");
    assert_eq!(
        detail["usage"]["fake-model"]["output_tokens"], 4,
        "{detail}"
    );
    let list = admin.get("/api/conversations/list").await?;
    assert!(
        list["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|c| c["id"] == json!(cid))),
        "{list}"
    );
    let mut turns = admin
        .get(&format!("/api/conversations/{cid}/turns"))
        .await?;
    assert_eq!(turns["items"][0]["session"]["id"], json!(run.session_id));
    redact(&mut turns);
    insta::assert_json_snapshot!("turns_after_one_run", turns);
    let replay = admin.session_events(&run.session_id, 0).await?;
    assert_eq!(replay, run.events, "the stored log replays the live stream");
    Ok(())
}
