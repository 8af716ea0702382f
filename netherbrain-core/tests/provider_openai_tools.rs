//! The OpenAI-compatible adapter with tools against servers that cannot
//! stream them: a profile without streaming, the fallback after a refusal
//! (llama.cpp's 500 "streaming tool choice is not supported"), and legacy
//! `function_call` fields.
#![cfg(feature = "openai")]

use netherbrain_core::provider::http::{HttpOptions, RetryPolicy};
use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiProvider};
use netherbrain_core::provider::{ModelRequest, ProviderExt, ToolDefinition};
use netherbrain_core::{FinishReason, Message, ProviderError};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PATH: &str = "/v1/chat/completions";

fn provider(server: &MockServer, stream: bool) -> OpenAiProvider {
    OpenAiProvider::new(
        OpenAiConfig::new(format!("{}/v1", server.uri()))
            .with_stream(stream)
            .with_http(HttpOptions::default().with_retry(RetryPolicy::none())),
    )
}

fn request(with_tools: bool) -> ModelRequest {
    let r = ModelRequest::new("local", vec![Message::user("what time is it?")]);
    if with_tools {
        r.with_tools(vec![ToolDefinition::new(
            "clock",
            "Tells the time",
            json!({"type": "object", "properties": {"zone": {"type": "string"}}}),
        )])
    } else {
        r
    }
}

fn whole_answer() -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "clock", "arguments": "{\"zone\":\"UTC\"}"}}]
            },
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    })
}

#[tokio::test]
async fn a_profile_without_streaming_gets_whole_answers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(body_string_contains("\"stream\":false"))
        .respond_with(ResponseTemplate::new(200).set_body_json(whole_answer()))
        .expect(1)
        .mount(&server)
        .await;
    let response = provider(&server, false)
        .complete(request(true))
        .await
        .unwrap();
    assert_eq!(response.message.text(), "Let me look.");
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.tool_calls[0].call.name, "clock");
    assert_eq!(
        response.tool_calls[0].call.arguments,
        json!({"zone": "UTC"})
    );
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(response.usage.input_tokens, 7);
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["stream"], false);
    assert!(sent.get("stream_options").is_none());
}

#[tokio::test]
async fn a_refusal_to_stream_with_tools_falls_back_to_one_plain_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(body_string_contains("\"stream\":true"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "error": {"code": 500, "message": "streaming tool choice is not supported", "type": "server_error"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(body_string_contains("\"stream\":false"))
        .respond_with(ResponseTemplate::new(200).set_body_json(whole_answer()))
        .expect(1)
        .mount(&server)
        .await;
    let response = provider(&server, true)
        .complete(request(true))
        .await
        .unwrap();
    assert_eq!(response.tool_calls[0].call.name, "clock");
    assert_eq!(response.message.text(), "Let me look.");
}

#[tokio::test]
async fn other_errors_and_requests_without_tools_do_not_fall_back() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "error": {"message": "streaming tool choice is not supported", "type": "server_error"}
        })))
        .mount(&server)
        .await;
    // no tools: the error is the answer
    let e = provider(&server, true)
        .complete(request(false))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Transient { .. }), "{e}");
    assert!(e.to_string().contains("streaming tool choice"), "{e}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // a server failing both ways gives the plain call's error
    let e = provider(&server, true)
        .complete(request(true))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("streaming tool choice"), "{e}");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

fn sse(chunks: &[Value]) -> ResponseTemplate {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn delta(delta: Value, finish: Value) -> Value {
    json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

#[tokio::test]
async fn a_legacy_function_call_becomes_a_tool_call_and_never_fails_the_turn() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(sse(&[
            delta(json!({"role": "assistant", "function_call": {"name": "clock", "arguments": "{\"zo"}}), Value::Null),
            delta(json!({"function_call": {"arguments": "ne\":\"UTC\"}"}}), Value::Null),
            delta(json!({}), json!("function_call")),
        ]))
        .mount(&server)
        .await;
    let response = provider(&server, true)
        .complete(request(true))
        .await
        .unwrap();
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.tool_calls[0].call.name, "clock");
    assert_eq!(
        response.tool_calls[0].call.arguments,
        json!({"zone": "UTC"})
    );
    assert!(!response.tool_calls[0].call.id.is_empty());
}

#[tokio::test]
async fn a_function_call_beside_tool_calls_is_ignored() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(sse(&[
            delta(
                json!({"role": "assistant",
                    "tool_calls": [{"index": 0, "id": "call_9", "type": "function", "function": {"name": "clock", "arguments": "{}"}}],
                    "function_call": {"name": "clock", "arguments": "{}"}}),
                Value::Null,
            ),
            delta(json!({"function_call": null, "tool_calls": null}), json!("tool_calls")),
        ]))
        .mount(&server)
        .await;
    let response = provider(&server, true)
        .complete(request(true))
        .await
        .unwrap();
    assert_eq!(response.tool_calls.len(), 1, "{:?}", response.tool_calls);
    assert_eq!(response.tool_calls[0].call.id, "call_9");
    assert!(response.tool_calls[0].error.is_none());
}
