//! The CLI against the server: `netherbrain chat --url … --token … -m …`
//! prints the streamed answer, and `--conversation ID` continues the same
//! conversation.

use std::process::Output;

use anyhow::{Result, anyhow};
use netherbrain_tests::{Agent, FakeProvider, PATIENCE, PresetDoc, Reply};
use serde_json::json;

async fn chat(agent: &Agent, args: &[&str]) -> Result<Output> {
    let mut command = tokio::process::Command::from(agent.command());
    command
        .args(["chat", "--url", &agent.base_url(), "--token", agent.token()])
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(PATIENCE, command.output())
        .await
        .map_err(|_| anyhow!("`netherbrain chat {args:?}` did not exit within {PATIENCE:?}"))??;
    Ok(out)
}

fn success(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_prints_the_answer_and_continues_a_conversation() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer_when(
            "What about Tuesday",
            Reply::text(&["Tuesday ", "works too."]),
        )
        .await;
    provider
        .answer(Reply::text(&["Monday ", "is ", "free."]))
        .await;
    let agent = Agent::start(&provider, &[PresetDoc::new("planner")]).await?;

    // The server's only preset is chosen without --preset.
    let out = chat(&agent, &["-m", "When am I free?"]).await?;
    assert_eq!(success(&out).trim(), "Monday is free.");

    let admin = agent.admin();
    let list = admin.get("/api/conversations/list").await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "one conversation: {list}");
    let id = items[0]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no id in {list}"))?
        .to_owned();

    let out = chat(
        &agent,
        &["--conversation", &id, "-m", "What about Tuesday?"],
    )
    .await?;
    assert_eq!(success(&out).trim(), "Tuesday works too.");

    // The second request carries the first exchange, in order.
    let requests = provider.requests().await;
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        requests[1].conversation(),
        [
            ("user".to_owned(), "When am I free?".to_owned()),
            ("assistant".to_owned(), "Monday is free.".to_owned()),
            ("user".to_owned(), "What about Tuesday?".to_owned()),
        ]
    );
    // Still one conversation, now with two turns.
    let list = admin.get("/api/conversations/list").await?;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    let turns = admin.get(&format!("/api/conversations/{id}/turns")).await?;
    let statuses: Vec<_> = turns["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["session"]["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!("committed"), json!("committed")],
        "{turns}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_strips_terminal_escapes_from_model_text() -> Result<()> {
    let provider = FakeProvider::start().await;
    // Clear screen, retitle the window, carriage return, a split CSI.
    provider
        .answer(Reply::text(&[
            "safe\u{1b}[2J ",
            "\u{1b}]0;owned\u{7}text\r",
            "\u{1b}",
            "[31m red\u{9b}0m",
        ]))
        .await;
    let agent = Agent::start(&provider, &[PresetDoc::new("planner")]).await?;
    let out = chat(&agent, &["-m", "hello"]).await?;
    let stdout = success(&out);
    assert!(
        !stdout
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{stdout:?}"
    );
    assert_eq!(stdout.trim(), "safe[2J ]0;ownedtext[31m red0m");
    Ok(())
}
