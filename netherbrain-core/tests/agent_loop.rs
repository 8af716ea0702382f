//! Behaviour of the agent loop, driven by scripted providers.
//!
//! The `snapshot_*` tests record the full event sequence (and the persisted
//! messages) of typical runs. Ids are deterministic: fixed conversation and
//! session ids, scripted call ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use netherbrain_core::agent::{
    Agent, AgentLimits, CollectingSink, CompactionStrategy, RunControl, RunOutcome, RunRequest,
    ToolDecision, pending_tool_calls,
};
use netherbrain_core::schemars::JsonSchema;
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::tool::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
use netherbrain_core::{
    AgentEvent, ApprovalPolicy, ContentPart, ConversationId, Message, ProviderError, Role,
    SessionId, SessionStatus, ToolCall, ToolResult, ToolResultStatus, custom,
};
use serde::Deserialize;
use serde_json::{Value, json};

// ---------- fixtures ----------

fn conversation() -> ConversationId {
    ConversationId::from_uuid(uuid::Uuid::from_u128(0xc0))
}

fn session(n: u128) -> SessionId {
    SessionId::from_uuid(uuid::Uuid::from_u128(0x5e00 + n))
}

fn request(n: u128) -> RunRequest {
    RunRequest::new(conversation(), session(n))
}

#[derive(Deserialize, JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Debug)]
struct Add;

#[async_trait]
impl Tool for Add {
    type Args = AddArgs;
    fn name(&self) -> &str {
        "add"
    }
    fn description(&self) -> &str {
        "Adds two integers"
    }
    async fn call(&self, args: AddArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        Ok((args.a + args.b).to_string().into())
    }
}

#[derive(Deserialize, JsonSchema)]
struct SleepArgs {
    ms: u64,
}

#[derive(Debug)]
struct Sleep;

#[async_trait]
impl Tool for Sleep {
    type Args = SleepArgs;
    fn name(&self) -> &str {
        "sleep"
    }
    fn description(&self) -> &str {
        "Sleeps"
    }
    async fn call(&self, args: SleepArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        Ok("slept".into())
    }
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Debug)]
struct Fail;

#[async_trait]
impl Tool for Fail {
    type Args = NoArgs;
    fn name(&self) -> &str {
        "fail"
    }
    fn description(&self) -> &str {
        "Always fails"
    }
    async fn call(&self, _args: NoArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        Err(ToolError::failed("disk full"))
    }
}

#[derive(Debug)]
struct Crash;

#[async_trait]
impl Tool for Crash {
    type Args = NoArgs;
    fn name(&self) -> &str {
        "crash"
    }
    fn description(&self) -> &str {
        "Panics"
    }
    async fn call(&self, _args: NoArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        panic!("index out of bounds")
    }
}

/// Needs approval; records that it ran.
#[derive(Debug)]
struct Danger;

#[async_trait]
impl Tool for Danger {
    type Args = NoArgs;
    fn name(&self) -> &str {
        "danger"
    }
    fn description(&self) -> &str {
        "Does something risky"
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, _args: NoArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        Ok(format!("danger done for {}", ctx.call_id).into())
    }
}

