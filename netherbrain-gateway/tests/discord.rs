//! The Discord channel through the real twilight clients against a fake
//! Discord on loopback: the REST API on wiremock, the gateway WebSocket on
//! an axum server speaking the gateway protocol (Hello, Identify, READY,
//! dispatches, heartbeats). Served by the bridge over the in-process
//! conversation service with scripted providers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
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
use netherbrain_gateway::discord::{DiscordChannel, DiscordConfig};
use netherbrain_gateway::{AllowEntry, Bridge, BridgeConfig, LocalRuntime};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "MTIz.test-token";
const BOT: u64 = 900;
const APP: u64 = 901;
const ADA: u64 = 100;
const BOB: u64 = 101;
const MALLORY: u64 = 666;
const GUILD: u64 = 500;
const INTERVAL: Duration = Duration::from_millis(300);

/// One recorded REST call.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    body: Value,
}

/// The fake REST API: every call recorded and answered like Discord would.
#[derive(Debug, Default)]
struct FakeRest {
    calls: Mutex<Vec<Call>>,
    next_id: AtomicU64,
    /// `POST …/messages` calls to answer 429 before succeeding.
    rate_limit_sends: AtomicU64,
}

fn user(id: u64) -> Value {
    json!({"id": id.to_string(), "username": format!("user{id}"), "global_name": format!("User {id}"),
           "discriminator": "0", "avatar": null, "bot": id == BOT, "public_flags": 0})
}

fn message_json(id: u64, channel: u64, guild: Option<u64>, author: u64, content: &str) -> Value {
    let mut message = json!({
        "id": id.to_string(), "channel_id": channel.to_string(), "author": user(author),
        "content": content, "timestamp": "2026-01-01T10:00:00.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false,
        "mention_roles": [], "mentions": [], "attachments": [], "embeds": [],
        "pinned": false, "type": 0,
    });
    if let Some(guild) = guild {
        message["guild_id"] = json!(guild.to_string());
    }
    if content.contains(&format!("<@{BOT}>")) {
        message["mentions"] = json!([user(BOT)]);
    }
    message
}

impl FakeRest {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst) + 10_000
    }

    fn calls(&self, method: &str, path_part: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method && c.path.contains(path_part))
            .cloned()
            .collect()
    }

    /// Texts of messages created and edited in a channel.
    fn texts(&self, channel: u64) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| {
                c.path
                    .starts_with(&format!("/api/v10/channels/{channel}/messages"))
                    && (c.method == "POST" || c.method == "PATCH")
                    && c.body.get("content").is_some()
            })
            .map(|c| c.body["content"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

struct Responder(Arc<FakeRest>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let fake = &self.0;
        let path = request.url.path().to_owned();
        let method = request.method.to_string();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        fake.calls.lock().unwrap().push(Call {
            method: method.clone(),
            path: path.clone(),
            body: body.clone(),
        });
        let parts: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["applications", "@me"]) => ResponseTemplate::new(200).set_body_json(json!({
                "id": APP.to_string(), "name": "Netherbrain", "description": "", "icon": null,
                "bot_public": false, "bot_require_code_grant": false, "flags": 0,
                "team": null, "verify_key": "k",
            })),
            ("PUT", ["applications", _, "commands"]) => {
                ResponseTemplate::new(200).set_body_json(json!([]))
            }
            ("POST", ["channels", channel, "messages"]) => {
                if fake
                    .rate_limit_sends
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return ResponseTemplate::new(429).set_body_json(json!({
                        "message": "You are being rate limited.", "retry_after": 0.4, "global": false,
                    }));
                }
                let channel: u64 = channel.parse().unwrap_or(1);
                let content = body["content"].as_str().unwrap_or_default();
                ResponseTemplate::new(200).set_body_json(message_json(
                    fake.id(),
                    channel,
                    None,
                    BOT,
                    content,
                ))
            }
            ("PATCH", ["channels", channel, "messages", id]) => {
                let channel: u64 = channel.parse().unwrap_or(1);
                let id: u64 = id.parse().unwrap_or(1);
                let content = body["content"].as_str().unwrap_or_default();
                ResponseTemplate::new(200)
                    .set_body_json(message_json(id, channel, None, BOT, content))
            }
            ("POST", ["channels", channel, "messages", _, "threads"]) => ResponseTemplate::new(201)
                .set_body_json(json!({
                    "id": fake.id().to_string(), "type": 11, "guild_id": GUILD.to_string(),
                    "parent_id": channel, "owner_id": BOT.to_string(),
                    "name": body["name"].clone(),
                })),
            _ => ResponseTemplate::new(204),
        }
    }
}

