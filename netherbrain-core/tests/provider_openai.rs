//! The OpenAI-compatible adapter against a local mock server.
#![cfg(feature = "openai")]

use std::time::{Duration, Instant};

use futures::StreamExt;
use netherbrain_core::provider::http::{HttpOptions, RetryPolicy};
use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiProvider};
use netherbrain_core::provider::{
    ModelRequest, ModelSettings, Provider, ProviderEvent, ProviderExt, ReasoningEffort,
    ToolDefinition,
};
use netherbrain_core::{
    ContentPart, FinishReason, ImageSource, Message, ProviderError, Role, ToolCall, ToolResult,
    Usage,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PATH: &str = "/v1/chat/completions";

fn provider(server: &MockServer) -> OpenAiProvider {
    OpenAiProvider::new(
        OpenAiConfig::new(format!("{}/v1/", server.uri()))
            .with_api_key("sk-test-secret")
            .with_header("X-Title", "netherbrain-tests")
            .with_http(
                HttpOptions::default().with_retry(
                    RetryPolicy::default()
                        .with_base_delay(Duration::from_millis(10))
                        .with_max_delay(Duration::from_millis(50)),
                ),
            ),
    )
}

/// An SSE body of `data:` events (ending with `[DONE]` when `done`).
fn sse(chunks: &[Value], done: bool) -> String {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    if done {
        body.push_str("data: [DONE]\n\n");
    }
    body
}

fn ok_sse(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn delta(delta: Value) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
}

fn finish(reason: &str) -> Value {
    json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
}

fn request() -> ModelRequest {
    ModelRequest::new("gpt-test", vec![Message::user("hi")])
}

async fn mount(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn streams_text_reasoning_usage_and_finish() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let body = sse(
        &[
            delta(json!({"role": "assistant", "content": ""})),
            delta(json!({"reasoning_content": "thinking…"})),
            delta(json!({"content": "Hel"})),
            delta(json!({"content": "lo"})),
            finish("stop"),
            json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}}}),
        ],
        true,
    );
    mount(&server, ok_sse(body)).await;

    let events: Vec<_> = provider(&server).stream(request()).collect().await;
    let events: Vec<ProviderEvent> = events.into_iter().collect::<Result<_, _>>()?;
    assert_eq!(
        events,
        vec![
            ProviderEvent::ReasoningDelta("thinking…".into()),
            ProviderEvent::TextDelta("Hel".into()),
            ProviderEvent::TextDelta("lo".into()),
            ProviderEvent::Usage(Usage {
                input_tokens: 12,
                output_tokens: 5,
                cache_read_tokens: 4,
                reasoning_tokens: 2,
                requests: 1,
                ..Usage::default()
            }),
            ProviderEvent::Finish(FinishReason::Stop),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn interleaved_parallel_tool_calls_are_assembled() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut function = json!({"arguments": args});
        if let Some(name) = name {
            function["name"] = json!(name);
        }
        let mut call = json!({"index": index, "type": "function", "function": function});
        if let Some(id) = id {
            call["id"] = json!(id);
        }
        delta(json!({"tool_calls": [call]}))
    };
    let body = sse(
        &[
            delta(json!({"content": "Let me check."})),
            call(0, Some("call_a"), Some("weather"), ""),
            call(1, Some("call_b"), Some("time"), "{\"tz\":"),
            call(0, None, None, "{\"city\":"),
            call(1, None, None, "\"UTC\"}"),
            call(0, None, None, "\"Paris\"}"),
            finish("tool_calls"),
        ],
        true,
    );
    mount(&server, ok_sse(body)).await;

    let response = provider(&server).complete(request()).await?;
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(response.message.text(), "Let me check.");
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
            ("call_a", "weather", json!({"city": "Paris"}), None),
            ("call_b", "time", json!({"tz": "UTC"}), None),
        ]
    );
    assert_eq!(response.usage.requests, 1);
    Ok(())
}

