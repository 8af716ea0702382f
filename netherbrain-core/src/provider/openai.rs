//! The OpenAI-compatible Chat Completions adapter (feature `openai`).
//!
//! Works with OpenAI and with servers that speak the same protocol:
//! Ollama, vLLM, llama.cpp, LM Studio, OpenRouter and others.
//!
//! ```no_run
//! use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiProvider};
//! use netherbrain_core::provider::{ModelRequest, ProviderExt};
//! use netherbrain_core::Message;
//!
//! # async fn run() -> Result<(), netherbrain_core::ProviderError> {
//! // A local Ollama server; OpenAI itself needs `.with_api_key(...)`.
//! let provider = OpenAiProvider::new(OpenAiConfig::new("http://localhost:11434/v1"));
//! let response = provider
//!     .complete(ModelRequest::new("llama3.2", vec![Message::user("Hello!")]))
//!     .await?;
//! println!("{}", response.message.text());
//! # Ok(())
//! # }
//! ```
//!
//! Decoding choices:
//!
//! - `finish_reason` is remembered and [`ProviderEvent::Finish`] is emitted
//!   at `data: [DONE]` (or the end of the body), after the usage chunk that
//!   OpenAI sends after the finish chunk.
//! - Usage is emitted once, at the end, from the last `usage` object seen
//!   (some servers repeat cumulative usage in every chunk); it always counts
//!   one request, even when the server reports no token counts.
//! - A body that ends without `[DONE]` but after a `finish_reason` is a
//!   complete response. One that ends with neither was cut off: it fails
//!   with a [`ProviderError::Transient`] error rather than passing a
//!   truncated answer off as complete.
//! - `finish_reason: "stop"` on a response with tool calls (Ollama and
//!   others do this) is reported as [`FinishReason::ToolCalls`].
//! - Only the first choice is read. Tool calls are renumbered from 0 in the
//!   order they appear; a new `id` on an index already in use by another
//!   call (servers that put every call at index 0) starts a new call.
//! - Unknown fields, event types and finish reasons are ignored or mapped to
//!   [`FinishReason::Other`]; an `{"error": …}` payload in the stream
//!   becomes a classified [`ProviderError`].

use std::collections::HashMap;
use std::fmt;

use eventsource_stream::Event;
use futures::StreamExt as _;
use serde_json::{Map, Value, json};

use super::http::{self, Flow, HttpOptions, SseDecoder, Transport};
use super::{
    FinishReason, ModelRequest, Provider, ProviderError, ProviderEvent, ProviderStream, ToolChoice,
};
use crate::message::{ContentPart, ImageSource, Message, Role};
use crate::usage::Usage;

/// The default base URL, OpenAI's API.
///
/// ```
/// use netherbrain_core::provider::openai::{DEFAULT_BASE_URL, OpenAiConfig};
/// assert_eq!(OpenAiConfig::default().base_url, DEFAULT_BASE_URL);
/// ```
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Configuration of an [`OpenAiProvider`].
///
/// `Debug` output never shows the API key or the values of extra headers.
///
/// ```
/// use netherbrain_core::provider::openai::OpenAiConfig;
/// let config = OpenAiConfig::new("https://openrouter.ai/api/v1")
///     .with_api_key("sk-or-secret")
///     .with_header("X-Title", "Netherbrain");
/// assert!(!format!("{config:?}").contains("sk-or-secret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct OpenAiConfig {
    /// The API root; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// Extra headers sent with every request (they override defaults).
    pub headers: Vec<(String, String)>,
    /// Timeouts and retries.
    pub http: HttpOptions,
    /// Whether to ask for a streamed answer (default `true`). With `false`
    /// every round is one JSON response; with `true` a server that refuses
    /// to stream with tools (llama.cpp: 500 "streaming tool choice is not
    /// supported") gets the same request again without streaming.
    pub stream: bool,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self::new(DEFAULT_BASE_URL)
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("headers", &http::redacted_headers(&self.headers))
            .field("http", &self.http)
            .field("stream", &self.stream)
            .finish()
    }
}

