//! The OpenAI chat-completions wire format: request and response types,
//! the error shape, the translation of client messages into core
//! [`Message`]s and the shaping of a run's events into completion chunks.
//!
//! Pure functions only; the handlers in `routes/openai.rs` do the I/O.

use std::borrow::Cow;
use std::collections::BTreeSet;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netherbrain_core::agent::RunOverrides;
use netherbrain_core::provider::{ToolChoice, ToolDefinition};
use netherbrain_core::runtime::RuntimeError;
use netherbrain_core::{
    AgentEvent, ContentPart, FinishReason, ImageSource, Message, Role, SessionStatus, ToolCall,
    ToolResult, UsageByModel,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;

/// Who owns the models on `/v1/models`.
pub(crate) const OWNED_BY: &str = "netherbrain";

// ----- errors -----

/// An error in OpenAI's shape:
/// `{"error": {"message", "type", "param": null, "code"}}`.
#[derive(Debug, Clone)]
pub(crate) struct OpenAiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) code: Option<Cow<'static, str>>,
    pub(crate) message: String,
}

impl OpenAiError {
    pub(crate) fn new(
        status: StatusCode,
        kind: &'static str,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code: Some(code.into()),
            message: message.into(),
        }
    }

    /// 400 `invalid_request_error`.
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: None,
            message: message.into(),
        }
    }

    /// 404 `model_not_found`.
    pub(crate) fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
    }

    /// The `{"error": …}` body, also used for the error chunk of a stream.
    pub(crate) fn body(&self) -> Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": null,
                "code": self.code,
            }
        })
    }

    /// The error a failed run reports (`RUN_ERROR` code and message).
    pub(crate) fn from_run_error(code: Option<&str>, message: &str) -> Self {
        let code = code.unwrap_or("run_failed").to_owned();
        let (status, kind) = match code.as_str() {
            "rate_limited" => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            "context_too_long" | "invalid_request" => {
                (StatusCode::BAD_REQUEST, "invalid_request_error")
            }
            "transient" => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
            _ => (StatusCode::BAD_GATEWAY, "api_error"),
        };
        let code = match code.as_str() {
            "rate_limited" => "rate_limit_exceeded".to_owned(),
            "context_too_long" => "context_length_exceeded".to_owned(),
            _ => code,
        };
        Self::new(status, kind, code, message)
    }
}

impl OpenAiError {
    /// The stream's token stopped authenticating its caller mid-answer.
    pub(crate) fn token_revoked() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "token_revoked",
            "the token of this stream was revoked or its account changed; the run was interrupted",
        )
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let (kind, code): (&'static str, Cow<'static, str>) = match status {
            StatusCode::UNAUTHORIZED => ("authentication_error", "invalid_api_key".into()),
            StatusCode::FORBIDDEN => ("permission_error", "forbidden".into()),
            StatusCode::NOT_FOUND => ("invalid_request_error", "not_found".into()),
            StatusCode::CONFLICT => ("invalid_request_error", "conflict".into()),
            StatusCode::TOO_MANY_REQUESTS => ("rate_limit_error", "rate_limit_exceeded".into()),
            StatusCode::SERVICE_UNAVAILABLE => ("api_error", "service_unavailable".into()),
            s if s.is_client_error() => ("invalid_request_error", e.code().into()),
            _ => ("api_error", e.code().into()),
        };
        // 422 is what the native API says for well-formed but invalid
        // input; OpenAI clients expect 400 for that.
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        Self {
            status,
            kind,
            code: Some(code),
            message: e.message().to_owned(),
        }
    }
}

impl From<netherbrain_core::store::StoreError> for OpenAiError {
    fn from(e: netherbrain_core::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<netherbrain_core::conversation::ServiceError> for OpenAiError {
    fn from(e: netherbrain_core::conversation::ServiceError) -> Self {
        match e {
            netherbrain_core::conversation::ServiceError::Runtime(e) => e.into(),
            other => ApiError::from(other).into(),
        }
    }
}

impl From<RuntimeError> for OpenAiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Busy { .. } => Self::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "conflict",
                e.to_string(),
            ),
            RuntimeError::Draining => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "service_unavailable",
                e.to_string(),
            ),
            RuntimeError::InvalidInput(_) | RuntimeError::InvalidResume(_) => {
                Self::invalid_request(e.to_string())
            }
            RuntimeError::NotRunning(_)
            | RuntimeError::NoActiveSession(_)
            | RuntimeError::RunningElsewhere(_) => Self::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "conflict",
                e.to_string(),
            ),
            RuntimeError::Catalog(err) => {
                tracing::warn!(error = %err, "a preset cannot be turned into an agent");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    "model_unavailable",
                    format!("the model is misconfigured on this server: {err}"),
                )
            }
            RuntimeError::Store(err) => err.into(),
            other => ApiError::internal(other).into(),
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

