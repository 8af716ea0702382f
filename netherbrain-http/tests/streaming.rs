//! SSE resume (raw and through the typed client's auto-reconnect) and the
//! WebSocket protocol.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::agents::{self, read_sse};
use common::{TestServer, start_catalog};
use futures::{SinkExt, StreamExt};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::{AgentEvent, EventEnvelope};
use netherbrain_http::client::Client;
use netherbrain_http::dto::{CreateConversationRequest, RunConversationRequest, RunInput};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

/// Number of text deltas of the slow run.
const DELTAS: usize = 30;

async fn slow_server(responses: Vec<ScriptedResponse>) -> (TestServer, Uuid) {
    let provider =
        Arc::new(ScriptedProvider::new(responses).with_event_delay(Duration::from_millis(15)));
    let s = start_catalog(agents::catalog(provider)).await;
    let preset = agents::preset(&s.admin, "helper").await;
    (s, preset)
}

/// The complete stored log of a finished session, as (id, event JSON).
async fn full_log(s: &TestServer, token: &str, session: Uuid) -> Vec<(u64, Value)> {
    let resp = s
        .http
        .get(s.url(&format!("/api/sessions/{session}/events?after=0")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    read_sse(resp, None)
        .await
        .into_iter()
        .map(|e| (e.id, e.data))
        .collect()
}

fn envelopes(events: &[EventEnvelope]) -> Vec<(u64, Value)> {
    events
        .iter()
        .map(|e| (e.seq, serde_json::to_value(&e.event).unwrap()))
        .collect()
}

fn assert_contiguous(ids: &[u64]) {
    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected, "gap or duplicate");
}

#[tokio::test]
async fn sse_resume_with_last_event_id_has_no_gap_or_duplicate() {
    let (s, preset) = slow_server(vec![agents::many_deltas(DELTAS)]).await;
    let (_, alice, token) = s.user_token("alice").await;

    let resp = s
        .http
        .post(s.url("/api/conversations/run"))
        .bearer_auth(&token)
        .json(&json!({"preset_id": preset, "input": "count"}))
        .send()
        .await
        .unwrap();
    let session: Uuid = resp.headers()["x-session-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // Disconnect mid-run after 4 events.
    let head = read_sse(resp, Some(4)).await;
    assert_eq!(head.len(), 4);
    assert!(
        alice.session_status(session).await.unwrap().running,
        "still running"
    );

    let resp = s
        .http
        .get(s.url(&format!("/api/sessions/{session}/events?after=1")))
        .bearer_auth(&token)
        .header("last-event-id", "4")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let tail = read_sse(resp, None).await;
    assert_eq!(tail.last().unwrap().event, "RUN_FINISHED");

    let union: Vec<(u64, Value)> = head
        .iter()
        .chain(&tail)
        .map(|e| (e.id, e.data.clone()))
        .collect();
    assert_contiguous(&union.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    assert_eq!(union, full_log(&s, &token, session).await);
    // Every event counts: start, message start, deltas, end, usage, finish.
    assert_eq!(union.len(), DELTAS + 5);

    // `?after=` alone works too, and past the end is an empty stream.
    let resp = s
        .http
        .get(s.url(&format!("/api/sessions/{session}/events?after=30")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let rest = read_sse(resp, None).await;
    assert_eq!(rest.first().unwrap().id, 31);
    let resp = s
        .http
        .get(s.url(&format!("/api/sessions/{session}/events")))
        .bearer_auth(&token)
        .header("last-event-id", "999")
        .send()
        .await
        .unwrap();
    assert!(read_sse(resp, None).await.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn conversation_events_follow_the_latest_session() {
    let (s, preset) = slow_server(vec![agents::many_deltas(5)]).await;
    let (_, alice, token) = s.user_token("alice").await;
    let started = alice
        .run(&RunConversationRequest {
            conversation_id: None,
            preset_id: Some(preset),
            input: RunInput::Text("go".into()),
            stream: false,
        })
        .await
        .unwrap();
    let resp = s
        .http
        .get(s.url(&format!(
            "/api/conversations/{}/events",
            started.conversation_id
        )))
        .bearer_auth(&token)
        .header("last-event-id", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-session-id"].to_str().unwrap(),
        started.session_id.to_string()
    );
    let events = read_sse(resp, None).await;
    assert_eq!(events.first().unwrap().id, 3);
    assert_eq!(events.last().unwrap().event, "RUN_FINISHED");
    s.stop().await;
}

#[tokio::test]
async fn typed_client_resumes_from_a_given_id() {
    let (s, preset) = slow_server(vec![agents::many_deltas(DELTAS)]).await;
    let (_, alice, token) = s.user_token("alice").await;
    let started = alice
        .run(&RunConversationRequest {
            conversation_id: None,
            preset_id: Some(preset),
            input: RunInput::Text("go".into()),
            stream: false,
        })
        .await
        .unwrap();
    let tail: Vec<EventEnvelope> = alice
        .stream_session_events(started.session_id, 10)
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(tail.first().unwrap().seq, 11);
    assert!(tail.last().unwrap().event.is_terminal());
    let full = full_log(&s, &token, started.session_id).await;
    assert_eq!(envelopes(&tail), full[10..].to_vec());

    // run_stream: the whole run from the POST.
    let (s2, preset2) = slow_server(vec![agents::many_deltas(3)]).await;
    let (_, bob, _) = s2.user_token("bob").await;
    let events = bob.chat(None, Some(preset2), "hi").await.unwrap();
    assert!(matches!(
        events.first().unwrap().event,
        AgentEvent::RunStarted { .. }
    ));
    assert!(matches!(
        events.last().unwrap().event,
        AgentEvent::RunFinished { .. }
    ));
    assert_contiguous(&events.iter().map(|e| e.seq).collect::<Vec<_>>());
    s2.stop().await;
    s.stop().await;
}

/// A TCP proxy that cuts each of the first `cuts` connections after
/// `bytes` bytes of response, then passes everything through.
async fn cutting_proxy(upstream: String, cuts: usize, bytes: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let cut = (n <= cuts).then_some(bytes);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut sent = 0usize;
                let mut buf = vec![0u8; 256];
                while let Ok(k) = sr.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    let k = match cut {
                        Some(limit) if sent + k >= limit => {
                            let _ = cw.write_all(&buf[..limit - sent]).await;
                            break;
                        }
                        _ => k,
                    };
                    if cw.write_all(&buf[..k]).await.is_err() {
                        break;
                    }
                    sent += k;
                }
                up.abort();
                let _ = cw.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test]
async fn typed_client_reconnects_after_a_dropped_connection() {
    let (s, preset) = slow_server(vec![agents::many_deltas(DELTAS)]).await;
    let (_, alice, token) = s.user_token("alice").await;
    let started = alice
        .run(&RunConversationRequest {
            conversation_id: None,
            preset_id: Some(preset),
            input: RunInput::Text("go".into()),
            stream: false,
        })
        .await
        .unwrap();
    // Two connections are cut mid-stream (after the headers and a few
    // events); fresh connections pass.
    let (proxy, connections) =
        cutting_proxy(s.base.trim_start_matches("http://").to_owned(), 2, 900).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let through_proxy = Client::with_http_client(http, proxy, Some(token.clone())).unwrap();
    let events: Vec<EventEnvelope> = through_proxy
        .stream_session_events(started.session_id, 0)
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_contiguous(&events.iter().map(|e| e.seq).collect::<Vec<_>>());
    assert!(events.last().unwrap().event.is_terminal());
    assert_eq!(
        envelopes(&events),
        full_log(&s, &token, started.session_id).await
    );
    assert!(connections.load(Ordering::SeqCst) >= 3, "reconnected twice");
    s.stop().await;
}

// ---- WebSocket ----

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_connect(s: &TestServer, token: &str) -> Ws {
    let url = format!(
        "{}/api/ws?token={token}",
        s.base.replace("http://", "ws://")
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect")
        .0
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(WsMessage::Text(frame.to_string().into()))
        .await
        .unwrap();
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let WsMessage::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Frames until the `RUN_FINISHED` event frame (inclusive).
async fn until_finished(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = recv(ws).await;
        let done = frame["type"] == "event" && frame["event"]["type"] == "RUN_FINISHED";
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

#[tokio::test]
async fn websocket_subscribe_chat_and_errors() {
    let (s, preset) = slow_server(vec![
        agents::many_deltas(3),
        ScriptedResponse::text("again"),
    ])
    .await;
    let (_, alice, token) = s.user_token("alice").await;
    let (_, bob, _) = s.user_token("bob").await;
    let conv = alice
        .create_conversation(&CreateConversationRequest {
            default_preset: Some(preset),
            ..Default::default()
        })
        .await
        .unwrap();
    let bobs = bob
        .create_conversation(&CreateConversationRequest::default())
        .await
        .unwrap();

    let mut ws = ws_connect(&s, &token).await;
    // Malformed frames get error frames; the socket stays usable.
    ws.send(WsMessage::Text("not json".into())).await.unwrap();
    assert_eq!(recv(&mut ws).await["code"], "invalid_json");
    send(&mut ws, json!({"type": "bogus"})).await;
    assert_eq!(recv(&mut ws).await["code"], "unknown_type");
    send(&mut ws, json!({"no": "type"})).await;
    assert_eq!(recv(&mut ws).await["code"], "invalid_frame");
    send(&mut ws, json!({"type": "chat", "conversation_id": conv.id})).await;
    let e = recv(&mut ws).await;
    assert_eq!(e["code"], "invalid_frame");
    assert_eq!(e["conversation_id"], json!(conv.id));
    send(
        &mut ws,
        json!({"type": "subscribe", "conversation_id": "nope"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "invalid_frame");
    send(
        &mut ws,
        json!({"type": "subscribe", "conversation_id": bobs.id}),
    )
    .await;
    let e = recv(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("not_found"))
    );
    send(
        &mut ws,
        json!({"type": "interrupt", "conversation_id": conv.id}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "not_running");
    send(
        &mut ws,
        json!({"type": "chat", "conversation_id": conv.id, "input": "  "}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "invalid");
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await["type"], "pong");

    // Subscribe, then chat: started, then the run's events in order.
    send(
        &mut ws,
        json!({"type": "subscribe", "conversation_id": conv.id}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["type"], "subscribed");
    send(
        &mut ws,
        json!({"type": "chat", "conversation_id": conv.id, "input": "hi"}),
    )
    .await;
    let started = recv(&mut ws).await;
    assert_eq!(started["type"], "started");
    let session = started["session_id"].clone();
    let frames = until_finished(&mut ws).await;
    let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert_contiguous(&seqs);
    assert!(
        frames
            .iter()
            .all(|f| f["session_id"] == session && f["conversation_id"] == json!(conv.id))
    );
    assert_eq!(frames[0]["event"]["type"], "RUN_STARTED");

    // A run started elsewhere (HTTP) is followed too.
    let other = alice
        .run(&RunConversationRequest {
            conversation_id: Some(conv.id),
            preset_id: None,
            input: RunInput::Text("from http".into()),
            stream: false,
        })
        .await
        .unwrap();
    let frames = until_finished(&mut ws).await;
    assert!(
        frames
            .iter()
            .all(|f| f["session_id"] == json!(other.session_id))
    );
    assert_contiguous(
        &frames
            .iter()
            .map(|f| f["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
    );

    send(
        &mut ws,
        json!({"type": "unsubscribe", "conversation_id": conv.id}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["type"], "unsubscribed");
    ws.close(None).await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn websocket_chat_creates_a_conversation_and_auth_is_required() {
    let (s, preset) = slow_server(vec![ScriptedResponse::text("hello")]).await;
    let (_, alice, token) = s.user_token("alice").await;
    // Header auth works as well as `?token=`.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("{}/api/ws", s.base.replace("http://", "ws://")),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    send(
        &mut ws,
        json!({"type": "chat", "input": "hi", "preset_id": preset}),
    )
    .await;
    let started = recv(&mut ws).await;
    assert_eq!(started["type"], "started");
    let conversation: Uuid = started["conversation_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let frames = until_finished(&mut ws).await;
    assert_eq!(
        frames.last().unwrap()["event"]["result"]["status"],
        "committed"
    );
    assert_eq!(
        alice
            .get_conversation(conversation)
            .await
            .unwrap()
            .conversation
            .id,
        conversation
    );

    // No token, a bad token: 401 before the upgrade.
    let url = format!("{}/api/ws", s.base.replace("http://", "ws://"));
    assert!(tokio_tungstenite::connect_async(url.clone()).await.is_err());
    assert!(
        tokio_tungstenite::connect_async(format!("{url}?token=nb_bad"))
            .await
            .is_err()
    );
    let resp = s.http.get(s.url("/api/ws")).send().await.unwrap();
    common::assert_error(resp, 401, "unauthorized").await;
    let resp = s
        .http
        .get(s.url("/api/ws"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16() / 100, 4);
    s.stop().await;
}

#[tokio::test]
async fn websocket_steer_and_interrupt() {
    let (s, preset) = slow_server(vec![
        ScriptedResponse::builder()
            .text("partial answer")
            .hang()
            .build(),
    ])
    .await;
    let (_, _alice, token) = s.user_token("alice").await;
    let mut ws = ws_connect(&s, &token).await;
    send(
        &mut ws,
        json!({"type": "chat", "input": "work", "preset_id": preset}),
    )
    .await;
    let started = recv(&mut ws).await;
    assert_eq!(started["type"], "started");
    let conversation = started["conversation_id"].clone();
    // Wait for the run to produce text, then steer and interrupt it.
    loop {
        let f = recv(&mut ws).await;
        if f["type"] == "event" && f["event"]["type"] == "TEXT_MESSAGE_CONTENT" {
            break;
        }
    }
    send(
        &mut ws,
        json!({"type": "steer", "conversation_id": conversation, "text": "hurry"}),
    )
    .await;
    send(
        &mut ws,
        json!({"type": "steer", "conversation_id": conversation, "text": ""}),
    )
    .await;
    send(
        &mut ws,
        json!({"type": "interrupt", "conversation_id": conversation}),
    )
    .await;
    let frames = until_finished(&mut ws).await;
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"steered"), "{kinds:?}");
    assert!(kinds.contains(&"interrupted"), "{kinds:?}");
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "error" && f["code"] == "invalid"),
        "empty steer is an error frame"
    );
    assert_eq!(
        frames.last().unwrap()["event"]["result"]["status"],
        "interrupted"
    );
    s.stop().await;
}