impl OpenAiConfig {
    /// A configuration for the server at `base_url` (for example
    /// `http://localhost:11434/v1`), without an API key.
    ///
    /// ```
    /// let c = netherbrain_core::provider::openai::OpenAiConfig::new("http://localhost:8000/v1");
    /// assert!(c.api_key.is_none());
    /// ```
    #[must_use]
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            headers: Vec::new(),
            http: HttpOptions::default(),
            stream: true,
        }
    }

    /// Turns streaming off (see [`stream`](Self::stream)).
    ///
    /// ```
    /// let c = netherbrain_core::provider::openai::OpenAiConfig::default().with_stream(false);
    /// assert!(!c.stream);
    /// ```
    #[must_use]
    pub fn with_stream(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Sets the base URL.
    ///
    /// ```
    /// let c = netherbrain_core::provider::openai::OpenAiConfig::default().with_base_url("http://127.0.0.1:1234/v1");
    /// assert_eq!(c.base_url, "http://127.0.0.1:1234/v1");
    /// ```
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets the API key (sent as a bearer token).
    ///
    /// ```
    /// let c = netherbrain_core::provider::openai::OpenAiConfig::default().with_api_key("sk-test");
    /// assert!(c.api_key.is_some());
    /// ```
    #[must_use]
    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// Adds a header sent with every request.
    ///
    /// ```
    /// let c = netherbrain_core::provider::openai::OpenAiConfig::default().with_header("OpenAI-Organization", "org-1");
    /// assert_eq!(c.headers.len(), 1);
    /// ```
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets timeouts and retries.
    ///
    /// ```
    /// use netherbrain_core::provider::http::{HttpOptions, RetryPolicy};
    /// use netherbrain_core::provider::openai::OpenAiConfig;
    /// let c = OpenAiConfig::default().with_http(HttpOptions::default().with_retry(RetryPolicy::none()));
    /// assert_eq!(c.http.retry.max_retries, 0);
    /// ```
    #[must_use]
    pub fn with_http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }
}

/// A [`Provider`] for OpenAI-compatible `/chat/completions` endpoints.
///
/// ```
/// use netherbrain_core::provider::Provider;
/// use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiProvider};
/// let provider = OpenAiProvider::new(OpenAiConfig::default().with_api_key("sk-secret"));
/// assert_eq!(provider.name(), "openai");
/// assert!(!format!("{provider:?}").contains("sk-secret"));
/// ```
#[derive(Debug)]
pub struct OpenAiProvider {
    config: OpenAiConfig,
    transport: Transport,
    /// For non-streaming calls.
    plain: Result<reqwest::Client, String>,
}