// ----- requests -----

/// `POST /v1/chat/completions`. Unknown fields are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatCompletionRequest {
    /// A preset name.
    pub(crate) model: String,
    pub(crate) messages: Vec<ChatMessage>,
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    #[serde(default)]
    pub(crate) stream_options: Option<StreamOptions>,
    /// Recorded in the conversation's metadata.
    #[serde(default)]
    pub(crate) user: Option<String>,
    /// Only `1` (or absent) is supported.
    #[serde(default)]
    pub(crate) n: Option<u32>,
    /// Replaces the preset's temperature (0 to 2).
    #[serde(default)]
    pub(crate) temperature: Option<f32>,
    /// Output tokens per model call, capped by the preset's `max_tokens`.
    #[serde(default)]
    pub(crate) max_tokens: Option<u32>,
    /// The newer name of `max_tokens`; wins when both are given.
    #[serde(default)]
    pub(crate) max_completion_tokens: Option<u32>,
    /// One stop sequence or up to four.
    #[serde(default)]
    pub(crate) stop: Option<StopSequences>,
    /// `none`, `auto`, `required` or `{"type": "function", "function": {"name"}}`.
    #[serde(default)]
    pub(crate) tool_choice: Option<Value>,
    /// Client tools: their calls are answered by the client.
    #[serde(default)]
    pub(crate) tools: Vec<RequestTool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum StopSequences {
    One(String),
    Many(Vec<String>),
}

/// One entry of the request's `tools`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RequestTool {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) function: RequestToolFunction,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RequestToolFunction {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) parameters: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub(crate) include_usage: Option<bool>,
}

/// One message of the request.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatMessage {
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) content: Option<MessageContent>,
    #[serde(default)]
    pub(crate) tool_calls: Vec<RequestToolCall>,
    #[serde(default)]
    pub(crate) tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum MessageContent {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RequestToolCall {
    pub(crate) id: String,
    pub(crate) function: RequestFunction,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RequestFunction {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) arguments: String,
}

impl ChatCompletionRequest {
    pub(crate) fn wants_stream(&self) -> bool {
        self.stream == Some(true)
    }

    pub(crate) fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// Names of the client tools.
    pub(crate) fn client_tool_names(&self) -> BTreeSet<String> {
        self.tools.iter().map(|t| t.function.name.clone()).collect()
    }

    /// The run's overrides: sampling settings, tool choice and client tools.
    pub(crate) fn overrides(&self) -> Result<RunOverrides, OpenAiError> {
        let mut o = RunOverrides::default();
        if let Some(t) = self.temperature {
            o = o.with_temperature(t);
        }
        if let Some(m) = self.max_completion_tokens.or(self.max_tokens) {
            o = o.with_max_tokens(m);
        }
        match &self.stop {
            Some(StopSequences::One(s)) => o = o.with_stop(vec![s.clone()]),
            Some(StopSequences::Many(v)) => o = o.with_stop(v.clone()),
            None => {}
        }
        let mut defs = Vec::with_capacity(self.tools.len());
        for (i, tool) in self.tools.iter().enumerate() {
            if tool.kind != "function" {
                return Err(OpenAiError::invalid_request(format!(
                    "tools[{i}]: only `function` tools are supported"
                )));
            }
            let f = &tool.function;
            let valid = (1..=64).contains(&f.name.len())
                && f
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(OpenAiError::invalid_request(format!(
                    "tools[{i}]: a function name is 1 to 64 of `a-zA-Z0-9_-`"
                )));
            }
            let parameters = f
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            defs.push(ToolDefinition::new(
                f.name.clone(),
                f.description.clone().unwrap_or_default(),
                parameters,
            ));
        }
        o = o.with_client_tools(defs);
        if let Some(choice) = &self.tool_choice {
            o = o.with_tool_choice(tool_choice(choice)?);
        }
        o.validate()
            .map_err(|e| OpenAiError::invalid_request(e.to_string()))?;
        Ok(o)
    }
}