/// The fake gateway: dispatches queued by the test go to the connected
/// shard, after the Hello / Identify / READY handshake.
#[derive(Clone)]
struct FakeGateway {
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>>,
    identified: Arc<Mutex<Vec<Value>>>,
}

async fn gateway_upgrade(State(gateway): State<FakeGateway>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| serve_shard(gateway, socket))
}

async fn serve_shard(gateway: FakeGateway, mut socket: WebSocket) {
    let send = |value: Value| WsMessage::Text(value.to_string().into());
    if socket
        .send(send(json!({"op": 10, "d": {"heartbeat_interval": 40_000}})))
        .await
        .is_err()
    {
        return;
    }
    // Identify.
    loop {
        match socket.recv().await {
            Some(Ok(WsMessage::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if frame["op"] == 2 {
                    gateway.identified.lock().unwrap().push(frame["d"].clone());
                    break;
                }
            }
            Some(Ok(_)) => {}
            _ => return,
        }
    }
    let mut seq = 1;
    let ready = json!({"op": 0, "s": seq, "t": "READY", "d": {
        "v": 10, "session_id": "session-1", "resume_gateway_url": "ws://127.0.0.1:1",
        "guilds": [],
        "user": {"id": BOT.to_string(), "username": "netherbrain", "discriminator": "0",
                 "avatar": null, "bot": true, "mfa_enabled": false},
        "application": {"id": APP.to_string(), "flags": 0},
    }});
    if socket.send(send(ready)).await.is_err() {
        return;
    }
    let mut events = gateway.events.lock().await;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                seq += 1;
                let frame = json!({"op": 0, "s": seq, "t": event["t"], "d": event["d"]});
                if socket.send(send(frame)).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if frame["op"] == 1 && socket.send(send(json!({"op": 11}))).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
        }
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

struct Fixture {
    _rest_server: MockServer,
    rest_url: String,
    blob_dir: tempfile::TempDir,
    rest: Arc<FakeRest>,
    events: mpsc::UnboundedSender<Value>,
    gateway: FakeGateway,
    store: Arc<MemoryStore>,
    provider: Arc<ScriptedProvider>,
    cancel: CancellationToken,
    next_id: AtomicU64,
}

async fn fixture(provider: ScriptedProvider) -> Fixture {
    let rest_server = MockServer::start().await;
    let rest = Arc::new(FakeRest::default());
    Mock::given(path_regex(r"^/api/v10/"))
        .respond_with(Responder(rest.clone()))
        .mount(&rest_server)
        .await;
    // Attachment downloads (the CDN), on the same fake.
    Mock::given(wiremock::matchers::method("GET"))
        .and(path_regex(r"^/attachments/"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"line one\nline two\n".to_vec()))
        .mount(&rest_server)
        .await;
    let blob_dir = tempfile::tempdir().unwrap();
    let (events, receiver) = mpsc::unbounded_channel();
    let gateway = FakeGateway {
        events: Arc::new(tokio::sync::Mutex::new(receiver)),
        identified: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_url = format!("ws://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/", axum::routing::get(gateway_upgrade))
        .with_state(gateway.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap()
        .id;
    let bob = store
        .create_user(NewUser::new("bob", UserRole::User))
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
        .allow(AllowEntry::new("discord", ADA.to_string(), ada))
        .allow(AllowEntry::new("discord", BOB.to_string(), bob))
        .with_max_attachment_bytes(1024)
        .with_attachment_store(Arc::new(Blobs(
            netherbrain_store::blob::BlobStore::local(blob_dir.path()).unwrap(),
        )));
    let channel = DiscordChannel::new(
        DiscordConfig::new(TOKEN)
            .with_api_url(rest_server.uri())
            .with_gateway_url(gateway_url),
    )
    .unwrap();
    let bridge = Bridge::new(
        Arc::new(LocalRuntime::new(service)),
        store.clone(),
        vec![Arc::new(channel)],
        config,
    );
    let cancel = CancellationToken::new();
    tokio::spawn({
        let cancel = cancel.clone();
        async move { bridge.run(cancel).await.unwrap() }
    });
    let fixture = Fixture {
        rest_url: rest_server.uri(),
        blob_dir,
        _rest_server: rest_server,
        rest,
        events,
        gateway,
        store,
        provider,
        cancel,
        next_id: AtomicU64::new(1),
    };
    fixture
        .eventually("the shard identifies", || {
            !fixture.gateway.identified.lock().unwrap().is_empty()
        })
        .await;
    fixture
}

impl Fixture {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    fn dispatch(&self, kind: &str, data: Value) {
        self.events.send(json!({"t": kind, "d": data})).unwrap();
    }

    /// A message from `author` in `channel` (a guild channel if `guild`).
    fn say(&self, channel: u64, guild: Option<u64>, author: u64, content: &str) -> u64 {
        let id = self.id();
        self.dispatch(
            "MESSAGE_CREATE",
            message_json(id, channel, guild, author, content),
        );
        id
    }

    fn interaction(
        &self,
        channel: u64,
        author: u64,
        kind: u8,
        data: Value,
        message: Option<Value>,
    ) {
        let mut interaction = json!({
            "id": self.id().to_string(), "application_id": APP.to_string(), "type": kind,
            "token": "interaction-token", "version": 1, "data": data,
            "channel": {"id": channel.to_string(), "type": 1},
            "user": user(author), "entitlements": [], "authorizing_integration_owners": {},
        });
        if let Some(message) = message {
            interaction["message"] = message;
        }
        self.dispatch("INTERACTION_CREATE", interaction);
    }

    async fn eventually(&self, what: &str, check: impl Fn() -> bool) {
        for _ in 0..2000 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "timed out waiting until {what}; REST calls: {:#?}",
            self.rest.calls.lock().unwrap()
        );
    }

    async fn wait_text(&self, channel: u64, needle: &str) {
        self.eventually(&format!("channel {channel} shows {needle:?}"), || {
            self.rest.texts(channel).iter().any(|t| t.contains(needle))
        })
        .await;
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn streamed(words: usize, delay: Duration) -> ScriptedProvider {
    let mut response = ScriptedResponse::builder();
    for i in 0..words {
        response = response.text(format!("w{i} "));
    }
    ScriptedProvider::new(vec![response.build()]).with_event_delay(delay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_streams_a_reply_edited_in_place() {
    let fx = fixture(streamed(30, Duration::from_millis(40))).await;
    // Slash commands registered on the application, /preset with a name.
    let commands = fx
        .rest
        .calls("PUT", &format!("/applications/{APP}/commands"));
    assert_eq!(commands.len(), 1);
    let names: Vec<&str> = commands[0]
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["new", "stop", "preset", "status", "help"]);
    assert_eq!(commands[0].body[2]["options"][0]["name"], "name");
    // The shard asked for message content in servers and direct messages.
    let identify = fx.gateway.identified.lock().unwrap()[0].clone();
    assert_eq!(identify["token"], format!("Bot {TOKEN}"));
    let intents = identify["intents"].as_u64().unwrap();
    assert_eq!(intents & (1 << 15), 1 << 15, "MESSAGE_CONTENT");
    assert_eq!(intents & (1 << 12), 1 << 12, "DIRECT_MESSAGES");

    fx.say(7, None, ADA, "hello");
    fx.wait_text(7, "w29").await;
    let posts = fx.rest.calls("POST", "/channels/7/messages");
    let edits = fx.rest.calls("PATCH", "/channels/7/messages/");
    assert_eq!(posts.len(), 1, "one message, edited in place: {posts:#?}");
    assert!(!edits.is_empty());
    // Nobody is pinged by what the model writes.
    assert_eq!(posts[0].body["allowed_mentions"]["parse"], json!([]));
    assert!(!fx.rest.calls("POST", "/channels/7/typing").is_empty());
    assert!(
        fx.store
            .chat_binding("discord", "7")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        fx.provider.requests()[0].messages.last().unwrap().text(),
        "hello"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_in_a_server_channel_opens_a_thread() {
    let fx = fixture(ScriptedProvider::new(vec![
        ScriptedResponse::builder().text("first answer").build(),
        ScriptedResponse::builder().text("second answer").build(),
    ]))
    .await;
    // Not mentioned: not for the bot.
    fx.say(40, Some(GUILD), ADA, "chatter among humans");
    let asked = fx.say(
        40,
        Some(GUILD),
        ADA,
        &format!("<@{BOT}> why is the sky blue?"),
    );
    fx.eventually("a thread is opened", || {
        !fx.rest.calls("POST", "/threads").is_empty()
    })
    .await;
    let thread_calls = fx.rest.calls("POST", "/threads");
    assert_eq!(thread_calls.len(), 1);
    assert_eq!(
        thread_calls[0].path,
        format!("/api/v10/channels/40/messages/{asked}/threads")
    );
    assert_eq!(thread_calls[0].body["name"], "why is the sky blue?");
    // The conversation is bound to the new thread, not the channel.
    let mut bound = Vec::new();
    for _ in 0..2000 {
        bound = fx.store.list_chat_bindings("discord").await.unwrap();
        if !bound.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let thread: Vec<String> = bound.into_iter().map(|b| b.chat_id).collect();
    assert_eq!(thread.len(), 1, "one conversation, in the thread");
    let thread: u64 = thread[0].parse().unwrap();
    fx.wait_text(thread, "first answer").await;
    assert!(
        fx.rest.texts(40).is_empty(),
        "nothing answered in the channel"
    );
    let first_request = &fx.provider.requests()[0];
    assert_eq!(
        first_request.messages.last().unwrap().text(),
        "why is the sky blue?",
        "the mention is not part of the question"
    );
    // In the bot's thread every message is for it, without a mention.
    fx.say(thread, Some(GUILD), ADA, "and at sunset?");
    fx.wait_text(thread, "second answer").await;
    assert_eq!(fx.provider.requests().len(), 2);
    assert_eq!(fx.rest.calls("POST", "/threads").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_reply_is_split_at_2000_characters_keeping_code_blocks() {
    let code: String = (0..120)
        .map(|i| format!("let value_{i} = {i};\n"))
        .collect();
    let answer = format!("Here is the code:\n\n```rust\n{code}```\n\nDone — ünïcödé ✓.");
    let fx = fixture(ScriptedProvider::new(vec![
        ScriptedResponse::builder().text(answer.clone()).build(),
    ]))
    .await;
    fx.say(8, None, ADA, "write code");
    fx.wait_text(8, "Done — ünïcödé ✓.").await;
    // Each message's latest text.
    let mut latest: Vec<(String, String)> = Vec::new();
    // The fake numbers the messages it creates from 10000.
    for call in fx.rest.calls.lock().unwrap().iter() {
        let text = call.body["content"].as_str().unwrap_or_default().to_owned();
        if call.method == "POST" && call.path == "/api/v10/channels/8/messages" {
            latest.push((String::new(), text));
        } else if call.method == "PATCH" && call.path.starts_with("/api/v10/channels/8/messages/") {
            let id = call.path.rsplit('/').next().unwrap().to_owned();
            let index: usize = id.parse::<usize>().unwrap() - 10_000;
            latest[index].1 = text;
        }
    }
    assert!(latest.len() >= 2, "split into several messages");
    for (_, text) in &latest {
        assert!(
            text.chars().count() <= 2000,
            "{} characters",
            text.chars().count()
        );
        assert_eq!(
            text.matches("```").count() % 2,
            0,
            "balanced fences: {text}"
        );
    }
    let joined: String = latest.iter().map(|(_, t)| t.as_str()).collect();
    for i in 0..120 {
        assert!(
            joined.contains(&format!("let value_{i} = {i};")),
            "line {i} kept"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_and_deny_are_buttons_only_the_owner_can_press() {
    let fx = fixture(ScriptedProvider::new(vec![
        ScriptedResponse::builder()
            .tool_call("call_1", "delete", r#"{"path":"/tmp/x"}"#)
            .build(),
        ScriptedResponse::builder().text("It is gone.").build(),
    ]))
    .await;
    fx.say(9, None, ADA, "delete /tmp/x");
    fx.wait_text(9, "Allow it?").await;
    let ask = fx
        .rest
        .calls("POST", "/channels/9/messages")
        .into_iter()
        .find(|c| {
            c.body["content"]
                .as_str()
                .unwrap_or_default()
                .contains("Allow it?")
        })
        .unwrap();
    insta::assert_json_snapshot!("discord_approval_message", ask.body);
    let buttons = &ask.body["components"][0]["components"];
    assert_eq!(buttons[0]["custom_id"], "approve:call_1");
    assert_eq!(buttons[1]["custom_id"], "deny:call_1");
    let ask_message = message_json(10_001, 9, None, BOT, "Allow it?");
    let press = json!({"custom_id": "approve:call_1", "component_type": 2});

    // Someone else presses: refused, nothing resumes.
    fx.interaction(9, BOB, 3, press.clone(), Some(ask_message.clone()));
    fx.wait_text(9, "Only the conversation's owner can answer this.")
        .await;
    assert_eq!(fx.provider.requests().len(), 1);

    fx.interaction(9, ADA, 3, press, Some(ask_message));
    fx.wait_text(9, "It is gone.").await;
    let callbacks = fx.rest.calls("POST", "/callback");
    assert_eq!(callbacks.len(), 2, "both presses acknowledged");
    assert_eq!(callbacks[1].body["type"], 6, "deferred update");
    let binding = fx
        .store
        .chat_binding("discord", "9")
        .await
        .unwrap()
        .unwrap();
    let sessions = fx
        .store
        .list_sessions(binding.conversation_id)
        .await
        .unwrap();
    assert_eq!(sessions.last().unwrap().status, SessionStatus::Committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_reach_the_bridge() {
    let fx = fixture(ScriptedProvider::new(vec![
        ScriptedResponse::builder().text("hi").build(),
    ]))
    .await;
    fx.interaction(
        11,
        ADA,
        2,
        json!({"id": "77", "name": "preset", "type": 1, "options": [{"name": "name", "type": 3, "value": "tiny"}]}),
        None,
    );
    fx.wait_text(11, "Preset set to tiny.").await;
    let callback = &fx.rest.calls("POST", "/callback")[0];
    assert_eq!(callback.body["type"], 4);
    assert_eq!(callback.body["data"]["content"], "`/preset tiny`");
    fx.interaction(
        11,
        ADA,
        2,
        json!({"id": "78", "name": "new", "type": 1}),
        None,
    );
    fx.wait_text(11, "New conversation started.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_gets_a_pairing_code_and_no_run() {
    let fx = fixture(ScriptedProvider::new(vec![])).await;
    fx.say(12, None, MALLORY, "let me in");
    fx.wait_text(12, "netherbrain gateway pair").await;
    let pending = fx.store.pending_pairings(chrono::Utc::now()).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].sender_id, MALLORY.to_string());
    assert!(fx.provider.requests().is_empty());
    assert!(
        fx.store
            .chat_binding("discord", "12")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out() {
    let fx = fixture(ScriptedProvider::new(vec![
        ScriptedResponse::builder().text("after the wait").build(),
    ]))
    .await;
    fx.rest.rate_limit_sends.store(1, Ordering::SeqCst);
    fx.say(13, None, ADA, "hello");
    // Refused once with 429, then sent again: one message shows the reply.
    fx.wait_text(13, "after the wait").await;
    let posts = fx.rest.calls("POST", "/channels/13/messages");
    assert_eq!(posts.len(), 2, "the refused send and its retry: {posts:#?}");
    assert_eq!(fx.rest.rate_limit_sends.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_are_fetched_within_the_limit_and_kept() {
    let fx = fixture(ScriptedProvider::new(vec![
        ScriptedResponse::builder().text("two lines").build(),
    ]))
    .await;
    let file = |name: &str, size: u64| {
        json!({"id": "3", "filename": name, "size": size, "content_type": "text/plain",
               "url": format!("{}/attachments/3/{name}", fx.rest_url),
               "proxy_url": "http://127.0.0.1:1/p", "ephemeral": false})
    };
    // Over the limit: a polite reply, nothing fetched, no run.
    let mut big = message_json(fx.id(), 14, None, ADA, "read this");
    big["attachments"] = json!([file("big.log", 5_000_000)]);
    fx.dispatch("MESSAGE_CREATE", big);
    fx.wait_text(14, "big.log is too large for me").await;
    assert!(fx.provider.requests().is_empty());
    assert!(
        fx.store
            .chat_binding("discord", "14")
            .await
            .unwrap()
            .is_none()
    );

    let id = fx.id();
    let mut small = message_json(id, 14, None, ADA, "read this");
    small["attachments"] = json!([file("notes.txt", 18)]);
    fx.dispatch("MESSAGE_CREATE", small);
    fx.wait_text(14, "two lines").await;
    let question = fx.provider.requests()[0].messages.last().unwrap().clone();
    assert!(
        question.text().contains("read this")
            && question
                .text()
                .contains("Attached file notes.txt:\n```\nline one\nline two\n```"),
        "{}",
        question.text()
    );
    let kept = std::fs::read(
        fx.blob_dir
            .path()
            .join(format!("gateway/discord/14/{id}/0-notes.txt")),
    )
    .unwrap();
    assert_eq!(kept, b"line one\nline two\n");
}