impl OpenAiProvider {
    /// Creates the provider. Never fails: an HTTP client that cannot be
    /// built reports its error from [`Provider::stream`].
    ///
    /// ```
    /// use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiProvider};
    /// let provider = OpenAiProvider::new(OpenAiConfig::new("http://localhost:11434/v1"));
    /// # let _ = provider;
    /// ```
    #[must_use]
    pub fn new(config: OpenAiConfig) -> Self {
        let transport = Transport::new(config.http.clone());
        let plain = reqwest::Client::builder()
            .connect_timeout(config.http.connect_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"));
        Self {
            config,
            transport,
            plain,
        }
    }

    /// One non-streaming call: the whole answer as one JSON body, decoded
    /// like a single stream chunk.
    fn complete(&self, request: &ModelRequest) -> ProviderStream {
        let built = self.build_request(request, false);
        let client = self.plain.clone();
        let timeout = self.config.http.first_byte_timeout;
        let once = async move {
            let result = match (client, built) {
                (Err(message), _) => Err(ProviderError::Transient { message }),
                (_, Err(e)) => Err(e),
                (Ok(client), Ok(req)) => complete_once(&client, req, timeout).await,
            };
            let items: Vec<Result<ProviderEvent, ProviderError>> = match result {
                Ok(events) => events.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(items)
        };
        futures::stream::once(once).flatten().boxed()
    }

    fn build_request(
        &self,
        request: &ModelRequest,
        stream: bool,
    ) -> Result<reqwest::Request, ProviderError> {
        let auth = self
            .config
            .api_key
            .as_ref()
            .map(|key| format!("Bearer {key}"));
        let secret: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let headers = http::build_headers(&[("accept", accept)], &secret, &self.config.headers)?;
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        http::post_json(&url, headers, &request_body(request, stream))
    }
}

/// Sends one non-streaming request and decodes the answer.
async fn complete_once(
    client: &reqwest::Client,
    request: reqwest::Request,
    timeout: std::time::Duration,
) -> Result<Vec<ProviderEvent>, ProviderError> {
    let body = http::fetch_text(client, request, timeout, "the response").await?;
    let value = http::parse_json(&body)?;
    if let Some(error) = http::error_from_value(&value) {
        return Err(error);
    }
    let mut decoder = ChatDecoder::default();
    let mut out = Vec::new();
    decoder.chunk(&value, &mut out);
    decoder.finish_events(&mut out);
    Ok(out)
}

/// Whether an error says the server will not stream with tools (llama.cpp:
/// "streaming tool choice is not supported", "Cannot use tools with
/// stream").
fn refuses_streaming_with_tools(error: &ProviderError) -> bool {
    if matches!(error, ProviderError::Cancelled) {
        return false;
    }
    let text = error.to_string().to_ascii_lowercase();
    text.contains("stream") && (text.contains("tool") || text.contains("not supported"))
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        "openai"
    }

    fn stream(&self, request: ModelRequest) -> ProviderStream {
        if !self.config.stream {
            return self.complete(&request);
        }
        let built = self.build_request(&request, true);
        let streamed = self.transport.stream("openai", built, ChatDecoder::default);
        if request.tools.is_empty() {
            return streamed;
        }
        // a refusal comes before any event: fall back to one plain call
        let fallback = self.complete(&request);
        let mut fallback = Some(fallback);
        futures::stream::unfold(
            (streamed, true),
            move |(mut streamed, first)| {
                let fallback = if first { fallback.take() } else { None };
                async move {
                    let item = streamed.next().await?;
                    match (item, fallback) {
                        (Err(e), Some(plain)) if refuses_streaming_with_tools(&e) => {
                            tracing::warn!(error = %e, "the server refused to stream with tools; retrying without streaming");
                            let done: ProviderStream = futures::stream::empty().boxed();
                            Some((plain, (done, false)))
                        }
                        (item, _) => Some((futures::stream::iter([item]).boxed(), (streamed, false))),
                    }
                }
            },
        )
        .flatten()
        .boxed()
    }

    fn list_models(
        &self,
    ) -> futures::future::BoxFuture<'static, Result<Vec<String>, ProviderError>> {
        let auth = self
            .config
            .api_key
            .as_ref()
            .map(|key| format!("Bearer {key}"));
        let secret: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let headers = http::build_headers(
            &[("accept", "application/json")],
            &secret,
            &self.config.headers,
        );
        let url = format!("{}/models", self.config.base_url.trim_end_matches('/'));
        let transport = self.transport.clone();
        Box::pin(async move { transport.list_models(url, headers?).await })
    }
}

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

fn request_body(request: &ModelRequest, stream: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("messages".into(), Value::Array(wire_messages(request)));
    body.insert("stream".into(), json!(stream));
    if stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    }
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &request.tool_choice {
            let choice = match choice {
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Function(name) => {
                    json!({"type": "function", "function": {"name": name}})
                }
                _ => json!("auto"),
            };
            body.insert("tool_choice".into(), choice);
        }
    }
    let s = &request.settings;
    if let Some(t) = s.temperature {
        body.insert("temperature".into(), http::float(t));
    }
    if let Some(p) = s.top_p {
        body.insert("top_p".into(), http::float(p));
    }
    if let Some(m) = s.max_tokens {
        body.insert("max_tokens".into(), json!(m));
    }
    if let Some(e) = s.reasoning_effort {
        body.insert("reasoning_effort".into(), json!(e.as_str()));
    }
    if !s.stop.is_empty() {
        body.insert("stop".into(), json!(s.stop));
    }
    Value::Object(body)
}

fn wire_messages(request: &ModelRequest) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        out.push(json!({"role": "system", "content": system}));
    }
    for message in http::visible_history(&request.messages) {
        push_message(&message, &mut out);
    }
    out
}

