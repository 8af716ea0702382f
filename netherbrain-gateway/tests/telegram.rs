//! The Telegram channel through the real teloxide client against a fake
//! Bot API on loopback (wiremock), served by the bridge over the
//! in-process conversation service with scripted providers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::channel::CancellationToken;
use netherbrain_core::conversation::ConversationService;
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewPreset, NewUser, UserRole};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::tool::{
    DynTool, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSet,
};
use netherbrain_core::{PresetConfig, SessionStatus};
use netherbrain_gateway::telegram::{
    SECRET_HEADER, TelegramChannel, TelegramConfig, WebhookConfig,
};
use netherbrain_gateway::{AllowEntry, Bridge, BridgeConfig, LocalRuntime};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "123456:TEST-token";
const ADA: i64 = 100;
const INTERVAL: Duration = Duration::from_millis(300);
const HOOK_URL: &str = "https://bot.example.com/telegram";
const SECRET: &str = "webhook-secret-0123456789-abcdefghij";

/// One recorded Bot API call.
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    method: String,
    body: Value,
}

/// The fake Bot API: queued updates for `getUpdates`, every other call
/// recorded and answered like Telegram would.
#[derive(Debug, Default)]
struct FakeBot {
    updates: Mutex<VecDeque<Value>>,
    calls: Mutex<Vec<Call>>,
    next_update: AtomicI64,
    next_message: AtomicI64,
    /// `sendMessage` calls to answer 429 before succeeding.
    rate_limit_sends: AtomicUsize,
    /// Whether `sendMessageDraft` exists.
    drafts: std::sync::atomic::AtomicBool,
}

fn chat(id: i64) -> Value {
    if id < 0 {
        json!({"id": id, "type": "supergroup", "title": "Group"})
    } else {
        json!({"id": id, "type": "private", "first_name": "Ada"})
    }
}

fn user(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": format!("User{id}")})
}

impl FakeBot {
    fn text(&self, chat_id: i64, from: i64, text: &str) -> i64 {
        let update = self.text_update(chat_id, from, text);
        let message = update["message"]["message_id"].as_i64().unwrap();
        self.updates.lock().unwrap().push_back(update);
        message
    }

    /// A text message update, not queued for `getUpdates` (a webhook test
    /// posts it).
    fn text_update(&self, chat_id: i64, from: i64, text: &str) -> Value {
        let update = self.next_update.fetch_add(1, Ordering::SeqCst) + 1;
        let message = self.next_message.fetch_add(1, Ordering::SeqCst) + 1000;
        json!({
            "update_id": update,
            "message": {
                "message_id": message, "date": 1_700_000_000,
                "chat": chat(chat_id), "from": user(from), "text": text,
            }
        })
    }

    /// A message with a file: `file` is the `photo` sizes or a `document`.
    fn file(&self, chat_id: i64, from: i64, caption: &str, field: &str, file: Value) -> i64 {
        let update = self.next_update.fetch_add(1, Ordering::SeqCst) + 1;
        let message = self.next_message.fetch_add(1, Ordering::SeqCst) + 1000;
        let mut body = json!({
            "message_id": message, "date": 1_700_000_000,
            "chat": chat(chat_id), "from": user(from), "caption": caption,
        });
        body[field] = file;
        self.updates
            .lock()
            .unwrap()
            .push_back(json!({"update_id": update, "message": body}));
        message
    }

    fn press(&self, chat_id: i64, from: i64, message_id: i64, data: &str) {
        let update = self.next_update.fetch_add(1, Ordering::SeqCst) + 1;
        self.updates.lock().unwrap().push_back(json!({
            "update_id": update,
            "callback_query": {
                "id": format!("cb{update}"), "from": user(from), "chat_instance": "ci",
                "data": data,
                "message": {
                    "message_id": message_id, "date": 1_700_000_000,
                    "chat": chat(chat_id), "text": "Allow it?",
                },
            }
        }));
    }

