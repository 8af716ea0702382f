//! Issue 8: the server's defences, attacked through the real binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netherbrain_tests::{Agent, AgentOptions, FakeProvider, PATIENCE, http_client};
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
