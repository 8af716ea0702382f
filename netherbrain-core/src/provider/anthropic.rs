//! The Anthropic Messages API adapter (feature `anthropic`).
//!
//! ```no_run
//! use netherbrain_core::provider::anthropic::{AnthropicConfig, AnthropicProvider};
//! use netherbrain_core::provider::{ModelRequest, ProviderExt};
//! use netherbrain_core::Message;
//!
//! # async fn run() -> Result<(), netherbrain_core::ProviderError> {
//! let key = std::env::var("ANTHROPIC_API_KEY").unwrap_or_default();
//! let provider = AnthropicProvider::new(AnthropicConfig::new(key));
//! let response = provider
//!     .complete(ModelRequest::new("claude-sonnet-4-5", vec![Message::user("Hello!")]).with_system("Be brief."))
//!     .await?;
//! println!("{}", response.message.text());
//! # Ok(())
//! # }
//! ```
//!
//! Request mapping:
//!
//! - The system prompt (and any system-role messages) go to the top-level
//!   `system` field.
//! - `max_tokens` is required by the API: the request's setting, else
//!   [`AnthropicConfig::default_max_tokens`] (4096).
//! - A reasoning effort enables extended thinking with a budget of 1024
//!   (low), 4096 (medium) or 16384 (high) tokens. Without an explicit
//!   `max_tokens` the budget is added to the default; with one, the budget
//!   is lowered to fit below it, and thinking stays off when less than the
//!   API minimum of 1024 tokens would remain. With thinking on,
//!   `temperature` and `top_p` are not sent (the API rejects them).
//! - Consecutive tool results become one user message of `tool_result`
//!   blocks; consecutive messages of the same role are merged.
//! - Reasoning goes back as `thinking` blocks only when it has a signature;
//!   reasoning with a signature and no text goes back as `redacted_thinking`.
//!
//! Decoding: content blocks are addressed by their index, which is also the
//! tool-call index. [`ProviderEvent::Finish`] is emitted at `message_stop`
//! (or at the end of the body after a `message_delta` with a stop reason);
//! a body that ends before either fails with [`ProviderError::Transient`].
//! `ping` and unknown events, block types and fields are ignored.

use std::collections::HashMap;
use std::fmt;

use eventsource_stream::Event;
use serde_json::{Map, Value, json};

use super::http::{self, Flow, HttpOptions, SseDecoder, Transport};
use super::{
    FinishReason, ModelRequest, Provider, ProviderError, ProviderEvent, ProviderStream,
    ReasoningEffort, ToolChoice,
};
use crate::message::{ContentPart, ImageSource, Message, Role};
use crate::usage::Usage;

/// The default base URL.
///
/// ```
/// use netherbrain_core::provider::anthropic::{AnthropicConfig, DEFAULT_BASE_URL};
/// assert_eq!(AnthropicConfig::default().base_url, DEFAULT_BASE_URL);
/// ```
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` header sent with every request (an extra
/// header of the same name overrides it).
///
/// ```
/// assert_eq!(netherbrain_core::provider::anthropic::API_VERSION, "2023-06-01");
/// ```
pub const API_VERSION: &str = "2023-06-01";

/// The `max_tokens` sent when the request sets none.
///
/// ```
/// use netherbrain_core::provider::anthropic::{AnthropicConfig, DEFAULT_MAX_TOKENS};
/// assert_eq!(AnthropicConfig::default().default_max_tokens, DEFAULT_MAX_TOKENS);
/// ```
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Configuration of an [`AnthropicProvider`].
///
/// `Debug` output never shows the API key or the values of extra headers.
///
/// ```
/// use netherbrain_core::provider::anthropic::AnthropicConfig;
/// let config = AnthropicConfig::new("sk-ant-secret")
///     .with_header("anthropic-beta", "interleaved-thinking-2025-05-14")
///     .with_default_max_tokens(8192);
/// assert!(!format!("{config:?}").contains("sk-ant-secret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct AnthropicConfig {
    /// The API root; requests go to `{base_url}/v1/messages`.
    pub base_url: String,
    /// Sent as `x-api-key` when set.
    pub api_key: Option<String>,
    /// Extra headers sent with every request (they override defaults,
    /// including `anthropic-version`).
    pub headers: Vec<(String, String)>,
    /// `max_tokens` for requests that set none (default 4096).
    pub default_max_tokens: u32,
    /// Timeouts and retries.
    pub http: HttpOptions,
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: None,
            headers: Vec::new(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
            http: HttpOptions::default(),
        }
    }
}