fn push_message(message: &Message, out: &mut Vec<Value>) {
    // Tool results answer earlier calls, whatever message carries them.
    for result in message.tool_results() {
        out.push(json!({
            "role": "tool",
            "tool_call_id": result.call_id,
            "content": result.content,
        }));
    }
    match message.role {
        Role::Assistant => push_assistant(message, out),
        Role::System => {
            let text = join_text(message, "\n\n");
            if !text.is_empty() {
                out.push(json!({"role": "system", "content": text}));
            }
        }
        Role::User | Role::Tool => push_user(message, out),
    }
}

fn join_text(message: &Message, sep: &str) -> String {
    message
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text { text } | ContentPart::Summary { text } => Some(text.as_str()),
            _ => None,
        })
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(sep)
}

fn push_user(message: &Message, out: &mut Vec<Value>) {
    let has_image = message
        .content
        .iter()
        .any(|p| matches!(p, ContentPart::Image { .. }));
    if !has_image {
        let text = join_text(message, "\n\n");
        if !text.is_empty() {
            out.push(json!({"role": "user", "content": text}));
        }
        return;
    }
    let parts: Vec<Value> = message
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text { text } | ContentPart::Summary { text } if !text.is_empty() => {
                Some(json!({"type": "text", "text": text}))
            }
            ContentPart::Image { source } => {
                let url = match source {
                    ImageSource::Url { url } => url.clone(),
                    ImageSource::Base64 { media_type, data } => {
                        format!("data:{media_type};base64,{data}")
                    }
                };
                Some(json!({"type": "image_url", "image_url": {"url": url}}))
            }
            _ => None,
        })
        .collect();
    out.push(json!({"role": "user", "content": parts}));
}

fn push_assistant(message: &Message, out: &mut Vec<Value>) {
    let text = join_text(message, "");
    let calls: Vec<Value> = message
        .tool_calls()
        .map(|call| {
            // Malformed arguments are kept as a JSON string of the raw text:
            // send that text back as it was.
            let arguments = match &call.arguments {
                Value::String(raw) => raw.clone(),
                other => other.to_string(),
            };
            json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments},
            })
        })
        .collect();
    if text.is_empty() && calls.is_empty() {
        // Reasoning only (never sent back) or nothing at all.
        return;
    }
    let mut wire = Map::new();
    wire.insert("role".into(), json!("assistant"));
    // An assistant turn of tool calls alone carries `""`, not `null`:
    // OpenAI takes either, but several compatible servers (and their
    // chat templates) reject a `null` content.
    wire.insert("content".into(), Value::String(text));
    if !calls.is_empty() {
        wire.insert("tool_calls".into(), Value::Array(calls));
    }
    out.push(Value::Object(wire));
}

// ---------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct CallSlot {
    id: Option<String>,
    name: Option<String>,
}

/// Decodes Chat Completions stream chunks.
#[derive(Debug, Default)]
pub(crate) struct ChatDecoder {
    /// Calls in order of appearance; our index is the position.
    calls: Vec<CallSlot>,
    /// The wire index's current call.
    by_wire: HashMap<u64, usize>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    /// Whether `tool_calls` came (a legacy `function_call` is then ignored).
    saw_tool_calls: bool,
}

/// The wire index given to a legacy `function_call`.
const LEGACY_INDEX: u64 = u64::MAX;

