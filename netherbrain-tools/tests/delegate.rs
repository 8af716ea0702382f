//! The `delegate` tool over a real conversation service (memory store,
//! scripted providers): foreground answers, background results reaching
//! the parent conversation, the depth and fan-out limits, unknown presets,
//! and interrupting the parent.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::auth::Principal;
use netherbrain_core::conversation::{ConversationService, SendMessage};
use netherbrain_core::provider::{Provider, ProviderStream};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{
    DelegatedFrom, MemoryStore, NewConversation, NewPreset, NewSession, NewUser, UserRole,
};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::tool::{ToolContext, ToolEvents};
use netherbrain_core::{
    AgentEvent, ConversationId, EventEnvelope, Message, PresetConfig, SessionId, SessionStatus,
};
use netherbrain_tools::delegate::Delegate;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Generous: the machine may be loaded.
const PATIENCE: Duration = Duration::from_secs(60);

/// Permits of an open gate.
const OPEN: usize = 1_000;

/// A scripted provider whose every request first takes a permit of `gate`
/// (so a test decides when a subagent may answer).
#[derive(Debug)]
struct Gated {
    inner: ScriptedProvider,
    gate: Arc<Semaphore>,
}

impl Gated {
    fn push(&self, response: ScriptedResponse) {
        self.inner.push(response);
    }
    fn requests(&self) -> Vec<netherbrain_core::provider::ModelRequest> {
        self.inner.requests()
    }
}

impl Provider for Gated {
    fn name(&self) -> &str {
        "gated"
    }
    fn stream(&self, request: netherbrain_core::provider::ModelRequest) -> ProviderStream {
        let gate = self.gate.clone();
        let inner = self.inner.stream(request);
        futures::stream::once(async move {
            if let Ok(permit) = gate.acquire_owned().await {
                permit.forget();
            }
            inner
        })
        .flatten()
        .boxed()
    }
}

struct Fixture {
    service: ConversationService,
    store: Arc<MemoryStore>,
    who: Principal,
    lead: Arc<ScriptedProvider>,
    helper: Arc<Gated>,
    /// Open by default ([`OPEN`] permits).
    helper_gate: Arc<Semaphore>,
    delegate: Delegate,
}

/// Presets `lead` (profile `lead`, tool set `delegate`, the given tool
/// options) and `helper` (profile `helper`), each on its own scripted
/// provider.
async fn fixture(lead_options: Value) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    let lead = Arc::new(ScriptedProvider::new([]));
    let helper_gate = Arc::new(Semaphore::new(OPEN));
    let helper = Arc::new(Gated {
        inner: ScriptedProvider::new([]),
        gate: helper_gate.clone(),
    });
    let delegate = Delegate::new();
    let catalog = AgentCatalog::new()
        .with_provider("lead", lead.clone(), vec!["m".into()])
        .with_provider("helper", helper.clone(), vec!["m".into()])
        .with_toolset(Arc::new(delegate.clone()));
    let mut lead_config = PresetConfig::new("lead", "m").with_toolsets(vec!["delegate".into()]);
    if !lead_options.is_null() {
        lead_config = lead_config.with_tool_options("delegate", lead_options);
    }
    store
        .create_preset(NewPreset::new("lead", lead_config))
        .await
        .unwrap();
    store
        .create_preset(NewPreset::new("helper", PresetConfig::new("helper", "m")))
        .await
        .unwrap();
    let service = ConversationService::new(store.clone(), Arc::new(catalog));
    delegate.bind(&service);
    Fixture {
        service,
        store,
        who: Principal::of(&ada),
        lead,
        helper,
        helper_gate,
        delegate,
    }
}

fn delegate_call(id: &str, args: Value) -> ScriptedResponse {
    ScriptedResponse::builder()
        .tool_call(id, "delegate", &args.to_string())
        .build()
}

impl Fixture {
    async fn lead_id(&self) -> netherbrain_core::PresetId {
        self.store.get_preset_by_name("lead").await.unwrap().id
    }

