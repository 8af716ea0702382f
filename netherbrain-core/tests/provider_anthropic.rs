//! The Anthropic adapter against a local mock server.
#![cfg(feature = "anthropic")]

use std::time::{Duration, Instant};

use futures::StreamExt;
use netherbrain_core::provider::anthropic::{AnthropicConfig, AnthropicProvider};
use netherbrain_core::provider::http::{HttpOptions, RetryPolicy};
use netherbrain_core::provider::{
    ModelRequest, ModelSettings, Provider, ProviderEvent, ProviderExt, ReasoningEffort,
    ToolDefinition,
};
use netherbrain_core::{
    ContentPart, FinishReason, ImageSource, Message, ProviderError, Role, ToolCall, ToolResult,
    Usage,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PATH: &str = "/v1/messages";

fn provider(server: &MockServer) -> AnthropicProvider {
    AnthropicProvider::new(
        AnthropicConfig::new("sk-ant-test-secret")
            .with_base_url(server.uri())
            .with_header("anthropic-beta", "tools-2099-01-01")
            .with_http(
                HttpOptions::default().with_retry(
                    RetryPolicy::default()
                        .with_base_delay(Duration::from_millis(10))
                        .with_max_delay(Duration::from_millis(50)),
                ),
            ),
    )
}

/// An SSE body with `event:` names taken from each payload's `type`.
fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            let name = e["type"].as_str().unwrap_or("unknown");
            format!("event: {name}\ndata: {e}\n\n")
        })
        .collect()
}

fn ok_sse(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn message_start(input: u64) -> Value {
    json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude-test", "content": [], "stop_reason": null,
        "usage": {"input_tokens": input, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 10, "output_tokens": 1}}})
}

fn text_block(index: u64, text: &str) -> Vec<Value> {
    vec![
        json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
        json!({"type": "content_block_stop", "index": index}),
    ]
}

fn end(reason: &str, output: u64) -> Vec<Value> {
    vec![
        json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null}, "usage": {"output_tokens": output}}),
        json!({"type": "message_stop"}),
    ]
}

fn request() -> ModelRequest {
    ModelRequest::new("claude-test", vec![Message::user("hi")])
}

async fn mount(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn streams_text_thinking_usage_and_finish() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let mut events = vec![
        message_start(20),
        json!({"type": "ping"}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me think."}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAh"}}),
        json!({"type": "content_block_stop", "index": 0}),
    ];
    events.extend(text_block(1, "Hello"));
    events.extend(end("end_turn", 15));
    mount(&server, ok_sse(sse(&events))).await;

    let items: Vec<_> = provider(&server).stream(request()).collect().await;
    let items: Vec<ProviderEvent> = items.into_iter().collect::<Result<_, _>>()?;
    assert_eq!(
        items,
        vec![
            ProviderEvent::Usage(Usage {
                input_tokens: 33,
                output_tokens: 1,
                cache_read_tokens: 10,
                cache_write_tokens: 3,
                requests: 1,
                ..Usage::default()
            }),
            ProviderEvent::ReasoningDelta("Let me think.".into()),
            ProviderEvent::ReasoningSignature("EqQBCgIYAh".into()),
            ProviderEvent::TextDelta("Hello".into()),
            ProviderEvent::Usage(Usage {
                output_tokens: 14,
                ..Usage::default()
            }),
            ProviderEvent::Finish(FinishReason::Stop),
        ]
    );

    let response = provider(&server).complete(request()).await?;
    assert_eq!(response.message.text(), "Hello");
    assert_eq!(response.usage.output_tokens, 15);
    assert!(matches!(
        &response.message.content[0],
        ContentPart::Reasoning { text, signature: Some(sig) } if text == "Let me think." && sig == "EqQBCgIYAh"
    ));
    Ok(())
}