fn non_empty_str(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn map_finish(reason: &str) -> FinishReason {
    match reason {
        "stop" | "eos" | "end_turn" => FinishReason::Stop,
        "length" | "max_tokens" => FinishReason::Length,
        "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

fn parse_usage(u: &Value) -> Usage {
    let n = |path: &str| u.pointer(path).and_then(Value::as_u64).unwrap_or(0);
    let cached = match n("/prompt_tokens_details/cached_tokens") {
        0 => n("/prompt_cache_hit_tokens"),
        cached => cached,
    };
    Usage {
        input_tokens: n("/prompt_tokens"),
        output_tokens: n("/completion_tokens"),
        cache_read_tokens: cached,
        reasoning_tokens: n("/completion_tokens_details/reasoning_tokens"),
        requests: 1,
        ..Usage::default()
    }
}

impl ChatDecoder {
    fn chunk(&mut self, value: &Value, out: &mut Vec<ProviderEvent>) {
        if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(parse_usage(usage));
        }
        let Some(choices) = value.get("choices").and_then(Value::as_array) else {
            return;
        };
        for (position, choice) in choices.iter().enumerate() {
            let index = choice
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64);
            if index != 0 {
                continue;
            }
            // `message` for servers that send whole messages in a stream.
            if let Some(delta) = choice.get("delta").or_else(|| choice.get("message")) {
                self.delta(delta, out);
            }
            if let Some(reason) = non_empty_str(choice.get("finish_reason")) {
                self.finish = Some(map_finish(reason));
            }
        }
    }

    fn delta(&mut self, delta: &Value, out: &mut Vec<ProviderEvent>) {
        if let Some(reasoning) = non_empty_str(delta.get("reasoning_content"))
            .or_else(|| non_empty_str(delta.get("reasoning")))
        {
            out.push(ProviderEvent::ReasoningDelta(reasoning.to_owned()));
        }
        if let Some(text) = non_empty_str(delta.get("content")) {
            out.push(ProviderEvent::TextDelta(text.to_owned()));
        }
        let Some(tool_calls) = delta.get("tool_calls").and_then(Value::as_array) else {
            // the legacy single `function_call`, only when no `tool_calls`
            // came (servers that send both repeat the call in it)
            if let Some(function) = delta.get("function_call").filter(|f| f.is_object())
                && !self.saw_tool_calls
            {
                let call = json!({"index": LEGACY_INDEX, "function": function});
                self.tool_call(&call, LEGACY_INDEX, out);
            }
            return;
        };
        self.saw_tool_calls = true;
        for (position, call) in tool_calls.iter().enumerate() {
            self.tool_call(call, position as u64, out);
        }
    }

    fn tool_call(&mut self, call: &Value, position: u64, out: &mut Vec<ProviderEvent>) {
        let wire = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position);
        let id = non_empty_str(call.get("id"));
        let function = call.get("function");
        let name = non_empty_str(function.and_then(|f| f.get("name")));
        let existing = self.by_wire.get(&wire).copied().filter(|&i| {
            // A different id at a used index is a new call.
            match (&self.calls[i].id, id) {
                (Some(known), Some(new)) => known == new,
                _ => true,
            }
        });
        let index = match existing {
            Some(index) => {
                let slot = &mut self.calls[index];
                let new_id = slot.id.is_none() && id.is_some();
                let new_name = slot.name.is_none() && name.is_some();
                if new_id || new_name {
                    if new_id {
                        slot.id = id.map(str::to_owned);
                    }
                    if new_name {
                        slot.name = name.map(str::to_owned);
                    }
                    out.push(ProviderEvent::ToolCallStart {
                        index,
                        id: id.filter(|_| new_id).map(str::to_owned),
                        name: name.filter(|_| new_name).map(str::to_owned),
                    });
                }
                index
            }
            None => {
                let index = self.calls.len();
                self.calls.push(CallSlot {
                    id: id.map(str::to_owned),
                    name: name.map(str::to_owned),
                });
                self.by_wire.insert(wire, index);
                out.push(ProviderEvent::ToolCallStart {
                    index,
                    id: id.map(str::to_owned),
                    name: name.map(str::to_owned),
                });
                index
            }
        };
        let fragment = match function.and_then(|f| f.get("arguments")) {
            Some(Value::String(s)) => s.clone(),
            // Some servers send the arguments as an object.
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => String::new(),
        };
        if !fragment.is_empty() {
            out.push(ProviderEvent::ToolCallArgs { index, fragment });
        }
    }

    fn finish_events(&mut self, out: &mut Vec<ProviderEvent>) {
        let usage = self.usage.take().unwrap_or(Usage {
            requests: 1,
            ..Usage::default()
        });
        out.push(ProviderEvent::Usage(usage));
        let reason = match self.finish.take() {
            Some(FinishReason::Stop) | None if !self.calls.is_empty() => FinishReason::ToolCalls,
            Some(reason) => reason,
            None => FinishReason::Stop,
        };
        out.push(ProviderEvent::Finish(reason));
    }
}