impl fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("headers", &http::redacted_headers(&self.headers))
            .field("default_max_tokens", &self.default_max_tokens)
            .field("http", &self.http)
            .finish()
    }
}

impl AnthropicConfig {
    /// A configuration for Anthropic's API with the given key.
    ///
    /// ```
    /// let c = netherbrain_core::provider::anthropic::AnthropicConfig::new("sk-ant-test");
    /// assert_eq!(c.base_url, "https://api.anthropic.com");
    /// ```
    #[must_use]
    pub fn new(api_key: impl Into<String>) -> Self {
        Self::default().with_api_key(api_key)
    }

    /// Sets the base URL (a proxy or gateway).
    ///
    /// ```
    /// let c = netherbrain_core::provider::anthropic::AnthropicConfig::default().with_base_url("http://127.0.0.1:9000");
    /// assert_eq!(c.base_url, "http://127.0.0.1:9000");
    /// ```
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets the API key.
    ///
    /// ```
    /// let c = netherbrain_core::provider::anthropic::AnthropicConfig::default().with_api_key("k");
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
    /// let c = netherbrain_core::provider::anthropic::AnthropicConfig::default().with_header("anthropic-beta", "x");
    /// assert_eq!(c.headers.len(), 1);
    /// ```
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the `max_tokens` used when a request sets none.
    ///
    /// ```
    /// let c = netherbrain_core::provider::anthropic::AnthropicConfig::default().with_default_max_tokens(1000);
    /// assert_eq!(c.default_max_tokens, 1000);
    /// ```
    #[must_use]
    pub fn with_default_max_tokens(mut self, max_tokens: u32) -> Self {
        self.default_max_tokens = max_tokens;
        self
    }

    /// Sets timeouts and retries.
    ///
    /// ```
    /// use netherbrain_core::provider::anthropic::AnthropicConfig;
    /// use netherbrain_core::provider::http::{HttpOptions, RetryPolicy};
    /// let c = AnthropicConfig::default().with_http(HttpOptions::default().with_retry(RetryPolicy::none()));
    /// assert_eq!(c.http.retry.max_retries, 0);
    /// ```
    #[must_use]
    pub fn with_http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }
}

/// A [`Provider`] for Anthropic's Messages API.
///
/// ```
/// use netherbrain_core::provider::Provider;
/// use netherbrain_core::provider::anthropic::{AnthropicConfig, AnthropicProvider};
/// let provider = AnthropicProvider::new(AnthropicConfig::new("sk-ant-secret"));
/// assert_eq!(provider.name(), "anthropic");
/// assert!(!format!("{provider:?}").contains("sk-ant-secret"));
/// ```
#[derive(Debug)]
pub struct AnthropicProvider {
    config: AnthropicConfig,
    transport: Transport,
}

impl AnthropicProvider {
    /// Creates the provider. Never fails: an HTTP client that cannot be
    /// built reports its error from [`Provider::stream`].
    ///
    /// ```
    /// use netherbrain_core::provider::anthropic::{AnthropicConfig, AnthropicProvider};
    /// let provider = AnthropicProvider::new(AnthropicConfig::new("sk-ant-test"));
    /// # let _ = provider;
    /// ```
    #[must_use]
    pub fn new(config: AnthropicConfig) -> Self {
        let transport = Transport::new(config.http.clone());
        Self { config, transport }
    }

