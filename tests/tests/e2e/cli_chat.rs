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

/// A `tmux` server of its own (private socket) running commands in a
/// terminal, for what only a terminal shows.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn new(dir: &std::path::Path) -> Self {
        Self {
            socket: dir.join("tmux.sock"),
        }
    }

    fn tmux(&self, args: &[&str]) -> Result<String> {
        let out = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .map_err(|e| anyhow!("running tmux (install it: apt-get install tmux): {e}"))?;
        if !out.status.success() {
            anyhow::bail!(
                "tmux {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `command` (its program, arguments and whole environment) in a
    /// new 120×40 window named `name`.
    fn start(&self, name: &str, command: &std::process::Command) -> Result<()> {
        let quote =
            |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
        let mut line = String::from("env -i");
        for (k, v) in command.get_envs() {
            if let Some(v) = v {
                line.push_str(&format!(" {}={}", k.to_string_lossy(), quote(v)));
            }
        }
        if let Some(dir) = command.get_current_dir() {
            line = format!("cd {} && {line}", quote(dir.as_os_str()));
        }
        line.push(' ');
        line.push_str(&quote(command.get_program()));
        for arg in command.get_args() {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        // The window stays after the program exits, to be read.
        self.tmux(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "120",
            "-y",
            "40",
            &line,
        ])?;
        self.tmux(&["set-option", "-t", name, "remain-on-exit", "on"])?;
        Ok(())
    }

    /// Types `keys` once the prompt is up (the editor may drop what is
    /// typed before it takes the terminal).
    async fn type_at_prompt(&self, name: &str, keys: &[&str]) -> Result<()> {
        // capture-pane trims the prompt's trailing space.
        self.wait_for(name, |p| p.lines().any(|l| l.trim_end() == ">"))
            .await?;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        self.send(name, keys)
    }

    /// Ends the chat with Ctrl-D at its prompt and waits for it to exit.
    /// A key typed while the editor is still taking the terminal can be
    /// lost, so Ctrl-D is sent again (at an empty prompt it can only end
    /// the chat) until tmux reports the pane's program gone. (tmux prints
    /// "Pane is dead" only once it has reaped the program, which can lag
    /// far behind under load; `#{pane_dead}` does not.)
    async fn end_at_prompt(&self, name: &str) -> Result<()> {
        let deadline = std::time::Instant::now() + PATIENCE;
        self.type_at_prompt(name, &["C-d"]).await?;
        loop {
            if self.dead(name)? {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let pane = self.tmux(&["capture-pane", "-p", "-t", name])?;
                anyhow::bail!("the chat did not exit on Ctrl-D:\n{pane}");
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            if !self.dead(name)? {
                self.send(name, &["C-d"])?;
            }
        }
    }

    /// Whether the program in window `name` has exited.
    fn dead(&self, name: &str) -> Result<bool> {
        let out = self.tmux(&["display-message", "-p", "-t", name, "#{pane_dead}"])?;
        Ok(out.trim() == "1")
    }

    fn send(&self, name: &str, keys: &[&str]) -> Result<()> {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        self.tmux(&args).map(|_| ())
    }

    /// The window's text once `check` accepts it.
    async fn wait_for(&self, name: &str, check: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let pane = self.tmux(&["capture-pane", "-p", "-t", name])?;
            if check(&pane) {
                return Ok(pane);
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("the terminal never showed what was expected:\n{pane}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// In a terminal, `netherbrain chat` renders the answer's Markdown, edits
/// lines and keeps its history across sessions (Up recalls the last line).
#[tokio::test(flavor = "multi_thread")]
async fn the_terminal_chat_renders_markdown_and_keeps_history() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer(Reply::text(&["**Bold** and `co", "de`\n- item\n"]))
        .await;
    let agent = Agent::unstarted(
        &provider,
        &[PresetDoc::new("planner")],
        netherbrain_tests::AgentOptions::default(),
    )?;
    let tmux = Tmux::new(agent.home());
    let mut chat = agent.command();
    chat.env("TERM", "xterm-256color").arg("chat");

    tmux.start("one", &chat)?;
    tmux.type_at_prompt("one", &["hello there", "Enter"])
        .await?;
    let pane = tmux
        .wait_for("one", |p| {
            p.contains("Bold and code") && p.contains("• item")
        })
        .await?;
    assert!(!pane.contains("**"), "Markdown rendered: {pane}");
    tmux.end_at_prompt("one").await?;

    // A new session: Up brings back the line typed in the last one.
    tmux.start("two", &chat)?;
    tmux.type_at_prompt("two", &["Up", "Enter"]).await?;
    tmux.wait_for("two", |p| p.matches("Bold and code").count() == 1)
        .await?;
    let requests = provider.requests().await;
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        requests[1]
            .conversation()
            .last()
            .map(|(_, text)| text.as_str()),
        Some("hello there"),
        "the recalled line was sent"
    );
    Ok(())
}
