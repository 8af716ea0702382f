//! Conversations and sessions over HTTP: runs, busy, interrupt, steer,
//! approval, fork, metadata, paging, search, ownership and bad input.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::agents::{self, Sse, finish, read_sse, redact, redact_json};
use common::{TestServer, assert_error, start_catalog};
use netherbrain_core::agent::ToolDecision;
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::{AgentEvent, SessionStatus};
use netherbrain_http::client::{Client, ClientError};
use netherbrain_http::dto::{
    ConversationListQuery, CreateConversationRequest, ForkConversationRequest,
    RunConversationRequest, RunInput, UpdateConversationRequest,
};
use serde_json::json;
use uuid::Uuid;

async fn server(responses: Vec<ScriptedResponse>) -> (TestServer, Arc<ScriptedProvider>, Uuid) {
    server_with(ScriptedProvider::new(responses)).await
}

async fn server_with(provider: ScriptedProvider) -> (TestServer, Arc<ScriptedProvider>, Uuid) {
    let provider = Arc::new(provider);
    let s = start_catalog(agents::catalog(provider.clone())).await;
    let preset = agents::preset(&s.admin, "helper").await;
    (s, provider, preset)
}

fn run_req(
    conversation_id: Option<Uuid>,
    preset_id: Option<Uuid>,
    text: &str,
) -> RunConversationRequest {
    RunConversationRequest {
        conversation_id,
        preset_id,
        input: RunInput::Text(text.to_owned()),
        stream: false,
    }
}

fn last_status(events: &[netherbrain_core::EventEnvelope]) -> SessionStatus {
    match &events.last().expect("events").event {
        AgentEvent::RunFinished { result, .. } => result.status,
        other => panic!("not finished: {other:?}"),
    }
}

