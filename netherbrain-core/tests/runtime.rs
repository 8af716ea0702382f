//! The session runtime over the memory store: one run per conversation,
//! replay from any event id, interrupt, steer, drain, approval round trips,
//! forks and crash recovery.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use netherbrain_core::agent::{Agent, ToolDecision};
use netherbrain_core::runtime::{Runtime, RuntimeError, StartRun};
use netherbrain_core::schemars::JsonSchema;
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewConversation, NewSession, NewUser, UserRole};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::tool::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
use netherbrain_core::{
    AgentEvent, ApprovalPolicy, ConversationId, EventEnvelope, Message, SessionStatus,
};
use serde::Deserialize;

struct Fixture {
    store: Arc<MemoryStore>,
    runtime: Runtime,
    conversation: ConversationId,
}

async fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let user = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    let conversation = store
        .create_conversation(NewConversation::new(user.id))
        .await
        .unwrap();
    let runtime = Runtime::new(store.clone());
    Fixture {
        store,
        runtime,
        conversation: conversation.id,
    }
}

fn agent(responses: Vec<ScriptedResponse>) -> Arc<Agent> {
    Arc::new(Agent::builder(Arc::new(ScriptedProvider::new(responses)), "test-model").build())
}

fn types(events: &[EventEnvelope]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.type_name()).collect()
}

async fn collect(
    runtime: &Runtime,
    session: netherbrain_core::SessionId,
    after: u64,
) -> Vec<EventEnvelope> {
    runtime
        .subscribe(session, after)
        .await
        .unwrap()
        .collect()
        .await
}

#[tokio::test]
async fn run_commits_and_replays_from_any_event_id() {
    let f = fixture().await;
    let run = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            agent(vec![ScriptedResponse::text("Hello there")]),
            vec![Message::user("Hi")],
        ))
        .await
        .unwrap();
    let all = collect(&f.runtime, run.session_id, 0).await;
    assert_eq!(all.first().unwrap().event.type_name(), "RUN_STARTED");
    assert_eq!(all.last().unwrap().event.type_name(), "RUN_FINISHED");
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "ids increase by one"
    );

    let session = f.runtime.wait(run.session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Committed);
    assert_eq!(session.final_message.as_deref(), Some("Hello there"));

    // Replay after every possible id from the persisted log: exactly the rest.
    for after in 0..=all.len() as u64 {
        let rest = collect(&f.runtime, run.session_id, after).await;
        assert_eq!(rest, all[after as usize..].to_vec(), "replay after {after}");
    }
    let messages = f.store.session_messages(run.session_id).await.unwrap();
    assert_eq!(messages.len(), 2, "input and answer persisted");
}

#[tokio::test]
async fn second_run_in_a_busy_conversation_is_refused() {
    let f = fixture().await;
    let hanging = agent(vec![
        ScriptedResponse::builder().text("working").hang().build(),
    ]);
    let first = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            hanging.clone(),
            vec![Message::user("one")],
        ))
        .await
        .unwrap();
    let second = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            hanging,
            vec![Message::user("two")],
        ))
        .await;
    assert_eq!(
        second,
        Err(RuntimeError::Busy {
            session_id: first.session_id
        })
    );

    // The input is durable while the model is still streaming.
    let stored = f.store.session_messages(first.session_id).await.unwrap();
    assert_eq!(stored, vec![Message::user("one")]);

    f.runtime.interrupt_conversation(f.conversation).unwrap();
    let session = f.runtime.wait(first.session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Interrupted);
    assert!(f.runtime.active_session(f.conversation).is_none());
}