    fn calls(&self, name: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == name)
            .cloned()
            .collect()
    }

    fn texts(&self, name: &str) -> Vec<String> {
        self.calls(name)
            .into_iter()
            .map(|c| c.body["text"].as_str().unwrap_or_default().to_owned())
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
        let bot = &self.0;
        // teloxide writes `SendMessage`; the Bot API ignores the case.
        let raw = request.url.path().rsplit('/').next().unwrap_or("");
        let mut name: String = raw.chars().take(1).flat_map(char::to_lowercase).collect();
        name.push_str(raw.get(1..).unwrap_or(""));
        let body: Value =
            serde_json::from_slice(&request.body).unwrap_or_else(|_| form_fields(request));
        if name == "getUpdates" {
            let offset = body["offset"].as_i64().unwrap_or(0);
            let mut queue = bot.updates.lock().unwrap();
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
        bot.calls.lock().unwrap().push(Call {
            at: Instant::now(),
            method: name.clone(),
            body: body.clone(),
        });
        let chat_id = body["chat_id"].as_i64().unwrap_or(0);
        let message = |id: i64| {
            json!({"ok": true, "result": {
                "message_id": id, "date": 1_700_000_000, "chat": chat(chat_id),
                "text": body["text"].clone(),
            }})
        };
        match name.as_str() {
            "sendMessage" => {
                if bot
                    .rate_limit_sends
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return ResponseTemplate::new(429).set_body_json(json!({
                        "ok": false, "error_code": 429,
                        "description": "Too Many Requests: retry after 1",
                        "parameters": {"retry_after": 1},
                    }));
                }
                let id = bot.next_message.fetch_add(1, Ordering::SeqCst) + 1000;
                ResponseTemplate::new(200).set_body_json(message(id))
            }
            "editMessageText" => {
                let id = body["message_id"].as_i64().unwrap_or(0);
                ResponseTemplate::new(200).set_body_json(message(id))
            }
            "getFile" => {
                let id = body["file_id"].as_str().unwrap_or_default();
                let size = FILES
                    .iter()
                    .find(|(file, _, _)| *file == id)
                    .map_or(0, |(_, _, bytes)| bytes.len());
                ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
                    "file_id": id, "file_unique_id": format!("u-{id}"), "file_size": size,
                    "file_path": format!("files/{id}"),
                }}))
            }
            "sendMessageDraft" if !bot.drafts.load(Ordering::SeqCst) => ResponseTemplate::new(404)
                .set_body_json(json!({
                    "ok": false, "error_code": 404, "description": "Not Found: method not found",
                })),
            _ => ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})),
        }
    }
}

/// Files the fake Bot API serves: id, path, bytes.
const FILES: [(&str, &str, &[u8]); 2] = [
    (
        "photo-big",
        "files/photo-big",
        b"\x89PNG-pretend-image-bytes",
    ),
    ("notes", "files/notes", b"buy milk\nfix the bike\n"),
];

/// `GET /file/bot<token>/<path>`: the file's bytes (teloxide sends the
/// path as one segment, its `/` encoded).
struct FileDownload;

impl Respond for FileDownload {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path().replace("%2F", "/");
        match FILES
            .iter()
            .find(|(_, file_path, _)| path.ends_with(file_path))
        {
            Some((_, _, bytes)) => ResponseTemplate::new(200).set_body_bytes(bytes.to_vec()),
            None => ResponseTemplate::new(404),
        }
    }
}

/// The blob store as the attachment store, as the `netherbrain` binary
/// wires it.
#[derive(Debug)]
struct Blobs(netherbrain_store::blob::BlobStore);

