//! Subagents through the binary: the model (the real OpenAI adapter
//! against the fake provider) calls `delegate`. In the foreground the
//! parent waits for the subagent's answer and uses it, and the subagent's
//! own attempt to delegate deeper is refused by the depth limit. In the
//! background the call returns at once; the subagent's result reaches the
//! PARENT conversation through its mailbox and, the parent being idle by
//! then, continues it with a new run. The subagent's conversation belongs
//! to the same user, and another user cannot reach it.

use anyhow::{Context, Result, anyhow};
use netherbrain_tests::{Agent, FakeProvider, PresetDoc, Reply, eventually, redact, sse};
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

/// The value of the first CUSTOM event named `name`.
fn custom<'a>(events: &'a [sse::Sse], name: &str) -> Result<&'a Value> {
    events
        .iter()
        .find(|e| e.event == "CUSTOM" && e.data["name"] == name)
        .map(|e| &e.data["value"])
        .ok_or_else(|| anyhow!("no `{name}` event in {events:#?}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v[key]
        .as_str()
        .with_context(|| format!("no `{key}` in {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreground_subagent_answers_and_cannot_nest_past_the_limit() -> Result<()> {
    let provider = FakeProvider::start().await;
    // the parent, once the subagent answered
    provider
        .answer_when(
            "helper-answer-42",
            Reply::text(&["The helper says helper-answer-42."]),
        )
        .await;
    // the subagent, once its own delegation was refused
    provider
        .answer_when("nested at most", Reply::text(&["helper-answer-42"]))
        .await;
    // the subagent's first round: it tries to delegate further
    provider
        .answer_when(
            "You are the helper",
            Reply::tool_calls(&[(
                "call_deeper",
                "delegate",
                json!({"preset": "helper", "task": "Go one level deeper"}),
            )]),
        )
        .await;
    // the parent's first round
    provider
        .answer(Reply::tool_calls(&[(
            "call_delegate",
            "delegate",
            json!({"preset": "helper", "task": "What is six times seven?"}),
        )]))
        .await;
    let agent = Agent::start(
        &provider,
        &[
            PresetDoc::new("lead").with_config(r#"toolsets = ["delegate"]"#),
            PresetDoc::new("helper")
                .with_system_prompt("You are the helper.")
                .with_config(r#"toolsets = ["delegate"]"#)
                .with_config(r#"tool_options = { delegate = { max_depth = 1 } }"#),
        ],
    )
    .await?;
    let admin = agent.admin();
    let lead = admin.preset_id("lead").await?;
    let run = admin
        .run_streamed(json!({"preset_id": lead, "input": "Ask the helper"}))
        .await?;
    assert_eq!(
        run.status().as_deref(),
        Some("committed"),
        "{:#?}",
        run.events
    );
    assert_eq!(run.text(), "The helper says helper-answer-42.");
    insta::assert_json_snapshot!("foreground_parent_stream", wire(&run.events));

    let started = custom(&run.events, "subagent_started")?;
    assert_eq!(started["preset"], "helper");
    assert_eq!(started["background"], false);
    let completed = custom(&run.events, "subagent_completed")?;
    assert_eq!(completed["status"], "committed");
    assert_eq!(completed["summary"], "helper-answer-42");
    let result = run
        .events
        .iter()
        .find(|e| e.event == "TOOL_CALL_RESULT")
        .context("no tool result")?;
    assert_eq!(result.data["content"], "helper-answer-42");

    // the child: the same owner, linked to the parent run, and its own
    // delegation refused by the depth limit as an error result
    let child_id = str_of(started, "child_conversation_id")?;
    let child = admin.get(&format!("/api/conversations/{child_id}")).await?;
    let parent = admin
        .get(&format!("/api/conversations/{}", run.conversation_id))
        .await?;
    assert_eq!(child["owner"], parent["owner"]);
    assert_eq!(
        child["delegated_from"],
        json!({"conversation_id": run.conversation_id, "session_id": run.session_id})
    );
    assert!(parent["delegated_from"].is_null(), "{parent}");
    let child_events = admin
        .session_events(str_of(started, "child_session_id")?, 0)
        .await?;
    let refused = child_events
        .iter()
        .find(|e| e.event == "TOOL_CALL_RESULT")
        .context("the child made no tool call")?;
    assert_eq!(refused.data["status"], "error", "{:?}", refused.data);
    let content = refused.data["content"].as_str().unwrap_or_default();
    assert!(content.contains("nested at most 1 level"), "{content}");
    // nothing started a third level
    let conversations = admin.get("/api/conversations/list").await?;
    assert_eq!(
        conversations["items"].as_array().map(Vec::len),
        Some(2),
        "{conversations}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_background_subagent_result_continues_the_parent_conversation() -> Result<()> {
    let provider = FakeProvider::start().await;
    // the parent's new run, started by the delivered result
    provider
        .answer_when(
            "Helper found FACT-99",
            Reply::text(&["Parent got FACT-99 from the helper."]),
        )
        .await;
    // the subagent, after its (gated) shell command
    provider
        .answer_when("SHELL-DONE-77", Reply::text(&["Helper found FACT-99"]))
        .await;
    // the subagent's first round: a command that waits for the test's go
    provider
        .answer_when(
            "You are the helper",
            Reply::tool_calls(&[(
                "call_shell",
                "shell_run",
                json!({"command": "while [ ! -e release ]; do sleep 0.05; done; echo SHELL-DONE-77"}),
            )]),
        )
        .await;
    // the parent, once the subagent was started
    provider
        .answer_when(
            "works in the background",
            Reply::text(&["A helper is on it."]),
        )
        .await;
    // the parent's first round
    provider
        .answer(Reply::tool_calls(&[(
            "call_bg",
            "delegate",
            json!({"preset": "helper", "task": "Run the slow check", "background": true}),
        )]))
        .await;
    let agent = Agent::start(
        &provider,
        &[
            PresetDoc::new("lead").with_config(r#"toolsets = ["delegate"]"#),
            PresetDoc::new("helper")
                .with_system_prompt("You are the helper.")
                .with_config(r#"toolsets = ["shell"]"#)
                .with_config(r#"tool_policy = { shell_run = "auto" }"#)
                .with_config(r#"tool_options = { shell = { sandbox = "none" } }"#),
        ],
    )
    .await?;
    let admin = agent.admin();
    let project = agent.data_dir().canonicalize()?.join("workspaces/bg");
    std::fs::create_dir_all(&project)?;
    let ws = admin
        .post(
            "/api/workspaces/create",
            &json!({"name": "bg", "project_dirs": [project]}),
        )
        .await?;
    let conversation = admin
        .post(
            "/api/conversations/create",
            &json!({"workspace_id": ws["id"]}),
        )
        .await?;
    let cid = str_of(&conversation, "id")?.to_owned();
    let lead = admin.preset_id("lead").await?;
    let first = admin
        .run_streamed(json!({
            "conversation_id": cid,
            "preset_id": lead,
            "input": "Start the slow check in the background",
        }))
        .await?;
    assert_eq!(
        first.status().as_deref(),
        Some("committed"),
        "{:#?}",
        first.events
    );
    assert_eq!(first.text(), "A helper is on it.");
    let started = custom(&first.events, "subagent_started")?.clone();
    assert_eq!(started["background"], true);
    let tool_result = first
        .events
        .iter()
        .find(|e| e.event == "TOOL_CALL_RESULT")
        .context("no tool result")?;
    let returned: Value =
        serde_json::from_str(tool_result.data["content"].as_str().unwrap_or("{}"))?;
    assert_eq!(returned["status"], "started");
    assert_eq!(
        returned["child_conversation_id"],
        started["child_conversation_id"]
    );

    // The parent run is over; let the subagent finish.
    std::fs::write(project.join("release"), "go")?;
    let turns_path = format!("/api/conversations/{cid}/turns");
    let turns = eventually("the parent's second run to finish", || async {
        let turns = admin.get(&turns_path).await?;
        let done = turns["items"].as_array().is_some_and(|items| {
            items.len() == 2 && items.iter().all(|t| t["session"]["status"] == "committed")
        });
        Ok(done.then_some(turns))
    })
    .await?;
    let items = turns["items"].as_array().context("no turns")?;
    // turns are newest first or oldest first: find the one that is not the first run
    let second = items
        .iter()
        .find(|t| t["session"]["id"] != json!(first.session_id))
        .context("no second turn")?;
    let input = second["session"]["input"].to_string();
    assert!(input.contains("[subagent result]"), "{input}");
    assert!(input.contains("Helper found FACT-99"), "{input}");
    assert_eq!(
        second["session"]["final_message"],
        "Parent got FACT-99 from the helper."
    );
    assert_eq!(
        second["session"]["parent_session_id"],
        json!(first.session_id)
    );
    let second_id = str_of(&second["session"], "id")?;
    let events = admin.session_events(second_id, 0).await?;
    let completed = custom(&events, "subagent_completed")?;
    assert_eq!(
        completed["child_conversation_id"],
        started["child_conversation_id"]
    );
    assert_eq!(completed["status"], "committed");
    assert_eq!(completed["summary"], "Helper found FACT-99");
    insta::assert_json_snapshot!(
        "background_parent_streams",
        json!({"first_run": wire(&first.events), "continued_run": wire(&events)})
    );

    // the subagent's conversation: the same owner, in the same workspace,
    // linked to the parent run; another user cannot reach it
    let child_id = str_of(&started, "child_conversation_id")?;
    let child = admin.get(&format!("/api/conversations/{child_id}")).await?;
    assert_eq!(child["owner"], conversation["owner"]);
    assert_eq!(child["workspace_id"], ws["id"]);
    assert_eq!(
        child["delegated_from"],
        json!({"conversation_id": cid, "session_id": first.session_id})
    );
    let bob = admin.create_user("bob").await?;
    let foreign = bob
        .get_request(&format!("/api/conversations/{child_id}"))
        .send()
        .await?;
    assert_eq!(foreign.status(), 404);
    let foreign_events = bob
        .get_request(&format!(
            "/api/sessions/{}/events",
            str_of(&started, "child_session_id")?
        ))
        .send()
        .await?;
    assert_eq!(foreign_events.status(), 404);
    let bobs = bob.get("/api/conversations/list").await?;
    assert_eq!(bobs["items"], json!([]), "{bobs}");
    Ok(())
}
