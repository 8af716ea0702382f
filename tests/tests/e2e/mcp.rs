//! An MCP server through the binary: a preset declares the stdio test
//! server (`src/bin/mcp_stdio_server.rs`, written with `rmcp`); the model
//! (the real OpenAI adapter against the fake provider) calls its read-only
//! `lookup` tool, which runs at once, and its `add` tool, which asks by
//! default; the user approves, and the final answer uses both results. The
//! server's process ends with each run. A server that cannot start is
//! skipped, and a malformed declaration is refused with `422`.

use std::time::Duration;

use anyhow::{Result, bail};
use netherbrain_tests::{Agent, AgentOptions, FakeProvider, PresetDoc, Reply, redact, sse};
use serde_json::{Value, json};

const SERVER: &str = env!("CARGO_BIN_EXE_mcp-stdio-server");

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

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2) != Some("Z"))
        .unwrap_or(false)
}

/// Waits (bounded) for the server process written to `file` to be gone.
async fn server_gone(file: &std::path::Path) -> bool {
    let Some(pid) = std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return false;
    };
    for _ in 0..200 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_calls_mcp_tools_and_the_answer_uses_their_results() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer(Reply::tool_calls(&[
            (
                "call_lookup",
                "mcp_facts_lookup",
                json!({"key": "capital-of-atlantis"}),
            ),
            ("call_secret", "mcp_facts_env", json!({"name": "API_TOKEN"})),
            ("call_add", "mcp_facts_add", json!({"a": 40, "b": 2})),
        ]))
        .await;
    provider
        .answer_when(
            "Poseidonia",
            Reply::text(&["Atlantis's capital is Poseidonia, and 40 + 2 = 42."]),
        )
        .await;
    let home = tempfile::tempdir()?;
    let pid_file = home.path().join("mcp.pid");
    let server = format!(
        r#"mcp_servers = {{ facts = {{ command = {SERVER:?}, env = {{ MCP_TEST_PID_FILE = {:?} }}, env_from = {{ API_TOKEN = "E2E_MCP_TOKEN" }} }} }}"#,
        pid_file.display().to_string()
    );
    let agent = Agent::start_with(
        &provider,
        &[PresetDoc::new("researcher").with_config(&server)],
        AgentOptions::default().env("E2E_MCP_TOKEN", "token-from-the-server-env"),
    )
    .await?;
    let admin = agent.admin();
    let conversation = admin.post("/api/conversations/create", &json!({})).await?;
    let preset = admin.preset_id("researcher").await?;
    let first = admin
        .run_streamed(json!({
            "conversation_id": conversation["id"],
            "preset_id": preset,
            "input": "What is the capital of Atlantis, and what is 40 + 2?",
        }))
        .await?;
    // lookup and env ran; add (not read-only) waits for approval
    assert_eq!(first.status().as_deref(), Some("awaiting_tool_results"));
    insta::assert_json_snapshot!("mcp_first_run", wire(&first.events));
    assert!(
        server_gone(&pid_file).await,
        "the MCP server outlived its run"
    );
    std::fs::remove_file(&pid_file)?;

    let resp = admin
        .post_request(
            &format!("/api/sessions/{}/resume", first.session_id),
            &json!({"decisions": [{"decision": "approve", "call_id": "call_add"}]}),
        )
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("resume: {} {}", resp.status(), resp.text().await?);
    }
    let second = sse::read(resp).await?;
    insta::assert_json_snapshot!("mcp_after_approval", wire(&second));
    let text: String = second
        .iter()
        .filter(|e| e.event == "TEXT_MESSAGE_CONTENT")
        .filter_map(|e| e.data["delta"].as_str())
        .collect();
    assert_eq!(text, "Atlantis's capital is Poseidonia, and 40 + 2 = 42.");
    assert!(
        server_gone(&pid_file).await,
        "the MCP server outlived its run"
    );

    // the model got the tools' schemas and saw every result
    let requests = provider.wait_for(2).await?;
    let tools = requests[0].body["tools"].to_string();
    assert!(tools.contains("mcp_facts_lookup"), "{tools}");
    let last = requests
        .last()
        .map(|r| r.body.to_string())
        .unwrap_or_default();
    assert!(
        last.contains("The capital of Atlantis is Poseidonia."),
        "{last}"
    );
    assert!(last.contains("token-from-the-server-env"), "{last}");
    assert!(last.contains("42"), "{last}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preset_with_a_broken_mcp_server_still_runs() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider.answer(Reply::text(&["Still here."])).await;
    let agent = Agent::start(
        &provider,
        &[PresetDoc::new("broken")
            .with_config(r#"mcp_servers = { gone = { command = "/nonexistent/mcp" } }"#)],
    )
    .await?;
    let admin = agent.admin();
    let conversation = admin.post("/api/conversations/create", &json!({})).await?;
    let preset = admin.preset_id("broken").await?;
    let run = admin
        .run_streamed(json!({
            "conversation_id": conversation["id"],
            "preset_id": preset,
            "input": "Hello?",
        }))
        .await?;
    assert_eq!(run.status().as_deref(), Some("committed"));
    assert_eq!(run.text(), "Still here.");

    // A declaration that cannot work is refused when the preset is saved.
    for servers in [
        json!({"both": {"command": "x", "url": "http://127.0.0.1:9/mcp"}}),
        json!({"bad name": {"command": "x"}}),
        json!({"leak": {"command": "x", "env_from": {"K": "NETHER_AUTH_TOKEN"}}}),
    ] {
        let resp = admin
            .post_request(
                "/api/presets/create",
                &json!({"name": "bad", "config": {"profile": "fake", "model": "m", "mcp_servers": servers}}),
            )
            .send()
            .await?;
        assert_eq!(resp.status(), 422, "{servers}");
    }
    Ok(())
}
