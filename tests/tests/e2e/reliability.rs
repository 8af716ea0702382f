//! Runs survive other processes and crashes: a `kill -9` mid-run keeps the
//! committed turns and ends the crashed run clearly, a chat beside a
//! restarting agent keeps its answer, a killed chat releases its
//! conversation once its lease expires, two agents on one Postgres leave
//! each other's runs alone, and SIGTERM drains as documented.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use netherbrain_tests::{
    Agent, AgentOptions, Api, FakeProvider, PATIENCE, PresetDoc, Reply, postgres_database, until,
};
use serde_json::{Value, json};

/// A provider that answers `slow` messages after `delay` and anything else
/// at once — also a conversation's later `again`, whose history holds the
/// slow message.
async fn provider(delay: Duration) -> FakeProvider {
    let provider = FakeProvider::start().await;
    provider.answer_when("again", Reply::text(&["fine"])).await;
    provider
        .answer_when("slow", Reply::text(&["late ", "answer"]).after(delay))
        .await;
    provider.answer(Reply::text(&["fine"])).await;
    provider
}

async fn status(api: &Api, session: &str) -> Result<Value> {
    api.get(&format!("/api/sessions/{session}/status")).await
}

fn last_event(events: &[netherbrain_tests::sse::Sse]) -> Result<&netherbrain_tests::sse::Sse> {
    events
        .last()
        .ok_or_else(|| anyhow!("the stream had no event"))
}