#[tokio::test]
async fn interleaved_parallel_tool_calls_are_assembled() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let args = |index: u64, json: &str| json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": json}});
    let mut events = vec![message_start(5)];
    events.extend(text_block(0, "Checking both."));
    events.extend([
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {}}}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "time", "input": {}}}),
        args(1, ""),
        args(1, "{\"city\": "),
        args(2, "{\"tz\": \"UTC\"}"),
        args(1, "\"Paris\"}"),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "content_block_stop", "index": 1}),
    ]);
    events.extend(end("tool_use", 40));
    mount(&server, ok_sse(sse(&events))).await;

    let response = provider(&server).complete(request()).await?;
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    let calls: Vec<_> = response
        .tool_calls
        .iter()
        .map(|c| {
            (
                c.call.id.as_str(),
                c.call.name.as_str(),
                c.call.arguments.clone(),
                c.error.clone(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            ("toolu_a", "weather", json!({"city": "Paris"}), None),
            ("toolu_b", "time", json!({"tz": "UTC"}), None),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn multibyte_text_survives() -> anyhow::Result<()> {
    // Splits inside a character are covered by the decoder's unit tests.
    let server = MockServer::start().await;
    let mut events = vec![message_start(1)];
    events.extend(text_block(0, "Grüße, 世界 🦀"));
    events.extend(end("end_turn", 5));
    mount(&server, ok_sse(sse(&events))).await;
    let response = provider(&server).complete(request()).await?;
    assert_eq!(response.message.text(), "Grüße, 世界 🦀");
    Ok(())
}

#[tokio::test]
async fn mid_stream_error_is_classified_and_not_retried() {
    let server = MockServer::start().await;
    let mut events = vec![message_start(5)];
    events.extend(text_block(0, "partial"));
    events.push(
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ok_sse(sse(&events)))
        .expect(1)
        .mount(&server)
        .await;
    let items: Vec<_> = provider(&server).stream(request()).collect().await;
    assert!(matches!(items[1], Ok(ProviderEvent::TextDelta(_))));
    assert_eq!(
        items.last(),
        Some(&Err(ProviderError::Transient {
            message: "Overloaded".into()
        }))
    );

    for (kind, check) in [
        (
            "rate_limit_error",
            (|e: &ProviderError| matches!(e, ProviderError::RateLimited { .. }))
                as fn(&ProviderError) -> bool,
        ),
        ("invalid_request_error", |e| {
            matches!(e, ProviderError::InvalidRequest { .. })
        }),
        ("authentication_error", |e| {
            matches!(e, ProviderError::Auth { .. })
        }),
    ] {
        let server = MockServer::start().await;
        let mut events = vec![message_start(5)];
        events.extend(text_block(0, "x"));
        events.push(json!({"type": "error", "error": {"type": kind, "message": "boom"}}));
        mount(&server, ok_sse(sse(&events))).await;
        let err = provider(&server).complete(request()).await.unwrap_err();
        assert!(check(&err), "{kind}: {err:?}");
    }
}

#[tokio::test]
async fn overload_before_any_content_is_retried() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let failing = sse(&[
        message_start(5),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ]);
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ok_sse(failing))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let mut events = vec![message_start(5)];
    events.extend(text_block(0, "fine"));
    events.extend(end("end_turn", 2));
    mount(&server, ok_sse(sse(&events))).await;

    let response = provider(&server).complete(request()).await?;
    assert_eq!(response.message.text(), "fine");
    // the failed attempt's usage was discarded
    assert_eq!(response.usage.requests, 1);
    assert_eq!(response.usage.input_tokens, 18);
    Ok(())
}

#[tokio::test]
async fn rate_limit_with_retry_after_then_success() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let mut events = vec![message_start(5)];
    events.extend(text_block(0, "ok"));
    events.extend(end("end_turn", 2));
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ok_sse(sse(&events)))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let response = provider(&server).complete(request()).await?;
    assert_eq!(response.message.text(), "ok");
    assert!(started.elapsed() >= Duration::from_millis(900));
    Ok(())
}

#[tokio::test]
async fn http_errors_are_classified() {
    type Check = fn(&ProviderError) -> bool;
    let cases: [(u16, Value, Check); 4] = [
        (
            401,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
            |e| matches!(e, ProviderError::Auth { .. }),
        ),
        (
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 250000 tokens > 200000 maximum"}}),
            |e| matches!(e, ProviderError::ContextTooLong { .. }),
        ),
        (
            404,
            json!({"type": "error", "error": {"type": "not_found_error", "message": "model: nope"}}),
            |e| matches!(e, ProviderError::InvalidRequest { .. }),
        ),
        (
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            |e| matches!(e, ProviderError::Transient { .. }),
        ),
    ];
    for (status, body, check) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(PATH))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let err = provider(&server).complete(request()).await.unwrap_err();
        assert!(check(&err), "{status}: {err:?}");
        assert!(!err.to_string().contains("sk-ant-test-secret"));
    }
}

#[tokio::test]
async fn malformed_tool_arguments_are_reported_not_fatal() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let mut events = vec![
        message_start(5),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"q\": tru"}}),
        json!({"type": "content_block_stop", "index": 0}),
    ];
    events.extend(end("tool_use", 9));
    mount(&server, ok_sse(sse(&events))).await;
    let response = provider(&server).complete(request()).await?;
    let call = &response.tool_calls[0];
    assert!(call.error.is_some());
    assert_eq!(call.call.arguments, json!("{\"q\": tru"));
    Ok(())
}