fn tool_choice(value: &Value) -> Result<ToolChoice, OpenAiError> {
    match value {
        Value::String(s) if s == "none" => Ok(ToolChoice::None),
        Value::String(s) if s == "auto" => Ok(ToolChoice::Auto),
        Value::String(s) if s == "required" => Ok(ToolChoice::Required),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Function(n.to_owned()))
            .ok_or_else(|| {
                OpenAiError::invalid_request("`tool_choice.function.name` is required")
            }),
        _ => Err(OpenAiError::invalid_request(
            "`tool_choice` must be `none`, `auto`, `required` or \
             {\"type\": \"function\", \"function\": {\"name\": …}}",
        )),
    }
}

/// Translates the client's messages into the run's input, in order.
///
/// `system`/`developer` messages stay system messages (after the preset's
/// own system prompt); `user` text and image parts become user messages;
/// `assistant` messages keep their text and tool calls; `tool` messages
/// become tool results. Anything else is a `400`.
pub(crate) fn to_input(messages: &[ChatMessage]) -> Result<Vec<Message>, OpenAiError> {
    if messages.is_empty() {
        return Err(OpenAiError::invalid_request(
            "`messages` must contain at least one message",
        ));
    }
    let mut input = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let parts = content_parts(m.content.as_ref(), i)?;
        let message = match m.role.as_str() {
            "system" | "developer" => Message::new(Role::System, parts),
            "user" => Message::new(Role::User, parts),
            "assistant" => {
                let mut parts = parts;
                for call in &m.tool_calls {
                    let arguments = serde_json::from_str(&call.function.arguments)
                        .unwrap_or_else(|_| Value::String(call.function.arguments.clone()));
                    parts.push(ContentPart::ToolCall(ToolCall::new(
                        call.id.clone(),
                        call.function.name.clone(),
                        arguments,
                    )));
                }
                Message::new(Role::Assistant, parts)
            }
            "tool" => {
                let Some(call_id) = &m.tool_call_id else {
                    return Err(OpenAiError::invalid_request(format!(
                        "messages[{i}]: a `tool` message needs `tool_call_id`"
                    )));
                };
                let text = parts
                    .iter()
                    .filter_map(ContentPart::as_text)
                    .collect::<Vec<_>>()
                    .join("\n");
                Message::tool(vec![ToolResult::success(call_id.clone(), text)])
            }
            other => {
                return Err(OpenAiError::invalid_request(format!(
                    "messages[{i}]: unsupported role `{other}`"
                )));
            }
        };
        if !message.content.is_empty() {
            input.push(message);
        }
    }
    if !input
        .iter()
        .any(|m| matches!(m.role, Role::User | Role::Tool))
    {
        return Err(OpenAiError::invalid_request(
            "`messages` must contain a non-empty `user` message",
        ));
    }
    Ok(input)
}

fn content_parts(
    content: Option<&MessageContent>,
    index: usize,
) -> Result<Vec<ContentPart>, OpenAiError> {
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(text)) if text.is_empty() => Ok(Vec::new()),
        Some(MessageContent::Text(text)) => Ok(vec![ContentPart::text(text.clone())]),
        Some(MessageContent::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text" | "input_text") => {
                        if let Some(text) = part.get("text").and_then(Value::as_str) {
                            out.push(ContentPart::text(text));
                        }
                    }
                    Some("image_url") => {
                        let url = part
                            .get("image_url")
                            .and_then(|u| u.get("url").or(Some(u)))
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                OpenAiError::invalid_request(format!(
                                    "messages[{index}]: an `image_url` part needs `image_url.url`"
                                ))
                            })?;
                        out.push(ContentPart::Image {
                            source: ImageSource::Url {
                                url: url.to_owned(),
                            },
                        });
                    }
                    other => {
                        return Err(OpenAiError::invalid_request(format!(
                            "messages[{index}]: unsupported content part type `{}`",
                            other.unwrap_or("<missing>")
                        )));
                    }
                }
            }
            Ok(out)
        }
    }
}

// ----- responses -----

/// `{"prompt_tokens", "completion_tokens", "total_tokens"}` over every
/// model call of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct CompletionUsage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) total_tokens: u64,
}

impl From<&UsageByModel> for CompletionUsage {
    fn from(usage: &UsageByModel) -> Self {
        let total = usage.total();
        Self {
            prompt_tokens: total.input_tokens,
            completion_tokens: total.output_tokens,
            total_tokens: total.input_tokens + total.output_tokens,
        }
    }
}

/// `GET /v1/models` item.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelObject {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created: i64,
    pub(crate) owned_by: &'static str,
}

