//! The gateway as its own process: `netherbrain gateway --runtime-url`
//! against a real `netherbrain agent` (fake provider), with a fake Telegram
//! Bot API on loopback. An unknown user gets a pairing code, an admin
//! approves it with `netherbrain gateway pair`, then the user's message is
//! answered by the agent through the typed client. In webhook mode the
//! same happens with the updates POSTed to the gateway's own listener.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netherbrain_tests::{Agent, FakeProvider, PATIENCE, PresetDoc, Reply};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const USER: i64 = 4242;

#[derive(Debug, Default)]
struct FakeBot {
    updates: Mutex<VecDeque<Value>>,
    calls: Mutex<Vec<(String, Value)>>,
    next: AtomicI64,
}

impl FakeBot {
    fn user_says(&self, text: &str) {
        let n = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        self.updates.lock().unwrap().push_back(json!({
            "update_id": n,
            "message": {
                "message_id": 500 + n, "date": 1_700_000_000,
                "chat": {"id": USER, "type": "private", "first_name": "Ada"},
                "from": {"id": USER, "is_bot": false, "first_name": "Ada"},
                "text": text,
            }
        }));
    }

    /// A message from the user as a webhook update (not queued for
    /// `getUpdates`).
    fn update(&self, text: &str) -> Value {
        let n = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        json!({
            "update_id": n,
            "message": {
                "message_id": 500 + n, "date": 1_700_000_000,
                "chat": {"id": USER, "type": "private", "first_name": "Ada"},
                "from": {"id": USER, "is_bot": false, "first_name": "Ada"},
                "text": text,
            }
        })
    }

    fn called(&self, method: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Texts the bot showed the user: sent messages and their edits.
    fn shown(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == "sendMessage" || m == "editMessageText")
            .map(|(_, b)| b["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// The fields of a `multipart/form-data` body (teloxide sends `setWebhook`
/// that way) as a JSON object; a field holding JSON is parsed.
fn form_fields(request: &Request) -> Value {
    let content_type = request
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(boundary) = content_type.split("boundary=").nth(1) else {
        return Value::Null;
    };
    let body = String::from_utf8_lossy(&request.body);
    let mut fields = serde_json::Map::new();
    for part in body.split(&format!("--{}", boundary.trim_matches('"'))) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let Some(name) = head
            .split("name=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        let parsed = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
        fields.insert(name.to_owned(), parsed);
    }
    Value::Object(fields)
}

struct Responder(Arc<FakeBot>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let raw = request.url.path().rsplit('/').next().unwrap_or("");
        let mut name: String = raw.chars().take(1).flat_map(char::to_lowercase).collect();
        name.push_str(raw.get(1..).unwrap_or(""));
        let body: Value =
            serde_json::from_slice(&request.body).unwrap_or_else(|_| form_fields(request));
        if name == "getUpdates" {
            let offset = body["offset"].as_i64().unwrap_or(0);
            let mut queue = self.0.updates.lock().unwrap();
            queue.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            let ready: Vec<Value> = queue.iter().cloned().collect();
            let template =
                ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": ready}));
            return if ready.is_empty() {
                template.set_delay(Duration::from_millis(50))
            } else {
                template
            };
        }
        self.0
            .calls
            .lock()
            .unwrap()
            .push((name.clone(), body.clone()));
        match name.as_str() {
            "sendMessage" | "editMessageText" => {
                let id = body["message_id"]
                    .as_i64()
                    .unwrap_or_else(|| self.0.next.fetch_add(1, Ordering::SeqCst) + 9000);
                ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
                    "message_id": id, "date": 1_700_000_000,
                    "chat": {"id": USER, "type": "private", "first_name": "Ada"},
                    "text": body["text"].clone(),
                }}))
            }
            _ => ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})),
        }
    }
}