#[tokio::test]
async fn interrupt_keeps_partial_text_and_live_subscribers_see_everything() {
    let f = fixture().await;
    let hanging = agent(vec![
        ScriptedResponse::builder()
            .text("partial answer")
            .hang()
            .build(),
    ]);
    let run = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            hanging,
            vec![Message::user("go")],
        ))
        .await
        .unwrap();
    let mut live = f.runtime.subscribe(run.session_id, 0).await.unwrap();
    // Wait until the partial text is visible, then interrupt.
    let mut seen = Vec::new();
    while let Some(event) = live.next().await {
        let is_text = matches!(event.event, AgentEvent::TextMessageContent { .. });
        seen.push(event);
        if is_text {
            break;
        }
    }
    f.runtime.interrupt(run.session_id).unwrap();
    seen.extend(live.collect::<Vec<_>>().await);
    assert_eq!(seen.last().unwrap().event.type_name(), "RUN_FINISHED");
    assert_eq!(
        seen,
        collect(&f.runtime, run.session_id, 0).await,
        "live == persisted"
    );

    let session = f.store.get_session(run.session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Interrupted);
    let messages = f.store.session_messages(run.session_id).await.unwrap();
    assert_eq!(messages.last().unwrap().text(), "partial answer");
    assert!(matches!(
        f.runtime.interrupt(run.session_id),
        Err(RuntimeError::NotRunning(_))
    ));
}

#[tokio::test]
async fn a_slow_subscriber_loses_nothing() {
    let f = fixture().await;
    let mut builder = ScriptedResponse::builder();
    for i in 0..2000 {
        builder = builder.text(format!("{i} "));
    }
    let run = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            agent(vec![builder.build()]),
            vec![Message::user("count")],
        ))
        .await
        .unwrap();
    let mut stream = f.runtime.subscribe(run.session_id, 0).await.unwrap();
    let mut received = Vec::new();
    while let Some(event) = stream.next().await {
        if received.len() % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        received.push(event.seq);
    }
    let expected: Vec<u64> = (1..=received.len() as u64).collect();
    assert_eq!(received, expected);
    assert!(received.len() > 2000);
}

#[tokio::test]
async fn steering_is_injected_at_the_next_round() {
    let f = fixture().await;
    let provider = Arc::new(
        ScriptedProvider::new([
            ScriptedResponse::text("first answer"),
            ScriptedResponse::text("answer after steering"),
        ])
        .with_event_delay(Duration::from_millis(20)),
    );
    let agent = Arc::new(Agent::builder(provider.clone(), "m").build());
    let run = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            agent,
            vec![Message::user("start")],
        ))
        .await
        .unwrap();
    f.runtime
        .steer(run.session_id, "also mention cats")
        .unwrap();
    assert!(matches!(
        f.runtime.steer(run.session_id, "  "),
        Err(RuntimeError::InvalidInput(_))
    ));
    let events = collect(&f.runtime, run.session_id, 0).await;
    assert!(events.iter().any(
        |e| matches!(&e.event, AgentEvent::Custom { name, .. } if name == "steering_received")
    ));
    let session = f.runtime.wait(run.session_id).await.unwrap();
    assert_eq!(
        session.final_message.as_deref(),
        Some("answer after steering")
    );
    let second_request = &provider.requests()[1];
    assert!(
        second_request
            .messages
            .iter()
            .any(|m| m.text() == "also mention cats")
    );
}

#[derive(Deserialize, JsonSchema)]
struct DeleteArgs {
    path: String,
}

#[derive(Debug)]
struct Delete;

#[async_trait]
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