/// `kill -9` of the agent while a run waits for the model, then a restart
/// on the same database.
async fn crash_mid_run(options: AgentOptions) -> Result<()> {
    let provider = provider(Duration::from_secs(60)).await;
    let options = options.env("NETHER_SESSION_LEASE", "2");
    let mut agent = Agent::start_with(&provider, &[PresetDoc::new("p")], options).await?;
    let admin = agent.admin();
    let preset = admin.preset_id("p").await?;
    let first = admin
        .run_streamed(json!({"preset_id": preset, "input": "hello"}))
        .await?;
    ensure!(first.status().as_deref() == Some("committed"), "{first:?}");
    let conversation = first.conversation_id.clone();
    let (_, crashed) = admin
        .run_detached(json!({"conversation_id": conversation, "input": "slow please"}))
        .await?;
    provider.wait_for(2).await?;
    // What was streamed is written within about a second, not only at the
    // end of the turn.
    until("the crashed run's first events are persisted", || async {
        let s = status(&admin, &crashed).await?;
        ensure!(s["last_event_seq"].as_u64() >= Some(1), "{s}");
        Ok(())
    })
    .await?;
    agent.kill()?;
    agent.start_again().await?;
    let admin = agent.admin();

    // Committed turns are intact.
    let turns = admin
        .get(&format!("/api/conversations/{conversation}/turns"))
        .await?;
    let items = turns["items"].as_array().cloned().unwrap_or_default();
    ensure!(items.len() == 2, "{turns}");
    ensure!(items[0]["session"]["status"] == "committed", "{turns}");
    let texts: Vec<&str> = items[0]["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["content"][0]["text"].as_str())
                .collect()
        })
        .unwrap_or_default();
    ensure!(texts == ["hello", "fine"], "{texts:?}");

    // The crashed run becomes interrupted once its lease has expired.
    until("the crashed run is recovered as interrupted", || async {
        let s = status(&admin, &crashed).await?;
        ensure!(s["status"] == "interrupted" && s["running"] == false, "{s}");
        Ok(())
    })
    .await?;
    // A stream resumed after the last event seen before the crash ends with
    // a clear terminal event.
    let events = admin.session_events(&crashed, 1).await?;
    let last = last_event(&events)?;
    ensure!(
        last.event == "RUN_FINISHED" && last.data["result"]["status"] == "interrupted",
        "{events:?}"
    );
    // The conversation takes a new run.
    let next = admin
        .run_streamed(json!({"conversation_id": conversation, "input": "again"}))
        .await?;
    ensure!(next.status().as_deref() == Some("committed"), "{next:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_run_then_restart_on_sqlite() -> Result<()> {
    crash_mid_run(AgentOptions::default()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_run_then_restart_on_postgres() -> Result<()> {
    let url = postgres_database()?;
    crash_mid_run(AgentOptions::default().database_url(&url)).await
}

/// `netherbrain chat -m …` in its own process, on the agent's database.
fn chat_command(agent: &Agent, lease_secs: &str, message: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::from(agent.command());
    command
        .env("NETHER_SESSION_LEASE", lease_secs)
        .args(["chat", "--preset", "p", "-m", message])
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_keeps_its_answer_while_the_agent_restarts() -> Result<()> {
    let provider = provider(Duration::from_secs(4)).await;
    let options = AgentOptions::default().env("NETHER_SESSION_LEASE", "2");
    let mut agent = Agent::start_with(&provider, &[PresetDoc::new("p")], options).await?;
    let chat = chat_command(&agent, "2", "slow question")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("spawning netherbrain chat")?;
    provider.wait_for(1).await?;
    // The restarting agent recovers only expired leases: the chat's run,
    // renewed by the chat process, is left alone.
    agent.restart().await?;
    let out = tokio::time::timeout(PATIENCE, chat.wait_with_output())
        .await
        .map_err(|_| anyhow!("the chat did not finish"))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "chat exited {}: {stdout} / {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(stdout.trim() == "late answer", "{stdout}");
    let list = agent.admin().get("/api/conversations/list").await?;
    let conversation = list["items"][0]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no conversation: {list}"))?
        .to_owned();
    let turns = agent
        .admin()
        .get(&format!("/api/conversations/{conversation}/turns"))
        .await?;
    ensure!(
        turns["items"][0]["session"]["status"] == "committed",
        "the chat's run is committed: {turns}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_chat_releases_its_conversation() -> Result<()> {
    let provider = provider(Duration::from_secs(60)).await;
    // The agent's own reaper runs rarely here, so the release below is the
    // interrupt's doing.
    let options = AgentOptions::default().env("NETHER_SESSION_LEASE", "300");
    let agent = Agent::start_with(&provider, &[PresetDoc::new("p")], options).await?;
    let mut chat = chat_command(&agent, "5", "slow question")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("spawning netherbrain chat")?;
    provider.wait_for(1).await?;
    chat.kill().await.context("killing the chat")?;
    let admin = agent.admin();
    let list = admin.get("/api/conversations/list").await?;
    let conversation = list["items"][0]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no conversation: {list}"))?
        .to_owned();
    let detail = admin
        .get(&format!("/api/conversations/{conversation}"))
        .await?;
    let session = detail["active_session"]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no active session: {detail}"))?
        .to_owned();
    let interrupt = format!("/api/conversations/{conversation}/interrupt");

    // While its lease lasts the run belongs to the (dead) chat process.
    let s = status(&admin, &session).await?;
    if s["running"] == true {
        let resp = admin.post_request(&interrupt, &json!({})).send().await?;
        ensure!(
            resp.status() == 409,
            "interrupt during the lease: {}",
            resp.status()
        );
        let body: Value = resp.json().await?;
        ensure!(body["error"]["code"] == "running_elsewhere", "{body}");
    }
    until("the lease expires", || async {
        let s = status(&admin, &session).await?;
        ensure!(s["running"] == false, "{s}");
        Ok(())
    })
    .await?;
    // Then an interrupt succeeds (the run is recovered) …
    let interrupted = admin.post(&interrupt, &json!({})).await?;
    ensure!(interrupted["session_id"] == json!(session), "{interrupted}");
    let s = status(&admin, &session).await?;
    ensure!(s["status"] == "interrupted", "{s}");
    // … and the conversation takes a new run.
    let next = admin
        .run_streamed(json!({"conversation_id": conversation, "input": "again"}))
        .await?;
    ensure!(next.status().as_deref() == Some("committed"), "{next:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_agent_on_postgres_leaves_live_runs_alone() -> Result<()> {
    let provider = provider(Duration::from_secs(3)).await;
    let url = postgres_database()?;
    let options = AgentOptions::default()
        .database_url(&url)
        .env("NETHER_SESSION_LEASE", "2");
    let first = Agent::start_with(&provider, &[PresetDoc::new("p")], options.clone()).await?;
    let admin = first.admin();
    let preset = admin.preset_id("p").await?;
    let streaming = tokio::spawn({
        let admin = admin.clone();
        async move {
            admin
                .run_streamed(json!({"preset_id": preset, "input": "slow question"}))
                .await
        }
    });
    provider.wait_for(1).await?;
    let _second = Agent::start_with(&provider, &[PresetDoc::new("p")], options).await?;
    let run = streaming.await??;
    let last = last_event(&run.events)?;
    ensure!(
        last.event == "RUN_FINISHED" && last.data["result"]["status"] == "committed",
        "the first agent's run finished undisturbed: {:?}",
        run.events
    );
    ensure!(run.text() == "late answer", "{}", run.text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_refuses_new_runs_with_503() -> Result<()> {
    let provider = provider(Duration::from_millis(1500)).await;
    let options = AgentOptions::default().env("NETHER_GRACEFUL_SHUTDOWN_TIMEOUT", "10");
    let mut agent = Agent::start_with(&provider, &[PresetDoc::new("p")], options).await?;
    let admin = agent.admin();
    let preset = admin.preset_id("p").await?;
    let streaming = tokio::spawn({
        let admin = admin.clone();
        let preset = preset.clone();
        async move {
            admin
                .run_streamed(json!({"preset_id": preset, "input": "slow question"}))
                .await
        }
    });
    provider.wait_for(1).await?;
    agent.signal_term()?;
    // Draining: a new run is answered 503 with a JSON error, not refused.
    let refused = until("a new run is refused with 503", || async {
        let resp = admin
            .post_request(
                "/api/conversations/run",
                &json!({"preset_id": preset, "input": "hello", "stream": false}),
            )
            .send()
            .await?;
        ensure!(resp.status() == 503, "{}", resp.status());
        Ok(resp.json::<Value>().await?)
    })
    .await?;
    ensure!(refused["error"]["code"] == "unavailable", "{refused}");
    // The run in flight finishes and its stream gets its final events.
    let run = streaming.await??;
    ensure!(
        run.status().as_deref() == Some("committed"),
        "{:?}",
        run.events
    );
    let status = agent.wait_exit().await?;
    ensure!(status.success(), "the agent exited with {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_130() -> Result<()> {
    let provider = provider(Duration::from_secs(60)).await;
    let options = AgentOptions::default().env("NETHER_GRACEFUL_SHUTDOWN_TIMEOUT", "60");
    let mut agent = Agent::start_with(&provider, &[PresetDoc::new("p")], options).await?;
    let admin = agent.admin();
    let preset = admin.preset_id("p").await?;
    admin
        .run_detached(json!({"preset_id": preset, "input": "slow question"}))
        .await?;
    provider.wait_for(1).await?;
    agent.signal_term()?;
    // The first signal drains (the run would take a minute); the second
    // exits at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.signal_term()?;
    let status = agent.wait_exit().await?;
    match status.code() {
        Some(130) => Ok(()),
        other => bail!("expected exit 130, got {other:?}"),
    }
}

/// A provider that streams without end is stopped by the preset's caps,
/// and the server's memory stays proportional to the cap while it streams
/// (a leak or a copy per event would grow far past the bound).
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_never_stops_is_cut_by_the_caps() -> Result<()> {
    const CAP: u64 = 4 * 1024 * 1024;
    let fast = netherbrain_tests::EndlessProvider::start(&"x".repeat(512), Duration::ZERO).await?;
    let slow =
        netherbrain_tests::EndlessProvider::start("tick ", Duration::from_millis(50)).await?;
    let unused = FakeProvider::start().await;
    let presets = [PresetDoc::new("capped").with_limit("max_output_bytes", &CAP.to_string())];
    let agent = Agent::start_with(
        &unused,
        &presets,
        AgentOptions::default().provider_url(&fast.base_url()),
    )
    .await?;
    let admin = agent.admin();
    let preset = admin.preset_id("capped").await?;
    let idle = agent.rss_kib().ok_or_else(|| anyhow!("no RSS"))?;
    let run = admin
        .run_streamed(json!({"preset_id": preset, "input": "go on forever"}))
        .await?;
    let last = last_event(&run.events)?;
    ensure!(
        last.event == "RUN_ERROR" && last.data["code"] == "output_limit",
        "{last:?}"
    );
    let after = agent.rss_kib().ok_or_else(|| anyhow!("no RSS"))?;
    let peak = agent.peak_rss_kib().ok_or_else(|| anyhow!("no peak RSS"))?;
    eprintln!(
        "agent RSS: idle {idle} KiB, after a 4 MiB runaway answer {after} KiB, peak {peak} KiB"
    );
    // The answer is held a few times over while it is committed (the
    // accumulator, the message, its JSON, the driver's copies) and the
    // allocator keeps what it freed; 24 times the cap is far below what a
    // per-event copy or an unbounded log would take.
    let bound = idle + 24 * CAP / 1024;
    ensure!(
        peak < bound,
        "RSS peaked at {peak} KiB (idle {idle} KiB, bound {bound} KiB)"
    );
    drop(agent);

    // A slow endless stream is stopped by the run's deadline.
    let presets = [PresetDoc::new("timed").with_limit("run_timeout_secs", "2")];
    let agent = Agent::start_with(
        &unused,
        &presets,
        AgentOptions::default().provider_url(&slow.base_url()),
    )
    .await?;
    let admin = agent.admin();
    let preset = admin.preset_id("timed").await?;
    let started = std::time::Instant::now();
    let run = admin
        .run_streamed(json!({"preset_id": preset, "input": "tick forever"}))
        .await?;
    let last = last_event(&run.events)?;
    ensure!(
        last.event == "RUN_ERROR" && last.data["code"] == "deadline",
        "{last:?}"
    );
    ensure!(started.elapsed() < PATIENCE, "stopped in time");
    ensure!(run.text().contains("tick"), "what streamed is kept");
    Ok(())
}

/// One retry layer: a model call that keeps failing with 500 is tried
/// `1 + max_provider_retries` times through the real adapter, never more,
/// and the run ends with a clear error that relays nothing of the body.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_provider_is_retried_as_the_preset_says() -> Result<()> {
    for (retries, expected) in [("0", 1), ("2", 3)] {
        let provider = FakeProvider::start().await;
        provider.fail(500).await;
        let presets = [PresetDoc::new("retrying").with_limit("max_provider_retries", retries)];
        let agent = Agent::start_with(&provider, &presets, AgentOptions::default()).await?;
        let admin = agent.admin();
        let preset = admin.preset_id("retrying").await?;
        let run = admin
            .run_streamed(json!({"preset_id": preset, "input": "hello"}))
            .await?;
        let last = last_event(&run.events)?;
        ensure!(last.event == "RUN_ERROR", "{last:?}");
        let message = last.data["message"].as_str().unwrap_or_default();
        ensure!(
            !message.contains("secret_server") && !message.contains("Traceback"),
            "the upstream body reached the client: {message}"
        );
        let seen = provider.requests().await.len();
        ensure!(
            seen == expected,
            "max_provider_retries = {retries}: {seen} upstream requests, expected {expected}"
        );
    }
    Ok(())
}
