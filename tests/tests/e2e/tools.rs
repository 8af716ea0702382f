//! Tools through the binary: a preset enables `filesystem` and `shell`;
//! the model (the real OpenAI adapter against the fake provider) calls
//! `filesystem_view`, which runs at once, and `shell_run`, which the
//! policy makes wait for approval; the user approves over the API and the
//! final answer uses both results. A denied tool's result goes back to
//! the model, and `/api/toolsets` lists the built-in sets.

use anyhow::{Result, bail};
use netherbrain_tests::{Agent, FakeProvider, PresetDoc, Reply, redact, sse};
use serde_json::{Value, json};

fn wire(events: &[sse::Sse], data_dir: &str) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut v = json!({"id": e.id, "event": e.event, "data": e.data});
            redact(&mut v);
            let text = v.to_string().replace(data_dir, "[data]");
            serde_json::from_str(&text).unwrap_or(Value::Null)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn view_runs_shell_waits_for_approval_and_the_answer_uses_both() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer(Reply::tool_calls(&[
            ("call_view", "filesystem_view", json!({"path": "notes.txt"})),
            (
                "call_shell",
                "shell_run",
                json!({"command": "echo shell-said-$((6*7))"}),
            ),
        ]))
        .await;
    provider
        .answer_when(
            "shell-said-42",
            Reply::text(&["The notes say hello; the shell said 42."]),
        )
        .await;
    let agent = Agent::start(
        &provider,
        &[PresetDoc::new("coder")
            .with_config(r#"toolsets = ["filesystem", "shell"]"#)
            .with_config(r#"tool_options = { shell = { sandbox = "none" } }"#)],
    )
    .await?;
    let admin = agent.admin();
    let toolsets = admin.get("/api/toolsets").await?;
    assert_eq!(
        toolsets["items"],
        json!([
            "ask_user",
            "delegate",
            "filesystem",
            "memory",
            "schedule",
            "shell",
            "web"
        ])
    );
    let data_dir = agent.data_dir().canonicalize()?;
    let project = data_dir.join("workspaces/demo");
    std::fs::create_dir_all(&project)?;
    std::fs::write(project.join("notes.txt"), "hello from the notes\n")?;
    let ws = admin
        .post(
            "/api/workspaces/create",
            &json!({"name": "demo", "project_dirs": [project]}),
        )
        .await?;
    // outside the allowed roots: refused (403: well-formed, not permitted here)
    let outside = admin
        .post_request(
            "/api/workspaces/create",
            &json!({"name": "etc", "project_dirs": ["/etc"]}),
        )
        .send()
        .await?;
    assert_eq!(outside.status(), 403);
    let conversation = admin
        .post(
            "/api/conversations/create",
            &json!({"workspace_id": ws["id"]}),
        )
        .await?;
    let preset = admin.preset_id("coder").await?;
    let first = admin
        .run_streamed(json!({
            "conversation_id": conversation["id"],
            "preset_id": preset,
            "input": "What do the notes say, and what does the shell say?",
        }))
        .await?;
    assert_eq!(first.status().as_deref(), Some("awaiting_tool_results"));
    let dd = data_dir.display().to_string();
    insta::assert_json_snapshot!("tools_first_run", wire(&first.events, &dd));

    let resp = admin
        .post_request(
            &format!("/api/sessions/{}/resume", first.session_id),
            &json!({"decisions": [{"decision": "approve", "call_id": "call_shell"}]}),
        )
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("resume: {} {}", resp.status(), resp.text().await?);
    }
    let second = sse::read(resp).await?;
    insta::assert_json_snapshot!("tools_after_approval", wire(&second, &dd));
    let text: String = second
        .iter()
        .filter(|e| e.event == "TEXT_MESSAGE_CONTENT")
        .filter_map(|e| e.data["delta"].as_str())
        .collect();
    assert_eq!(text, "The notes say hello; the shell said 42.");

    // the model saw both results
    let requests = provider.wait_for(2).await?;
    let last = requests
        .last()
        .map(|r| r.body.to_string())
        .unwrap_or_default();
    assert!(last.contains("hello from the notes"), "{last}");
    assert!(last.contains("shell-said-42"), "{last}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_tool_never_runs_and_the_model_reads_the_denial() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer(Reply::tool_calls(&[(
            "call_rm",
            "shell_run",
            json!({"command": "touch should-not-exist"}),
        )]))
        .await;
    provider
        .answer_when(
            "denied by this agent",
            Reply::text(&["I may not run commands."]),
        )
        .await;
    let agent = Agent::start(
        &provider,
        &[PresetDoc::new("locked")
            .with_config(r#"toolsets = ["shell"]"#)
            .with_config(r#"tool_policy = { shell_run = "deny" }"#)],
    )
    .await?;
    let admin = agent.admin();
    let project = agent.data_dir().join("workspaces/locked");
    std::fs::create_dir_all(&project)?;
    let ws = admin
        .post(
            "/api/workspaces/create",
            &json!({"name": "locked", "project_dirs": [project]}),
        )
        .await?;
    let conversation = admin
        .post(
            "/api/conversations/create",
            &json!({"workspace_id": ws["id"]}),
        )
        .await?;
    let preset = admin.preset_id("locked").await?;
    let run = admin
        .run_streamed(json!({
            "conversation_id": conversation["id"],
            "preset_id": preset,
            "input": "Create a file",
        }))
        .await?;
    assert_eq!(run.status().as_deref(), Some("committed"));
    assert_eq!(run.text(), "I may not run commands.");
    let result = run
        .events
        .iter()
        .find(|e| e.event == "TOOL_CALL_RESULT")
        .map(|e| e.data.clone())
        .unwrap_or_default();
    assert_eq!(result["status"], "denied", "{result}");
    assert!(!project.join("should-not-exist").exists());
    Ok(())
}