#[tokio::test]
async fn approval_round_trip_through_the_runtime() {
    let f = fixture().await;
    let provider = Arc::new(ScriptedProvider::new([
        ScriptedResponse::builder()
            .tool_call("c1", "delete", r#"{"path": "a.txt"}"#)
            .tool_call("c2", "delete", r#"{"path": "b.txt"}"#)
            .build(),
        ScriptedResponse::text("Deleted a.txt; b.txt was kept."),
    ]));
    let tools = ToolRegistry::new().with(Delete).unwrap();
    let agent = Arc::new(
        Agent::builder(provider.clone(), "m")
            .tools(tools)
            .approval(ApprovalPolicy::ToolDefault)
            .build(),
    );
    let first = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            agent.clone(),
            vec![Message::user("clean up")],
        ))
        .await
        .unwrap();
    let session = f.runtime.wait(first.session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::AwaitingToolResults);
    assert_eq!(session.deferred_tool_calls.len(), 2);

    // New input without decisions, unknown ids and missing decisions are refused.
    let plain = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            agent.clone(),
            vec![Message::user("hello?")],
        ))
        .await;
    assert!(matches!(plain, Err(RuntimeError::InvalidResume(_))));
    let unknown = f
        .runtime
        .start(
            StartRun::new(f.conversation, agent.clone(), vec![])
                .with_resume(vec![ToolDecision::approve("nope")]),
        )
        .await;
    assert!(matches!(unknown, Err(RuntimeError::InvalidResume(_))));
    let partial = f
        .runtime
        .start(
            StartRun::new(f.conversation, agent.clone(), vec![])
                .with_resume(vec![ToolDecision::approve("c1")]),
        )
        .await;
    assert!(matches!(partial, Err(RuntimeError::InvalidResume(_))));

    let resumed = f
        .runtime
        .start(
            StartRun::new(f.conversation, agent, vec![]).with_resume(vec![
                ToolDecision::approve("c1"),
                ToolDecision::deny("c2", Some("keep it".into())),
            ]),
        )
        .await
        .unwrap();
    let session = f.runtime.wait(resumed.session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Committed);
    assert_eq!(session.parent_session_id, Some(first.session_id));
    let events = collect(&f.runtime, resumed.session_id, 0).await;
    let results: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            AgentEvent::ToolCallResult {
                tool_call_id,
                content,
                ..
            } => Some((tool_call_id.clone(), content.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0], ("c1".to_string(), "deleted a.txt".to_string()));
}

#[tokio::test]
async fn history_follows_the_chain_and_forks_branch() {
    let f = fixture().await;
    let a = agent(vec![
        ScriptedResponse::text("one"),
        ScriptedResponse::text("two"),
    ]);
    let first = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            a.clone(),
            vec![Message::user("q1")],
        ))
        .await
        .unwrap();
    f.runtime.wait(first.session_id).await.unwrap();
    let second = f
        .runtime
        .start(StartRun::new(f.conversation, a, vec![Message::user("q2")]))
        .await
        .unwrap();
    f.runtime.wait(second.session_id).await.unwrap();
    let history: Vec<String> = f
        .store
        .session_history(second.session_id)
        .await
        .unwrap()
        .iter()
        .map(Message::text)
        .collect();
    assert_eq!(history, ["q1", "one", "q2", "two"]);

    // Fork: a new conversation continuing from the first session.
    let owner = f
        .store
        .get_conversation(f.conversation)
        .await
        .unwrap()
        .owner;
    let forked = f
        .store
        .create_conversation(NewConversation::new(owner))
        .await
        .unwrap();
    let provider = Arc::new(ScriptedProvider::new([ScriptedResponse::text("branch")]));
    let fork_agent = Arc::new(Agent::builder(provider.clone(), "m").build());
    let run = f
        .runtime
        .start(
            StartRun::new(forked.id, fork_agent, vec![Message::user("q2'")])
                .with_parent(first.session_id),
        )
        .await
        .unwrap();
    f.runtime.wait(run.session_id).await.unwrap();
    let sent: Vec<String> = provider.requests()[0]
        .messages
        .iter()
        .map(Message::text)
        .collect();
    assert_eq!(sent, ["q1", "one", "q2'"]);
}

#[tokio::test]
async fn drain_refuses_new_runs_and_interrupts_what_is_left() {
    let f = fixture().await;
    let hanging = agent(vec![
        ScriptedResponse::builder().text("long").hang().build(),
    ]);
    let run = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            hanging.clone(),
            vec![Message::user("go")],
        ))
        .await
        .unwrap();
    let runtime = f.runtime.clone();
    let drain = tokio::spawn(async move { runtime.drain(Duration::from_millis(200)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            hanging,
            vec![Message::user("more")],
        ))
        .await;
    assert_eq!(refused, Err(RuntimeError::Draining));
    let report = drain.await.unwrap();
    assert_eq!(report.interrupted, vec![run.session_id]);
    let session = f.store.get_session(run.session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Interrupted);
    assert_eq!(f.runtime.running_count(), 0);
}

