//! A fake OpenAI-compatible provider on loopback.
//!
//! It serves `POST /v1/chat/completions` with `text/event-stream` bodies of
//! chat-completion chunks — the format the real OpenAI adapter of core
//! parses — and records every request so a test can read what the model
//! was sent.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use netherbrain_tests::{FakeProvider, Reply};
//! let provider = FakeProvider::start().await;
//! provider.answer(Reply::text(&["Hello", " there."])).await;
//! provider
//!     .answer_when("You compact conversations", Reply::text(&["A summary."]))
//!     .await;
//! provider
//!     .answer_when("slowly", Reply::text(&["late"]).after(Duration::from_secs(2)))
//!     .await;
//! # Ok(()) }
//! ```

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The model name the fake provider reports in its chunks.
pub const MODEL: &str = "fake-model";
/// Prompt tokens reported in every answer's usage chunk.
pub const PROMPT_TOKENS: u64 = 11;

/// One streamed answer: text deltas, optionally sent late.
#[derive(Debug, Clone)]
pub struct Reply {
    deltas: Vec<String>,
    delay: Option<Duration>,
}

impl Reply {
    /// An answer streaming these text deltas, then `finish_reason: stop`
    /// and a usage chunk (`PROMPT_TOKENS` in, one token per delta out).
    pub fn text(deltas: &[&str]) -> Self {
        Self {
            deltas: deltas.iter().map(|d| (*d).to_owned()).collect(),
            delay: None,
        }
    }

    /// The same answer, its response started only after `delay` (the run
    /// is live and waiting for the model meanwhile).
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The concatenated text.
    pub fn full_text(&self) -> String {
        self.deltas.concat()
    }

    /// The SSE body.
    fn body(&self) -> String {
        let chunk = |delta: Value, finish: Value| {
            json!({
                "id": "chatcmpl-e2e",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            })
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        events.extend(
            self.deltas
                .iter()
                .map(|d| chunk(json!({"content": d}), Value::Null)),
        );
        events.push(chunk(json!({}), json!("stop")));
        events.push(json!({
            "id": "chatcmpl-e2e",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": MODEL,
            "choices": [],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": self.deltas.len(),
                "total_tokens": PROMPT_TOKENS + self.deltas.len() as u64,
            },
        }));
        let mut body = String::new();
        for event in events {
            body.push_str("data: ");
            body.push_str(&event.to_string());
            body.push_str("\n\n");
        }
        body.push_str("data: [DONE]\n\n");
        body
    }

    fn template(&self) -> ResponseTemplate {
        let template = ResponseTemplate::new(200)
            .insert_header("cache-control", "no-cache")
            .set_body_raw(self.body(), "text/event-stream");
        match self.delay {
            Some(delay) => template.set_delay(delay),
            None => template,
        }
    }
}

/// A fake OpenAI-compatible server; stops when dropped.
#[derive(Debug)]
pub struct FakeProvider {
    server: MockServer,
}

impl FakeProvider {
    /// Starts the server on a free loopback port. Until an answer is
    /// mounted every request gets `404`.
    pub async fn start() -> Self {
        Self {
            server: MockServer::start().await,
        }
    }

    /// The API root to configure as the profile's `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.uri())
    }

    /// Answers every request no [`FakeProvider::answer_when`] rule matches.
    pub async fn answer(&self, reply: Reply) {
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(reply.template())
            .with_priority(10)
            .mount(&self.server)
            .await;
    }

    /// Answers every request no other rule matches with `status` and a
    /// body like the one a llama.cpp server gives on a crash (a Python-style
    /// traceback naming a file path), which must never reach API clients.
    pub async fn fail(&self, status: u16) {
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(status).set_body_string(
                "Traceback (most recent call last):\n  File \"/opt/llm/secret_server.py\", line 1\nRuntimeError: boom",
            ))
            .with_priority(10)
            .mount(&self.server)
            .await;
    }

    /// Answers requests whose raw body contains `needle` (rules mounted
    /// earlier win among several that match).
    pub async fn answer_when(&self, needle: &str, reply: Reply) {
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_string_contains(needle))
            .respond_with(reply.template())
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    /// Every request received so far, oldest first.
    pub async fn requests(&self) -> Vec<SeenRequest> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| SeenRequest {
                path: r.url.path().to_owned(),
                body: serde_json::from_slice(&r.body).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&r.body).into_owned())
                }),
            })
            .collect()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    ///
    /// # Errors
    ///
    /// When fewer arrive within [`crate::PATIENCE`].
    pub async fn wait_for(&self, n: usize) -> anyhow::Result<Vec<SeenRequest>> {
        crate::eventually(&format!("{n} provider request(s)"), || async {
            let seen = self.requests().await;
            Ok((seen.len() >= n).then_some(seen))
        })
        .await
    }
}

/// A request the fake provider received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The URL path.
    pub path: String,
    /// The JSON body (a string when it was not JSON).
    pub body: Value,
}

impl SeenRequest {
    /// The chat messages sent, as `(role, text)` in order; array contents
    /// are joined text parts.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.body["messages"]
            .as_array()
            .map(|messages| {
                messages
                    .iter()
                    .map(|m| {
                        let role = m["role"].as_str().unwrap_or_default().to_owned();
                        let text = match &m["content"] {
                            Value::String(s) => s.clone(),
                            Value::Array(parts) => parts
                                .iter()
                                .filter_map(|p| p["text"].as_str())
                                .collect::<Vec<_>>()
                                .join("\n"),
                            _ => String::new(),
                        };
                        (role, text)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The messages other than the system prompt.
    pub fn conversation(&self) -> Vec<(String, String)> {
        self.messages()
            .into_iter()
            .filter(|(role, _)| role != "system")
            .collect()
    }

    /// Whether any message's text contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.messages()
            .iter()
            .any(|(_, text)| text.contains(needle))
    }
}
