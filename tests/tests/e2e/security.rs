//! Issue 8: the server's defences, attacked through the real binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netherbrain_tests::{Agent, AgentOptions, FakeProvider, PATIENCE, eventually, http_client};
use serde_json::json;

/// A `netherbrain` command on `home` with a clean environment and no
/// operator token.
fn bare_command(home: &std::path::Path) -> Command {
    let mut c = Command::new(netherbrain_tests::binary::path());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg-config"))
        .env("XDG_DATA_HOME", home.join("xdg-data"))
        .env("NETHER_LOG", "warn")
        .current_dir(home)
        .stdin(Stdio::null())
        .arg("--data-dir")
        .arg(home.join("data"));
    c
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs `command` to its end (bounded by [`PATIENCE`]).
async fn run_to_end(mut command: Command) -> Result<std::process::Output> {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output());
    Ok(tokio::time::timeout(PATIENCE, waited)
        .await
        .context("the command did not exit")???)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_bind_without_auth_is_refused_with_one_line() -> Result<()> {
    let home = tempfile::tempdir()?;
    let port = free_port()?.to_string();
    let mut command = bare_command(home.path());
    command.args(["agent", "--host", "0.0.0.0", "--port", &port]);
    let out = run_to_end(command).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(lines[0].contains("NETHER_AUTH_TOKEN"), "{}", lines[0]);
    assert!(lines[0].contains("16 characters"), "{}", lines[0]);
    assert!(lines[0].contains("password"), "{}", lines[0]);

    // A short operator token is refused too.
    let mut command = bare_command(home.path());
    command
        .env("NETHER_AUTH_TOKEN", "too-short")
        .args(["agent", "--host", "0.0.0.0", "--port", &port]);
    let out = run_to_end(command).await?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_bind_needs_auth_for_metrics_and_warns_about_tls() -> Result<()> {
    let provider = FakeProvider::start().await;
    let agent = Agent::start_with(
        &provider,
        &[],
        AgentOptions::default().env("NETHER_HOST", "0.0.0.0"),
    )
    .await?;
    let http = http_client();
    let anonymous = http.get(agent.url("/metrics")).send().await?;
    assert_eq!(anonymous.status(), 401);
    let authed = http
        .get(agent.url("/metrics"))
        .bearer_auth(agent.token())
        .send()
        .await?;
    assert_eq!(authed.status(), 200);
    let logs = agent.logs();
    assert!(
        logs.contains("listening off loopback without TLS"),
        "logs: {logs}"
    );
    drop(agent);

    let opened = Agent::start_with(
        &provider,
        &[],
        AgentOptions::default()
            .env("NETHER_HOST", "0.0.0.0")
            .env("NETHER_METRICS_PUBLIC", "true"),
    )
    .await?;
    let anonymous = http.get(opened.url("/metrics")).send().await?;
    assert_eq!(anonymous.status(), 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_password_allows_a_public_bind_without_operator_token() -> Result<()> {
    let provider = FakeProvider::start().await;
    let mut agent = Agent::start(&provider, &[]).await?;
    // The operator token acts as the admin, which has no password yet.
    agent
        .admin()
        .post(
            "/api/auth/password",
            &json!({"new_password": "a long admin password"}),
        )
        .await?;
    agent.stop().await?;

    let port = free_port()?;
    let mut command = agent.command();
    let mut child = command
        .env("NETHER_LOG", "warn")
        .args(["agent", "--host", "0.0.0.0", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let http = http_client();
    let health = format!("http://127.0.0.1:{port}/api/health");
    let deadline = Instant::now() + PATIENCE;
    let result = loop {
        if let Ok(resp) = http.get(&health).send().await
            && resp.status() == 200
        {
            break Ok(());
        }
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!("the agent exited with {status}"));
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!("the agent never became healthy"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let login = http
        .post(format!("http://127.0.0.1:{port}/api/auth/login"))
        .json(&json!({"username": "admin", "password": "a long admin password"}))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    result?;
    let login = login?;
    if login.status() != 200 {
        bail!("login: {}", login.status());
    }
    Ok(())
}

/// A gauge or counter value from the Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_throttled_without_locking_the_owner_out() -> Result<()> {
    const ATTEMPTS: usize = 30;
    let provider = FakeProvider::start().await;
    // The test's requests come from 127.0.0.1, made a trusted proxy here,
    // so `X-Forwarded-For` says which client each one stands for.
    let agent = Agent::start_with(
        &provider,
        &[],
        AgentOptions::default().env("NETHER_TRUSTED_PROXIES", "127.0.0.1"),
    )
    .await?;
    let password = "the owner's long password";
    agent
        .admin()
        .post("/api/auth/password", &json!({"new_password": password}))
        .await?;

    let http = http_client();
    let attempts = (0..ATTEMPTS).map(|i| {
        let http = http.clone();
        let url = agent.url("/api/auth/login");
        async move {
            http.post(url)
                .header("x-forwarded-for", "203.0.113.66")
                .json(&json!({"username": "admin", "password": format!("guess-{i}")}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let statuses = futures::future::join_all(attempts)
        .await
        .into_iter()
        .collect::<Result<Vec<u16>, _>>()?;
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(unauthorized + limited, ATTEMPTS, "{statuses:?}");
    // A burst of 5 per username and address (one more refills each 12 s).
    assert!((5..=6).contains(&unauthorized), "{statuses:?}");

    let metrics = http.get(agent.url("/metrics")).send().await?.text().await?;
    let total = metric(&metrics, "netherbrain_login_verifications_total").unwrap_or(0.0);
    let peak = metric(&metrics, "netherbrain_login_verifications_peak").unwrap_or(0.0);
    #[allow(clippy::cast_precision_loss)]
    let passed = unauthorized as f64;
    assert!(
        total <= passed,
        "{total} verifications for {passed} attempts"
    );
    assert!(total >= 1.0, "{metrics}");
    assert!(peak <= 4.0, "{peak} verifications at once, bound 4");

    // The owner, from another address, is not locked out.
    let owner = http
        .post(agent.url("/api/auth/login"))
        .header("x-forwarded-for", "198.51.100.20")
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await?;
    assert_eq!(owner.status(), 200);

    // Impossible lengths are refused before any hashing.
    let long = http
        .post(agent.url("/api/auth/login"))
        .header("x-forwarded-for", "198.51.100.21")
        .json(&json!({"username": "admin", "password": "x".repeat(5000)}))
        .send()
        .await?;
    assert_eq!(long.status(), 422);
    let metrics = http.get(agent.url("/metrics")).send().await?.text().await?;
    let after = metric(&metrics, "netherbrain_login_verifications_total").unwrap_or(0.0);
    assert!(
        (after - total - 1.0).abs() < f64::EPSILON,
        "{total} -> {after}"
    );
    Ok(())
}

/// An open SSE stream of `session_id` read on a task; the task ends with
/// how long after it started the server closed the stream.
async fn open_sse(
    api: &netherbrain_tests::Api,
    session_id: &str,
) -> Result<tokio::task::JoinHandle<Duration>> {
    use futures::StreamExt as _;
    let resp = api
        .get_request(&format!("/api/sessions/{session_id}/events"))
        .send()
        .await?;
    if resp.status() != 200 {
        bail!("events: {}", resp.status());
    }
    let started = Instant::now();
    Ok(tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        while let Some(Ok(_)) = body.next().await {}
        started.elapsed()
    }))
}

/// A socket subscribed to `conversation_id`.
async fn open_ws(
    agent: &Agent,
    token: &str,
    conversation_id: &str,
) -> Result<netherbrain_tests::Ws> {
    let mut ws = netherbrain_tests::Ws::connect(&agent.base_url(), token).await?;
    ws.exchange(
        &json!({"type": "subscribe", "conversation_id": conversation_id}),
        "subscribed",
    )
    .await?;
    Ok(ws)
}

/// Expects the socket to get an `unauthorized` error frame, then close.
async fn expect_ws_closed(ws: &mut netherbrain_tests::Ws) -> Result<()> {
    let frames = ws
        .collect_until(|f| f["type"] == "error")
        .await
        .context("no error frame")?;
    let last = frames.last().cloned().unwrap_or_default();
    assert_eq!(last["code"], "unauthorized", "{frames:?}");
    assert!(ws.recv().await.is_err(), "the socket stayed open");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_closes_open_streams_within_seconds() -> Result<()> {
    let provider = FakeProvider::start().await;
    // Runs stay open for a minute.
    provider
        .answer(netherbrain_tests::Reply::text(&["late"]).after(Duration::from_secs(60)))
        .await;
    let agent = Agent::start(&provider, &[netherbrain_tests::PresetDoc::new("slow")]).await?;
    let admin = agent.admin();
    let preset = admin.preset_id("slow").await?;
    let users = [("rita", "revoke"), ("sam", "deactivate"), ("ada", "demote")];
    for (name, action) in users {
        let user = admin.create_user(name).await?;
        let me = user.get("/api/auth/me").await?;
        let user_id = me["id"].as_str().unwrap_or_default().to_owned();
        if action == "demote" {
            admin
                .post(
                    &format!("/api/users/{user_id}/update"),
                    &json!({"role": "admin"}),
                )
                .await?;
        }
        let (conversation_id, session_id) = user
            .run_detached(json!({"preset_id": preset, "input": format!("hello from {name}")}))
            .await?;
        let sse = open_sse(&user, &session_id).await?;
        let mut ws = open_ws(&agent, user.token(), &conversation_id).await?;
        // Both are open.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!sse.is_finished(), "{name}: the stream ended early");

        let acted = Instant::now();
        match action {
            "revoke" => {
                let keys = admin
                    .get(&format!("/api/keys/list?user_id={user_id}"))
                    .await?;
                let items = keys["items"]
                    .as_array()
                    .or(keys.as_array())
                    .cloned()
                    .unwrap_or_default();
                let key_id = items
                    .iter()
                    .find_map(|k| k["id"].as_str())
                    .context("no key")?
                    .to_owned();
                admin
                    .post(
                        &format!("/api/keys/{key_id}/revoke?user_id={user_id}"),
                        &json!({}),
                    )
                    .await?;
            }
            "deactivate" => {
                admin
                    .post(&format!("/api/users/{user_id}/deactivate"), &json!({}))
                    .await?;
            }
            _ => {
                admin
                    .post(
                        &format!("/api/users/{user_id}/update"),
                        &json!({"role": "user"}),
                    )
                    .await?;
            }
        }
        let closed = tokio::time::timeout(PATIENCE, sse)
            .await
            .context("the SSE stream stayed open")??;
        expect_ws_closed(&mut ws).await?;
        let took = acted.elapsed();
        eprintln!(
            "{name} ({action}): streams closed {took:?} after the change (sse open {closed:?})"
        );
        assert!(took < Duration::from_secs(10), "{name}: {took:?}");
    }
    Ok(())
}

/// An OpenAI-compatible stream ends with a `token_revoked` error chunk
/// once its key is revoked, and its run is interrupted.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_ends_its_openai_stream() -> Result<()> {
    use futures::StreamExt as _;
    let provider = FakeProvider::start().await;
    provider
        .answer(netherbrain_tests::Reply::text(&["late"]).after(Duration::from_secs(60)))
        .await;
    let agent = Agent::start(&provider, &[netherbrain_tests::PresetDoc::new("slow")]).await?;
    let admin = agent.admin();
    let user = admin.create_user("olga").await?;
    let me = user.get("/api/auth/me").await?;
    let user_id = me["id"].as_str().unwrap_or_default().to_owned();
    let resp = user
        .post_request(
            "/v1/chat/completions",
            &json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            let _ = tx.send(String::from_utf8_lossy(&chunk).into_owned());
        }
    });
    // The role chunk arrives while the model is still thinking.
    let first = tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .context("no first chunk")?
        .unwrap_or_default();
    assert!(first.contains("chat.completion.chunk"), "{first}");
    let conversation_id = eventually("the run's conversation to be listed", || async {
        let list = user.get("/api/conversations/list").await?;
        Ok(list["items"][0]["id"].as_str().map(str::to_owned))
    })
    .await?;
    let keys = admin
        .get(&format!("/api/keys/list?user_id={user_id}"))
        .await?;
    let key_id = keys["items"]
        .as_array()
        .or(keys.as_array())
        .and_then(|items| items.iter().find_map(|k| k["id"].as_str()))
        .context("no key")?
        .to_owned();
    admin
        .post(
            &format!("/api/keys/{key_id}/revoke?user_id={user_id}"),
            &json!({}),
        )
        .await?;
    tokio::time::timeout(PATIENCE, reader)
        .await
        .context("the /v1 stream stayed open after the revocation")??;
    let mut rest = String::new();
    while let Ok(chunk) = rx.try_recv() {
        rest.push_str(&chunk);
    }
    assert!(rest.contains("\"code\":\"token_revoked\""), "{rest}");
    assert!(rest.trim_end().ends_with("data: [DONE]"), "{rest}");
    assert!(!rest.contains("late"), "{rest}");
    // The run was interrupted, not left running for a minute.
    eventually("the run to stop", || async {
        let detail = admin
            .get(&format!("/api/conversations/{conversation_id}"))
            .await?;
        Ok(detail["active_session"].is_null().then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_logs_out_the_other_logins() -> Result<()> {
    let provider = FakeProvider::start().await;
    let agent = Agent::start(&provider, &[]).await?;
    let admin = agent.admin();
    let user = admin
        .post(
            "/api/users/create",
            &json!({"username": "pia", "role": "user", "password": "first password"}),
        )
        .await?;
    let user_id = user["id"].as_str().unwrap_or_default().to_owned();
    let http = http_client();
    let login = |password: &'static str| {
        let http = http.clone();
        let url = agent.url("/api/auth/login");
        async move {
            let v: serde_json::Value = http
                .post(url)
                .json(&json!({"username": "pia", "password": password}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok(v["token"].as_str().unwrap_or_default().to_owned())
        }
    };
    let laptop = login("first password").await?;
    let phone = login("first password").await?;
    let me = |token: String| {
        let http = http.clone();
        let url = agent.url("/api/auth/me");
        async move {
            anyhow::Ok(
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await?
                    .status()
                    .as_u16(),
            )
        }
    };
    let changed = http
        .post(agent.url("/api/auth/password"))
        .bearer_auth(&laptop)
        .json(&json!({"current_password": "first password", "new_password": "second password"}))
        .send()
        .await?;
    assert_eq!(changed.status(), 200);
    assert_eq!(me(laptop.clone()).await?, 200, "the changing login stays");
    assert_eq!(me(phone).await?, 401, "other logins are revoked");

    // An admin reset revokes all of them.
    let tablet = login("second password").await?;
    admin
        .post(
            &format!("/api/users/{user_id}/reset-password"),
            &json!({"password": "third password"}),
        )
        .await?;
    assert_eq!(me(laptop).await?, 401);
    assert_eq!(me(tablet).await?, 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_per_user_and_subscriptions_per_socket_are_limited() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer(netherbrain_tests::Reply::text(&["late"]).after(Duration::from_secs(60)))
        .await;
    let agent = Agent::start_with(
        &provider,
        &[netherbrain_tests::PresetDoc::new("slow")],
        AgentOptions::default()
            .env("NETHER_MAX_RUNS_PER_USER", "2")
            .env("NETHER_MAX_WS_SUBSCRIPTIONS", "1"),
    )
    .await?;
    let admin = agent.admin();
    let preset = admin.preset_id("slow").await?;
    let una = admin.create_user("una").await?;
    let (first, _) = una
        .run_detached(json!({"preset_id": preset, "input": "one"}))
        .await?;
    let (second, _) = una
        .run_detached(json!({"preset_id": preset, "input": "two"}))
        .await?;
    let third = una
        .post_request(
            "/api/conversations/run",
            &json!({"preset_id": preset, "input": "three", "stream": false}),
        )
        .send()
        .await?;
    assert_eq!(third.status(), 429);
    let body: serde_json::Value = third.json().await?;
    assert_eq!(body["error"]["code"], "too_many_runs", "{body}");
    // Another user is not affected.
    let vic = admin.create_user("vic").await?;
    vic.run_detached(json!({"preset_id": preset, "input": "mine"}))
        .await?;

    let mut ws = netherbrain_tests::Ws::connect(&agent.base_url(), una.token()).await?;
    ws.exchange(
        &json!({"type": "subscribe", "conversation_id": first}),
        "subscribed",
    )
    .await?;
    let frames = ws
        .exchange(
            &json!({"type": "subscribe", "conversation_id": second}),
            "error",
        )
        .await?;
    let last = frames.last().cloned().unwrap_or_default();
    assert_eq!(last["code"], "too_many_subscriptions", "{frames:?}");
    // After unsubscribing there is room again.
    ws.exchange(
        &json!({"type": "unsubscribe", "conversation_id": first}),
        "unsubscribed",
    )
    .await?;
    ws.exchange(
        &json!({"type": "subscribe", "conversation_id": second}),
        "subscribed",
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_key_is_absent_from_logs_errors_and_config_show() -> Result<()> {
    use netherbrain_tests::agent::FAKE_KEY;
    let provider = FakeProvider::start().await;
    provider
        .answer(netherbrain_tests::Reply::text(&["fine"]))
        .await;
    let agent = Agent::start(&provider, &[netherbrain_tests::PresetDoc::new("p")]).await?;
    let admin = agent.admin();
    let preset = admin.preset_id("p").await?;
    let run = admin
        .run_streamed(json!({"preset_id": preset, "input": "hello"}))
        .await?;
    assert!(!format!("{:?}", run.events).contains(FAKE_KEY));

    // A provider that cannot be reached: the error names the host, not the key.
    let port = free_port()?;
    let down = Agent::start_with(
        &provider,
        &[netherbrain_tests::PresetDoc::new("p")],
        AgentOptions::default().provider_url(&format!("http://127.0.0.1:{port}/v1")),
    )
    .await?;
    let preset = down.admin().preset_id("p").await?;
    let failed = down
        .admin()
        .run_streamed(json!({"preset_id": preset, "input": "hello"}))
        .await?;
    let events = format!("{:?}", failed.events);
    assert!(events.contains("RUN_ERROR"), "{events}");
    assert!(events.contains(&format!("127.0.0.1:{port}")), "{events}");
    assert!(!events.contains(FAKE_KEY), "{events}");

    let mut show = agent.command();
    show.args(["config", "show"]);
    let out = run_to_end(show).await?;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("api_key_env = \"OPENAI_API_KEY\""),
        "{shown}"
    );
    for text in [shown.as_ref(), agent.logs().as_str(), down.logs().as_str()] {
        assert!(!text.contains(FAKE_KEY), "the key leaked:\n{text}");
    }
    Ok(())
}