#[tokio::test]
async fn drain_waits_for_runs_that_finish_in_time() {
    let f = fixture().await;
    let provider = Arc::new(
        ScriptedProvider::new([ScriptedResponse::text("done soon")])
            .with_event_delay(Duration::from_millis(10)),
    );
    let a = Arc::new(Agent::builder(provider, "m").build());
    let run = f
        .runtime
        .start(StartRun::new(f.conversation, a, vec![Message::user("go")]))
        .await
        .unwrap();
    let report = f.runtime.drain(Duration::from_secs(10)).await;
    assert_eq!(report.finished, 1);
    assert!(report.interrupted.is_empty());
    assert_eq!(
        f.store.get_session(run.session_id).await.unwrap().status,
        SessionStatus::Committed
    );
}

#[tokio::test]
async fn recovery_marks_crashed_sessions_interrupted() {
    let f = fixture().await;
    let left_running = f
        .store
        .create_session(NewSession::new(
            f.conversation,
            vec![Message::user("before the crash")],
        ))
        .await
        .unwrap();
    let recovered = f.runtime.recover().await.unwrap();
    assert_eq!(recovered, vec![left_running.id]);
    assert_eq!(
        f.store.get_session(left_running.id).await.unwrap().status,
        SessionStatus::Interrupted
    );
    // The conversation is usable again and continues from what was persisted.
    let provider = Arc::new(ScriptedProvider::new([ScriptedResponse::text("after")]));
    let a = Arc::new(Agent::builder(provider.clone(), "m").build());
    let run = f
        .runtime
        .start(StartRun::new(
            f.conversation,
            a,
            vec![Message::user("again")],
        ))
        .await
        .unwrap();
    f.runtime.wait(run.session_id).await.unwrap();
    let sent: Vec<String> = provider.requests()[0]
        .messages
        .iter()
        .map(Message::text)
        .collect();
    assert_eq!(sent, ["before the crash", "again"]);
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Debug)]
struct Panics;

#[async_trait]
impl Tool for Panics {
    type Args = NoArgs;
    fn name(&self) -> &str {
        "panics"
    }
    fn description(&self) -> &str {
        "Always panics"
    }
    async fn call(&self, _args: NoArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        panic!("tool bug");
    }
}

#[tokio::test]
async fn a_panicking_run_fails_and_releases_the_conversation() {
    let f = fixture().await;
    let provider = Arc::new(ScriptedProvider::new([ScriptedResponse::builder()
        .tool_call("c1", "panics", "{}")
        .build()]));
    let a = Arc::new(
        Agent::builder(provider, "m")
            .tools(ToolRegistry::new().with(Panics).unwrap())
            .build(),
    );
    let run = f
        .runtime
        .start(StartRun::new(f.conversation, a, vec![Message::user("go")]))
        .await
        .unwrap();
    let events = collect(&f.runtime, run.session_id, 0).await;
    assert!(
        events.last().unwrap().event.is_terminal(),
        "{:?}",
        types(&events)
    );
    let session = f.runtime.wait(run.session_id).await.unwrap();
    assert!(session.status.is_terminal());
    assert!(f.runtime.active_session(f.conversation).is_none());
}

#[tokio::test]
async fn bad_requests_change_nothing() {
    let f = fixture().await;
    let a = agent(vec![]);
    let empty = f
        .runtime
        .start(StartRun::new(f.conversation, a.clone(), vec![]))
        .await;
    assert!(matches!(empty, Err(RuntimeError::InvalidInput(_))));
    let unknown = f
        .runtime
        .start(StartRun::new(
            ConversationId::new(),
            a,
            vec![Message::user("x")],
        ))
        .await;
    assert!(matches!(unknown, Err(RuntimeError::Store(e)) if e.is_not_found()));
    assert!(
        f.store
            .list_sessions(f.conversation)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        f.runtime
            .subscribe(netherbrain_core::SessionId::new(), 0)
            .await
            .is_err()
    );
}
