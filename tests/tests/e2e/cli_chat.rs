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

/// A newcomer's first command is the in-process chat, before any
/// `netherbrain agent`: it uses the config file's preset, creates the admin
/// and prints its token once; later commands and the agent reuse both.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_command_prepares_the_store_like_the_agent() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider.answer(Reply::text(&["Hello ", "newcomer."])).await;
    let mut agent = Agent::unstarted(
        &provider,
        &[PresetDoc::new("planner")],
        netherbrain_tests::AgentOptions::default(),
    )?;
    let run = |args: &'static [&'static str]| {
        let mut command = tokio::process::Command::from(agent.command());
        command.args(args).kill_on_drop(true);
        async move {
            tokio::time::timeout(PATIENCE, command.output())
                .await
                .map_err(|_| anyhow!("`netherbrain {args:?}` did not exit"))?
                .map_err(anyhow::Error::from)
        }
    };

    let out = run(&["chat", "-m", "hi"]).await?;
    assert_eq!(success(&out).trim(), "Hello newcomer.");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("Created the `admin` account"), "{stderr}");
    let token = stderr
        .split_whitespace()
        .find(|w| w.starts_with("nb_"))
        .ok_or_else(|| anyhow!("no token in {stderr}"))?
        .to_owned();

    let out = run(&["presets", "list"]).await?;
    let listed = success(&out);
    assert!(listed.contains("planner"), "{listed}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("Created the"), "created twice: {stderr}");

    agent.start_again().await?;
    assert!(!agent.logs().contains("Created the"), "{}", agent.logs());
    let me: serde_json::Value = reqwest::Client::new()
        .get(agent.url("/api/auth/me"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(me["username"], "admin", "{me}");
    let list = agent.admin().get("/api/conversations/list").await?;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "the chat's conversation is the agent's: {list}"
    );
    Ok(())
}