    fn build_request(&self, request: &ModelRequest) -> Result<reqwest::Request, ProviderError> {
        let secret: Vec<(&str, &str)> = self
            .config
            .api_key
            .as_deref()
            .map(|key| ("x-api-key", key))
            .into_iter()
            .collect();
        let headers = http::build_headers(
            &[
                ("anthropic-version", API_VERSION),
                ("accept", "text/event-stream"),
            ],
            &secret,
            &self.config.headers,
        )?;
        let url = format!("{}/v1/messages", self.config.base_url.trim_end_matches('/'));
        http::post_json(
            &url,
            headers,
            &request_body(request, self.config.default_max_tokens),
        )
    }
}

impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn stream(&self, request: ModelRequest) -> ProviderStream {
        let built = self.build_request(&request);
        self.transport
            .stream("anthropic", built, MessagesDecoder::default)
    }

    fn list_models(
        &self,
    ) -> futures::future::BoxFuture<'static, Result<Vec<String>, ProviderError>> {
        let secret: Vec<(&str, &str)> = self
            .config
            .api_key
            .as_deref()
            .map(|key| ("x-api-key", key))
            .into_iter()
            .collect();
        let headers = http::build_headers(
            &[
                ("anthropic-version", API_VERSION),
                ("accept", "application/json"),
            ],
            &secret,
            &self.config.headers,
        );
        let url = format!("{}/v1/models", self.config.base_url.trim_end_matches('/'));
        let transport = self.transport.clone();
        Box::pin(async move { transport.list_models(url, headers?).await })
    }
}

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

/// The API's smallest thinking budget.
const MIN_THINKING_BUDGET: u32 = 1024;

const fn thinking_budget(effort: ReasoningEffort) -> u32 {
    match effort {
        ReasoningEffort::Low => 1024,
        ReasoningEffort::Medium => 4096,
        ReasoningEffort::High => 16384,
    }
}

/// `(max_tokens, thinking budget)`.
fn token_limits(request: &ModelRequest, default_max_tokens: u32) -> (u32, Option<u32>) {
    let settings = &request.settings;
    let Some(budget) = settings.reasoning_effort.map(thinking_budget) else {
        return (settings.max_tokens.unwrap_or(default_max_tokens), None);
    };
    match settings.max_tokens {
        None => (default_max_tokens.saturating_add(budget), Some(budget)),
        Some(max) => {
            let budget = budget.min(max.saturating_sub(1));
            (max, (budget >= MIN_THINKING_BUDGET).then_some(budget))
        }
    }
}

fn request_body(request: &ModelRequest, default_max_tokens: u32) -> Value {
    let (messages, history_system) = wire_messages(&request.messages);
    let system: Vec<&str> = request
        .system
        .iter()
        .map(String::as_str)
        .chain(history_system.iter().map(String::as_str))
        .filter(|s| !s.is_empty())
        .collect();
    let (max_tokens, thinking) = token_limits(request, default_max_tokens);

    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("max_tokens".into(), json!(max_tokens));
    body.insert("stream".into(), json!(true));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "description": t.description,
                    "input_schema": t.parameters,
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &request.tool_choice {
            let choice = match choice {
                ToolChoice::None => json!({"type": "none"}),
                ToolChoice::Required => json!({"type": "any"}),
                ToolChoice::Function(name) => json!({"type": "tool", "name": name}),
                _ => json!({"type": "auto"}),
            };
            body.insert("tool_choice".into(), choice);
        }
    }
    let s = &request.settings;
    if let Some(budget) = thinking {
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    } else {
        if let Some(t) = s.temperature {
            body.insert("temperature".into(), http::float(t));
        }
        if let Some(p) = s.top_p {
            body.insert("top_p".into(), http::float(p));
        }
    }
    if !s.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(s.stop));
    }
    Value::Object(body)
}