    /// Runs `lead` in a new conversation to its end; its events.
    async fn run_lead(&self, input: &str) -> (ConversationId, SessionId, Vec<EventEnvelope>) {
        let sent = self
            .service
            .send(
                &self.who,
                SendMessage::new_conversation(self.lead_id().await, vec![Message::user(input)]),
            )
            .await
            .unwrap();
        let run = sent.handle().clone();
        let events = tokio::time::timeout(
            PATIENCE,
            self.service
                .events(&self.who, run.session_id, 0)
                .await
                .unwrap()
                .collect::<Vec<_>>(),
        )
        .await
        .expect("the run ends");
        (run.conversation_id, run.session_id, events)
    }
}

fn custom_values(events: &[EventEnvelope], name: &str) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            AgentEvent::Custom { name: n, value } if n == name => Some(value.clone()),
            _ => None,
        })
        .collect()
}

fn tool_results(events: &[EventEnvelope]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            AgentEvent::ToolCallResult {
                content, status, ..
            } => Some((format!("{status:?}"), content.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_foreground_answer_is_the_result_and_the_child_is_linked() {
    let f = fixture(Value::Null).await;
    f.lead.push(delegate_call(
        "c1",
        json!({"preset": "helper", "task": "What is 6 x 7?"}),
    ));
    f.lead.push(ScriptedResponse::text("It is 42."));
    f.helper.push(ScriptedResponse::text("42"));
    let (parent, session, events) = f.run_lead("ask the helper").await;

    assert_eq!(tool_results(&events), [("Success".into(), "42".into())]);
    let started = custom_values(&events, "subagent_started");
    let completed = custom_values(&events, "subagent_completed");
    assert_eq!(started.len(), 1, "{events:#?}");
    assert_eq!(started[0]["preset"], "helper");
    assert_eq!(started[0]["background"], false);
    assert_eq!(completed[0]["status"], "committed");
    assert_eq!(completed[0]["summary"], "42");
    // started before completed, both before the tool result
    let pos = |pred: &dyn Fn(&AgentEvent) -> bool| events.iter().position(|e| pred(&e.event));
    let s = pos(&|e| matches!(e, AgentEvent::Custom { name, .. } if name == "subagent_started"));
    let c = pos(&|e| matches!(e, AgentEvent::Custom { name, .. } if name == "subagent_completed"));
    let r = pos(&|e| matches!(e, AgentEvent::ToolCallResult { .. }));
    assert!(s < c && c < r, "{events:#?}");

    let child_id: ConversationId =
        serde_json::from_value(started[0]["child_conversation_id"].clone()).unwrap();
    let child = f.service.conversation(&f.who, child_id).await.unwrap();
    assert_eq!(child.owner, f.who.user_id());
    assert_eq!(
        child.delegated_from,
        Some(DelegatedFrom::new(parent, session))
    );
    let child_session = f.store.latest_session(child_id).await.unwrap().unwrap();
    assert_eq!(child_session.input[0].text(), "What is 6 x 7?");
    // the parent model read the answer
    let last = format!("{:?}", f.lead.requests().last().unwrap().messages);
    assert!(last.contains("42"), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_background_result_continues_the_parent_conversation() {
    let f = fixture(Value::Null).await;
    f.lead.push(delegate_call(
        "c1",
        json!({"preset": "helper", "task": "Dig", "background": true}),
    ));
    f.lead.push(ScriptedResponse::text("Started it."));
    f.lead
        .push(ScriptedResponse::text("The helper found gold."));
    f.helper.push(ScriptedResponse::text("gold"));
    // the child answers only once the parent's first run is over
    f.helper_gate.forget_permits(OPEN);
    let (parent, first_session, events) = f.run_lead("dig in the background").await;
    let results = tool_results(&events);
    assert_eq!(results.len(), 1);
    let returned: Value = serde_json::from_str(&results[0].1).unwrap();
    assert_eq!(returned["status"], "started");
    let started = custom_values(&events, "subagent_started");
    assert_eq!(started[0]["background"], true);
    assert!(custom_values(&events, "subagent_completed").is_empty());

    // The parent is idle now; the child's answer starts a new parent run.
    f.helper_gate.add_permits(1);
    let second = tokio::time::timeout(PATIENCE, async {
        loop {
            let sessions = f.store.list_sessions(parent).await.unwrap();
            if sessions.len() == 2 && !sessions[1].status.is_active() {
                return sessions[1].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the parent continues");
    assert_eq!(second.status, SessionStatus::Committed);
    assert_eq!(second.parent_session_id, Some(first_session));
    let input = second.input[0].text();
    assert!(input.contains("[subagent result]"), "{input}");
    assert!(input.contains("gold"), "{input}");
    assert_eq!(
        second.final_message.as_deref(),
        Some("The helper found gold.")
    );
    let events: Vec<_> = f
        .service
        .events(&f.who, second.id, 0)
        .await
        .unwrap()
        .collect()
        .await;
    assert!(matches!(events[0].event, AgentEvent::RunStarted { .. }));
    let completed = custom_values(&events, "subagent_completed");
    assert_eq!(completed.len(), 1, "{events:#?}");
    assert_eq!(
        completed[0]["child_conversation_id"],
        started[0]["child_conversation_id"]
    );
    assert!(
        matches!(&events[1].event, AgentEvent::Custom { name, .. } if name == "subagent_completed")
    );
    // delivered: nothing left in the parent's mailbox, none in the child's
    assert!(f.store.take_mailbox(parent).await.unwrap().is_empty());
    let child: ConversationId =
        serde_json::from_value(started[0]["child_conversation_id"].clone()).unwrap();
    assert!(f.store.take_mailbox(child).await.unwrap().is_empty());
    assert_eq!(f.store.list_sessions(child).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_presets_and_empty_tasks_are_error_results() {
    let f = fixture(Value::Null).await;
    f.lead.push(
        ScriptedResponse::builder()
            .tool_call("c1", "delegate", r#"{"preset":"nobody","task":"x"}"#)
            .tool_call("c2", "delegate", r#"{"preset":"helper","task":"   "}"#)
            .build(),
    );
    f.lead.push(ScriptedResponse::text("I will do it myself."));
    let (_, _, events) = f.run_lead("delegate badly").await;
    let results = tool_results(&events);
    assert_eq!(results.len(), 2, "{events:#?}");
    assert_eq!(results[0].0, "Error");
    assert!(
        results[0].1.contains("unknown preset `nobody`"),
        "{}",
        results[0].1
    );
    assert_eq!(results[1].0, "Error");
    assert!(
        results[1].1.contains("must not be empty"),
        "{}",
        results[1].1
    );
    let all = f
        .store
        .list_conversations(netherbrain_core::store::ConversationQuery::for_owner(
            f.who.user_id(),
        ))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1, "no child was created");
    assert!(f.helper.requests().is_empty());
}

/// A tool context for a run of `conversation` (which has a session).
async fn context_in(f: &Fixture, conversation: ConversationId, options: Value) -> ToolContext {
    let session = f
        .store
        .create_session(NewSession::new(conversation, vec![Message::user("hi")]))
        .await
        .unwrap();
    let opts = [("delegate".to_owned(), options)].into();
    ToolContext::new(session.id, conversation).with_options(Arc::new(opts))
}

#[tokio::test(flavor = "multi_thread")]
async fn delegation_deeper_than_the_limit_is_refused() {
    let f = fixture(Value::Null).await;
    let tools = f.delegate.registry().unwrap();
    let args = json!({"preset": "helper", "task": "go deeper"});
    // root -> child -> grandchild, made as the tool would
    let owner = f.who.user_id();
    let root = f
        .store
        .create_conversation(NewConversation::new(owner))
        .await
        .unwrap();
    let root_ctx = context_in(&f, root.id, Value::Null).await;
    let child = f
        .store
        .create_conversation(
            NewConversation::new(owner)
                .with_delegated_from(DelegatedFrom::new(root.id, root_ctx.session_id)),
        )
        .await
        .unwrap();
    let child_ctx = context_in(&f, child.id, Value::Null).await;
    let grandchild = f
        .store
        .create_conversation(
            NewConversation::new(owner)
                .with_delegated_from(DelegatedFrom::new(child.id, child_ctx.session_id)),
        )
        .await
        .unwrap();
    let deep_ctx = context_in(&f, grandchild.id, Value::Null).await;
    // the default limit (2): the grandchild may not delegate
    let err = tools
        .call("delegate", args.clone(), deep_ctx, PATIENCE)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nested at most 2 level"), "{err}");
    // a preset may lower it: the child may not either with max_depth = 1
    let tight = child_ctx.clone().with_options(Arc::new(
        [("delegate".to_owned(), json!({"max_depth": 1}))].into(),
    ));
    let err = tools
        .call("delegate", args.clone(), tight, PATIENCE)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nested at most 1 level"), "{err}");
    // the child may with the default
    f.helper.push(ScriptedResponse::text("done deeper"));
    let out = tools
        .call("delegate", args, child_ctx, PATIENCE)
        .await
        .unwrap();
    assert_eq!(out.content, "done deeper");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_has_at_most_max_children_subagents_going() {
    let f = fixture(Value::Null).await;
    let tools = f.delegate.registry().unwrap();
    let root = f
        .store
        .create_conversation(NewConversation::new(f.who.user_id()))
        .await
        .unwrap();
    let ctx = context_in(&f, root.id, json!({"max_children": 1})).await;
    // the first child hangs until interrupted
    f.helper
        .push(ScriptedResponse::builder().text("thinking").hang().build());
    let bg = json!({"preset": "helper", "task": "slow", "background": true});
    let first = tools
        .call("delegate", bg.clone(), ctx.clone(), PATIENCE)
        .await
        .unwrap();
    let first: Value = serde_json::from_str(&first.content).unwrap();
    let err = tools
        .call("delegate", bg, ctx.clone(), PATIENCE)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already has 1 subagent"), "{err}");
    // once the first child is over, there is room again; it is
    // interrupted once its model call is under way, so its scripted answer
    // is not left for the next child
    let child: SessionId = serde_json::from_value(first["child_session_id"].clone()).unwrap();
    tokio::time::timeout(PATIENCE, async {
        while f.helper.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    f.service.runtime().interrupt(child).unwrap();
    f.service.runtime().wait(child).await.unwrap();
    f.helper.push(ScriptedResponse::text("quick"));
    let fg = json!({"preset": "helper", "task": "quick"});
    let out = tokio::time::timeout(PATIENCE, async {
        loop {
            match tools
                .call("delegate", fg.clone(), ctx.clone(), PATIENCE)
                .await
            {
                Ok(out) => return out,
                // the slot comes back just after the child's end is seen
                Err(e) if e.to_string().contains("already has") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(out.content, "quick");
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupting_the_parent_interrupts_a_foreground_child() {
    let f = fixture(Value::Null).await;
    f.lead.push(delegate_call(
        "c1",
        json!({"preset": "helper", "task": "forever"}),
    ));
    f.helper
        .push(ScriptedResponse::builder().text("working").hang().build());
    let sent = f
        .service
        .send(
            &f.who,
            SendMessage::new_conversation(f.lead_id().await, vec![Message::user("go")]),
        )
        .await
        .unwrap();
    let parent = sent.handle().clone();
    let mut stream = f
        .service
        .events(&f.who, parent.session_id, 0)
        .await
        .unwrap();
    let child: SessionId = tokio::time::timeout(PATIENCE, async {
        while let Some(e) = stream.next().await {
            if let AgentEvent::Custom { name, value } = &e.event
                && name == "subagent_started"
            {
                return serde_json::from_value(value["child_session_id"].clone()).unwrap();
            }
        }
        panic!("no subagent_started");
    })
    .await
    .unwrap();
    f.service.runtime().interrupt(parent.session_id).unwrap();
    let parent_end = tokio::time::timeout(PATIENCE, f.service.runtime().wait(parent.session_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parent_end.status, SessionStatus::Interrupted);
    let child_end = tokio::time::timeout(PATIENCE, f.service.runtime().wait(child))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(child_end.status, SessionStatus::Interrupted);
}

#[tokio::test]
async fn an_unbound_set_answers_with_an_error() {
    let tools = Delegate::new().registry().unwrap();
    let (events, _rx) = ToolEvents::channel(1);
    let err = tools
        .call(
            "delegate",
            json!({"preset": "helper", "task": "x"}),
            ToolContext::default().with_events(events),
            PATIENCE,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not available"), "{err}");
}