#[tokio::test]
async fn multibyte_text_survives() -> anyhow::Result<()> {
    // wiremock sends the body in one piece; splitting inside a character is
    // covered by the unit tests of the decoder (`decode_sse` fed by
    // hand-made chunks).
    let server = MockServer::start().await;
    let body = sse(
        &[
            delta(json!({"content": "héllo "})),
            delta(json!({"content": "世界 🦀"})),
            finish("stop"),
        ],
        true,
    );
    mount(&server, ok_sse(body)).await;
    let response = provider(&server).complete(request()).await?;
    assert_eq!(response.message.text(), "héllo 世界 🦀");
    Ok(())
}

#[tokio::test]
async fn mid_stream_error_is_classified_and_not_retried() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let body = sse(
        &[
            delta(json!({"content": "partial"})),
            json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}),
        ],
        false,
    );
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ok_sse(body))
        .expect(1)
        .mount(&server)
        .await;

    let items: Vec<_> = provider(&server).stream(request()).collect().await;
    assert_eq!(items[0], Ok(ProviderEvent::TextDelta("partial".into())));
    assert!(
        matches!(&items[1], Err(ProviderError::RateLimited { message, .. }) if message.contains("Rate limit")),
        "{items:?}"
    );
    assert_eq!(items.len(), 2);

    let server = MockServer::start().await;
    let body = sse(
        &[
            json!({"error": {"message": "This model's maximum context length is 4096 tokens", "code": "context_length_exceeded"}}),
        ],
        false,
    );
    mount(&server, ok_sse(body)).await;
    let err = provider(&server).complete(request()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::ContextTooLong { .. }),
        "{err:?}"
    );
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
                .set_body_json(
                    json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
                ),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ok_sse(sse(
            &[delta(json!({"content": "ok"})), finish("stop")],
            true,
        )))
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
async fn retry_after_beyond_the_cap_is_returned() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "120"))
        .expect(1)
        .mount(&server)
        .await;
    let err = provider(&server).complete(request()).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(120)),
            message: "HTTP 429".into()
        }
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ok_sse(sse(
            &[delta(json!({"content": "up"})), finish("stop")],
            true,
        )))
        .mount(&server)
        .await;
    let response = provider(&server).complete(request()).await;
    assert_eq!(response.map(|r| r.message.text()), Ok("up".to_owned()));

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = provider(&server).complete(request()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("sk-test-secret"));

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(503))
        .expect(4)
        .mount(&server)
        .await;
    let err = provider(&server).complete(request()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn connection_refused_is_transient() -> anyhow::Result<()> {
    // A port nobody listens on (wiremock pools its servers, so take a fresh one).
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let uri = format!("http://127.0.0.1:{port}/v1");
    let provider = OpenAiProvider::new(
        OpenAiConfig::new(uri).with_http(HttpOptions::default().with_retry(RetryPolicy::none())),
    );
    let err = provider.complete(request()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Transient { .. }), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn malformed_tool_arguments_are_reported_not_fatal() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let body = sse(
        &[
            delta(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "search", "arguments": "{\"q\": \"rust"}}]}),
            ),
            finish("tool_calls"),
        ],
        true,
    );
    mount(&server, ok_sse(body)).await;
    let response = provider(&server).complete(request()).await?;
    let call = &response.tool_calls[0];
    assert!(call.error.is_some());
    assert_eq!(call.call.arguments, json!("{\"q\": \"rust"));
    Ok(())
}

#[tokio::test]
async fn unknown_fields_and_finish_reasons_are_tolerated() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    let body = sse(
        &[
            json!({"id": "x", "system_fingerprint": "fp", "provider": "NewAI", "choices": [{"delta": {"content": "a", "annotations": [], "audio": null}, "logprobs": {"weird": true}}]}),
            json!({"choices": [{"index": 0, "delta": {"refusal": null, "future_field": {"x": 1}}, "finish_reason": "brand_new_reason", "native_finish_reason": "?"}]}),
        ],
        false,
    );
    // `: comment` lines and unknown event names are ignored too
    let body = format!(": OPENROUTER PROCESSING\n\n{body}");
    mount(&server, ok_sse(body)).await;
    let response = provider(&server).complete(request()).await?;
    assert_eq!(response.message.text(), "a");
    assert_eq!(response.finish_reason, Some(FinishReason::Other));
    Ok(())
}