#[tokio::test]
async fn unknown_events_blocks_fields_and_stop_reasons_are_tolerated() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let mut events = vec![
        message_start(5),
        json!({"type": "brand_new_event", "payload": [1, 2, 3]}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "mystery_delta", "x": 1}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": "", "citations": null, "extra": true}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "a", "new_field": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "citations_delta", "citation": {}}}),
        json!({"type": "content_block_stop", "index": 1}),
    ];
    events.extend(end("some_future_reason", 3));
    mount(&server, ok_sse(sse(&events))).await;
    let response = provider(&server).complete(request()).await?;
    assert_eq!(response.message.text(), "a");
    assert!(response.tool_calls.is_empty());
    assert_eq!(response.finish_reason, Some(FinishReason::Other));
    Ok(())
}

#[tokio::test]
async fn truncated_stream_is_a_transient_error() {
    let server = MockServer::start().await;
    let mut events = vec![message_start(5)];
    events.extend(text_block(0, "half"));
    mount(&server, ok_sse(sse(&events))).await;
    let err = provider(&server).complete(request()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn request_body_and_headers() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let mut events = vec![message_start(1)];
    events.extend(end("end_turn", 1));
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("x-api-key", "sk-ant-test-secret"))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("anthropic-beta", "tools-2099-01-01"))
        .respond_with(ok_sse(sse(&events)))
        .expect(1)
        .mount(&server)
        .await;

    let history = vec![
        Message::system("Extra system instructions."),
        Message::new(
            Role::User,
            vec![
                ContentPart::text("Weather in these two cities?"),
                ContentPart::Image {
                    source: ImageSource::Url {
                        url: "https://example.com/map.png".into(),
                    },
                },
            ],
        ),
        Message::new(
            Role::Assistant,
            vec![
                ContentPart::Reasoning {
                    text: "Two calls.".into(),
                    signature: Some("sig-1".into()),
                },
                ContentPart::Reasoning {
                    text: "no signature: dropped".into(),
                    signature: None,
                },
                ContentPart::text("Checking."),
                ContentPart::ToolCall(ToolCall::new(
                    "toolu_1",
                    "weather",
                    json!({"city": "Paris"}),
                )),
                ContentPart::ToolCall(ToolCall::new(
                    "toolu_2",
                    "weather",
                    Value::String("{\"city\": Lon".into()),
                )),
            ],
        ),
        Message::tool(vec![ToolResult::success("toolu_1", "18°C, sunny")]),
        Message::tool(vec![ToolResult::error(
            "toolu_2",
            "the tool arguments are not valid JSON",
        )]),
        Message::user("Thanks"),
    ];
    let request = ModelRequest::new("claude-test", history)
        .with_system("You are terse.")
        .with_tools(vec![ToolDefinition::new(
            "weather",
            "Current weather for a city",
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        )])
        .with_settings(
            ModelSettings::default()
                .with_temperature(0.2)
                .with_reasoning_effort(ReasoningEffort::Medium)
                .with_stop(vec!["END".into()]),
        );
    provider(&server).complete(request).await?;

    let received = server.received_requests().await.unwrap_or_default();
    let body: Value = received[0].body_json()?;
    insta::assert_json_snapshot!("anthropic_request_body", body);

    // without reasoning: default max_tokens, temperature sent, no thinking
    let server = MockServer::start().await;
    mount(&server, ok_sse(sse(&events))).await;
    provider(&server)
        .complete(request_with_temperature())
        .await?;
    let received = server.received_requests().await.unwrap_or_default();
    let body: Value = received[0].body_json()?;
    assert_eq!(body["max_tokens"], json!(4096));
    assert_eq!(body["temperature"], json!(0.5));
    assert!(body.get("thinking").is_none());
    assert!(body.get("system").is_none());
    Ok(())
}

fn request_with_temperature() -> ModelRequest {
    request().with_settings(ModelSettings::default().with_temperature(0.5))
}

#[tokio::test]
async fn lists_models_with_the_key_and_relays_no_error_body() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("x-api-key", "sk-ant-test-secret"))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": "claude-sonnet-4-5", "type": "model"}, {"id": "claude-haiku-4-5", "type": "model"}],
            "has_more": false
        })))
        .mount(&server)
        .await;
    let models = provider(&server).list_models().await?;
    assert_eq!(models, ["claude-sonnet-4-5", "claude-haiku-4-5"]);

    let refusing = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(403).set_body_string("internal detail: /srv/secret/config.yaml"),
        )
        .mount(&refusing)
        .await;
    let err = provider(&refusing).list_models().await.unwrap_err();
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");
    Ok(())
}