fn api(e: &ClientError) -> (u16, String) {
    (
        e.status().expect("api error"),
        e.code().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn streamed_run_transcript_and_bodies() {
    let (s, _provider, preset) = server(vec![ScriptedResponse::text("Hello there!")]).await;
    let (_alice, alice, token) = s.user_token("alice").await;

    let resp = s
        .http
        .post(s.url("/api/conversations/run"))
        .bearer_auth(&token)
        .json(&json!({"preset_id": preset, "input": "Hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let conversation: Uuid = resp.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let session: Uuid = resp.headers()["x-session-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let transcript = resp.text().await.unwrap();
    insta::assert_snapshot!("run_sse_transcript", redact(&transcript));

    // The session is committed once the stream has ended.
    let view = alice.get_session(session).await.unwrap();
    assert_eq!(view.status, "committed");
    assert_eq!(view.final_message.as_deref(), Some("Hello there!"));

    let mut body =
        serde_json::to_value(alice.get_conversation(conversation).await.unwrap()).unwrap();
    redact_json(&mut body);
    insta::assert_json_snapshot!("conversation_get", body);

    let mut turns = serde_json::to_value(
        alice
            .conversation_turns(conversation, None, None)
            .await
            .unwrap(),
    )
    .unwrap();
    redact_json(&mut turns);
    insta::assert_json_snapshot!("conversation_turns", turns);
    s.stop().await;
}

#[tokio::test]
async fn busy_conversation_is_409_and_interrupt_works() {
    let (s, _provider, preset) = server(vec![
        ScriptedResponse::builder().text("partial").hang().build(),
    ])
    .await;
    let (_, alice, token) = s.user_token("alice").await;
    let started = alice
        .run(&run_req(None, Some(preset), "long task"))
        .await
        .unwrap();

    let resp = s
        .http
        .post(s.url("/api/conversations/run"))
        .bearer_auth(&token)
        .json(
            &json!({"conversation_id": started.conversation_id, "input": "again", "stream": false}),
        )
        .send()
        .await
        .unwrap();
    let body = assert_error(resp, 409, "conversation_busy").await;
    assert_eq!(
        body["error"]["active_session_id"],
        json!(started.session_id)
    );

    let detail = alice
        .get_conversation(started.conversation_id)
        .await
        .unwrap();
    assert_eq!(
        detail.active_session.as_ref().map(|a| a.id),
        Some(started.session_id)
    );

    let status = alice.session_status(started.session_id).await.unwrap();
    assert!(status.running);

    let interrupted = alice
        .interrupt_conversation(started.conversation_id)
        .await
        .unwrap();
    assert_eq!(interrupted.session_id, started.session_id);
    let events = finish(&alice, started.session_id).await;
    assert_eq!(last_status(&events), SessionStatus::Interrupted);
    assert_eq!(
        alice.get_session(started.session_id).await.unwrap().status,
        "interrupted"
    );

    let e = alice
        .interrupt_conversation(started.conversation_id)
        .await
        .unwrap_err();
    assert_eq!(api(&e), (409, "not_running".into()));
    let e = alice
        .interrupt_session(started.session_id)
        .await
        .unwrap_err();
    assert_eq!(api(&e), (409, "not_running".into()));
    s.stop().await;
}

#[tokio::test]
async fn session_interrupt_over_http() {
    let (s, _provider, preset) = server(vec![
        ScriptedResponse::builder().text("partial").hang().build(),
    ])
    .await;
    let (_, alice, _) = s.user_token("alice").await;
    let started = alice.run(&run_req(None, Some(preset), "go")).await.unwrap();
    alice.interrupt_session(started.session_id).await.unwrap();
    let events = finish(&alice, started.session_id).await;
    assert_eq!(last_status(&events), SessionStatus::Interrupted);
    s.stop().await;
}

#[tokio::test]
async fn steer_over_http_reaches_the_model() {
    let (s, provider, preset) = server_with(
        ScriptedProvider::new([
            ScriptedResponse::text("first answer"),
            ScriptedResponse::text("second answer"),
        ])
        .with_event_delay(Duration::from_millis(100)),
    )
    .await;
    let (_, alice, _) = s.user_token("alice").await;
    let started = alice
        .run(&run_req(None, Some(preset), "tell me"))
        .await
        .unwrap();
    let steered = alice
        .steer_session(started.session_id, "also mention cats")
        .await
        .unwrap();
    assert_eq!(steered.session_id, started.session_id);
    let events = finish(&alice, started.session_id).await;
    assert_eq!(last_status(&events), SessionStatus::Committed);
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1]
            .messages
            .iter()
            .any(|m| m.text() == "also mention cats")
    );

    // Empty steering text is 422; steering a finished run is 409.
    let e = alice
        .steer_session(started.session_id, " ")
        .await
        .unwrap_err();
    assert_eq!(api(&e), (422, "invalid".into()));
    let e = alice
        .steer_conversation(started.conversation_id, "late")
        .await
        .unwrap_err();
    assert_eq!(api(&e), (409, "not_running".into()));
    s.stop().await;
}

#[tokio::test]
async fn approval_round_trip_over_http() {
    let (s, _provider, preset) = server(vec![
        ScriptedResponse::builder()
            .tool_call("c1", "deploy", r#"{"target":"prod"}"#)
            .build(),
        ScriptedResponse::text("Deployed."),
        ScriptedResponse::builder()
            .tool_call("c2", "deploy", r#"{"target":"staging"}"#)
            .build(),
        ScriptedResponse::text("Not deploying."),
    ])
    .await;
    let (_, alice, _) = s.user_token("alice").await;
    let first = alice
        .run(&run_req(None, Some(preset), "ship it"))
        .await
        .unwrap();
    let events = finish(&alice, first.session_id).await;
    assert_eq!(last_status(&events), SessionStatus::AwaitingToolResults);
    let waiting = alice.get_session(first.session_id).await.unwrap();
    assert_eq!(waiting.status, "awaiting_tool_results");
    assert_eq!(waiting.deferred_tool_calls.len(), 1);

    // A new message while calls are pending is refused; so is a decision
    // for an unknown call.
    let e = alice
        .run(&run_req(Some(first.conversation_id), None, "hello?"))
        .await
        .unwrap_err();
    assert_eq!(api(&e), (409, "invalid_resume".into()));
    let e = alice
        .resume_session(first.session_id, vec![ToolDecision::approve("nope")])
        .await
        .unwrap_err();
    assert_eq!(api(&e), (409, "invalid_resume".into()));

    let resumed = alice
        .resume_session(first.session_id, vec![ToolDecision::approve("c1")])
        .await
        .unwrap();
    assert_eq!(resumed.conversation_id, first.conversation_id);
    let events = finish(&alice, resumed.session_id).await;
    assert_eq!(last_status(&events), SessionStatus::Committed);
    assert!(events.iter().any(|e| matches!(&e.event,
        AgentEvent::ToolCallResult { content, .. } if content == "deployed to prod")));
    let view = alice.get_session(resumed.session_id).await.unwrap();
    assert_eq!(view.parent_session_id, Some(first.session_id));
    assert_eq!(view.final_message.as_deref(), Some("Deployed."));

    // Deny, streamed this time.
    let second = alice
        .run(&run_req(Some(first.conversation_id), None, "now staging"))
        .await
        .unwrap();
    finish(&alice, second.session_id).await;
    let resp = s
        .http
        .post(s.url(&format!("/api/sessions/{}/resume", second.session_id)))
        .bearer_auth(alice_token(&s, "alice").await)
        .json(&json!({"decisions": [{"decision": "deny", "call_id": "c2", "reason": "frozen"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let events = read_sse(resp, None).await;
    assert_eq!(events.last().unwrap().event, "RUN_FINISHED");
    assert_eq!(events.last().unwrap().data["result"]["status"], "committed");
    assert!(events.iter().any(|e| e.event == "TOOL_CALL_RESULT"
        && e.data["content"].as_str().unwrap().contains("frozen")
        && e.data["status"] == "denied"));
    s.stop().await;
}

async fn alice_token(s: &TestServer, name: &str) -> String {
    s.anon
        .login(name, &format!("{name}-password"))
        .await
        .unwrap()
        .token
}

#[tokio::test]
async fn fork_from_a_committed_session() {
    let (s, provider, preset) = server(vec![
        ScriptedResponse::text("A1"),
        ScriptedResponse::text("F1"),
        ScriptedResponse::text("F2"),
        ScriptedResponse::text("F3"),
    ])
    .await;
    let (_, alice, _) = s.user_token("alice").await;
    let conv = alice
        .create_conversation(&CreateConversationRequest {
            title: Some("Plans".into()),
            default_preset: Some(preset),
            metadata: Some(json!({"source": "web"}).as_object().unwrap().clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let first = alice
        .run(&run_req(Some(conv.id), None, "plan a trip"))
        .await
        .unwrap();
    finish(&alice, first.session_id).await;

    // Without input: the fork point is recorded, the first run uses it.
    let fork = alice
        .fork_conversation(
            conv.id,
            &ForkConversationRequest {
                session_id: first.session_id,
                input: None,
                preset_id: None,
                stream: false,
            },
        )
        .await
        .unwrap();
    assert!(fork.session_id.is_none());
    let forked = fork.conversation;
    assert_ne!(forked.id, conv.id);
    assert_eq!(forked.title.as_deref(), Some("Plans (fork)"));
    assert_eq!(forked.default_preset, Some(preset));
    assert_eq!(forked.metadata["source"], "web");
    assert_eq!(
        forked.forked_from,
        Some(netherbrain_http::dto::ForkOriginView {
            conversation_id: conv.id,
            session_id: first.session_id,
        })
    );
    assert!(forked.metadata.get("forked_from").is_none());
    let run = alice
        .run(&run_req(Some(forked.id), None, "continue"))
        .await
        .unwrap();
    finish(&alice, run.session_id).await;
    let session = alice.get_session(run.session_id).await.unwrap();
    assert_eq!(session.parent_session_id, Some(first.session_id));
    let seen: Vec<String> = provider.requests()[1]
        .messages
        .iter()
        .map(|m| m.text())
        .collect();
    assert_eq!(seen, ["plan a trip", "A1", "continue"]);

    // With input: the first run starts at once.
    let fork = alice
        .fork_conversation(
            conv.id,
            &ForkConversationRequest {
                session_id: first.session_id,
                input: Some(RunInput::Text("other branch".into())),
                preset_id: None,
                stream: false,
            },
        )
        .await
        .unwrap();
    let sid = fork.session_id.expect("a run");
    finish(&alice, sid).await;
    assert_eq!(
        alice.get_session(sid).await.unwrap().parent_session_id,
        Some(first.session_id)
    );
    // The source conversation is untouched.
    assert_eq!(
        alice
            .conversation_turns(conv.id, None, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Streamed: the fork's run as SSE, its ids in the headers.
    let resp = s
        .http
        .post(s.url(&format!("/api/conversations/{}/fork", conv.id)))
        .bearer_auth(alice_token(&s, "alice").await)
        .json(&json!({"session_id": first.session_id, "input": "third branch"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let new_conv: Uuid = resp.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(new_conv, conv.id);
    let events = read_sse(resp, None).await;
    assert_eq!(events.last().unwrap().data["result"]["status"], "committed");
    assert_eq!(events[1].event, "TEXT_MESSAGE_START");

    // A session of another conversation cannot be forked from here.
    let e = alice
        .fork_conversation(
            conv.id,
            &ForkConversationRequest {
                session_id: sid,
                input: None,
                preset_id: None,
                stream: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api(&e).0, 404);
    s.stop().await;
}

fn meta(v: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
    Some(v.as_object().unwrap().clone())
}

#[tokio::test]
async fn metadata_merge_paging_filter_and_search() {
    let (s, _provider, _preset) = server(vec![]).await;
    let (_, alice, _) = s.user_token("alice").await;
    let (_, bob, _) = s.user_token("bob").await;
    let mut ids = Vec::new();
    for (title, source) in [
        ("Rust traits", "web"),
        ("Cooking pasta", "web"),
        ("Garden", "tg"),
        ("Taxes", "web"),
    ] {
        let c = alice
            .create_conversation(&CreateConversationRequest {
                title: Some(title.into()),
                metadata: meta(json!({"source": source, "n": 1})),
                ..Default::default()
            })
            .await
            .unwrap();
        ids.push(c.id);
    }
    let updated = alice
        .update_conversation(
            ids[0],
            &UpdateConversationRequest {
                metadata: meta(json!({"n": null, "tag": "x"})),
                summary: Some(Some("About traits".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        updated.metadata,
        *meta(json!({"source": "web", "tag": "x"})).as_ref().unwrap()
    );
    assert_eq!(updated.summary.as_deref(), Some("About traits"));
    assert_eq!(updated.title.as_deref(), Some("Rust traits"));
    let archived = alice
        .update_conversation(
            ids[3],
            &UpdateConversationRequest {
                status: Some("archived".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(archived.status, "archived");

    // Paging: two pages of two, no overlap.
    let page1 = alice
        .list_conversations(&ConversationListQuery {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page1.items.len(), 2);
    let cursor = page1.next_cursor.clone().expect("more");
    let page2 = alice
        .list_conversations(&ConversationListQuery {
            limit: Some(2),
            cursor: Some(cursor),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page2.items.len(), 2);
    assert!(page2.next_cursor.is_none());
    let mut all: Vec<Uuid> = page1
        .items
        .iter()
        .chain(&page2.items)
        .map(|c| c.id)
        .collect();
    all.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected);

    // Filters.
    let tg = alice
        .list_conversations(&ConversationListQuery {
            metadata: Some(r#"{"source":"tg"}"#.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tg.items.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[2]]);
    let active = alice
        .list_conversations(&ConversationListQuery {
            status: Some("active".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active.items.len(), 3);
    assert!(
        bob.list_conversations(&ConversationListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Search is per user.
    let found = alice.search_conversations("pasta", None).await.unwrap();
    assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[1]]);
    assert!(
        bob.search_conversations("pasta", None)
            .await
            .unwrap()
            .is_empty()
    );

    // Bad filters are 4xx JSON.
    let token = alice_token(&s, "alice").await;
    for (query, status) in [
        ("metadata=not-json", 400),
        ("metadata=%5B1%5D", 400),
        ("status=bogus", 400),
        ("cursor=garbage", 422),
        ("limit=0", 422),
        ("limit=x", 400),
    ] {
        let resp = s
            .http
            .get(s.url(&format!("/api/conversations/list?{query}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{query}");
    }
    let e = alice.search_conversations("", None).await.unwrap_err();
    assert_eq!(api(&e).0, 422);
    s.stop().await;
}

#[tokio::test]
async fn other_users_get_404_everywhere() {
    let (s, _provider, preset) = server(vec![
        ScriptedResponse::builder()
            .tool_call("c1", "deploy", r#"{"target":"prod"}"#)
            .build(),
    ])
    .await;
    let (_, alice, _) = s.user_token("alice").await;
    let (_, _bob, bob_token) = s.user_token("bob").await;
    let run = alice
        .run(&run_req(None, Some(preset), "ship"))
        .await
        .unwrap();
    finish(&alice, run.session_id).await;
    let (c, sid) = (run.conversation_id, run.session_id);

    let gets = [
        format!("/api/conversations/{c}"),
        format!("/api/conversations/{c}/events"),
        format!("/api/conversations/{c}/turns"),
        format!("/api/sessions/{sid}"),
        format!("/api/sessions/{sid}/status"),
        format!("/api/sessions/{sid}/events"),
    ];
    for path in gets {
        let resp = s
            .http
            .get(s.url(&path))
            .bearer_auth(&bob_token)
            .send()
            .await
            .unwrap();
        assert_error(resp, 404, "not_found").await;
    }
    let posts = [
        (
            format!("/api/conversations/{c}/update"),
            json!({"title": "mine"}),
        ),
        (
            format!("/api/conversations/{c}/fork"),
            json!({"session_id": sid}),
        ),
        (format!("/api/conversations/{c}/interrupt"), json!({})),
        (
            format!("/api/conversations/{c}/steer"),
            json!({"text": "hi"}),
        ),
        (format!("/api/conversations/{c}/summarize"), json!({})),
        (
            "/api/conversations/run".to_owned(),
            json!({"conversation_id": c, "input": "hi"}),
        ),
        (format!("/api/sessions/{sid}/interrupt"), json!({})),
        (format!("/api/sessions/{sid}/steer"), json!({"text": "hi"})),
        (
            format!("/api/sessions/{sid}/resume"),
            json!({"decisions": [{"decision": "approve", "call_id": "c1"}]}),
        ),
    ];
    for (path, body) in posts {
        let resp = s
            .http
            .post(s.url(&path))
            .bearer_auth(&bob_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(resp, 404, "not_found").await;
    }
    // Admins see everyone's.
    assert_eq!(
        s.admin.get_conversation(c).await.unwrap().conversation.id,
        c
    );
    assert_eq!(s.admin.get_session(sid).await.unwrap().id, sid);
    // Nothing changed for alice.
    assert_eq!(
        alice.get_conversation(c).await.unwrap().conversation.title,
        None
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_input_is_4xx_json() {
    let (s, _provider, preset) = server(vec![ScriptedResponse::text("ok")]).await;
    let (_, alice, token) = s.user_token("alice").await;
    let run = alice.run(&run_req(None, Some(preset), "hi")).await.unwrap();
    finish(&alice, run.session_id).await;
    let (c, sid) = (run.conversation_id, run.session_id);
    let unknown = Uuid::now_v7();

    let gets = [
        (
            "/api/conversations/not-a-uuid".to_owned(),
            400,
            "bad_request",
        ),
        ("/api/sessions/123/events".to_owned(), 400, "bad_request"),
        (format!("/api/conversations/{unknown}"), 404, "not_found"),
        (format!("/api/sessions/{unknown}"), 404, "not_found"),
        (format!("/api/sessions/{unknown}/events"), 404, "not_found"),
        (
            format!("/api/conversations/{c}/events?after=abc"),
            400,
            "bad_request",
        ),
        (
            format!("/api/conversations/{c}/events?session_id={unknown}"),
            404,
            "not_found",
        ),
        (
            format!("/api/sessions/{sid}/events?after=-1"),
            400,
            "bad_request",
        ),
        (
            format!("/api/conversations/{c}/turns?cursor=garbage"),
            400,
            "bad_request",
        ),
        (
            format!("/api/conversations/{c}/turns?cursor={unknown}"),
            404,
            "not_found",
        ),
        (
            "/api/conversations/search?q=a%00b".to_owned(),
            400,
            "bad_request",
        ),
        (
            format!("/api/conversations/{c}/turns?limit=0"),
            400,
            "bad_request",
        ),
        ("/api/conversations/search".to_owned(), 400, "bad_request"),
    ];
    for (path, status, code) in gets {
        let resp = s
            .http
            .get(s.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_error(resp, status, code).await;
    }
    let resp = s
        .http
        .get(s.url(&format!("/api/sessions/{sid}/events")))
        .bearer_auth(&token)
        .header("last-event-id", "not-a-number")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "bad_request").await;

    let posts = [
        (
            "/api/conversations/run".to_owned(),
            json!({"preset_id": preset, "input": ""}),
            422,
            "invalid",
        ),
        (
            "/api/conversations/run".to_owned(),
            json!({"preset_id": preset, "input": []}),
            422,
            "invalid",
        ),
        (
            "/api/conversations/run".to_owned(),
            json!({"input": "no preset"}),
            409,
            "conflict",
        ),
        // The body is checked against its schema: an array is no object,
        // not even nested; a NUL is refused in what is kept.
        (
            "/api/conversations/run".to_owned(),
            json!([preset, "hi"]),
            422,
            "invalid",
        ),
        (
            "/api/conversations/run".to_owned(),
            json!({"preset_id": preset, "input": "a\u{0}b"}),
            422,
            "invalid",
        ),
        (
            "/api/conversations/run".to_owned(),
            json!({"preset_id": preset, "input": [{"role": "user", "content": [{"type": "text", "text": "  "}]}]}),
            422,
            "invalid",
        ),
        (
            format!("/api/sessions/{sid}/resume"),
            json!({"decisions": [["approve", "x"]]}),
            422,
            "invalid",
        ),
        (
            "/api/conversations/run".to_owned(),
            json!({"preset_id": unknown, "input": "x"}),
            404,
            "not_found",
        ),
        (
            "/api/conversations/run".to_owned(),
            json!({"conversation_id": unknown, "input": "x"}),
            404,
            "not_found",
        ),
        (
            "/api/conversations/run".to_owned(),
            json!({"conversation_id": "nope", "input": "x"}),
            422,
            "invalid",
        ),
        (
            "/api/conversations/run".to_owned(),
            json!({"preset_id": preset}),
            422,
            "invalid",
        ),
        (
            format!("/api/conversations/{c}/update"),
            json!({"status": "gone"}),
            422,
            "invalid",
        ),
        (
            format!("/api/conversations/{c}/update"),
            json!({"default_preset": unknown}),
            404,
            "not_found",
        ),
        (
            format!("/api/conversations/{c}/update"),
            json!({"metadata": [1]}),
            422,
            "invalid",
        ),
        (
            format!("/api/conversations/{c}/fork"),
            json!({"session_id": unknown}),
            404,
            "not_found",
        ),
        (
            format!("/api/conversations/{c}/steer"),
            json!({}),
            422,
            "invalid",
        ),
        (
            format!("/api/sessions/{sid}/resume"),
            json!({"decisions": []}),
            422,
            "invalid",
        ),
        (
            format!("/api/sessions/{sid}/resume"),
            json!({"decisions": [{"decision": "approve", "call_id": "x"}]}),
            409,
            "invalid_resume",
        ),
        (
            format!("/api/sessions/{sid}/resume"),
            json!({"decisions": [{"decision": "maybe"}]}),
            422,
            "invalid",
        ),
        (
            "/api/conversations/create".to_owned(),
            json!({"workspace_id": unknown}),
            404,
            "not_found",
        ),
    ];
    for (path, body, status, code) in posts {
        let resp = s
            .http
            .post(s.url(&path))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(resp, status, code).await;
    }
    // A preset the catalog cannot build is 422 and leaves no conversation.
    let broken = s
        .admin
        .create_preset(&netherbrain_http::dto::CreatePresetRequest {
            name: "broken".into(),
            description: None,
            config: netherbrain_core::PresetConfig::new("missing", "x"),
        })
        .await
        .unwrap();
    let before = alice
        .list_conversations(&ConversationListQuery::default())
        .await
        .unwrap()
        .items
        .len();
    let e = alice
        .run(&run_req(None, Some(broken.id), "hi"))
        .await
        .unwrap_err();
    assert_eq!(api(&e), (422, "invalid".into()));
    let e = alice
        .run(&run_req(Some(c), Some(broken.id), "hi"))
        .await
        .unwrap_err();
    assert_eq!(api(&e), (422, "invalid".into()));
    let after = alice
        .list_conversations(&ConversationListQuery::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(before, after);

    let resp = s
        .http
        .post(s.url("/api/conversations/run"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "bad_request").await;
    s.stop().await;
}

#[tokio::test]
async fn discovery_and_summarize() {
    let (s, _provider, preset) = server(vec![
        ScriptedResponse::text("Hi! How can I help?"),
        ScriptedResponse::text(r#"{"title": "Greeting", "summary": "The user said hello."}"#),
    ])
    .await;
    let (_, alice, _) = s.user_token("alice").await;
    assert_eq!(alice.list_toolsets().await.unwrap(), ["ops"]);
    let models = alice.list_models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].name, "local");
    assert_eq!(models[0].models, ["tiny"]);

    let empty = alice
        .create_conversation(&CreateConversationRequest::default())
        .await
        .unwrap();
    let e = alice.summarize_conversation(empty.id).await.unwrap_err();
    assert_eq!(api(&e), (409, "conflict".into()));

    let run = alice
        .run(&run_req(None, Some(preset), "hello"))
        .await
        .unwrap();
    finish(&alice, run.session_id).await;
    let named = alice
        .summarize_conversation(run.conversation_id)
        .await
        .unwrap();
    assert_eq!(named.title.as_deref(), Some("Greeting"));
    assert_eq!(named.summary.as_deref(), Some("The user said hello."));

    // Tokens of finished runs are counted by model.
    let mut rendered = String::new();
    for _ in 0..50 {
        rendered = s.state.metrics().render();
        if rendered.contains("netherbrain_tokens_total{model=\"tiny\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        rendered.contains("netherbrain_tokens_total{model=\"tiny\""),
        "{rendered}"
    );
    assert!(
        rendered.contains("netherbrain_active_sessions 0"),
        "{rendered}"
    );
    s.stop().await;
}

#[allow(dead_code)]
fn _unused(_: Sse, _: Client) {}

#[tokio::test]
async fn draining_refuses_runs_with_503() {
    let (s, _provider, preset) = server(vec![ScriptedResponse::text("never")]).await;
    let (_, alice, _) = s.user_token("alice").await;
    s.state.runtime().drain(Duration::from_millis(10)).await;
    let e = alice
        .run(&run_req(None, Some(preset), "hi"))
        .await
        .unwrap_err();
    assert_eq!(api(&e), (503, "unavailable".into()));
    // No empty conversation was left behind.
    let list = alice
        .list_conversations(&ConversationListQuery::default())
        .await
        .unwrap();
    assert!(list.items.is_empty());
    s.stop().await;
}