#[tokio::test]
async fn truncated_stream_is_a_transient_error() {
    let server = MockServer::start().await;
    mount(
        &server,
        ok_sse(sse(&[delta(json!({"content": "half an ans"}))], false)),
    )
    .await;
    let err = provider(&server).complete(request()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn request_body_and_headers() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    mount(&server, ok_sse(sse(&[finish("stop")], true))).await;

    let history = vec![
        Message::new(
            Role::User,
            vec![
                ContentPart::text("What is in this image, and the weather?"),
                ContentPart::Image {
                    source: ImageSource::Base64 {
                        media_type: "image/png".into(),
                        data: "iVBORw0KGgo=".into(),
                    },
                },
            ],
        ),
        Message::new(
            Role::Assistant,
            vec![
                ContentPart::Reasoning {
                    text: "not sent back".into(),
                    signature: None,
                },
                ContentPart::text("Checking."),
                ContentPart::ToolCall(ToolCall::new("call_1", "weather", json!({"city": "Paris"}))),
                ContentPart::ToolCall(ToolCall::new(
                    "call_2",
                    "weather",
                    Value::String("{\"city\": Lon".into()),
                )),
            ],
        ),
        Message::tool(vec![
            ToolResult::success("call_1", "18°C, sunny"),
            ToolResult::error("call_2", "the tool arguments are not valid JSON"),
        ]),
        Message::user("Thanks"),
    ];
    let request = ModelRequest::new("gpt-test", history)
        .with_system("You are terse.")
        .with_tools(vec![ToolDefinition::new(
            "weather",
            "Current weather for a city",
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        )])
        .with_settings(
            ModelSettings::default()
                .with_temperature(0.2)
                .with_top_p(0.9)
                .with_max_tokens(256)
                .with_reasoning_effort(ReasoningEffort::Low)
                .with_stop(vec!["END".into()]),
        );
    provider(&server).complete(request).await?;

    let received = server.received_requests().await.unwrap_or_default();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    let header = |name: &str| {
        sent.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("authorization").as_deref(),
        Some("Bearer sk-test-secret")
    );
    assert_eq!(header("x-title").as_deref(), Some("netherbrain-tests"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    let body: Value = sent.body_json()?;
    insta::assert_json_snapshot!("openai_request_body", body);
    Ok(())
}

#[tokio::test]
async fn summary_replaces_earlier_history() -> anyhow::Result<()> {
    let server = MockServer::start().await;
    mount(&server, ok_sse(sse(&[finish("stop")], true))).await;
    let history = vec![
        Message::user("old question"),
        Message::assistant("old answer"),
        Message::new(
            Role::User,
            vec![ContentPart::Summary {
                text: "Summary: the user asked an old question.".into(),
            }],
        ),
        Message::user("new question"),
    ];
    provider(&server)
        .complete(ModelRequest::new("gpt-test", history))
        .await?;
    let received = server.received_requests().await.unwrap_or_default();
    let body: Value = received[0].body_json()?;
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "Summary: the user asked an old question."},
            {"role": "user", "content": "new question"},
        ])
    );
    Ok(())
}

/// A one-connection HTTP/1.1 server on 127.0.0.1 that answers with a
/// chunked SSE body, writing each part as its own chunk (with a pause), so
/// the client really receives split events and split characters. With
/// `hang`, it then keeps the connection open and reports whether the client
/// closed it.
mod raw {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;

