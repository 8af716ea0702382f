//! The conversation service over the memory store with scripted providers:
//! ownership, preset resolution, busy conversations, forks, resumes, turns,
//! summaries, follow feeds and preset import.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use netherbrain_core::agent::{AgentCatalog, ToolDecision};
use netherbrain_core::auth::Principal;
use netherbrain_core::conversation::{
    ConversationService, FollowFrom, ForkRequest, ImportAction, RunTarget, SendMessage, Sent,
    ServiceError, TurnsQuery, parse_preset_documents,
};
use netherbrain_core::runtime::{RuntimeError, StartRun};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{
    ConversationPatch, ForkOrigin, MemoryStore, Metadata, NewConversation, NewPreset, NewUser,
    StoreError, UserRole,
};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::tool::{
    DynTool, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSet,
};
use netherbrain_core::{
    AgentEvent, EventEnvelope, Message, PresetConfig, PresetId, SessionId, SessionStatus,
};

struct Fixture {
    store: Arc<MemoryStore>,
    provider: Arc<ScriptedProvider>,
    service: ConversationService,
    ada: Principal,
    bob: Principal,
    admin: Principal,
    preset: PresetId,
}

async fn user(store: &MemoryStore, name: &str, role: UserRole) -> Principal {
    let user = store.create_user(NewUser::new(name, role)).await.unwrap();
    Principal::of(&user)
}

async fn fixture(responses: Vec<ScriptedResponse>) -> Fixture {
    fixture_with(responses, None).await
}

async fn fixture_with(
    responses: Vec<ScriptedResponse>,
    toolset: Option<Arc<dyn ToolSet>>,
) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let ada = user(&store, "ada", UserRole::User).await;
    let bob = user(&store, "bob", UserRole::User).await;
    let admin = user(&store, "root", UserRole::Admin).await;
    let provider = Arc::new(ScriptedProvider::new(responses));
    let mut catalog =
        AgentCatalog::new().with_provider("local", provider.clone(), vec!["tiny".into()]);
    if let Some(set) = toolset {
        catalog = catalog.with_toolset(set);
    }
    let preset = store
        .create_preset(NewPreset::new(
            "tiny",
            PresetConfig::new("local", "tiny").with_system_prompt("Be brief."),
        ))
        .await
        .unwrap()
        .id;
    let service = ConversationService::new(store.clone(), Arc::new(catalog));
    Fixture {
        store,
        provider,
        service,
        ada,
        bob,
        admin,
        preset,
    }
}

fn user_msg(text: &str) -> Vec<Message> {
    vec![Message::user(text)]
}

async fn finish(f: &Fixture, who: &Principal, session: SessionId) -> Vec<EventEnvelope> {
    f.service
        .events(who, session, 0)
        .await
        .unwrap()
        .collect()
        .await
}

/// Every text the provider was sent in request `n`.
fn request_texts(f: &Fixture, n: usize) -> Vec<String> {
    f.provider.requests()[n]
        .messages
        .iter()
        .map(Message::text)
        .collect()
}

async fn started(f: &Fixture, who: &Principal, message: SendMessage) -> SessionId {
    match f.service.send(who, message).await.unwrap() {
        Sent::Started(h) => h.session_id,
        other => panic!("expected a new run, got {other:?}"),
    }
}

#[tokio::test]
async fn send_starts_a_conversation_and_continues_it() {
    let f = fixture(vec![
        ScriptedResponse::text("first answer"),
        ScriptedResponse::text("second answer"),
    ])
    .await;
    let first = f
        .service
        .send(
            &f.ada,
            SendMessage::new_conversation(f.preset, user_msg("hello")).with_title("Greetings"),
        )
        .await
        .unwrap();
    let run = first.handle().clone();
    finish(&f, &f.ada, run.session_id).await;
    let conversation = f
        .service
        .conversation(&f.ada, run.conversation_id)
        .await
        .unwrap();
    assert_eq!(conversation.owner, f.ada.user_id());
    assert_eq!(conversation.title.as_deref(), Some("Greetings"));
    assert_eq!(conversation.default_preset, Some(f.preset));

    let second = started(
        &f,
        &f.ada,
        SendMessage::to(run.conversation_id, user_msg("more")),
    )
    .await;
    let session = f.service.runtime().wait(second).await.unwrap();
    assert_eq!(session.parent_session_id, Some(run.session_id));
    assert_eq!(session.preset_id, Some(f.preset));
    assert_eq!(
        request_texts(&f, 1),
        ["hello", "first answer", "more"],
        "the second run sees the first"
    );
    assert_eq!(
        f.provider.requests()[1].system.as_deref(),
        Some("Be brief.")
    );
}