/// The wire messages, and the texts of system-role messages.
fn wire_messages(history: &[Message]) -> (Vec<Value>, Vec<String>) {
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut system = Vec::new();
    let mut push = |role: &'static str, blocks: Vec<Value>| {
        if blocks.is_empty() {
            return;
        }
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    };
    for message in http::visible_history(history) {
        match message.role {
            Role::System => {
                let text = message
                    .content
                    .iter()
                    .filter_map(ContentPart::as_text)
                    .collect::<Vec<_>>()
                    .join("\n\n");
                if !text.is_empty() {
                    system.push(text);
                }
            }
            Role::User | Role::Tool => push("user", user_blocks(&message)),
            Role::Assistant => push("assistant", assistant_blocks(&message)),
        }
    }
    let messages = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    (messages, system)
}

fn user_blocks(message: &Message) -> Vec<Value> {
    // The API wants tool results before any other content.
    let mut blocks: Vec<Value> = message
        .tool_results()
        .map(|r| {
            let mut block = json!({
                "type": "tool_result",
                "tool_use_id": r.call_id,
                "content": r.content,
            });
            if r.status.is_error() {
                block["is_error"] = json!(true);
            }
            block
        })
        .collect();
    for part in &message.content {
        match part {
            ContentPart::Text { text } | ContentPart::Summary { text } if !text.is_empty() => {
                blocks.push(json!({"type": "text", "text": text}));
            }
            ContentPart::Image { source } => blocks.push(image_block(source)),
            _ => {}
        }
    }
    blocks
}

fn image_block(source: &ImageSource) -> Value {
    let source = match source {
        ImageSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ImageSource::Url { url } => match parse_data_url(url) {
            Some((media_type, data)) => {
                json!({"type": "base64", "media_type": media_type, "data": data})
            }
            None => json!({"type": "url", "url": url}),
        },
    };
    json!({"type": "image", "source": source})
}

/// `data:<media type>;base64,<data>` → `(media type, data)`.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

fn assistant_blocks(message: &Message) -> Vec<Value> {
    let mut blocks = Vec::new();
    for part in &message.content {
        match part {
            ContentPart::Reasoning {
                text,
                signature: Some(signature),
            } if !signature.is_empty() => {
                if text.is_empty() {
                    blocks.push(json!({"type": "redacted_thinking", "data": signature}));
                } else {
                    blocks.push(
                        json!({"type": "thinking", "thinking": text, "signature": signature}),
                    );
                }
            }
            ContentPart::Text { text } | ContentPart::Summary { text } if !text.is_empty() => {
                blocks.push(json!({"type": "text", "text": text}));
            }
            ContentPart::ToolCall(call) => {
                let input = match &call.arguments {
                    Value::Object(_) => call.arguments.clone(),
                    _ => json!({}),
                };
                blocks.push(json!({
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    "input": input,
                }));
            }
            _ => {}
        }
    }
    blocks
}

// ---------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    ToolUse,
    Other,
}

/// Cumulative token counts as Anthropic reports them.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    input: u64,
    cache_write: u64,
    cache_read: u64,
    output: u64,
}

/// Decodes Messages API stream events.
#[derive(Debug, Default)]
pub(crate) struct MessagesDecoder {
    blocks: HashMap<usize, Block>,
    stop_reason: Option<FinishReason>,
    /// Counts already emitted; usage is cumulative on the wire.
    reported: Counts,
    counted_request: bool,
}

fn str_of<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn non_empty<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    str_of(value, key).filter(|s| !s.is_empty())
}

fn map_stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

impl MessagesDecoder {
    fn index(value: &Value) -> usize {
        value
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(0)
    }

    fn usage(&mut self, usage: Option<&Value>, out: &mut Vec<ProviderEvent>) {
        let Some(usage) = usage.filter(|u| u.is_object()) else {
            return;
        };
        let n = |key: &str, old: u64| {
            usage
                .get(key)
                .and_then(Value::as_u64)
                .map_or(old, |v| v.max(old))
        };
        let old = self.reported;
        let new = Counts {
            input: n("input_tokens", old.input),
            cache_write: n("cache_creation_input_tokens", old.cache_write),
            cache_read: n("cache_read_input_tokens", old.cache_read),
            output: n("output_tokens", old.output),
        };
        self.reported = new;
        let cache_write = new.cache_write - old.cache_write;
        let cache_read = new.cache_read - old.cache_read;
        let delta = Usage {
            input_tokens: (new.input - old.input) + cache_write + cache_read,
            output_tokens: new.output - old.output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            requests: u64::from(!self.counted_request),
            ..Usage::default()
        };
        self.counted_request = true;
        if !delta.is_empty() {
            out.push(ProviderEvent::Usage(delta));
        }
    }