    async fn read_request(socket: &mut TcpStream) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            let n = socket.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..pos]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                while buf.len() < pos + 4 + len {
                    let n = socket.read(&mut tmp).await?;
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                return Ok(());
            }
        }
    }

    pub(crate) async fn serve(
        parts: Vec<Vec<u8>>,
        hang: bool,
    ) -> std::io::Result<(String, oneshot::Receiver<bool>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let uri = format!("http://{}/v1", listener.local_addr()?);
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let result: std::io::Result<bool> = async {
                read_request(&mut socket).await?;
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await?;
                for part in parts {
                    socket.write_all(format!("{:x}\r\n", part.len()).as_bytes()).await?;
                    socket.write_all(&part).await?;
                    socket.write_all(b"\r\n").await?;
                    socket.flush().await?;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if !hang {
                    socket.write_all(b"0\r\n\r\n").await?;
                    socket.flush().await?;
                    return Ok(false);
                }
                // Wait for the client to go away.
                let mut tmp = [0u8; 64];
                match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut tmp)).await {
                    Ok(Ok(0) | Err(_)) => Ok(true),
                    _ => Ok(false),
                }
            }
            .await;
            let _ = tx.send(result.unwrap_or(true));
        });
        Ok((uri, rx))
    }
}

fn raw_provider(uri: String, idle: Duration) -> OpenAiProvider {
    OpenAiProvider::new(
        OpenAiConfig::new(uri).with_http(
            HttpOptions::default()
                .with_idle_timeout(idle)
                .with_retry(RetryPolicy::none()),
        ),
    )
}

#[tokio::test]
async fn events_and_characters_split_across_network_chunks() -> anyhow::Result<()> {
    let body = sse(
        &[
            delta(json!({"content": "naïve "})),
            delta(json!({"content": "日本 🦀"})),
            finish("stop"),
        ],
        true,
    )
    .into_bytes();
    // Cut inside "ï" (2 bytes), "日" (3 bytes) and "🦀" (4 bytes).
    let mut cuts: Vec<usize> = ["ï", "日", "🦀"]
        .iter()
        .filter_map(|c| {
            let needle = c.as_bytes();
            body.windows(needle.len())
                .position(|w| w == needle)
                .map(|p| p + 1)
        })
        .collect();
    assert_eq!(cuts.len(), 3);
    cuts.push(body.len());
    let mut parts = Vec::new();
    let mut start = 0;
    for cut in cuts {
        parts.push(body[start..cut].to_vec());
        start = cut;
    }
    let (uri, _) = raw::serve(parts, false).await?;
    let response = raw_provider(uri, Duration::from_secs(5))
        .complete(request())
        .await?;
    assert_eq!(response.message.text(), "naïve 日本 🦀");
    assert_eq!(response.finish_reason, Some(FinishReason::Stop));
    Ok(())
}

#[tokio::test]
async fn silence_between_chunks_times_out() -> anyhow::Result<()> {
    let first = sse(&[delta(json!({"content": "hi"}))], false).into_bytes();
    let (uri, _) = raw::serve(vec![first], true).await?;
    let items: Vec<_> = raw_provider(uri, Duration::from_millis(300))
        .stream(request())
        .collect()
        .await;
    assert_eq!(items[0], Ok(ProviderEvent::TextDelta("hi".into())));
    assert!(
        matches!(&items[1], Err(ProviderError::Transient { message }) if message.contains("no data")),
        "{items:?}"
    );
    Ok(())
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() -> anyhow::Result<()> {
    let first = sse(&[delta(json!({"content": "hi"}))], false).into_bytes();
    let (uri, closed) = raw::serve(vec![first], true).await?;
    let mut stream = raw_provider(uri, Duration::from_secs(30)).stream(request());
    assert_eq!(
        stream.next().await,
        Some(Ok(ProviderEvent::TextDelta("hi".into())))
    );
    drop(stream);
    assert!(closed.await?, "the server did not see the connection close");
    Ok(())
}
