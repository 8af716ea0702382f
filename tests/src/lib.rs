//! End-to-end test support: drive Netherbrain only the way a user does.
//!
//! - [`Agent`] runs the real `netherbrain agent` binary ([`binary::path`])
//!   on a free loopback port with its own SQLite data directory, and can be
//!   restarted on the same data;
//! - [`FakeProvider`] is an OpenAI-compatible `/v1/chat/completions` on
//!   loopback (wiremock) that streams chat-completion chunks, answering by
//!   request content and optionally late;
//! - [`Api`] is a bearer-authenticated JSON client over reqwest (plus
//!   [`sse`] parsing), [`Ws`] the WebSocket, and [`CutProxy`] a TCP proxy
//!   whose connections a test can cut.
//!
//! The tests themselves live in `tests/` (see `tests/README.md`).

pub mod agent;
pub mod api;
pub mod binary;
pub mod endless;
pub mod provider;
pub mod proxy;
pub mod sse;
pub mod ws;

use std::future::Future;
use std::time::{Duration, Instant};

pub use agent::{Agent, AgentOptions, PresetDoc};
pub use api::Api;
pub use endless::EndlessProvider;
pub use provider::{FakeProvider, Reply, SeenRequest};
pub use proxy::CutProxy;
pub use ws::Ws;

/// How long any single condition in these tests may take before the test
/// fails (a healthy run takes milliseconds; the margin is for loaded CI).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A reqwest client whose every request (body included) must finish within
/// [`PATIENCE`], so a hung server fails a test instead of stalling it.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap_or_default()
}

/// The typed client of the server at `base` with `token`, on
/// [`http_client`].
///
/// # Errors
///
/// When `base` is not an http(s) URL.
pub fn typed_client(base: &str, token: &str) -> anyhow::Result<netherbrain_http::client::Client> {
    Ok(netherbrain_http::client::Client::with_http_client(
        http_client(),
        base,
        Some(token.to_owned()),
    )?)
}

/// Polls `check` every 20 ms until it yields `Some`, failing after
/// [`PATIENCE`] with `what` in the message.
///
/// # Errors
///
/// When the condition does not hold in time, or `check` fails.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {PATIENCE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Retries `check` every 50 ms until it succeeds, for at most
/// [`PATIENCE`]; its last error is in the failure.
///
/// # Errors
///
/// When `check` has not succeeded in time.
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => {
                anyhow::bail!("timed out after {PATIENCE:?} waiting until {what}: {e:#}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Replaces ids and timestamps in a JSON value so it can be snapshotted:
/// UUIDs and 32-hex-digit ids inside strings become `[uuid]` / `[hex]`,
/// values of keys ending in `_at` or named `timestamp` become
/// `[timestamp]`.
pub fn redact(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if (key.ends_with("_at") || key == "timestamp") && !v.is_null() {
                    *v = Value::String("[timestamp]".into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(s) => *s = redact_str(s),
        _ => {}
    }
}

/// [`redact`] for one string.
pub fn redact_str(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(candidate) = chars.get(i..i + 36) {
            let candidate: String = candidate.iter().collect();
            if candidate.matches('-').count() == 4 && uuid::Uuid::parse_str(&candidate).is_ok() {
                out.push_str("[uuid]");
                i += 36;
                continue;
            }
        }
        if chars
            .get(i..i + 32)
            .is_some_and(|run| run.iter().all(char::is_ascii_hexdigit))
        {
            out.push_str("[hex]");
            i += 32;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// A fresh, empty Postgres database on the machine's server
/// (`NETHER_TEST_POSTGRES_URL`'s server, else
/// `postgres://postgres@127.0.0.1:5432`), created with `psql`; returns its
/// URL. Dropped databases are not cleaned up: names are unique.
///
/// # Errors
///
/// When `psql` is missing or the server refuses.
pub fn postgres_database() -> anyhow::Result<String> {
    use anyhow::Context;
    let admin = std::env::var("NETHER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("nb_e2e_{}", uuid::Uuid::new_v4().simple());
    let status = std::process::Command::new("psql")
        .args([
            admin.as_str(),
            "-q",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .context("running psql (PostgreSQL's client) to create a test database")?;
    anyhow::ensure!(status.success(), "psql could not create {name}: {status}");
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    Ok(format!("{base}/{name}"))
}