    fn block_start(&mut self, value: &Value, out: &mut Vec<ProviderEvent>) {
        let index = Self::index(value);
        let block = value.get("content_block").unwrap_or(&Value::Null);
        let kind = match str_of(block, "type").unwrap_or_default() {
            "text" => {
                if let Some(text) = non_empty(block, "text") {
                    out.push(ProviderEvent::TextDelta(text.to_owned()));
                }
                Block::Text
            }
            "thinking" => {
                if let Some(text) = non_empty(block, "thinking") {
                    out.push(ProviderEvent::ReasoningDelta(text.to_owned()));
                }
                if let Some(sig) = non_empty(block, "signature") {
                    out.push(ProviderEvent::ReasoningSignature(sig.to_owned()));
                }
                Block::Thinking
            }
            "redacted_thinking" => {
                if let Some(data) = non_empty(block, "data") {
                    out.push(ProviderEvent::ReasoningSignature(data.to_owned()));
                }
                Block::Thinking
            }
            "tool_use" => {
                out.push(ProviderEvent::ToolCallStart {
                    index,
                    id: non_empty(block, "id").map(str::to_owned),
                    name: non_empty(block, "name").map(str::to_owned),
                });
                // Streaming sends `{}` here and the input as deltas; a proxy
                // may send the whole input at once.
                if let Some(input) = block
                    .get("input")
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                {
                    out.push(ProviderEvent::ToolCallArgs {
                        index,
                        fragment: input.to_string(),
                    });
                }
                Block::ToolUse
            }
            _ => Block::Other,
        };
        self.blocks.insert(index, kind);
    }

