//! Issue 8: the provider HTTP plumbing against hostile or broken servers
//! (the real OpenAI adapter against wiremock on loopback).
#![cfg(feature = "openai")]

use std::time::Duration;

use netherbrain_core::provider::ModelRequest;
use netherbrain_core::provider::ProviderExt;
use netherbrain_core::provider::http::{HttpOptions, RetryPolicy};
use netherbrain_core::provider::openai::{OpenAiConfig, OpenAiProvider};
use netherbrain_core::{Message, ProviderError};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PATH: &str = "/v1/chat/completions";
const KEY: &str = "sk-planted-secret-key-0123456789";

fn provider_at(base: &str) -> OpenAiProvider {
    OpenAiProvider::new(
        OpenAiConfig::new(format!("{base}/v1/"))
            .with_api_key(KEY)
            .with_http(
                HttpOptions::default().with_retry(
                    RetryPolicy::default()
                        .with_base_delay(Duration::from_millis(10))
                        .with_max_delay(Duration::from_millis(50)),
                ),
            ),
    )
}

fn request() -> ModelRequest {
    ModelRequest::new("gpt-test", vec![Message::user("hi")])
}

fn ok_body() -> ResponseTemplate {
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

async fn after_429(header: &str, value: &str) -> Result<String, ProviderError> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(429).insert_header(header, value))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ok_body())
        .mount(&server)
        .await;
    provider_at(&server.uri())
        .complete(request())
        .await
        .map(|r| r.message.text())
}

#[tokio::test]
async fn an_absurd_retry_after_is_ignored_and_the_call_retried() {
    // Out of `Duration`'s range, negative or not a number: as if absent,
    // so the usual backoff applies and the retry succeeds.
    for value in ["1e20", "-5", "NaN", "inf", "99999999999999999999999"] {
        assert_eq!(
            after_429("retry-after", value).await,
            Ok("ok".to_owned()),
            "retry-after: {value}"
        );
    }
    for value in ["1e30", "-1", "NaN"] {
        assert_eq!(
            after_429("retry-after-ms", value).await,
            Ok("ok".to_owned()),
            "retry-after-ms: {value}"
        );
    }
    // In range but beyond the cap: a clean rate-limit error.
    let err = after_429("retry-after-ms", "1e20").await.unwrap_err();
    assert!(matches!(err, ProviderError::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn a_traceback_body_is_not_passed_on() {
    let server = MockServer::start().await;
    let traceback = "Traceback (most recent call last):\n  File \"/home/llama/server/app.py\", line 12, in handler\nKeyError: 'messages'\n";
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(400).set_body_raw(traceback, "text/plain"))
        .mount(&server)
        .await;
    let err = provider_at(&server.uri())
        .complete(request())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ProviderError::InvalidRequest { .. }),
        "{err:?}"
    );
    assert!(
        !text.contains("Traceback") && !text.contains("/home/"),
        "{text}"
    );
    assert!(text.contains("HTTP 400"), "{text}");
    assert!(!text.contains(KEY));
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_body())
        .expect(0)
        .mount(&elsewhere)
        .await;
    let server = MockServer::start().await;
    // Another port on loopback is another origin.
    let location = format!("{}{PATH}", elsewhere.uri()).replace("127.0.0.1", "localhost");
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(307).insert_header("location", location.as_str()))
        .mount(&server)
        .await;
    let err = provider_at(&server.uri())
        .complete(request())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("307"), "{err}");
    assert!(
        elsewhere
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );

    // On the same origin a redirect is followed.
    let moved = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "/v2/chat/completions"))
        .mount(&moved)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/chat/completions"))
        .respond_with(ok_body())
        .expect(1)
        .mount(&moved)
        .await;
    let response = provider_at(&moved.uri()).complete(request()).await;
    assert_eq!(response.map(|r| r.message.text()), Ok("ok".to_owned()));
}

#[tokio::test]
async fn a_connection_error_names_the_host_and_the_cause() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let err = provider_at(&format!("http://127.0.0.1:{port}"))
        .complete(request())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains(KEY));
    Ok(())
}