/// Counts how many calls run at the same time.
#[derive(Debug, Clone, Default)]
struct Gauge {
    current: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

#[async_trait]
impl Tool for Gauge {
    type Args = NoArgs;
    fn name(&self) -> &str {
        "gauge"
    }
    fn description(&self) -> &str {
        "Counts concurrent calls"
    }
    async fn call(&self, _args: NoArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.current.fetch_sub(1, Ordering::SeqCst);
        Ok("ok".into())
    }
}

fn tools() -> ToolRegistry {
    ToolRegistry::new()
        .with(Add)
        .unwrap()
        .with(Sleep)
        .unwrap()
        .with(Fail)
        .unwrap()
        .with(Danger)
        .unwrap()
        .with(Crash)
        .unwrap()
}

fn agent(provider: &Arc<ScriptedProvider>, limits: AgentLimits) -> Agent {
    Agent::builder(provider.clone(), "test-model")
        .system_prompt("You are a test agent.")
        .tools(tools())
        .limits(limits)
        .build()
}

fn scripted(responses: impl IntoIterator<Item = ScriptedResponse>) -> Arc<ScriptedProvider> {
    Arc::new(ScriptedProvider::new(responses))
}

/// Everything a run produced, for snapshots.
fn transcript(outcome: &RunOutcome, sink: &CollectingSink) -> Value {
    json!({
        "status": outcome.status,
        "error": outcome.error,
        "final_message": outcome.final_message,
        "deferred_tool_calls": outcome.deferred_tool_calls,
        "events": sink.events,
        "persisted": sink.messages,
    })
}

async fn run(
    agent: &Agent,
    request: RunRequest,
    control: RunControl,
) -> (RunOutcome, CollectingSink) {
    let mut sink = CollectingSink::new();
    let outcome = agent.run(request, control, &mut sink).await;
    (outcome, sink)
}

fn results(sink: &CollectingSink) -> Vec<ToolResult> {
    sink.messages
        .iter()
        .flat_map(Message::tool_results)
        .cloned()
        .collect()
}

fn customs<'a>(sink: &'a CollectingSink, name: &str) -> Vec<&'a Value> {
    sink.events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Custom { name: n, value } if n == name => Some(value),
            _ => None,
        })
        .collect()
}

/// Checks invariants every run must keep: RUN_STARTED first, exactly one
/// terminal event last, balanced start/end pairs.
fn assert_well_formed(sink: &CollectingSink) {
    let types = sink.event_types();
    assert_eq!(types.first(), Some(&"RUN_STARTED"), "{types:?}");
    assert!(sink.events.last().unwrap().is_terminal(), "{types:?}");
    assert_eq!(sink.events.iter().filter(|e| e.is_terminal()).count(), 1);
    for (start, end) in [
        ("TEXT_MESSAGE_START", "TEXT_MESSAGE_END"),
        ("REASONING_START", "REASONING_END"),
        ("TOOL_CALL_START", "TOOL_CALL_END"),
    ] {
        let s = types.iter().filter(|t| **t == start).count();
        let e = types.iter().filter(|t| **t == end).count();
        assert_eq!(s, e, "{start}/{end} unbalanced in {types:?}");
    }
}

// ---------- snapshots ----------

