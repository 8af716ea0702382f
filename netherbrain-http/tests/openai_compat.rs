//! The OpenAI-compatible endpoints over real TCP: a MemoryStore, a scripted
//! provider behind the `local` profile, and a bootstrapped API key. The
//! last test drives the server with the official `openai` Python package.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::provider::{ModelSettings, ProviderEvent, ToolChoice, ToolDefinition};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{ConversationQuery, MemoryStore, NewPreset};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::tool::{DynTool, ToolContext, ToolError, ToolOutput, ToolSet};
use netherbrain_core::{FinishReason, PresetConfig, ProviderError, SessionStatus};
use netherbrain_http::{AppState, ServerConfig, bootstrap_admin, serve};
use serde_json::{Value, json};
use tokio::sync::oneshot;

struct Server {
    base: String,
    key: String,
    state: AppState,
    store: Arc<MemoryStore>,
    provider: Arc<ScriptedProvider>,
    clock_calls: Arc<AtomicUsize>,
    http: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

/// A tool set with one tool, `clock`, that counts its calls.
#[derive(Debug)]
struct TestTools {
    clock: Arc<Clock>,
}

#[derive(Debug)]
struct Clock {
    def: ToolDefinition,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl DynTool for Clock {
    fn definition(&self) -> &ToolDefinition {
        &self.def
    }

    async fn call_json(&self, _args: Value, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(ToolOutput::text("12:00"))
    }
}

#[async_trait]
impl ToolSet for TestTools {
    fn name(&self) -> &str {
        "test-tools"
    }

    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        Ok(vec![self.clock.clone()])
    }
}

async fn start(provider: ScriptedProvider) -> Server {
    let store = Arc::new(MemoryStore::new());
    let key = bootstrap_admin(store.as_ref(), None)
        .await
        .expect("bootstrap")
        .expect("a generated key");
    for (name, config) in [
        ("tiny", PresetConfig::new("local", "tiny-model")),
        (
            "timekeeper",
            PresetConfig::new("local", "tiny-model").with_toolsets(vec!["test-tools".into()]),
        ),
        ("broken", PresetConfig::new("nowhere", "x")),
        (
            "capped",
            PresetConfig::new("local", "tiny-model").with_settings(
                ModelSettings::default()
                    .with_max_tokens(20)
                    .with_temperature(0.9),
            ),
        ),
    ] {
        store
            .create_preset(NewPreset::new(name, config))
            .await
            .expect("preset");
    }
    let provider = Arc::new(provider);
    let clock_calls = Arc::new(AtomicUsize::new(0));
    let catalog = AgentCatalog::new()
        .with_provider("local", provider.clone(), vec!["tiny-model".into()])
        .with_toolset(Arc::new(TestTools {
            clock: Arc::new(Clock {
                def: ToolDefinition::new("clock", "Tells the time", json!({"type": "object"})),
                calls: clock_calls.clone(),
            }),
        }));
    let state = AppState::builder(store.clone())
        .config(ServerConfig::default())
        .catalog(Arc::new(catalog))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task_state = state.clone();
    tokio::spawn(async move {
        serve(listener, task_state, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    Server {
        base: format!("http://{addr}"),
        key,
        state,
        store,
        provider,
        clock_calls,
        http: reqwest::Client::new(),
        _shutdown: tx,
    }
}

impl Server {
    /// The bootstrap admin's conversations (the key's owner).
    async fn conversations(
        &self,
    ) -> netherbrain_core::store::Page<netherbrain_core::store::Conversation> {
        let admin = self.store.get_user_by_username("admin").await.unwrap();
        self.store
            .list_conversations(ConversationQuery::for_owner(admin.id))
            .await
            .unwrap()
    }

    fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
    }

    async fn chat(&self, body: Value) -> (u16, Value) {
        let resp = self
            .post("/v1/chat/completions", &body)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    /// The `data:` payloads of a streamed completion.
    async fn chat_stream(&self, body: Value) -> Vec<String> {
        let resp = self
            .post("/v1/chat/completions", &body)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let text = tokio::time::timeout(Duration::from_secs(10), resp.text())
            .await
            .expect("stream ends")
            .expect("body");
        data_lines(&text)
    }
}

fn data_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(str::to_owned)
        .collect()
}

fn json_chunks(data: &[String]) -> Vec<Value> {
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect()
}

fn hello() -> Value {
    json!({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test]
async fn models_lists_presets() {
    let s = start(ScriptedProvider::new([])).await;
    let resp = s
        .http
        .get(format!("{}/v1/models", s.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["broken", "capped", "timekeeper", "tiny"]);
    let first = &body["data"][0];
    assert_eq!(first["object"], "model");
    assert_eq!(first["owned_by"], "netherbrain");
    assert!(first["created"].as_i64().unwrap() > 1_600_000_000);

    let one: Value = s
        .http
        .get(format!("{}/v1/models/tiny", s.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "tiny");
}

#[tokio::test]
async fn non_streaming_completion() {
    let s = start(ScriptedProvider::new([ScriptedResponse::builder()
        .text("Hello there!")
        .usage(12, 3)
        .build()]))
    .await;
    let (status, body) = s
        .chat(json!({
            "model": "tiny",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Again"}
            ],
            "temperature": 0.2,
            "max_tokens": 50,
            "user": "u-1",
            "some_future_field": {"x": 1}
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["model"], "tiny");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello there!");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15})
    );

    // The provider saw every client message, after the preset's settings.
    let request = &s.provider.requests()[0];
    let texts: Vec<String> = request.messages.iter().map(|m| m.text()).collect();
    assert_eq!(texts, ["Be brief.", "Hi", "Hello", "Again"]);

    // A fresh conversation owned by the caller, tagged as OpenAI traffic.
    let page = s.conversations().await;
    assert_eq!(page.items.len(), 1);
    let conv = &page.items[0];
    assert_eq!(conv.metadata["source"], "openai");
    assert_eq!(conv.metadata["openai_user"], "u-1");
    let sessions = s.store.list_sessions(conv.id).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].status, SessionStatus::Committed);
    assert_eq!(
        body["id"].as_str().unwrap(),
        format!("chatcmpl-{}", sessions[0].id)
    );
}

#[tokio::test]
async fn requests_are_stateless() {
    let s = start(ScriptedProvider::new([
        ScriptedResponse::text("one"),
        ScriptedResponse::text("two"),
    ]))
    .await;
    assert_eq!(
        s.chat(hello()).await.1["choices"][0]["message"]["content"],
        "one"
    );
    assert_eq!(
        s.chat(hello()).await.1["choices"][0]["message"]["content"],
        "two"
    );
    // The second run did not see the first one.
    assert_eq!(s.provider.requests()[1].messages.len(), 1);
}

#[tokio::test]
async fn streaming_chunk_sequence() {
    let s = start(ScriptedProvider::new([ScriptedResponse::builder()
        .reasoning("Greet back.")
        .text("Hello there!")
        .usage(12, 3)
        .build()]))
    .await;
    let mut body = hello();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let data = s.chat_stream(body).await;
    let chunks = json_chunks(&data);
    let ids: Vec<&str> = chunks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(
        ids.iter()
            .all(|id| *id == ids[0] && id.starts_with("chatcmpl-"))
    );
    insta::assert_json_snapshot!("stream_chunks", chunks, {
        "[].id" => "[id]",
        "[].created" => "[created]",
    });
}

#[tokio::test]
async fn streaming_without_usage_ends_with_finish_reason() {
    let s = start(ScriptedProvider::new([ScriptedResponse::text("Hi!")])).await;
    let mut body = hello();
    body["stream"] = json!(true);
    let chunks = json_chunks(&s.chat_stream(body).await);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hi!");
}

#[tokio::test]
async fn server_side_tools_are_hidden_from_the_client() {
    let script = || {
        [
            ScriptedResponse::builder()
                .tool_call("call_1", "clock", "{}")
                .build(),
            ScriptedResponse::text("It is noon."),
        ]
    };
    let s = start(ScriptedProvider::new(script().into_iter().chain(script()))).await;
    let body = json!({"model": "timekeeper", "messages": [{"role": "user", "content": "Time?"}]});
    let (status, resp) = s.chat(body.clone()).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["choices"][0]["message"]["content"], "It is noon.");
    assert!(resp["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    assert_eq!(s.clock_calls.load(Ordering::SeqCst), 1);
    // Two model calls' usage, summed.
    assert_eq!(resp["usage"]["total_tokens"], 30);

    let mut body = body;
    body["stream"] = json!(true);
    let data = s.chat_stream(body).await;
    assert!(data.iter().all(|d| !d.contains("tool_calls")), "{data:?}");
    let chunks = json_chunks(&data);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "It is noon.");
    assert_eq!(s.clock_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unknown_model_is_404_in_openai_shape() {
    let s = start(ScriptedProvider::new([])).await;
    let (status, body) = s
        .chat(json!({"model": "gpt-17", "messages": [{"role": "user", "content": "Hi"}]}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {
            "message": "The model `gpt-17` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": null,
            "code": "model_not_found"
        }})
    );
    let resp = s
        .http
        .get(format!("{}/v1/models/gpt-17", s.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn bad_api_key_is_401_in_openai_shape() {
    let s = start(ScriptedProvider::new([])).await;
    for auth in [Some("nb_nothere_0123456789"), None] {
        let mut req = s
            .http
            .post(format!("{}/v1/chat/completions", s.base))
            .json(&hello());
        if let Some(key) = auth {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert!(body["error"]["param"].is_null());
        assert!(body["error"]["message"].is_string());
    }
    let resp = s
        .http
        .get(format!("{}/v1/models", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn malformed_bodies_are_400_in_openai_shape() {
    let s = start(ScriptedProvider::new([])).await;
    let raw = s
        .http
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(&s.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["param"].is_null());

    for bad in [
        json!({"messages": [{"role": "user", "content": "Hi"}]}),
        json!({"model": "tiny"}),
        json!({"model": "tiny", "messages": []}),
        json!({"model": "tiny", "messages": [{"role": "wizard", "content": "Hi"}]}),
        json!({"model": "tiny", "messages": [{"role": "system", "content": "only"}]}),
        json!({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "n": 2}),
    ] {
        let (status, body) = s.chat(bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{bad}");
    }
    assert!(s.provider.requests().is_empty());
}

#[tokio::test]
async fn misconfigured_preset_is_503() {
    let s = start(ScriptedProvider::new([])).await;
    let (status, body) = s
        .chat(json!({"model": "broken", "messages": [{"role": "user", "content": "Hi"}]}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "model_unavailable");
}

#[tokio::test]
async fn run_failures_use_the_openai_error_shape() {
    let failing = || {
        ScriptedResponse::builder()
            .text("partial")
            .then_error(ProviderError::Auth {
                message: "upstream key rejected".into(),
            })
            .build()
    };
    let s = start(ScriptedProvider::new([failing(), failing()])).await;
    let (status, body) = s.chat(hello()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["type"], "api_error");
    assert_eq!(body["error"]["code"], "auth");

    // Mid-stream: the text so far, an error chunk, then [DONE].
    let mut req = hello();
    req["stream"] = json!(true);
    let data = s.chat_stream(req).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let error: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "auth");
    let text: String = data[..data.len() - 2]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "partial");
}

#[tokio::test]
async fn client_disconnect_interrupts_the_run() {
    let s = start(ScriptedProvider::new([ScriptedResponse::builder()
        .text("Thinking forever")
        .hang()
        .build()]))
    .await;
    let mut body = hello();
    body["stream"] = json!(true);
    let mut resp = s.post("/v1/chat/completions", &body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Read until some content arrived, then hang up.
    let mut seen = String::new();
    while !seen.contains("forever") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("a chunk in time")
            .unwrap()
            .expect("more body");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(s.state.runtime().running_count(), 1);
    drop(resp);
    tokio::time::timeout(Duration::from_secs(5), async {
        while s.state.runtime().running_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the run was interrupted");
    let page = s.conversations().await;
    let sessions = s.store.list_sessions(page.items[0].id).await.unwrap();
    assert_eq!(sessions[0].status, SessionStatus::Interrupted);
}

/// The official `openai` Python package against this server. Never skips:
/// without the package it fails and says how to install it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client() {
    let check = std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        check.is_ok_and(|s| s.success()),
        "python3 with the `openai` package is required for this test: run `scripts/test` \
         (it installs it) or `python3 -m pip install 'openai>=1.40'`"
    );
    let s = start(ScriptedProvider::new([
        ScriptedResponse::builder()
            .text("Hello from Netherbrain!")
            .usage(7, 4)
            .build(),
        ScriptedResponse::builder()
            .text("Hello from Netherbrain!")
            .usage(7, 4)
            .build(),
        ScriptedResponse::builder()
            .text("Hello from Netherbrain!")
            .usage(7, 4)
            .build(),
        ScriptedResponse::builder()
            .tool_call("call_oslo", "get_weather", r#"{"city":"Oslo"}"#)
            .build(),
        ScriptedResponse::text("Snow in Oslo."),
        ScriptedResponse::builder()
            .tool_call("call_rome", "get_weather", r#"{"city":"Rome"}"#)
            .build(),
        ScriptedResponse::builder()
            .text("partial")
            .then_error(ProviderError::Auth {
                message: "upstream key rejected".into(),
            })
            .build(),
    ]))
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_client.py");
    let child = tokio::process::Command::new("python3")
        .arg(script)
        .args(["--base-url", &format!("{}/v1", s.base)])
        .args(["--api-key", &s.key])
        .args(["--model", "tiny"])
        .args(["--expect", "Hello from Netherbrain!"])
        .arg("--client-tools")
        .arg("--fail-stream")
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the python client finished in time")
        .expect("python3 ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains("ALL OK"), "stdout:\n{stdout}");
    assert_eq!(s.provider.remaining(), 0, "every scripted answer was used");
}

fn weather_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"]
            }
        }
    })
}

#[tokio::test]
async fn request_parameters_reach_the_model_within_the_presets_limits() {
    let s = start(ScriptedProvider::new([
        ScriptedResponse::text("one"),
        ScriptedResponse::text("two"),
    ]))
    .await;
    let (status, body) = s
        .chat(json!({
            "model": "capped",
            "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0.25,
            "max_tokens": 500,
            "stop": ["END", "STOP"],
            "tools": [weather_tool()],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    let request = &s.provider.requests()[0];
    assert_eq!(request.settings.temperature, Some(0.25));
    // the preset allows 20 output tokens: the request cannot raise that
    assert_eq!(request.settings.max_tokens, Some(20));
    assert_eq!(request.settings.stop, ["END", "STOP"]);
    assert_eq!(
        request.tool_choice,
        Some(ToolChoice::Function("get_weather".into()))
    );
    assert_eq!(request.tools[0].name, "get_weather");

    // Below the preset's cap the request's value is used; one stop string
    // is accepted; `max_completion_tokens` is the newer spelling.
    let (status, _) = s
        .chat(json!({
            "model": "capped",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_completion_tokens": 7,
            "stop": "END",
            "tool_choice": "none"
        }))
        .await;
    assert_eq!(status, 200);
    let request = &s.provider.requests()[1];
    assert_eq!(request.settings.max_tokens, Some(7));
    assert_eq!(request.settings.temperature, Some(0.9), "the preset's");
    assert_eq!(request.settings.stop, ["END"]);
    assert_eq!(request.tool_choice, Some(ToolChoice::None));
}

#[tokio::test]
async fn out_of_range_parameters_are_400() {
    let s = start(ScriptedProvider::new([])).await;
    let base = |extra: Value| {
        let mut body = hello();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for extra in [
        json!({"temperature": 2.5}),
        json!({"max_tokens": 0}),
        json!({"stop": ["a", "b", "c", "d", "e"]}),
        json!({"tool_choice": "sometimes"}),
        json!({"tool_choice": {"type": "function", "function": {"name": "nope"}}}),
        json!({"tools": [{"type": "retrieval", "function": {"name": "x"}}]}),
        json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]}),
        json!({"tools": [{"type": "function", "function": {"name": "x", "parameters": {"type": "string"}}}]}),
        json!({"tools": [{"type": "function", "function": {"name": "clock"}}], "model": "timekeeper"}),
    ] {
        let (status, body) = s.chat(base(extra.clone())).await;
        assert_eq!(status, 400, "{extra}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    assert_eq!(s.provider.requests().len(), 0);
}

fn cut_off() -> ScriptedResponse {
    ScriptedResponse::events(vec![
        ProviderEvent::TextDelta("The answer is".into()),
        ProviderEvent::Finish(FinishReason::Length),
    ])
}

#[tokio::test]
async fn finish_reason_length_when_the_model_ran_out_of_tokens() {
    let s = start(ScriptedProvider::new([cut_off(), cut_off()])).await;
    let (status, body) = s.chat(hello()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["choices"][0]["message"]["content"], "The answer is");

    let mut streamed = hello();
    streamed["stream"] = json!(true);
    let chunks = json_chunks(&s.chat_stream(streamed).await);
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("length")]);
}

#[tokio::test]
async fn client_tools_end_the_run_with_tool_calls_and_tool_messages_complete_it() {
    let s = start(ScriptedProvider::new([
        ScriptedResponse::builder()
            .text("Let me check.")
            .tool_call("call_w", "get_weather", r#"{"city":"Oslo"}"#)
            .build(),
        ScriptedResponse::text("It is snowing in Oslo."),
        ScriptedResponse::builder()
            .tool_call("call_s", "get_weather", r#"{"city":"Rome"}"#)
            .build(),
    ]))
    .await;
    let question = json!([{"role": "user", "content": "Weather in Oslo?"}]);
    let (status, body) = s
        .chat(json!({"model": "tiny", "messages": question, "tools": [weather_tool()]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Let me check.");
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{
            "id": "call_w",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}
        }])
    );
    // The run waits for the client in its own (stateless) conversation.
    let page = s.conversations().await;
    let sessions = s.store.list_sessions(page.items[0].id).await.unwrap();
    assert_eq!(sessions[0].status, SessionStatus::AwaitingToolResults);

    // The client answers with a `tool` message; the model reads it.
    let (status, body) = s
        .chat(json!({
            "model": "tiny",
            "tools": [weather_tool()],
            "messages": [
                {"role": "user", "content": "Weather in Oslo?"},
                choice["message"].clone(),
                {"role": "tool", "tool_call_id": "call_w", "content": "snow, -3 C"}
            ]
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "It is snowing in Oslo."
    );
    let seen = &s.provider.requests()[1];
    let results: Vec<_> = seen
        .messages
        .iter()
        .flat_map(|m| m.tool_results())
        .collect();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].call_id, "call_w");
    assert_eq!(results[0].content, "snow, -3 C");

    // Streamed: a tool_calls delta, then finish_reason `tool_calls`.
    let chunks = json_chunks(
        &s.chat_stream(json!({
            "model": "tiny",
            "stream": true,
            "messages": [{"role": "user", "content": "Weather in Rome?"}],
            "tools": [weather_tool()]
        }))
        .await,
    );
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(
        calls,
        [&json!([{
            "index": 0,
            "id": "call_s",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}
        }])]
    );
    let last = &chunks[chunks.len() - 1];
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn server_tools_run_and_only_client_tool_calls_go_to_the_client() {
    let s = start(ScriptedProvider::new([ScriptedResponse::builder()
        .tool_call("call_clock", "clock", "{}")
        .tool_call("call_w", "get_weather", r#"{"city":"Oslo"}"#)
        .build()]))
    .await;
    let (status, body) = s
        .chat(json!({
            "model": "timekeeper",
            "messages": [{"role": "user", "content": "Time and weather?"}],
            "tools": [weather_tool()]
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let calls = body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["id"], "call_w");
    assert_eq!(
        s.clock_calls.load(Ordering::SeqCst),
        1,
        "the server tool ran"
    );
}