impl From<netherbrain_core::store::Preset> for ModelObject {
    fn from(p: netherbrain_core::store::Preset) -> Self {
        Self {
            id: p.name,
            object: "model",
            created: p.created_at.timestamp(),
            owned_by: OWNED_BY,
        }
    }
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelList {
    pub(crate) object: &'static str,
    pub(crate) data: Vec<ModelObject>,
}

/// Identity shared by every chunk and the final response.
#[derive(Debug, Clone)]
pub(crate) struct CompletionMeta {
    pub(crate) id: String,
    pub(crate) created: i64,
    pub(crate) model: String,
}

/// How a run ended, as far as a chat completion can tell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RunEnd {
    /// `finish_reason`, usage and the client-tool calls the client is to
    /// answer (with `finish_reason: "tool_calls"`).
    Finished {
        finish_reason: &'static str,
        usage: CompletionUsage,
        tool_calls: Vec<ToolCall>,
    },
    /// The run failed (or cannot be completed over this API).
    Failed(OpenAiError),
}

impl PartialEq for OpenAiError {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status && self.code == other.code && self.message == other.message
    }
}

/// Maps the terminal event of a run; `None` for other events. A run
/// waiting only for calls of the request's client tools ends as a
/// `tool_calls` answer; one waiting for anything else (an approval, a
/// question to the user) cannot be completed over this API.
pub(crate) fn run_end(event: &AgentEvent, client_tools: &BTreeSet<String>) -> Option<RunEnd> {
    match event {
        AgentEvent::RunFinished { result, .. } => Some(match result.status {
            SessionStatus::AwaitingToolResults
                if !result.deferred_tool_calls.is_empty()
                    && result
                        .deferred_tool_calls
                        .iter()
                        .all(|c| client_tools.contains(&c.name)) =>
            {
                RunEnd::Finished {
                    finish_reason: "tool_calls",
                    usage: CompletionUsage::from(&result.usage),
                    tool_calls: result.deferred_tool_calls.clone(),
                }
            }
            SessionStatus::AwaitingToolResults => RunEnd::Failed(OpenAiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "tool_approval_required",
                "the agent stopped for a tool call that needs approval; \
                 approve it through the Netherbrain API",
            )),
            _ => RunEnd::Finished {
                finish_reason: match result.finish_reason {
                    Some(FinishReason::Length) => "length",
                    Some(FinishReason::ContentFilter) => "content_filter",
                    _ => "stop",
                },
                usage: CompletionUsage::from(&result.usage),
                tool_calls: Vec::new(),
            },
        }),
        AgentEvent::RunError { message, code } => Some(RunEnd::Failed(
            OpenAiError::from_run_error(code.as_deref(), message),
        )),
        _ => None,
    }
}

/// Folds a run's events into the assistant's text: every assistant
/// message's text, in order, separated by a blank line (the same text the
/// stream sends).
#[derive(Debug, Default)]
pub(crate) struct TextFold {
    current_message: Option<String>,
    pub(crate) text: String,
}

impl TextFold {
    /// The text to append for `event` (with a separator when a new
    /// assistant message starts), if any.
    pub(crate) fn delta(&mut self, event: &AgentEvent) -> Option<String> {
        let AgentEvent::TextMessageContent { message_id, delta } = event else {
            return None;
        };
        if delta.is_empty() {
            return None;
        }
        let out = match &self.current_message {
            Some(current) if current == message_id => delta.clone(),
            Some(_) if !self.text.is_empty() => format!("\n\n{delta}"),
            _ => delta.clone(),
        };
        self.current_message = Some(message_id.clone());
        self.text.push_str(&out);
        Some(out)
    }
}

/// The non-streaming response.
pub(crate) fn completion(
    meta: &CompletionMeta,
    content: &str,
    finish_reason: &str,
    usage: CompletionUsage,
    tool_calls: &[ToolCall],
) -> Value {
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !tool_calls.is_empty() {
        if content.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(
            tool_calls
                .iter()
                .map(|c| wire_tool_call(c, None))
                .collect(),
        );
    }
    json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": usage,
    })
}

/// A call as OpenAI's `tool_calls` entry (with `index` in stream deltas);
/// the arguments as a JSON string.
fn wire_tool_call(call: &ToolCall, index: Option<usize>) -> Value {
    let arguments = match &call.arguments {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut v = json!({
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    });
    if let Some(i) = index {
        v["index"] = json!(i);
    }
    v
}

/// One `chat.completion.chunk` with a single choice.
pub(crate) fn chunk(meta: &CompletionMeta, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
    })
}

/// The usage chunk (`stream_options.include_usage`): no choices.
pub(crate) fn usage_chunk(meta: &CompletionMeta, usage: CompletionUsage) -> Value {
    json!({
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [],
        "usage": usage,
    })
}