#[tokio::test]
async fn snapshot_two_round_tool_run() {
    let provider = scripted([
        ScriptedResponse::builder()
            .reasoning("Two sums, in parallel.")
            .text("Let me add those.")
            .tool_call("call_1", "add", r#"{"a": 1, "b": 2}"#)
            .tool_call("call_2", "add", r#"{"a": 3, "b": 4}"#)
            .usage(100, 20)
            .build(),
        ScriptedResponse::builder()
            .text("1 + 2 = 3 and 3 + 4 = 7.")
            .usage(150, 12)
            .build(),
    ]);
    let agent = agent(&provider, AgentLimits::default());
    let (outcome, sink) = run(
        &agent,
        request(1).with_user_text("What are 1+2 and 3+4?"),
        RunControl::default(),
    )
    .await;
    assert_well_formed(&sink);
    assert_eq!(outcome.status, SessionStatus::Committed);
    assert_eq!(
        outcome.new_messages.len(),
        4,
        "input, assistant, tool, assistant"
    );
    assert_eq!(outcome.usage.get("test-model").unwrap().requests, 2);
    // the second request carries both results, in call order
    let second = &provider.requests()[1];
    let tool_msg = second.messages.last().unwrap();
    let got: Vec<(&str, &str)> = tool_msg
        .tool_results()
        .map(|r| (r.call_id.as_str(), r.content.as_str()))
        .collect();
    assert_eq!(got, vec![("call_1", "3"), ("call_2", "7")]);
    assert_eq!(second.system.as_deref(), Some("You are a test agent."));
    assert_eq!(second.tools.len(), 5);
    insta::assert_json_snapshot!(transcript(&outcome, &sink));
}

#[tokio::test(start_paused = true)]
async fn snapshot_interrupt_while_tool_runs() {
    let provider = scripted([ScriptedResponse::builder()
        .text("Sleeping first.")
        .tool_call("call_1", "sleep", r#"{"ms": 60000}"#)
        .tool_call("call_2", "add", r#"{"a": 1, "b": 1}"#)
        .build()]);
    let agent = agent(&provider, AgentLimits::default());
    let control = RunControl::default();
    let cancel = control.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let started = tokio::time::Instant::now();
    let (outcome, sink) = run(&agent, request(2).with_user_text("nap"), control).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "stopped at once"
    );
    assert_well_formed(&sink);
    assert_eq!(outcome.status, SessionStatus::Interrupted);
    let statuses: Vec<_> = results(&sink).iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![ToolResultStatus::Cancel, ToolResultStatus::Success]
    );
    insta::assert_json_snapshot!(transcript(&outcome, &sink));
}

#[tokio::test(start_paused = true)]
async fn snapshot_interrupt_mid_stream() {
    let provider = scripted([ScriptedResponse::builder()
        .text("The answer is")
        .tool_call("call_1", "add", r#"{"a": 1, "b": 2}"#)
        .event(netherbrain_core::provider::ProviderEvent::ToolCallStart {
            index: 1,
            id: Some("call_2".into()),
            name: Some("add".into()),
        })
        .event(netherbrain_core::provider::ProviderEvent::ToolCallArgs {
            index: 1,
            fragment: "{\"a\":".into(),
        })
        .hang()
        .build()]);
    let agent = agent(&provider, AgentLimits::default());
    let control = RunControl::default();
    let cancel = control.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let (outcome, sink) = run(&agent, request(3).with_user_text("sum?"), control).await;
    assert_well_formed(&sink);
    assert_eq!(outcome.status, SessionStatus::Interrupted);
    // partial text kept and persisted
    assert_eq!(outcome.final_message.as_deref(), Some("The answer is"));
    assert_eq!(sink.messages[0].text(), "The answer is");
    let statuses: Vec<_> = results(&sink).iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![ToolResultStatus::Cancel, ToolResultStatus::Cancel]
    );
    insta::assert_json_snapshot!(transcript(&outcome, &sink));
}

#[tokio::test(start_paused = true)]
async fn snapshot_steered_run() {
    let provider = scripted([
        ScriptedResponse::builder()
            .text("Working on it.")
            .tool_call("call_1", "sleep", r#"{"ms": 50}"#)
            .build(),
        ScriptedResponse::text("Switching to metric units."),
    ]);
    let agent = agent(&provider, AgentLimits::default());
    let control = RunControl::default();
    let steering = control.steering.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        steering.push("use metric units");
    });
    let (outcome, sink) = run(&agent, request(4).with_user_text("how far?"), control).await;
    assert_well_formed(&sink);
    assert_eq!(outcome.status, SessionStatus::Committed);
    assert_eq!(
        customs(&sink, custom::STEERING_RECEIVED),
        vec![&json!({"text": "use metric units"})]
    );
    let second = &provider.requests()[1];
    assert_eq!(
        second.messages.last().unwrap(),
        &Message::user("use metric units")
    );
    insta::assert_json_snapshot!(transcript(&outcome, &sink));
}

#[tokio::test]
async fn snapshot_approval_round_trip() {
    let provider = scripted([
        ScriptedResponse::builder()
            .text("I need to do risky things.")
            .tool_call("call_1", "danger", "{}")
            .tool_call("call_2", "danger", "{}")
            .tool_call("call_3", "add", r#"{"a": 2, "b": 2}"#)
            .build(),
        ScriptedResponse::text("One done, one denied."),
    ]);
    let agent = agent(&provider, AgentLimits::default());
    let (first, sink1) = run(
        &agent,
        request(5).with_user_text("go"),
        RunControl::default(),
    )
    .await;
    assert_well_formed(&sink1);
    assert_eq!(first.status, SessionStatus::AwaitingToolResults);
    let deferred: Vec<&str> = first
        .deferred_tool_calls
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(deferred, vec!["call_1", "call_2"]);
    // the executed call's result is persisted, the deferred ones are pending
    assert_eq!(results(&sink1).len(), 1);
    let history = first.new_messages.clone();
    let pending: Vec<String> = pending_tool_calls(&history)
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(pending, vec!["call_1", "call_2"]);

    let (second, sink2) = run(
        &agent,
        request(6).with_history(history).with_resume(vec![
            ToolDecision::approve("call_1"),
            ToolDecision::deny("call_2", Some("too risky".into())),
        ]),
        RunControl::default(),
    )
    .await;
    assert_well_formed(&sink2);
    assert_eq!(second.status, SessionStatus::Committed);
    let got: Vec<(String, ToolResultStatus)> = results(&sink2)
        .into_iter()
        .map(|r| (r.content, r.status))
        .collect();
    assert_eq!(
        got,
        vec![
            ("danger done for call_1".into(), ToolResultStatus::Success),
            (
                "denied by the user: too risky".into(),
                ToolResultStatus::Denied
            ),
        ]
    );
    // the model saw every call answered
    let request = &provider.requests()[1];
    assert!(pending_tool_calls(&request.messages).is_empty());
    insta::assert_json_snapshot!(json!({
        "run_1": transcript(&first, &sink1),
        "run_2": transcript(&second, &sink2),
    }));
}

// ---------- tool errors (data-driven) ----------

#[tokio::test(start_paused = true)]
async fn tool_failures_become_error_results_and_the_run_continues() {
    struct Case {
        name: &'static str,
        tool: &'static str,
        args: &'static str,
        expect: &'static str,
    }
    let cases = [
        Case {
            name: "malformed JSON",
            tool: "add",
            args: r#"{"a": 1, "b": "#,
            expect: "not valid JSON",
        },
        Case {
            name: "invalid arguments",
            tool: "add",
            args: r#"{"a": "one", "b": 2}"#,
            expect: "invalid arguments",
        },
        Case {
            name: "unknown tool",
            tool: "teleport",
            args: "{}",
            expect: "unknown tool `teleport`; available tools: add, crash, danger, fail, sleep",
        },
        Case {
            name: "timeout",
            tool: "sleep",
            args: r#"{"ms": 10000}"#,
            expect: "timed out",
        },
        Case {
            name: "tool panic",
            tool: "crash",
            args: "{}",
            expect: "the tool crashed: index out of bounds",
        },
        Case {
            name: "tool failure",
            tool: "fail",
            args: "{}",
            expect: "disk full",
        },
    ];
    for case in cases {
        let provider = scripted([
            ScriptedResponse::builder()
                .tool_call("call_1", case.tool, case.args)
                .build(),
            ScriptedResponse::text("Sorry about that."),
        ]);
        let agent = agent(
            &provider,
            AgentLimits::default().with_tool_timeout(Duration::from_secs(1)),
        );
        let (outcome, sink) = run(
            &agent,
            request(7).with_user_text("try"),
            RunControl::default(),
        )
        .await;
        assert_well_formed(&sink);
        assert_eq!(outcome.status, SessionStatus::Committed, "{}", case.name);
        let result = &results(&sink)[0];
        assert_eq!(result.status, ToolResultStatus::Error, "{}", case.name);
        assert!(
            result.content.contains(case.expect),
            "{}: {}",
            case.name,
            result.content
        );
        let event_status = sink.events.iter().find_map(|e| match e {
            AgentEvent::ToolCallResult { status, .. } => Some(*status),
            _ => None,
        });
        assert_eq!(event_status, Some(ToolResultStatus::Error), "{}", case.name);
        // the model got the error and answered
        assert_eq!(provider.requests().len(), 2, "{}", case.name);
        assert_eq!(outcome.final_message.as_deref(), Some("Sorry about that."));
    }
}

// ---------- limits ----------

#[tokio::test]
async fn max_tool_rounds_fails_the_run_and_keeps_messages() {
    let round = |id: &str| {
        ScriptedResponse::builder()
            .tool_call(id, "add", r#"{"a": 1, "b": 1}"#)
            .build()
    };
    let provider = scripted([round("c1"), round("c2"), round("c3")]);
    let agent = agent(&provider, AgentLimits::default().with_max_tool_rounds(2));
    let (outcome, sink) = run(
        &agent,
        request(8).with_user_text("loop"),
        RunControl::default(),
    )
    .await;
    assert_well_formed(&sink);
    assert_eq!(outcome.status, SessionStatus::Failed);
    assert_eq!(outcome.error.as_ref().unwrap().code, "max_tool_rounds");
    assert!(matches!(
        sink.events.last(),
        Some(AgentEvent::RunError { code: Some(c), .. }) if c == "max_tool_rounds"
    ));
    // 3 assistant messages and 3 tool messages (the last with error results)
    assert_eq!(sink.messages.len(), 6);
    let last = results(&sink).pop().unwrap();
    assert_eq!(last.call_id, "c3");
    assert_eq!(last.status, ToolResultStatus::Error);
    assert!(pending_tool_calls(&outcome.new_messages).is_empty());
}

#[tokio::test(start_paused = true)]
async fn bounded_parallelism() {
    let gauge = Gauge::default();
    let mut builder = ScriptedResponse::builder();
    for i in 0..6 {
        builder = builder.tool_call(&format!("c{i}"), "gauge", "{}");
    }
    let provider = scripted([builder.build(), ScriptedResponse::text("done")]);
    let agent = Agent::builder(provider.clone(), "test-model")
        .tools(ToolRegistry::new().with(gauge.clone()).unwrap())
        .limits(AgentLimits::default().with_max_parallel_tool_calls(2))
        .build();
    let (outcome, sink) = run(
        &agent,
        request(9).with_user_text("go"),
        RunControl::default(),
    )
    .await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    assert_eq!(gauge.max.load(Ordering::SeqCst), 2);
    let ids: Vec<String> = results(&sink).into_iter().map(|r| r.call_id).collect();
    assert_eq!(
        ids,
        vec!["c0", "c1", "c2", "c3", "c4", "c5"],
        "call order kept"
    );
}

// ---------- provider errors ----------

#[tokio::test(start_paused = true)]
async fn retryable_provider_error_is_retried() {
    let provider = scripted([
        ScriptedResponse::error(ProviderError::Transient {
            message: "502 bad gateway".into(),
        }),
        ScriptedResponse::error(ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
            message: "slow down".into(),
        }),
        ScriptedResponse::text("finally"),
    ]);
    let agent = agent(
        &provider,
        AgentLimits::default().with_max_provider_retries(2),
    );
    let (outcome, sink) = run(
        &agent,
        request(10).with_user_text("hi"),
        RunControl::default(),
    )
    .await;
    assert_well_formed(&sink);
    assert_eq!(outcome.status, SessionStatus::Committed);
    assert_eq!(outcome.final_message.as_deref(), Some("finally"));
    assert_eq!(provider.requests().len(), 3);
    // exactly one text message despite the retries
    assert_eq!(
        sink.event_types()
            .iter()
            .filter(|t| **t == "TEXT_MESSAGE_START")
            .count(),
        1
    );
}

#[tokio::test]
async fn provider_errors_that_cannot_be_retried_fail_the_run() {
    struct Case {
        name: &'static str,
        response: ScriptedResponse,
        retries: u32,
        code: &'static str,
        requests: usize,
    }
    let transient = || ProviderError::Transient {
        message: "reset".into(),
    };
    let cases = [
        Case {
            name: "retries exhausted",
            response: ScriptedResponse::error(transient()),
            retries: 0,
            code: "transient",
            requests: 1,
        },
        Case {
            name: "not retryable",
            response: ScriptedResponse::error(ProviderError::Auth {
                message: "bad key".into(),
            }),
            retries: 3,
            code: "auth",
            requests: 1,
        },
        Case {
            name: "failed after output was emitted",
            response: ScriptedResponse::builder()
                .text("Half an ans")
                .then_error(transient())
                .build(),
            retries: 3,
            code: "transient",
            requests: 1,
        },
    ];
    for case in cases {
        let provider = scripted([case.response, ScriptedResponse::text("unused")]);
        let agent = agent(
            &provider,
            AgentLimits::default().with_max_provider_retries(case.retries),
        );
        let (outcome, sink) = run(
            &agent,
            request(11).with_user_text("hi"),
            RunControl::default(),
        )
        .await;
        assert_well_formed(&sink);
        assert_eq!(outcome.status, SessionStatus::Failed, "{}", case.name);
        assert_eq!(
            outcome.error.as_ref().unwrap().code,
            case.code,
            "{}",
            case.name
        );
        assert_eq!(provider.requests().len(), case.requests, "{}", case.name);
    }
}

// ---------- steering, sink, stream, resume validation, history ----------

#[tokio::test(start_paused = true)]
async fn steering_after_the_final_answer_runs_another_round() {
    let provider = Arc::new(
        ScriptedProvider::new([
            ScriptedResponse::text("Here is the answer."),
            ScriptedResponse::text("In French: voici la réponse."),
        ])
        .with_event_delay(Duration::from_millis(10)),
    );
    let agent = agent(&provider, AgentLimits::default());
    let control = RunControl::default();
    let steering = control.steering.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        steering.push("answer in French");
    });
    let (outcome, sink) = run(&agent, request(12).with_user_text("q"), control).await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    assert_eq!(provider.requests().len(), 2);
    let persisted: Vec<Role> = sink.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        persisted,
        vec![Role::Assistant, Role::User, Role::Assistant]
    );
    assert_eq!(
        outcome.final_message.as_deref(),
        Some("In French: voici la réponse.")
    );
}