#[tokio::test]
async fn refused_sends_change_nothing() {
    let f = fixture(vec![]).await;
    let check = |r: Result<Sent, ServiceError>, want: &str| {
        let e = r.unwrap_err();
        assert!(e.to_string().contains(want), "{e} does not say {want}");
    };
    check(
        f.service
            .send(
                &f.ada,
                SendMessage::new_conversation(f.preset, user_msg("  ")),
            )
            .await,
        "must not be empty",
    );
    let mut no_preset = SendMessage::new_conversation(f.preset, user_msg("hi"));
    no_preset.preset_id = None;
    check(f.service.send(&f.ada, no_preset).await, "needs `preset_id`");
    let broken = f
        .store
        .create_preset(NewPreset::new("broken", PresetConfig::new("missing", "x")))
        .await
        .unwrap();
    check(
        f.service
            .send(
                &f.ada,
                SendMessage::new_conversation(broken.id, user_msg("hi")),
            )
            .await,
        "unknown provider profile",
    );
    let page = f
        .service
        .list(
            &f.ada,
            netherbrain_core::store::ConversationQuery::default(),
        )
        .await
        .unwrap();
    assert!(
        page.items.is_empty(),
        "no empty conversation is left behind"
    );

    // A conversation without any preset to run.
    let bare = f
        .service
        .create(&f.ada, NewConversation::new(f.ada.user_id()))
        .await
        .unwrap();
    let none = f
        .service
        .send(&f.ada, SendMessage::to(bare.id, user_msg("hi")))
        .await;
    assert_eq!(none, Err(ServiceError::Runtime(RuntimeError::NoPreset)));
    assert!(f.store.list_sessions(bare.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn another_users_conversation_does_not_exist_for_them() {
    let f = fixture(vec![
        ScriptedResponse::text("for ada"),
        ScriptedResponse::text("for the admin"),
    ])
    .await;
    let run = f
        .service
        .send(
            &f.ada,
            SendMessage::new_conversation(f.preset, user_msg("secret")),
        )
        .await
        .unwrap()
        .handle()
        .clone();
    finish(&f, &f.ada, run.session_id).await;
    let (conversation, session) = (run.conversation_id, run.session_id);
    let is_not_found = |e: ServiceError| {
        assert!(
            matches!(e, ServiceError::Store(StoreError::NotFound { .. })),
            "expected not found, got {e:?}"
        );
    };
    let bob = &f.bob;
    is_not_found(f.service.conversation(bob, conversation).await.unwrap_err());
    is_not_found(f.service.detail(bob, conversation).await.unwrap_err());
    is_not_found(f.service.session(bob, session).await.unwrap_err());
    is_not_found(
        f.service
            .send(bob, SendMessage::to(conversation, user_msg("hi")))
            .await
            .unwrap_err(),
    );
    is_not_found(
        f.service
            .interrupt(bob, RunTarget::Conversation(conversation))
            .await
            .unwrap_err(),
    );
    is_not_found(
        f.service
            .steer(bob, RunTarget::Session(session), "x")
            .await
            .unwrap_err(),
    );
    is_not_found(f.service.events(bob, session, 0).await.err().unwrap());
    is_not_found(
        f.service
            .fork(bob, conversation, ForkRequest::new(session))
            .await
            .unwrap_err(),
    );
    is_not_found(
        f.service
            .turns(bob, conversation, TurnsQuery::default())
            .await
            .unwrap_err(),
    );
    is_not_found(f.service.summarize(bob, conversation).await.unwrap_err());
    is_not_found(
        f.service
            .follow(bob, conversation, FollowFrom::Live)
            .await
            .err()
            .unwrap(),
    );
    is_not_found(
        f.service
            .update(bob, conversation, ConversationPatch::default())
            .await
            .unwrap_err(),
    );
    is_not_found(
        f.service
            .resume(bob, session, vec![ToolDecision::approve("c")])
            .await
            .unwrap_err(),
    );
    assert_eq!(f.store.list_sessions(conversation).await.unwrap().len(), 1);

    // An admin may act on it.
    let by_admin = started(
        &f,
        &f.admin,
        SendMessage::to(conversation, user_msg("audit")),
    )
    .await;
    assert_eq!(
        f.service.runtime().wait(by_admin).await.unwrap().status,
        SessionStatus::Committed
    );
}

#[tokio::test]
async fn a_busy_conversation_is_steered_or_refused() {
    let f = fixture(vec![
        ScriptedResponse::builder().text("working").hang().build(),
        ScriptedResponse::text("done"),
    ])
    .await;
    let run = f
        .service
        .send(
            &f.ada,
            SendMessage::new_conversation(f.preset, user_msg("go")),
        )
        .await
        .unwrap()
        .handle()
        .clone();
    let busy = f
        .service
        .send(
            &f.ada,
            SendMessage::to(run.conversation_id, user_msg("again")),
        )
        .await;
    assert_eq!(
        busy,
        Err(ServiceError::Runtime(RuntimeError::Busy {
            session_id: run.session_id
        }))
    );
    let steered = f
        .service
        .send(
            &f.ada,
            SendMessage::to(run.conversation_id, user_msg("and cats")).steer_when_busy(),
        )
        .await
        .unwrap();
    assert_eq!(steered, Sent::Steered(run.clone()));
    f.service
        .interrupt(&f.ada, RunTarget::Conversation(run.conversation_id))
        .await
        .unwrap();
    let session = f.service.runtime().wait(run.session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Interrupted);
    assert_eq!(
        f.service
            .interrupt(&f.ada, RunTarget::Conversation(run.conversation_id))
            .await,
        Err(ServiceError::Runtime(RuntimeError::NoActiveSession(
            run.conversation_id
        )))
    );
}

#[tokio::test]
async fn forks_continue_from_the_forked_session() {
    let f = fixture(vec![
        ScriptedResponse::text("one"),
        ScriptedResponse::text("two"),
        ScriptedResponse::text("fork now"),
        ScriptedResponse::text("fork later"),
    ])
    .await;
    let first = f
        .service
        .send(
            &f.ada,
            SendMessage::new_conversation(f.preset, user_msg("a")),
        )
        .await
        .unwrap()
        .handle()
        .clone();
    finish(&f, &f.ada, first.session_id).await;
    let second = started(
        &f,
        &f.ada,
        SendMessage::to(first.conversation_id, user_msg("b")),
    )
    .await;
    f.service.runtime().wait(second).await.unwrap();

    // With input the run starts at once, from the first session only.
    let now = f
        .service
        .fork(
            &f.ada,
            first.conversation_id,
            ForkRequest::new(first.session_id).with_input(user_msg("c")),
        )
        .await
        .unwrap();
    let run = now.run.clone().unwrap();
    f.service.runtime().wait(run.session_id).await.unwrap();
    assert_eq!(request_texts(&f, 2), ["a", "one", "c"]);
    assert_eq!(
        now.conversation.forked_from,
        Some(ForkOrigin::new(first.conversation_id, first.session_id))
    );
    assert_eq!(now.conversation.owner, f.ada.user_id());

    // Without input the fork waits; its first message continues from there.
    let later = f
        .service
        .fork(&f.ada, first.conversation_id, ForkRequest::new(second))
        .await
        .unwrap();
    assert!(later.run.is_none());
    let run = started(
        &f,
        &f.ada,
        SendMessage::to(later.conversation.id, user_msg("d")),
    )
    .await;
    let session = f.service.runtime().wait(run).await.unwrap();
    assert_eq!(session.parent_session_id, Some(second));
    assert_eq!(request_texts(&f, 3), ["a", "one", "b", "two", "d"]);

    // A session of another conversation cannot be forked from here.
    let e = f
        .service
        .fork(&f.ada, first.conversation_id, ForkRequest::new(run))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ServiceError::Store(StoreError::NotFound { .. })),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_fork_origin_of_another_user_is_never_followed() {
    let f = fixture(vec![
        ScriptedResponse::text("the secret is kept"),
        ScriptedResponse::text("hello bob"),
    ])
    .await;
    let adas = f
        .service
        .send(
            &f.ada,
            SendMessage::new_conversation(f.preset, user_msg("my secret: 42")),
        )
        .await
        .unwrap()
        .handle()
        .clone();
    finish(&f, &f.ada, adas.session_id).await;

    // The reserved metadata key is refused on create and on update.
    let mut planted = Metadata::new();
    planted.insert(
        "forked_from".into(),
        serde_json::json!({"conversation_id": adas.conversation_id, "session_id": adas.session_id}),
    );
    let e = f
        .service
        .create(
            &f.bob,
            NewConversation::new(f.bob.user_id()).with_metadata(planted.clone()),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("reserved"), "{e}");
    let bobs = f
        .service
        .create(
            &f.bob,
            NewConversation::new(f.bob.user_id()).with_default_preset(f.preset),
        )
        .await
        .unwrap();
    let mut patch = ConversationPatch::default();
    patch.metadata = Some(planted);
    assert!(f.service.update(&f.bob, bobs.id, patch).await.is_err());

    // `create` ignores a fork origin in its input...
    let ignored = f
        .service
        .create(
            &f.bob,
            NewConversation::new(f.bob.user_id())
                .with_forked_from(ForkOrigin::new(adas.conversation_id, adas.session_id)),
        )
        .await
        .unwrap();
    assert_eq!(ignored.forked_from, None);
    // ...and one planted in the store (old data) is not followed either.
    let planted = f
        .store
        .create_conversation(
            NewConversation::new(f.bob.user_id())
                .with_default_preset(f.preset)
                .with_forked_from(ForkOrigin::new(adas.conversation_id, adas.session_id)),
        )
        .await
        .unwrap();
    let run = started(&f, &f.bob, SendMessage::to(planted.id, user_msg("hi"))).await;
    let session = f.service.runtime().wait(run).await.unwrap();
    assert_eq!(session.parent_session_id, None);
    assert_eq!(request_texts(&f, 1), ["hi"]);
}

#[derive(serde::Deserialize, netherbrain_core::schemars::JsonSchema)]
struct DeleteArgs {
    path: String,
}

#[derive(Debug)]
struct Delete;

#[async_trait::async_trait]
impl Tool for Delete {
    type Args = DeleteArgs;
    fn name(&self) -> &str {
        "delete"
    }
    fn description(&self) -> &str {
        "Deletes a file"
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: DeleteArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        Ok(format!("deleted {}", args.path).into())
    }
}

/// A tool set that counts how often it is listed.
#[derive(Debug, Default)]
struct Files(AtomicUsize);

#[async_trait::async_trait]
impl ToolSet for Files {
    fn name(&self) -> &str {
        "files"
    }
    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let registry = ToolRegistry::new()
            .with(Delete)
            .map_err(ToolError::failed)?;
        Ok(registry.get("delete").into_iter().cloned().collect())
    }
}

#[tokio::test]
async fn resume_answers_pending_tool_calls() {
    let files = Arc::new(Files::default());
    let f = fixture_with(
        vec![
            ScriptedResponse::builder()
                .tool_call("c1", "delete", r#"{"path": "a.txt"}"#)
                .build(),
            ScriptedResponse::text("deleted it"),
        ],
        Some(files.clone()),
    )
    .await;
    let mut config = PresetConfig::new("local", "tiny");
    config.toolsets = vec!["files".into()];
    let preset = f
        .store
        .create_preset(NewPreset::new("cleaner", config))
        .await
        .unwrap();
    let first = f
        .service
        .send(
            &f.ada,
            SendMessage::new_conversation(preset.id, user_msg("clean up")),
        )
        .await
        .unwrap()
        .handle()
        .clone();
    let waiting = f.service.runtime().wait(first.session_id).await.unwrap();
    assert_eq!(waiting.status, SessionStatus::AwaitingToolResults);
    assert_eq!(
        f.service.resume(&f.ada, first.session_id, vec![]).await,
        Err(ServiceError::Invalid(
            "`decisions` must not be empty".into()
        ))
    );
    assert!(matches!(
        f.service
            .resume(
                &f.ada,
                first.session_id,
                vec![ToolDecision::approve("nope")]
            )
            .await,
        Err(ServiceError::Runtime(RuntimeError::InvalidResume(_)))
    ));
    let resumed = f
        .service
        .resume(&f.ada, first.session_id, vec![ToolDecision::approve("c1")])
        .await
        .unwrap();
    let session = f.service.runtime().wait(resumed.session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Committed);
    assert_eq!(session.parent_session_id, Some(first.session_id));
    assert_eq!(session.preset_id, Some(preset.id));
    let events = finish(&f, &f.ada, resumed.session_id).await;
    assert!(events.iter().any(|e| matches!(
        &e.event,
        AgentEvent::ToolCallResult { content, .. } if content == "deleted a.txt"
    )));
    // Both runs used the tool set; it was listed (and its schemas compiled) once.
    assert_eq!(files.0.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn turns_come_a_page_at_a_time() {
    let responses = (0..5).map(|i| ScriptedResponse::text(format!("answer {i}")));
    let f = fixture(responses.collect()).await;
    let first = f
        .service
        .send(
            &f.ada,
            SendMessage::new_conversation(f.preset, user_msg("q0")),
        )
        .await
        .unwrap()
        .handle()
        .clone();
    f.service.runtime().wait(first.session_id).await.unwrap();
    for i in 1..5 {
        let run = started(
            &f,
            &f.ada,
            SendMessage::to(first.conversation_id, user_msg(&format!("q{i}"))),
        )
        .await;
        f.service.runtime().wait(run).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = f
            .service
            .turns(
                &f.ada,
                first.conversation_id,
                TurnsQuery::default().with_limit(2).with_cursor(cursor),
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|t| t.messages[0].text()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["q0", "q1", "q2", "q3", "q4"]);
    for bad in [
        TurnsQuery::default().with_limit(0),
        TurnsQuery::default().with_limit(101),
        TurnsQuery::default().with_cursor(Some("nope".into())),
    ] {
        let e = f.service.turns(&f.ada, first.conversation_id, bad).await;
        assert!(matches!(e, Err(ServiceError::Malformed(_))), "{e:?}");
    }
    // A well-formed cursor naming no session of the conversation is 404.
    let unknown = TurnsQuery::default().with_cursor(Some(SessionId::new().to_string()));
    let e = f
        .service
        .turns(&f.ada, first.conversation_id, unknown)
        .await;
    assert!(matches!(e, Err(ServiceError::NotFound(_))), "{e:?}");
}

#[tokio::test]
async fn summarize_names_the_conversation() {
    let f = fixture(vec![
        ScriptedResponse::text("Paris."),
        ScriptedResponse::text(r#"{"title": "French capital", "summary": "Asked about Paris."}"#),
    ])
    .await;
    let run = f
        .service
        .send(
            &f.ada,
            SendMessage::new_conversation(f.preset, user_msg("capital of France?")),
        )
        .await
        .unwrap()
        .handle()
        .clone();
    f.service.runtime().wait(run.session_id).await.unwrap();
    let named = f
        .service
        .summarize(&f.ada, run.conversation_id)
        .await
        .unwrap();
    assert_eq!(named.title.as_deref(), Some("French capital"));
    assert_eq!(named.summary.as_deref(), Some("Asked about Paris."));
    let transcript = request_texts(&f, 1).join("\n");
    assert!(
        transcript.contains("user: capital of France?"),
        "{transcript}"
    );

    let empty = f
        .service
        .create(
            &f.ada,
            NewConversation::new(f.ada.user_id()).with_default_preset(f.preset),
        )
        .await
        .unwrap();
    assert!(matches!(
        f.service.summarize(&f.ada, empty.id).await,
        Err(ServiceError::Conflict(_))
    ));
}

/// Reads a follow stream until `n` terminal events.
async fn runs(stream: &mut BoxStream<'static, EventEnvelope>, n: usize) -> Vec<EventEnvelope> {
    let mut out = Vec::new();
    let mut ended = 0;
    while ended < n {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the follow stream stalled")
            .expect("the follow stream ended");
        ended += usize::from(event.event.is_terminal());
        out.push(event);
    }
    out
}

fn sessions_of(events: &[EventEnvelope]) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = Vec::new();
    for e in events {
        if ids.last() != Some(&e.session_id) {
            ids.push(e.session_id);
        }
    }
    ids
}

#[tokio::test]
async fn follow_sees_every_run_from_any_surface() {
    let many = ScriptedResponse::builder().text("a ".repeat(200)).build();
    let f = fixture(vec![
        ScriptedResponse::text("first"),
        many,
        ScriptedResponse::text("third"),
    ])
    .await;
    let conversation = f
        .service
        .create(
            &f.ada,
            NewConversation::new(f.ada.user_id()).with_default_preset(f.preset),
        )
        .await
        .unwrap()
        .id;
    let mut live = f
        .service
        .follow(&f.ada, conversation, FollowFrom::Live)
        .await
        .unwrap();
    // A slow follower (reads nothing yet) while two runs happen, one of them
    // started straight through the runtime as another surface might.
    let one = started(&f, &f.ada, SendMessage::to(conversation, user_msg("1"))).await;
    f.service.runtime().wait(one).await.unwrap();
    let agent = f
        .service
        .catalog()
        .agent(&PresetConfig::new("local", "tiny"))
        .await
        .unwrap();
    let two = f
        .service
        .runtime()
        .start(StartRun::new(conversation, Arc::new(agent), user_msg("2")))
        .await
        .unwrap()
        .session_id;
    f.service.runtime().wait(two).await.unwrap();

    let events = runs(&mut live, 2).await;
    assert_eq!(sessions_of(&events), [one, two]);
    for run in [one, two] {
        let seqs: Vec<u64> = events
            .iter()
            .filter(|e| e.session_id == run)
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }
    assert!(matches!(events[0].event, AgentEvent::RunStarted { .. }));

    // Resuming from a cursor replays the rest of that run, then later runs.
    let cursor = events
        .iter()
        .find(|e| e.session_id == two && e.seq == 3)
        .unwrap();
    let mut resumed = f
        .service
        .follow(
            &f.ada,
            conversation,
            FollowFrom::After {
                session_id: two,
                after: cursor.seq,
            },
        )
        .await
        .unwrap();
    let three = started(&f, &f.ada, SendMessage::to(conversation, user_msg("3"))).await;
    let replayed = runs(&mut resumed, 2).await;
    assert_eq!(sessions_of(&replayed), [two, three]);
    assert_eq!(replayed[0].seq, 4);
    let rest_of_two = events
        .iter()
        .filter(|e| e.session_id == two && e.seq > 3)
        .count();
    assert_eq!(
        replayed.iter().filter(|e| e.session_id == two).count(),
        rest_of_two
    );

    // A cursor in another conversation is refused.
    let other = f
        .service
        .create(&f.ada, NewConversation::new(f.ada.user_id()))
        .await
        .unwrap();
    assert!(
        f.service
            .follow(
                &f.ada,
                other.id,
                FollowFrom::After {
                    session_id: two,
                    after: 0
                }
            )
            .await
            .is_err()
    );
}

#[tokio::test]
async fn follow_from_the_start_replays_everything() {
    let f = fixture(vec![
        ScriptedResponse::text("x"),
        ScriptedResponse::text("y"),
    ])
    .await;
    let first = f
        .service
        .send(
            &f.ada,
            SendMessage::new_conversation(f.preset, user_msg("1")),
        )
        .await
        .unwrap()
        .handle()
        .clone();
    f.service.runtime().wait(first.session_id).await.unwrap();
    let second = started(
        &f,
        &f.ada,
        SendMessage::to(first.conversation_id, user_msg("2")),
    )
    .await;
    f.service.runtime().wait(second).await.unwrap();
    let mut all = f
        .service
        .follow(&f.ada, first.conversation_id, FollowFrom::Start)
        .await
        .unwrap();
    let events = runs(&mut all, 2).await;
    assert_eq!(sessions_of(&events), [first.session_id, second]);
}

#[tokio::test]
async fn presets_import_for_admins_only() {
    let f = fixture(vec![]).await;
    let docs = parse_preset_documents(
        "[[presets]]\nname = \"tiny\"\ndescription = \"changed\"\n[presets.config]\nprofile = \"local\"\nmodel = \"tiny\"\n\
         [[presets]]\nname = \"new\"\n[presets.config]\nprofile = \"local\"\nmodel = \"big\"\n",
    )
    .unwrap();
    assert!(matches!(
        f.service.import_presets(&f.ada, docs.clone()).await,
        Err(ServiceError::Auth(_))
    ));
    let imported = f.service.import_presets(&f.admin, docs).await.unwrap();
    let actions: Vec<_> = imported
        .iter()
        .map(|i| (i.action, i.preset.name.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            (ImportAction::Updated, "tiny"),
            (ImportAction::Created, "new")
        ]
    );
    assert_eq!(
        f.store
            .get_preset(f.preset)
            .await
            .unwrap()
            .description
            .as_deref(),
        Some("changed")
    );
}