impl SseDecoder for ChatDecoder {
    fn on_event(
        &mut self,
        event: &Event,
        out: &mut Vec<ProviderEvent>,
    ) -> Result<Flow, ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        if data == "[DONE]" {
            self.finish_events(out);
            return Ok(Flow::Done);
        }
        let value = match http::parse_json(data) {
            Ok(value) => value,
            Err(_) if event.event == "error" => {
                return Err(http::classify_error("", data));
            }
            Err(e) => return Err(e),
        };
        if let Some(error) = http::error_from_value(&value) {
            return Err(error);
        }
        if event.event == "error" {
            let message = non_empty_str(value.get("message")).unwrap_or(data);
            let kind = [value.get("type"), value.get("code")]
                .into_iter()
                .filter_map(non_empty_str)
                .collect::<Vec<_>>()
                .join(" ");
            return Err(http::classify_error(&kind, message));
        }
        self.chunk(&value, out);
        Ok(Flow::Continue)
    }

    fn on_eof(&mut self, out: &mut Vec<ProviderEvent>) -> Result<(), ProviderError> {
        if self.finish.is_none() {
            return Err(ProviderError::Transient {
                message: "the response stream ended before the response was complete".to_owned(),
            });
        }
        self.finish_events(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::StreamExt;
    use std::time::Duration;

    async fn decode(chunks: Vec<&'static [u8]>) -> Vec<Result<ProviderEvent, ProviderError>> {
        let bytes = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, ProviderError>(Bytes::from_static(c))),
        );
        http::decode_sse(
            bytes,
            ChatDecoder::default(),
            tokio::time::Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .collect()
        .await
    }

    fn texts(items: &[Result<ProviderEvent, ProviderError>]) -> String {
        items
            .iter()
            .filter_map(|i| match i {
                Ok(ProviderEvent::TextDelta(t)) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn utf8_and_events_split_across_chunks() {
        // "é" is 0xC3 0xA9 and "😀" is F0 9F 98 80; split inside both, and
        // split the event itself across chunks.
        let items = decode(vec![
            b"data: {\"choices\":[{\"delta\":{\"content\":\"caf\xC3",
            b"\xA9 \xF0\x9F",
            b"\x98\x80\"}}]}\n",
            b"\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            b"data: [DONE]\n\n",
        ])
        .await;
        assert_eq!(texts(&items), "café 😀");
        assert_eq!(
            items.last(),
            Some(&Ok(ProviderEvent::Finish(FinishReason::Stop)))
        );
    }

    #[tokio::test]
    async fn usage_after_finish_and_crlf() {
        let items = decode(vec![
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\r\n\r\n",
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\r\n\r\n",
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":2},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\r\n\r\n",
            b"data: [DONE]\r\n\r\n",
        ])
        .await;
        let n = items.len();
        assert_eq!(
            items[n - 2],
            Ok(ProviderEvent::Usage(Usage {
                input_tokens: 7,
                output_tokens: 3,
                cache_read_tokens: 2,
                reasoning_tokens: 1,
                requests: 1,
                ..Usage::default()
            }))
        );
        assert_eq!(
            items[n - 1],
            Ok(ProviderEvent::Finish(FinishReason::Length))
        );
    }

    #[tokio::test]
    async fn truncated_stream_is_transient_and_finish_without_done_is_ok() {
        let items = decode(vec![
            b"data: {\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\n",
        ])
        .await;
        assert!(matches!(
            items.last(),
            Some(Err(ProviderError::Transient { .. }))
        ));

        let items = decode(vec![
            b"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n",
        ])
        .await;
        assert_eq!(
            items.last(),
            Some(&Ok(ProviderEvent::Finish(FinishReason::Stop)))
        );
    }

    #[tokio::test]
    async fn all_calls_at_index_zero_are_split_by_id() {
        let items = decode(vec![
            b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"x\",\"arguments\":\"{}\"}}]}}]}\n\n",
            b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"b\",\"function\":{\"name\":\"y\",\"arguments\":{\"k\":1}}}]},\"finish_reason\":\"stop\"}]}\n\n",
            b"data: [DONE]\n\n",
        ])
        .await;
        let starts: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Ok(ProviderEvent::ToolCallStart { index, id, .. }) => Some((*index, id.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(starts, vec![(0, Some("a".into())), (1, Some("b".into()))]);
        assert!(items.contains(&Ok(ProviderEvent::ToolCallArgs {
            index: 1,
            fragment: "{\"k\":1}".into()
        })));
        assert_eq!(
            items.last(),
            Some(&Ok(ProviderEvent::Finish(FinishReason::ToolCalls)))
        );
    }

    #[tokio::test]
    async fn error_event_is_classified() {
        let items = decode(vec![
            b"event: error\ndata: {\"message\":\"Rate limit reached\",\"type\":\"rate_limit\"}\n\n",
        ])
        .await;
        assert!(matches!(
            &items[..],
            [Err(ProviderError::RateLimited { .. })]
        ));
        let items = decode(vec![
            b"data: {\"error\":{\"message\":\"too long\",\"code\":\"context_length_exceeded\"}}\n\n",
        ])
        .await;
        assert!(matches!(
            &items[..],
            [Err(ProviderError::ContextTooLong { .. })]
        ));
    }

    #[test]
    fn assistant_with_raw_malformed_arguments() {
        use crate::message::ToolCall;
        let m = Message::new(
            Role::Assistant,
            vec![
                ContentPart::Reasoning {
                    text: "think".into(),
                    signature: None,
                },
                ContentPart::ToolCall(ToolCall::new("c", "t", Value::String("{bad".into()))),
            ],
        );
        let mut out = Vec::new();
        push_message(&m, &mut out);
        assert_eq!(
            out,
            vec![json!({
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "t", "arguments": "{bad"}}]
            })]
        );
    }
}

/// The embeddings endpoint of an OpenAI-compatible server
/// (`POST {base_url}/embeddings`), as a memory
/// [`Embedder`](crate::memory::Embedder).
///
/// ```
/// use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiEmbeddings};
/// let e = OpenAiEmbeddings::new(OpenAiConfig::default().with_api_key("sk-secret"), "text-embedding-3-small");
/// assert!(!format!("{e:?}").contains("sk-secret"));
/// ```
#[derive(Debug)]
pub struct OpenAiEmbeddings {
    config: OpenAiConfig,
    model: String,
    client: Result<reqwest::Client, String>,
}

impl OpenAiEmbeddings {
    /// Embeddings of `model` from the server `config` describes.
    #[must_use]
    pub fn new(config: OpenAiConfig, model: impl Into<String>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(config.http.connect_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"));
        Self {
            config,
            model: model.into(),
            client,
        }
    }
}

#[async_trait::async_trait]
impl crate::memory::Embedder for OpenAiEmbeddings {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ProviderError> {
        let client = self
            .client
            .clone()
            .map_err(|message| ProviderError::Transient { message })?;
        let auth = self
            .config
            .api_key
            .as_ref()
            .map(|key| format!("Bearer {key}"));
        let secret: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let headers = http::build_headers(
            &[("accept", "application/json")],
            &secret,
            &self.config.headers,
        )?;
        let url = format!("{}/embeddings", self.config.base_url.trim_end_matches('/'));
        let body = serde_json::json!({ "model": self.model, "input": texts });
        let request = http::post_json(&url, headers, &body)?;
        let timeout = self.config.http.first_byte_timeout;
        let text = http::fetch_text(&client, request, timeout, "the embeddings").await?;
        #[derive(serde::Deserialize)]
        struct Item {
            index: usize,
            embedding: Vec<f32>,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            data: Vec<Item>,
        }
        let answer: Answer = serde_json::from_str(&text).map_err(|e| ProviderError::Decode {
            message: format!("unexpected embeddings answer: {e}"),
        })?;
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in answer.data {
            if let Some(slot) = vectors.get_mut(item.index) {
                *slot = Some(item.embedding);
            }
        }
        vectors
            .into_iter()
            .map(|v| {
                v.ok_or_else(|| ProviderError::Decode {
                    message: "the embeddings answer misses a text".to_owned(),
                })
            })
            .collect()
    }
}