#[async_trait::async_trait]
impl netherbrain_gateway::AttachmentStore for Blobs {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), String> {
        self.0
            .put(key, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct DeleteArgs {
    path: String,
}

#[derive(Debug)]
struct Delete;

#[async_trait::async_trait]
impl Tool for Delete {
    type Args = DeleteArgs;
    fn name(&self) -> &str {
        "delete"
    }
    fn description(&self) -> &str {
        "Deletes a file"
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: DeleteArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        Ok(format!("deleted {}", args.path).into())
    }
}

#[derive(Debug)]
struct Files;

#[async_trait::async_trait]
impl ToolSet for Files {
    fn name(&self) -> &str {
        "files"
    }
    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        let registry = ToolRegistry::new()
            .with(Delete)
            .map_err(ToolError::failed)?;
        Ok(registry.get("delete").into_iter().cloned().collect())
    }
}

struct Fixture {
    _server: MockServer,
    blob_dir: tempfile::TempDir,
    url: String,
    fake: Arc<FakeBot>,
    store: Arc<MemoryStore>,
    provider: Arc<ScriptedProvider>,
    service: ConversationService,
    config: BridgeConfig,
}

async fn fixture(provider: ScriptedProvider, drafts: bool) -> Fixture {
    let server = MockServer::start().await;
    let fake = Arc::new(FakeBot::default());
    fake.drafts.store(drafts, Ordering::SeqCst);
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/[A-Za-z]+$"))
        .respond_with(Responder(fake.clone()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/+file/bot[^/]+/.+$"))
        .respond_with(FileDownload)
        .mount(&server)
        .await;
    let blob_dir = tempfile::tempdir().unwrap();
    let blobs = netherbrain_store::blob::BlobStore::local(blob_dir.path()).unwrap();
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap()
        .id;
    let provider = Arc::new(provider);
    let catalog = AgentCatalog::new()
        .with_provider("local", provider.clone(), vec!["tiny".into()])
        .with_toolset(Arc::new(Files));
    store
        .create_preset(NewPreset::new(
            "tiny",
            PresetConfig::new("local", "tiny").with_toolsets(vec!["files".into()]),
        ))
        .await
        .unwrap();
    let service = ConversationService::new(store.clone(), Arc::new(catalog));
    let config = BridgeConfig::default()
        .with_edit_interval(INTERVAL)
        .with_retry_base(Duration::from_millis(50))
        .allow(AllowEntry::new("telegram", ADA.to_string(), ada))
        .with_max_attachment_bytes(1024)
        .with_attachment_store(Arc::new(Blobs(blobs)));
    Fixture {
        url: server.uri(),
        _server: server,
        blob_dir,
        fake,
        store,
        provider,
        service,
        config,
    }
}

impl Fixture {
    fn start(&self) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let channel = TelegramChannel::new(
            TelegramConfig::new(TOKEN)
                .with_api_url(self.url.clone())
                .with_poll_timeout(Duration::from_secs(1)),
        )
        .unwrap();
        let bridge = Bridge::new(
            Arc::new(LocalRuntime::new(self.service.clone())),
            self.store.clone(),
            vec![Arc::new(channel)],
            self.config.clone(),
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move { bridge.run(cancel).await.unwrap() }
        });
        (cancel, task)
    }

    /// The gateway in webhook mode on a free loopback port; returns once
    /// the webhook is registered (the listener is bound before), with the
    /// listener's URL.
    async fn start_webhook(&self) -> (CancellationToken, tokio::task::JoinHandle<()>, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let hook = WebhookConfig::new(HOOK_URL, listen, SECRET)
            .unwrap()
            .with_max_body_bytes(64 * 1024);
        let channel = TelegramChannel::new(
            TelegramConfig::new(TOKEN)
                .with_api_url(self.url.clone())
                .with_webhook(hook),
        )
        .unwrap();
        let bridge = Bridge::new(
            Arc::new(LocalRuntime::new(self.service.clone())),
            self.store.clone(),
            vec![Arc::new(channel)],
            self.config.clone(),
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move { bridge.run(cancel).await.unwrap() }
        });
        for _ in 0..6000 {
            if !self.fake.calls("setWebhook").is_empty() {
                return (cancel, task, format!("http://{listen}/telegram"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the webhook was never registered");
    }

    async fn wait_for(&self, name: &str, needle: &str) -> Call {
        for _ in 0..600 {
            // A reply may be a message edited into its final text.
            let mut calls = self.fake.calls(name);
            if name == "sendMessage" {
                calls.extend(self.fake.calls("editMessageText"));
            }
            if let Some(call) = calls
                .into_iter()
                .find(|c| c.body["text"].as_str().unwrap_or_default().contains(needle))
            {
                return call;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "no {name} with {needle:?}; calls: {:#?}",
            self.fake.calls.lock().unwrap()
        );
    }
}

fn streamed(words: usize, delay: Duration) -> ScriptedProvider {
    let mut response = ScriptedResponse::builder();
    for i in 0..words {
        response = response.text(format!("w{i} "));
    }
    ScriptedProvider::new(vec![response.build()]).with_event_delay(delay)
}

/// Every gap between consecutive calls is at least the interval (a small
/// tolerance for timer granularity).
fn assert_paced(calls: &[Call]) {
    for pair in calls.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap + Duration::from_millis(20) >= INTERVAL,
            "two updates {gap:?} apart"
        );
    }
}

#[tokio::test]
async fn a_private_chat_streams_by_draft_then_sends_the_answer() {
    let f = fixture(streamed(30, Duration::from_millis(30)), true).await;
    let (cancel, task) = f.start();
    f.fake.text(ADA, ADA, "hi **there**");
    let last = f.wait_for("sendMessage", "w29").await;
    assert_eq!(last.body["chat_id"], ADA);
    assert_eq!(last.body["parse_mode"], "HTML");
    let drafts = f.fake.calls("sendMessageDraft");
    assert!(drafts.len() >= 2, "streamed as drafts: {drafts:#?}");
    assert!(drafts.iter().all(|d| d.body["chat_id"] == ADA));
    let id = drafts[0].body["draft_id"].clone();
    assert!(drafts.iter().all(|d| d.body["draft_id"] == id), "one draft");
    assert_paced(&drafts);
    assert!(f.fake.calls("editMessageText").is_empty());
    assert!(!f.fake.calls("sendChatAction").is_empty(), "typing shown");
    let commands = f.fake.calls("setMyCommands");
    assert_eq!(commands[0].body["commands"][0]["command"], "new");
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn without_drafts_a_placeholder_is_edited_at_most_once_per_interval() {
    let f = fixture(streamed(40, Duration::from_millis(30)), false).await;
    let (cancel, task) = f.start();
    f.fake.text(ADA, ADA, "hi");
    for _ in 0..600 {
        if f.fake
            .texts("editMessageText")
            .iter()
            .any(|t| t.contains("w39"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sends = f.fake.calls("sendMessage");
    assert_eq!(sends.len(), 1, "one message, edited: {sends:#?}");
    let edits = f.fake.calls("editMessageText");
    assert!(edits.len() >= 2, "{edits:#?}");
    assert!(
        edits.last().unwrap().body["text"]
            .as_str()
            .unwrap()
            .contains("w39")
    );
    let mut updates = vec![sends[0].clone()];
    updates.extend(edits);
    assert_paced(&updates);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_long_reply_arrives_as_split_messages() {
    let long: String = (0..700).map(|i| format!("line {i} <b>&\n")).collect();
    let f = fixture(
        ScriptedProvider::new(vec![ScriptedResponse::text(long)]),
        false,
    )
    .await;
    let (cancel, task) = f.start();
    f.fake.text(ADA, ADA, "long");
    f.wait_for("sendMessage", "line 699").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sends = f.fake.texts("sendMessage");
    assert!(sends.len() >= 3, "{}", sends.len());
    assert!(sends.iter().all(|t| t.chars().count() <= 4096));
    let all: String =
        f.fake.texts("sendMessage").concat() + &f.fake.texts("editMessageText").concat();
    assert!(all.contains("line 0 &lt;b&gt;&amp;"), "escaped HTML");
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_429_retry_after_is_honoured() {
    let f = fixture(
        ScriptedProvider::new(vec![ScriptedResponse::text("fine")]),
        false,
    )
    .await;
    f.fake.rate_limit_sends.store(1, Ordering::SeqCst);
    let (cancel, task) = f.start();
    f.fake.text(ADA, ADA, "hi");
    let sent = f.wait_for("sendMessage", "fine").await;
    let sends = f.fake.calls("sendMessage");
    assert_eq!(sends.len(), 2, "the refused one and the retry");
    let gap = sent.at.duration_since(sends[0].at);
    assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn an_unknown_user_gets_the_pairing_reply_and_no_run_starts() {
    let f = fixture(
        ScriptedProvider::new(vec![ScriptedResponse::text("secret")]),
        true,
    )
    .await;
    let (cancel, task) = f.start();
    f.fake.text(777, 777, "hello?");
    let reply = f.wait_for("sendMessage", "netherbrain gateway pair").await;
    assert_eq!(reply.body["chat_id"], 777);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.provider.requests().len(), 0);
    assert!(
        f.store
            .chat_binding("telegram", "777")
            .await
            .unwrap()
            .is_none()
    );
    let pending = f.store.pending_pairings(chrono::Utc::now()).await.unwrap();
    assert_eq!(pending[0].sender_id, "777");
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn stop_interrupts_a_running_session() {
    let provider = ScriptedProvider::new(vec![
        ScriptedResponse::builder().text("working").hang().build(),
    ]);
    let f = fixture(provider, false).await;
    let (cancel, task) = f.start();
    f.fake.text(ADA, ADA, "go");
    f.wait_for("sendMessage", "working").await;
    f.fake.text(ADA, ADA, "/stop");
    f.wait_for("sendMessage", "Stopped").await;
    let binding = f
        .store
        .chat_binding("telegram", "100")
        .await
        .unwrap()
        .unwrap();
    let session = f
        .store
        .latest_session(binding.conversation_id)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..200 {
        if f.store.get_session(session.id).await.unwrap().status == SessionStatus::Interrupted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        f.store.get_session(session.id).await.unwrap().status,
        SessionStatus::Interrupted
    );
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn approve_on_the_inline_keyboard_resumes_the_run() {
    let provider = ScriptedProvider::new(vec![
        ScriptedResponse::builder()
            .tool_call("call_1", "delete", r#"{"path":"a.txt"}"#)
            .build(),
        ScriptedResponse::text("deleted it"),
    ]);
    let f = fixture(provider, false).await;
    let (cancel, task) = f.start();
    f.fake.text(ADA, ADA, "delete a.txt");
    let ask = f.wait_for("sendMessage", "Allow it?").await;
    let keyboard = &ask.body["reply_markup"]["inline_keyboard"][0];
    assert_eq!(keyboard[0]["callback_data"], "approve:call_1");
    assert_eq!(keyboard[1]["callback_data"], "deny:call_1");
    // The asking message's id, as the fake numbered it.
    let asked = f.fake.calls("sendMessage").len() as i64 + 1000;
    f.fake.press(ADA, ADA, asked, "approve:call_1");
    f.wait_for("sendMessage", "deleted it").await;
    assert!(!f.fake.calls("answerCallbackQuery").is_empty());
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_gateway_restarted_mid_run_still_delivers_the_final_answer() {
    let f = fixture(streamed(40, Duration::from_millis(25)), false).await;
    let (cancel, task) = f.start();
    f.fake.text(ADA, ADA, "hi");
    f.wait_for("sendMessage", "w").await;
    cancel.cancel();
    task.await.unwrap();
    // The run goes on in the runtime while the gateway is down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cancel, task) = f.start();
    for _ in 0..600 {
        let all = [f.fake.texts("sendMessage"), f.fake.texts("editMessageText")].concat();
        if all.iter().any(|t| t.contains("w39")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = [f.fake.texts("sendMessage"), f.fake.texts("editMessageText")].concat();
    assert!(all.iter().any(|t| t.contains("w39")), "{all:#?}");
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_photo_and_a_document_become_input_parts_kept_in_the_blob_store() {
    let provider = ScriptedProvider::new(vec![
        ScriptedResponse::text("a picture"),
        ScriptedResponse::text("a shopping list"),
    ]);
    let f = fixture(provider, false).await;
    let (cancel, task) = f.start();
    // Telegram sends a photo in several sizes; the largest is fetched.
    let photo = f.fake.file(
        ADA,
        ADA,
        "what is this?",
        "photo",
        json!([
            {"file_id": "photo-small", "file_unique_id": "s", "file_size": 10, "width": 90, "height": 90},
            {"file_id": "photo-big", "file_unique_id": "b", "file_size": 25, "width": 800, "height": 600},
        ]),
    );
    f.wait_for("sendMessage", "a picture").await;
    let gets = f.fake.calls("getFile");
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].body["file_id"], "photo-big");
    let request = &f.provider.requests()[0];
    let question = request.messages.last().unwrap();
    assert_eq!(question.text(), "what is this?");
    let image = question
        .content
        .iter()
        .find_map(|p| match p {
            netherbrain_core::ContentPart::Image { source } => Some(source.clone()),
            _ => None,
        })
        .expect("an image part");
    assert_eq!(
        image,
        netherbrain_core::ImageSource::Base64 {
            // A Telegram photo is a JPEG.
            media_type: "image/jpeg".into(),
            data: "iVBORy1wcmV0ZW5kLWltYWdlLWJ5dGVz".into(),
        }
    );
    let kept = std::fs::read(
        f.blob_dir
            .path()
            .join(format!("gateway/telegram/{ADA}/{photo}/0-photo.jpg")),
    )
    .unwrap();
    assert_eq!(kept, FILES[0].2);

    // A text document is given as text.
    f.fake.file(
        ADA,
        ADA,
        "",
        "document",
        json!({"file_id": "notes", "file_unique_id": "n", "file_size": 23,
               "file_name": "notes.txt", "mime_type": "text/plain"}),
    );
    f.wait_for("sendMessage", "a shopping list").await;
    let question = f.provider.requests()[1].messages.last().unwrap().clone();
    assert!(
        question
            .text()
            .contains("Attached file notes.txt:\n```\nbuy milk\nfix the bike\n```"),
        "{}",
        question.text()
    );
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_file_over_the_limit_gets_a_polite_reply_and_no_run() {
    let f = fixture(ScriptedProvider::new(vec![]), false).await;
    let (cancel, task) = f.start();
    f.fake.file(
        ADA,
        ADA,
        "summarise this",
        "document",
        json!({"file_id": "huge", "file_unique_id": "h", "file_size": 50_000_000,
               "file_name": "dump.bin"}),
    );
    let reply = f.wait_for("sendMessage", "too large").await;
    assert!(
        reply.body["text"]
            .as_str()
            .unwrap()
            .contains("dump.bin is too large for me"),
        "{reply:?}"
    );
    assert!(f.fake.calls("getFile").is_empty(), "not even fetched");
    assert!(f.provider.requests().is_empty(), "no run");
    assert!(
        f.store
            .chat_binding("telegram", &ADA.to_string())
            .await
            .unwrap()
            .is_none(),
        "no conversation"
    );
    cancel.cancel();
    task.await.unwrap();
}

/// POSTs `body` to the webhook listener with `secret` (none: no header).
async fn post(url: &str, secret: Option<&str>, body: impl Into<reqwest::Body>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(secret) = secret {
        request = request.header(SECRET_HEADER, secret);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Sends only the head of a POST declaring a body over the limit and
/// reads the status line of the answer.
async fn declare_huge_body(url: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "POST /telegram HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{SECRET_HEADER}: {SECRET}\r\nContent-Length: {}\r\n\r\n",
            10 * 1024 * 1024
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n") {
            assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed before a status line");
            head.push(byte[0]);
        }
        let line = String::from_utf8(head).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn polling_removes_a_webhook_first() {
    let f = fixture(
        ScriptedProvider::new(vec![ScriptedResponse::text("polled")]),
        false,
    )
    .await;
    let (cancel, task) = f.start();
    f.fake.text(ADA, ADA, "hi");
    f.wait_for("sendMessage", "polled").await;
    assert_eq!(f.fake.calls("deleteWebhook").len(), 1);
    assert!(f.fake.calls("setWebhook").is_empty());
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn webhook_mode_registers_the_webhook_answers_a_posted_update_and_removes_it() {
    let f = fixture(
        ScriptedProvider::new(vec![ScriptedResponse::text("hooked answer")]),
        false,
    )
    .await;
    let (cancel, task, url) = f.start_webhook().await;
    let set = f.fake.calls("setWebhook");
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].body["url"], HOOK_URL);
    assert_eq!(set[0].body["secret_token"], SECRET);
    assert_eq!(
        set[0].body["allowed_updates"],
        json!(["message", "callback_query"])
    );
    assert!(
        f.fake.calls("deleteWebhook").is_empty(),
        "not while it runs"
    );

    let update = f.fake.text_update(ADA, ADA, "hello over the hook");
    assert_eq!(post(&url, Some(SECRET), update.to_string()).await, 200);
    let reply = f.wait_for("sendMessage", "hooked answer").await;
    assert_eq!(reply.body["chat_id"], ADA);
    let requests = f.provider.requests();
    assert_eq!(requests.len(), 1);
    assert!(format!("{:?}", requests[0]).contains("hello over the hook"));

    cancel.cancel();
    task.await.unwrap();
    let deleted = f.fake.calls("deleteWebhook");
    assert_eq!(deleted.len(), 1, "removed on shutdown");
    assert!(deleted[0].at >= set[0].at);
}

#[tokio::test]
async fn a_webhook_post_without_the_right_secret_is_refused_and_not_run() {
    let f = fixture(
        ScriptedProvider::new(vec![ScriptedResponse::text("only once")]),
        false,
    )
    .await;
    let (cancel, task, url) = f.start_webhook().await;
    let intruder = f.fake.text_update(ADA, ADA, "intruder text");
    let wrong = format!("{SECRET}x");
    assert_eq!(post(&url, Some(&wrong), intruder.to_string()).await, 401);
    assert_eq!(post(&url, Some("short"), intruder.to_string()).await, 401);
    assert_eq!(post(&url, None, intruder.to_string()).await, 401);
    // The same chat's next message is handled after anything before it.
    let real = f.fake.text_update(ADA, ADA, "the real one");
    assert_eq!(post(&url, Some(SECRET), real.to_string()).await, 200);
    f.wait_for("sendMessage", "only once").await;
    let requests = f.provider.requests();
    assert_eq!(requests.len(), 1, "only the authenticated update ran");
    let seen = format!("{:?}", requests[0]);
    assert!(seen.contains("the real one"), "{seen}");
    assert!(!seen.contains("intruder"), "{seen}");
    assert!(
        f.fake
            .texts("sendMessage")
            .iter()
            .all(|t| !t.contains("pair"))
    );
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_webhook_body_that_is_not_an_update_is_a_400() {
    let f = fixture(
        ScriptedProvider::new(vec![ScriptedResponse::text("still works")]),
        false,
    )
    .await;
    let (cancel, task, url) = f.start_webhook().await;
    assert_eq!(post(&url, Some(SECRET), "not json").await, 400);
    assert_eq!(post(&url, Some(SECRET), "{}").await, 400);
    assert_eq!(
        post(
            &url,
            Some(SECRET),
            r#"{"update_id": 9, "message": "garbage"}"#
        )
        .await,
        400
    );
    // Bounded: a body declared over the limit is refused unread.
    assert_eq!(declare_huge_body(&url).await, 413);
    let get = reqwest::Client::new()
        .get(&url)
        .header(SECRET_HEADER, SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(f.provider.requests().len(), 0);
    let update = f.fake.text_update(ADA, ADA, "hi");
    assert_eq!(post(&url, Some(SECRET), update.to_string()).await, 200);
    f.wait_for("sendMessage", "still works").await;
    assert_eq!(f.provider.requests().len(), 1);
    cancel.cancel();
    task.await.unwrap();
}