/// Turns a run's events into the `data:` payloads of the stream.
#[derive(Debug)]
pub(crate) struct ChunkShaper {
    meta: CompletionMeta,
    include_usage: bool,
    client_tools: BTreeSet<String>,
    text: TextFold,
}

/// The SSE payload that ends every stream.
pub(crate) const DONE: &str = "[DONE]";

impl ChunkShaper {
    pub(crate) fn new(
        meta: CompletionMeta,
        include_usage: bool,
        client_tools: BTreeSet<String>,
    ) -> Self {
        Self {
            meta,
            include_usage,
            client_tools,
            text: TextFold::default(),
        }
    }

    /// The first chunk: the assistant role.
    pub(crate) fn start(&self) -> String {
        chunk(
            &self.meta,
            json!({"role": "assistant", "content": ""}),
            None,
        )
        .to_string()
    }

    /// Payloads for one event; `true` when the event ends the stream (the
    /// payloads then include `[DONE]`).
    pub(crate) fn event(&mut self, event: &AgentEvent, out: &mut Vec<String>) -> bool {
        if let Some(delta) = self.text.delta(event) {
            out.push(chunk(&self.meta, json!({"content": delta}), None).to_string());
            return false;
        }
        if let AgentEvent::ReasoningMessageContent { delta, .. } = event {
            if !delta.is_empty() {
                out.push(chunk(&self.meta, json!({"reasoning_content": delta}), None).to_string());
            }
            return false;
        }
        match run_end(event, &self.client_tools) {
            None => false,
            Some(end) => {
                self.end(end, out);
                true
            }
        }
    }

    /// Payloads that end the stream.
    pub(crate) fn end(&self, end: RunEnd, out: &mut Vec<String>) {
        match end {
            RunEnd::Finished {
                finish_reason,
                usage,
                tool_calls,
            } => {
                if !tool_calls.is_empty() {
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .enumerate()
                        .map(|(i, c)| wire_tool_call(c, Some(i)))
                        .collect();
                    out.push(chunk(&self.meta, json!({"tool_calls": calls}), None).to_string());
                }
                out.push(chunk(&self.meta, json!({}), Some(finish_reason)).to_string());
                if self.include_usage {
                    out.push(usage_chunk(&self.meta, usage).to_string());
                }
            }
            RunEnd::Failed(error) => out.push(error.body().to_string()),
        }
        out.push(DONE.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netherbrain_core::{ConversationId, RunResult, SessionId};

    fn msg(role: &str, content: Value) -> ChatMessage {
        serde_json::from_value(json!({"role": role, "content": content})).unwrap()
    }

    #[test]
    fn translates_messages() {
        let input = to_input(&[
            msg("system", json!("Be brief.")),
            msg("user", json!("hi")),
            msg("assistant", json!("hello")),
            msg(
                "user",
                json!([{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]),
            ),
        ])
        .unwrap();
        let roles: Vec<_> = input.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::User]
        );
        assert_eq!(input[3].content.len(), 2);
    }

    #[test]
    fn rejects_unusable_messages() {
        assert_eq!(to_input(&[]).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert!(to_input(&[msg("system", json!("x"))]).is_err());
        assert!(to_input(&[msg("wizard", json!("x"))]).is_err());
        assert!(to_input(&[msg("user", json!([{"type": "audio"}]))]).is_err());
    }

    #[test]
    fn separates_assistant_messages() {
        let mut fold = TextFold::default();
        let ev = |id: &str, d: &str| AgentEvent::TextMessageContent {
            message_id: id.into(),
            delta: d.into(),
        };
        fold.delta(&ev("a", "Let me "));
        fold.delta(&ev("a", "check."));
        assert_eq!(fold.delta(&ev("b", "Noon.")).as_deref(), Some("\n\nNoon."));
        assert_eq!(fold.text, "Let me check.\n\nNoon.");
    }

    #[test]
    fn maps_run_ends() {
        let finished = AgentEvent::RunFinished {
            thread_id: ConversationId::new(),
            run_id: SessionId::new(),
            result: RunResult::new(SessionStatus::Committed),
        };
        assert!(matches!(
            run_end(&finished, &BTreeSet::new()),
            Some(RunEnd::Finished {
                finish_reason: "stop",
                ..
            })
        ));
        let failed = AgentEvent::RunError {
            message: "slow down".into(),
            code: Some("rate_limited".into()),
        };
        let Some(RunEnd::Failed(e)) = run_end(&failed, &BTreeSet::new()) else {
            panic!("expected a failure")
        };
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.body()["error"]["code"], "rate_limit_exceeded");
    }
}