    fn block_delta(value: &Value, out: &mut Vec<ProviderEvent>) {
        let index = Self::index(value);
        let delta = value.get("delta").unwrap_or(&Value::Null);
        match str_of(delta, "type").unwrap_or_default() {
            "text_delta" => {
                if let Some(text) = non_empty(delta, "text") {
                    out.push(ProviderEvent::TextDelta(text.to_owned()));
                }
            }
            "thinking_delta" => {
                if let Some(text) = non_empty(delta, "thinking") {
                    out.push(ProviderEvent::ReasoningDelta(text.to_owned()));
                }
            }
            "signature_delta" => {
                if let Some(sig) = non_empty(delta, "signature") {
                    out.push(ProviderEvent::ReasoningSignature(sig.to_owned()));
                }
            }
            "input_json_delta" => {
                if let Some(json) = non_empty(delta, "partial_json") {
                    out.push(ProviderEvent::ToolCallArgs {
                        index,
                        fragment: json.to_owned(),
                    });
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<ProviderEvent>) {
        if !self.counted_request {
            self.counted_request = true;
            out.push(ProviderEvent::Usage(Usage {
                requests: 1,
                ..Usage::default()
            }));
        }
        let has_tools = self.blocks.values().any(|b| *b == Block::ToolUse);
        let reason = match self.stop_reason.take() {
            Some(reason) => reason,
            None if has_tools => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        out.push(ProviderEvent::Finish(reason));
    }
}

impl SseDecoder for MessagesDecoder {
    fn on_event(
        &mut self,
        event: &Event,
        out: &mut Vec<ProviderEvent>,
    ) -> Result<Flow, ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let value = match http::parse_json(data) {
            Ok(value) => value,
            Err(_) if event.event == "error" => return Err(http::classify_error("", data)),
            Err(e) => return Err(e),
        };
        let kind = str_of(&value, "type").unwrap_or(event.event.as_str());
        match kind {
            "message_start" => {
                let usage = value.get("message").and_then(|m| m.get("usage"));
                self.usage(usage, out);
            }
            "content_block_start" => self.block_start(&value, out),
            "content_block_delta" => Self::block_delta(&value, out),
            "content_block_stop" => {
                let index = Self::index(&value);
                if self.blocks.get(&index) == Some(&Block::ToolUse) {
                    out.push(ProviderEvent::ToolCallEnd { index });
                }
            }
            "message_delta" => {
                if let Some(reason) = value
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(map_stop_reason(reason));
                }
                self.usage(value.get("usage"), out);
            }
            "message_stop" => {
                self.finish(out);
                return Ok(Flow::Done);
            }
            "error" => {
                return Err(http::error_from_value(&value).unwrap_or_else(|| {
                    http::classify_error("", non_empty(&value, "message").unwrap_or(data))
                }));
            }
            _ => {} // ping and anything new
        }
        Ok(Flow::Continue)
    }

    fn on_eof(&mut self, out: &mut Vec<ProviderEvent>) -> Result<(), ProviderError> {
        if self.stop_reason.is_none() {
            return Err(ProviderError::Transient {
                message: "the response stream ended before the response was complete".to_owned(),
            });
        }
        self.finish(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ModelSettings;
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
            MessagesDecoder::default(),
            tokio::time::Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .collect()
        .await
    }

    #[tokio::test]
    async fn utf8_and_events_split_across_chunks() {
        let items = decode(vec![
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}\n\n",
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"na\xC3",
            b"\xAFve \xE2\x82",
            b"\xAC\"}}\n",
            b"\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n",
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ])
        .await;
        assert_eq!(
            items,
            vec![
                Ok(ProviderEvent::Usage(Usage {
                    input_tokens: 7,
                    output_tokens: 1,
                    cache_read_tokens: 2,
                    requests: 1,
                    ..Usage::default()
                })),
                Ok(ProviderEvent::TextDelta("naïve €".into())),
                Ok(ProviderEvent::Usage(Usage {
                    output_tokens: 8,
                    ..Usage::default()
                })),
                Ok(ProviderEvent::Finish(FinishReason::Stop)),
            ]
        );
    }

    #[tokio::test]
    async fn thinking_signature_and_errors() {
        let items = decode(vec![
            b"data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
            b"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
            b"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}\n\n",
            b"event: ping\ndata: {\"type\":\"ping\"}\n\n",
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        ])
        .await;
        assert_eq!(items[0], Ok(ProviderEvent::ReasoningDelta("hmm".into())));
        assert_eq!(
            items[1],
            Ok(ProviderEvent::ReasoningSignature("sig".into()))
        );
        assert!(
            matches!(&items[2], Err(ProviderError::Transient { message }) if message == "Overloaded")
        );
    }

    #[test]
    fn thinking_budget_fits_max_tokens() {
        let req = |max: Option<u32>, effort: Option<ReasoningEffort>| {
            let settings = ModelSettings {
                max_tokens: max,
                reasoning_effort: effort,
                ..ModelSettings::default()
            };
            ModelRequest::new("m", vec![]).with_settings(settings)
        };
        assert_eq!(token_limits(&req(None, None), 4096), (4096, None));
        assert_eq!(
            token_limits(&req(None, Some(ReasoningEffort::High)), 4096),
            (20480, Some(16384))
        );
        assert_eq!(
            token_limits(&req(Some(8000), Some(ReasoningEffort::High)), 4096),
            (8000, Some(7999))
        );
        assert_eq!(
            token_limits(&req(Some(1000), Some(ReasoningEffort::Low)), 4096),
            (1000, None)
        );
    }

    #[test]
    fn data_urls_become_base64() {
        assert_eq!(
            parse_data_url("data:image/png;base64,AAAA"),
            Some(("image/png", "AAAA"))
        );
        assert_eq!(parse_data_url("https://x/y.png"), None);
    }
}