async fn until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe() {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            bail!("{what} did not happen within {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_gateway_pairs_a_user_and_answers_through_the_agent() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer(Reply::text(&["Hello ", "from ", "the agent"]))
        .await;
    let agent = Agent::start(&provider, &[PresetDoc::new("assistant")]).await?;

    let server = MockServer::start().await;
    let bot = Arc::new(FakeBot::default());
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/[A-Za-z]+$"))
        .respond_with(Responder(bot.clone()))
        .mount(&server)
        .await;

    let mut gateway = tokio::process::Command::from(agent.command())
        .env("NETHER_TELEGRAM_TOKEN", "42:e2e-token")
        .env("NETHER_TELEGRAM_API_URL", server.uri())
        .env("NETHER_LOG", "info")
        .args([
            "gateway",
            "--runtime-url",
            &agent.base_url(),
            "--api-key",
            agent.token(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawning the gateway")?;

    // An unknown user: a pairing code, and no model call.
    bot.user_says("hello?");
    let code = until("the pairing reply", || {
        bot.shown().iter().find_map(|t| {
            t.split("netherbrain gateway pair ")
                .nth(1)
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        })
    })
    .await?;
    assert_eq!(
        provider.requests().await.len(),
        0,
        "nothing reached the model"
    );

    let paired = tokio::process::Command::from(agent.command())
        .args(["gateway", "pair", &code])
        .output()
        .await?;
    assert!(
        paired.status.success(),
        "{}",
        String::from_utf8_lossy(&paired.stderr)
    );
    assert!(String::from_utf8_lossy(&paired.stdout).contains("paired telegram user 4242"));

    bot.user_says("Say hello");
    until("the agent's answer in the chat", || {
        bot.shown()
            .iter()
            .any(|t| t.contains("Hello from the agent"))
            .then_some(())
    })
    .await?;
    assert_eq!(provider.requests().await.len(), 1);

    // The conversation is the one the API sees.
    let list = agent
        .client()?
        .list_conversations(&Default::default())
        .await?;
    assert_eq!(list.items.len(), 1);

    gateway.start_kill()?;
    let _ = gateway.wait().await;
    Ok(())
}

const HOOK_SECRET: &str = "e2e-webhook-secret-0123456789-abcdef";

/// POSTs an update to the gateway's webhook listener; the status code.
async fn post_update(url: &str, secret: &str, update: &Value) -> Result<u16> {
    let response = reqwest::Client::new()
        .post(url)
        .header("X-Telegram-Bot-Api-Secret-Token", secret)
        .json(update)
        .send()
        .await
        .context("posting to the webhook listener")?;
    Ok(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_in_webhook_mode_answers_posted_updates_through_the_agent() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer(Reply::text(&["Hooked ", "hello ", "from the agent"]))
        .await;
    let agent = Agent::start(&provider, &[PresetDoc::new("assistant")]).await?;

    let server = MockServer::start().await;
    let bot = Arc::new(FakeBot::default());
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/[A-Za-z]+$"))
        .respond_with(Responder(bot.clone()))
        .mount(&server)
        .await;

    let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let hook = format!("http://{listen}/telegram");
    let mut gateway = tokio::process::Command::from(agent.command())
        .env("NETHER_TELEGRAM_TOKEN", "42:e2e-token")
        .env("NETHER_TELEGRAM_API_URL", server.uri())
        .env(
            "NETHER_TELEGRAM_WEBHOOK_URL",
            "https://bot.example.com/telegram",
        )
        .env("NETHER_TELEGRAM_WEBHOOK_LISTEN", listen.to_string())
        .env("NETHER_TELEGRAM_WEBHOOK_SECRET", HOOK_SECRET)
        .env("NETHER_LOG", "info")
        .args([
            "gateway",
            "--runtime-url",
            &agent.base_url(),
            "--api-key",
            agent.token(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawning the gateway")?;

    // The listener is bound before the webhook is registered.
    let set = until("setWebhook", || bot.called("setWebhook").pop()).await?;
    assert_eq!(set["url"], "https://bot.example.com/telegram");
    assert_eq!(set["secret_token"], HOOK_SECRET);
    assert!(bot.called("deleteWebhook").is_empty());

    // A wrong secret: refused, nothing happens.
    let stranger = bot.update("let me in");
    assert_eq!(post_update(&hook, "wrong-secret", &stranger).await?, 401);

    // An unknown user: a pairing code, and no model call.
    assert_eq!(
        post_update(&hook, HOOK_SECRET, &bot.update("hello?")).await?,
        200
    );
    let code = until("the pairing reply", || {
        bot.shown().iter().find_map(|t| {
            t.split("netherbrain gateway pair ")
                .nth(1)
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        })
    })
    .await?;
    assert_eq!(
        bot.shown().len(),
        1,
        "only the accepted update was answered"
    );
    let paired = tokio::process::Command::from(agent.command())
        .args(["gateway", "pair", &code])
        .output()
        .await?;
    assert!(
        paired.status.success(),
        "{}",
        String::from_utf8_lossy(&paired.stderr)
    );

    assert_eq!(
        post_update(&hook, HOOK_SECRET, &bot.update("Say hello")).await?,
        200
    );
    until("the agent's answer in the chat", || {
        bot.shown()
            .iter()
            .any(|t| t.contains("Hooked hello from the agent"))
            .then_some(())
    })
    .await?;
    assert_eq!(provider.requests().await.len(), 1);

    // SIGTERM: the gateway removes its webhook and exits.
    let pid = gateway.id().context("the gateway's pid")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid)?),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    let status = tokio::time::timeout(PATIENCE, gateway.wait()).await??;
    assert!(status.success(), "{status}");
    assert_eq!(bot.called("deleteWebhook").len(), 1);
    Ok(())
}
