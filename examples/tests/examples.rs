//! Runs the example binaries: the OpenAI ones against a wiremock server
//! speaking the Chat Completions streaming protocol.

use std::process::Command;

use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn sse(chunks: &[serde_json::Value]) -> String {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    body
}

fn text_chunks(text: &str) -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]}),
        serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        serde_json::json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}),
    ]
}

fn sse_response(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream")
        .set_body_string(body)
}

fn run(bin: &str, base_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env("OPENAI_BASE_URL", base_url)
        .env("OPENAI_API_KEY", "sk-test")
        .env("NETHER_MODEL", "test-model")
        .output()
        .expect("example binary runs")
}

#[tokio::test]
async fn one_shot_chat_streams_the_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("Why is the sky blue?"))
        .respond_with(sse_response(sse(&text_chunks("Rayleigh scattering."))))
        .expect(1)
        .mount(&server)
        .await;
    let out = run(
        env!("CARGO_BIN_EXE_one_shot_chat"),
        &format!("{}/v1", server.uri()),
        &["Why is the sky blue?"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Rayleigh scattering."
    );
}

#[tokio::test]
async fn one_shot_chat_reports_provider_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"error": {"message": "bad key"}})),
        )
        .mount(&server)
        .await;
    let out = run(
        env!("CARGO_BIN_EXE_one_shot_chat"),
        &format!("{}/v1", server.uri()),
        &["hi"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad key"));
}

#[tokio::test]
async fn custom_tool_is_called_through_the_loop() {
    let server = MockServer::start().await;
    // Round 2: the request carries the tool result "5"; answer with it.
    Mock::given(method("POST"))
        .and(body_string_contains("\"tool_call_id\":\"call_1\""))
        .respond_with(sse_response(sse(&text_chunks("There are 5 words."))))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    // Round 1: the model calls word_count.
    let call = serde_json::json!({"choices": [{"index": 0, "delta": {"tool_calls": [{
        "index": 0, "id": "call_1", "type": "function",
        "function": {"name": "word_count", "arguments": "{\"text\": \"the quick brown fox jumps\"}"}
    }]}, "finish_reason": "tool_calls"}]});
    Mock::given(method("POST"))
        .and(body_string_contains("word_count"))
        .respond_with(sse_response(sse(&[call])))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let out = run(
        env!("CARGO_BIN_EXE_custom_tool"),
        &format!("{}/v1", server.uri()),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "There are 5 words."
    );
    // The tool really ran: its result went back to the model.
    let requests = server.received_requests().await.unwrap();
    let second: serde_json::Value = serde_json::from_slice(&requests[1].body).unwrap();
    let tool_message = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert_eq!(tool_message["content"], "5");
}

#[test]
fn custom_provider_answers_without_network() {
    let out = Command::new(env!("CARGO_BIN_EXE_custom_provider"))
        .arg("hello world")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().next(), Some("HELLO WORLD"));
    assert!(stdout.contains("requests: 1"));
}

#[tokio::test]
async fn line_channel_answers_each_line_through_the_bridge() {
    use std::io::Write as _;
    use std::process::Stdio;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("Why is the sky blue?"))
        .respond_with(sse_response(sse(&text_chunks("Rayleigh scattering."))))
        .expect(1)
        .mount(&server)
        .await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_line_channel"))
        .env("OPENAI_BASE_URL", format!("{}/v1", server.uri()))
        .env("OPENAI_API_KEY", "sk-test")
        .env("NETHER_MODEL", "test-model")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("example binary runs");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "Why is the sky blue?").expect("write a line");
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Rayleigh scattering."
    );
}