#[tokio::test]
async fn sink_failure_fails_the_run() {
    let provider = scripted([ScriptedResponse::text("hello there")]);
    let agent = agent(&provider, AgentLimits::default());
    let mut sink = CollectingSink::failing_after(2);
    let outcome = agent
        .run(
            request(13).with_user_text("hi"),
            RunControl::default(),
            &mut sink,
        )
        .await;
    assert_eq!(outcome.status, SessionStatus::Failed);
    assert_eq!(outcome.error.unwrap().code, "sink");
}

#[tokio::test]
async fn run_stream_yields_events_and_outcome() {
    let provider = scripted([
        ScriptedResponse::builder()
            .tool_call("c1", "add", r#"{"a": 20, "b": 22}"#)
            .build(),
        ScriptedResponse::text("42"),
    ]);
    let agent = Arc::new(agent(&provider, AgentLimits::default()));
    let mut stream = agent.run_stream(request(14).with_user_text("sum"), RunControl::default());
    let mut types = Vec::new();
    while let Some(event) = stream.next().await {
        types.push(event.type_name());
    }
    assert_eq!(types.first(), Some(&"RUN_STARTED"));
    assert_eq!(types.last(), Some(&"RUN_FINISHED"));
    assert!(types.contains(&"TOOL_CALL_RESULT"));
    let outcome = stream.outcome().await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    assert_eq!(outcome.final_message.as_deref(), Some("42"));
}

fn assistant_calls(ids: &[&str]) -> Message {
    Message::new(
        Role::Assistant,
        ids.iter()
            .map(|id| ContentPart::ToolCall(ToolCall::new(*id, "danger", json!({}))))
            .collect(),
    )
}

#[tokio::test]
async fn invalid_resumes_fail_before_calling_the_model() {
    let history = vec![Message::user("go"), assistant_calls(&["a", "b"])];
    let cases: Vec<(&str, Vec<Message>, Vec<ToolDecision>)> = vec![
        (
            "missing decision",
            history.clone(),
            vec![ToolDecision::approve("a")],
        ),
        (
            "unknown call",
            history.clone(),
            vec![
                ToolDecision::approve("a"),
                ToolDecision::approve("b"),
                ToolDecision::approve("zzz"),
            ],
        ),
        (
            "nothing pending",
            vec![Message::user("hi"), Message::assistant("hello")],
            vec![ToolDecision::approve("a")],
        ),
    ];
    for (name, history, decisions) in cases {
        let provider = scripted([ScriptedResponse::text("unused")]);
        let agent = agent(&provider, AgentLimits::default());
        let (outcome, sink) = run(
            &agent,
            request(15).with_history(history).with_resume(decisions),
            RunControl::default(),
        )
        .await;
        assert_well_formed(&sink);
        assert_eq!(outcome.status, SessionStatus::Failed, "{name}");
        assert_eq!(outcome.error.unwrap().code, "invalid_resume", "{name}");
        assert!(provider.requests().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn resume_with_client_results() {
    let provider = scripted([ScriptedResponse::text("thanks")]);
    let agent = agent(&provider, AgentLimits::default());
    let (outcome, sink) = run(
        &agent,
        request(16)
            .with_history(vec![Message::user("go"), assistant_calls(&["a", "b"])])
            .with_resume(vec![
                ToolDecision::result("a", "42", false),
                ToolDecision::result("b", "no such file", true),
            ]),
        RunControl::default(),
    )
    .await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    let got: Vec<_> = results(&sink).into_iter().map(|r| r.status).collect();
    assert_eq!(
        got,
        vec![ToolResultStatus::Success, ToolResultStatus::Error]
    );
}

#[tokio::test]
async fn history_starts_at_the_last_summary_and_dangling_calls_are_repaired() {
    let provider = scripted([ScriptedResponse::text("ok")]);
    let agent = agent(&provider, AgentLimits::default());
    let history = vec![
        Message::user("ancient"),
        Message::new(
            Role::User,
            vec![ContentPart::Summary {
                text: "we talked".into(),
            }],
        ),
        Message::user("go"),
        assistant_calls(&["a"]),
    ];
    let (outcome, _sink) = run(
        &agent,
        request(17)
            .with_history(history)
            .with_user_text("never mind"),
        RunControl::default(),
    )
    .await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    let sent = &provider.requests()[0].messages;
    let roles: Vec<Role> = sent.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        vec![
            Role::User,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User
        ]
    );
    let synthetic = sent[3].tool_results().next().unwrap();
    assert_eq!(synthetic.status, ToolResultStatus::Cancel);
    // input is not passed to the sink, but is part of new_messages
    assert_eq!(outcome.new_messages[0], Message::user("never mind"));
}

// ---------- compaction ----------

fn long_history() -> Vec<Message> {
    let filler = "lorem ipsum dolor sit amet ".repeat(40); // ~1080 chars
    vec![
        Message::user(format!("first question {filler}")),
        Message::assistant(format!("first answer {filler}")),
        Message::user(format!("second question {filler}")),
        Message::assistant(format!("second answer {filler}")),
    ]
}

#[tokio::test]
async fn compaction_truncate_drops_old_turns_for_this_request() {
    let provider = scripted([ScriptedResponse::text("short answer")]);
    let agent = agent(
        &provider,
        AgentLimits::default()
            .with_context_budget(Some(700))
            .with_compaction(CompactionStrategy::Truncate),
    );
    let (outcome, sink) = run(
        &agent,
        request(18)
            .with_history(long_history())
            .with_user_text("third question"),
        RunControl::default(),
    )
    .await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    let event = customs(&sink, custom::COMPACTION)[0].clone();
    assert_eq!(event["strategy"], "truncate");
    assert_eq!(event["removed_messages"], 2);
    assert!(event["estimated_tokens_before"].as_u64().unwrap() > 700);
    assert!(event["estimated_tokens_after"].as_u64().unwrap() <= 700);
    let sent = &provider.requests()[0].messages;
    assert_eq!(sent.len(), 3);
    assert!(sent[0].text().starts_with("second question"));
    // nothing persisted but the answer
    assert_eq!(sink.messages, vec![Message::assistant("short answer")]);
}

#[tokio::test]
async fn compaction_summarize_persists_the_summary() {
    let provider = scripted([
        ScriptedResponse::text("The user asked two questions about lorem ipsum."),
        ScriptedResponse::text("third answer"),
    ]);
    let agent = agent(
        &provider,
        AgentLimits::default()
            .with_context_budget(Some(700))
            .with_compaction(CompactionStrategy::Summarize),
    );
    let (outcome, sink) = run(
        &agent,
        request(19)
            .with_history(long_history())
            .with_user_text("third question"),
        RunControl::default(),
    )
    .await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    let summary = Message::new(
        Role::User,
        vec![ContentPart::Summary {
            text: "The user asked two questions about lorem ipsum.".into(),
        }],
    );
    assert_eq!(sink.messages[0], summary);
    assert_eq!(outcome.new_messages[1], summary);
    let event = customs(&sink, custom::COMPACTION)[0].clone();
    assert_eq!(event["strategy"], "summarize");
    assert_eq!(event["removed_messages"], 4);
    // the summariser got no tools; the next request starts with the summary
    let requests = provider.requests();
    assert!(requests[0].tools.is_empty());
    assert_eq!(
        requests[1].messages,
        vec![summary, Message::user("third question")]
    );
    assert_eq!(outcome.usage.get("test-model").unwrap().requests, 2);
}

#[tokio::test]
async fn compaction_summarize_falls_back_to_truncation() {
    let provider = scripted([
        ScriptedResponse::error(ProviderError::InvalidRequest {
            message: "nope".into(),
        }),
        ScriptedResponse::text("answer"),
    ]);
    let agent = agent(
        &provider,
        AgentLimits::default().with_context_budget(Some(700)),
    );
    let (outcome, sink) = run(
        &agent,
        request(20)
            .with_history(long_history())
            .with_user_text("third question"),
        RunControl::default(),
    )
    .await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    let event = customs(&sink, custom::COMPACTION)[0].clone();
    assert_eq!(event["strategy"], "truncate");
    assert_eq!(provider.requests()[1].messages.len(), 3);
}

#[tokio::test]
async fn approval_policy_always_defers_everything() {
    let provider = scripted([ScriptedResponse::builder()
        .tool_call("c1", "add", r#"{"a": 1, "b": 1}"#)
        .build()]);
    let agent = Agent::builder(provider.clone(), "m")
        .tools(tools())
        .approval(ApprovalPolicy::Always)
        .build();
    let (outcome, sink) = run(
        &agent,
        request(21).with_user_text("x"),
        RunControl::default(),
    )
    .await;
    assert_eq!(outcome.status, SessionStatus::AwaitingToolResults);
    assert_eq!(outcome.deferred_tool_calls.len(), 1);
    assert!(results(&sink).is_empty());
    match sink.events.last() {
        Some(AgentEvent::RunFinished { result, .. }) => {
            assert_eq!(result.deferred_tool_calls.len(), 1);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn interrupted_before_the_first_round_calls_no_model() {
    let provider = scripted([ScriptedResponse::text("unused")]);
    let agent = agent(&provider, AgentLimits::default());
    let control = RunControl::default();
    control.cancel.cancel();
    let (outcome, sink) = run(&agent, request(22).with_user_text("x"), control).await;
    assert_well_formed(&sink);
    assert_eq!(outcome.status, SessionStatus::Interrupted);
    assert!(provider.requests().is_empty());
    assert!(sink.messages.is_empty());
    assert_eq!(outcome.new_messages, vec![Message::user("x")]);
}

#[tokio::test]
async fn run_stream_outcome_without_consuming_events() {
    let provider = scripted([ScriptedResponse::text("hi")]);
    let agent = Arc::new(agent(&provider, AgentLimits::default()));
    let stream = agent.run_stream(request(23).with_user_text("x"), RunControl::default());
    let outcome = stream.outcome().await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    assert_eq!(outcome.new_messages.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_deadline_stops_and_keeps_what_it_produced() {
    let provider = scripted([ScriptedResponse::builder()
        .text("thinking out loud")
        .hang()
        .build()]);
    let limits = AgentLimits::default().with_run_timeout(Some(Duration::from_secs(5)));
    let (outcome, sink) = run(
        &agent(&provider, limits),
        request(90).with_user_text("go"),
        RunControl::default(),
    )
    .await;
    assert_eq!(outcome.status, SessionStatus::Failed);
    let error = outcome.error.expect("a failure");
    assert_eq!(error.code, "deadline");
    assert!(error.message.contains("5 s"), "{}", error.message);
    assert!(
        matches!(sink.events.last(), Some(AgentEvent::RunError { code: Some(c), .. }) if c == "deadline")
    );
    assert_well_formed(&sink);
    // The partial text is kept.
    assert!(
        sink.messages
            .iter()
            .any(|m| m.role == Role::Assistant && m.text() == "thinking out loud")
    );
}

#[tokio::test]
async fn a_round_over_its_output_limit_is_cut() {
    let provider = scripted([ScriptedResponse::text("x".repeat(10_000))]);
    let limits = AgentLimits::default().with_max_output_bytes(1_000);
    let (outcome, sink) = run(
        &agent(&provider, limits),
        request(91).with_user_text("go"),
        RunControl::default(),
    )
    .await;
    assert_eq!(outcome.status, SessionStatus::Failed);
    assert_eq!(outcome.error.expect("a failure").code, "output_limit");
    assert_well_formed(&sink);
    // No limit by default for an ordinary answer.
    let provider = scripted([ScriptedResponse::text("x".repeat(10_000))]);
    let (outcome, _) = run(
        &agent(&provider, AgentLimits::default()),
        request(92).with_user_text("go"),
        RunControl::default(),
    )
    .await;
    assert_eq!(outcome.status, SessionStatus::Committed);
}
