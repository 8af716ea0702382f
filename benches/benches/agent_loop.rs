//! Agent loop overhead: per model round, per tool call, and tool-call
//! accumulation throughput. All providers and tools are in-process and do
//! no work, so the figures are the loop's own cost.
//!
//! Run: `cargo bench -p netherbrain-benches -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use netherbrain_core::agent::{Agent, AgentLimits, NullSink, RunControl, RunRequest};
use netherbrain_core::provider::{
    ModelRequest, Provider, ProviderEvent, ProviderStream, ResponseAccumulator,
};
use netherbrain_core::testing::InstantProvider;
use netherbrain_core::tool::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
use netherbrain_core::{ConversationId, FinishReason, Role, SessionId, SessionStatus};
use serde::Deserialize;

/// No arguments.
#[derive(Deserialize, schemars::JsonSchema)]
struct NoArgs {}

/// A tool that does nothing.
#[derive(Debug)]
struct Noop;

#[async_trait]
impl Tool for Noop {
    type Args = NoArgs;
    fn name(&self) -> &str {
        "noop"
    }
    fn description(&self) -> &str {
        "Does nothing"
    }
    async fn call(&self, _args: NoArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        Ok("ok".into())
    }
}

/// Answers the first request with `calls` parallel `noop` calls, then "done".
#[derive(Debug)]
struct FanOut {
    calls: usize,
}

impl Provider for FanOut {
    fn name(&self) -> &str {
        "fan-out"
    }

    fn stream(&self, request: ModelRequest) -> ProviderStream {
        let answered = request.messages.iter().any(|m| m.role == Role::Tool);
        let mut events = Vec::new();
        if answered {
            events.push(ProviderEvent::TextDelta("done".into()));
            events.push(ProviderEvent::Finish(FinishReason::Stop));
        } else {
            for index in 0..self.calls {
                events.push(ProviderEvent::ToolCallStart {
                    index,
                    id: Some(format!("call_{index}")),
                    name: Some("noop".into()),
                });
                events.push(ProviderEvent::ToolCallArgs {
                    index,
                    fragment: "{}".into(),
                });
                events.push(ProviderEvent::ToolCallEnd { index });
            }
            events.push(ProviderEvent::Finish(FinishReason::ToolCalls));
        }
        futures::stream::iter(events.into_iter().map(Ok)).boxed()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

fn agent(provider: Arc<dyn Provider>, rounds: u32) -> Agent {
    Agent::builder(provider, "bench-model")
        .system_prompt("You are a benchmark.")
        .tools(ToolRegistry::new().with(Noop).expect("tool"))
        .limits(AgentLimits::default().with_max_tool_rounds(rounds + 1))
        .build()
}

async fn run_once(agent: &Agent) {
    let request = RunRequest::new(ConversationId::new(), SessionId::new()).with_user_text("go");
    let outcome = agent
        .run(request, RunControl::default(), &mut NullSink)
        .await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    black_box(outcome);
}

/// (a) A run of N tool rounds plus the final answer; throughput is model
/// rounds, so the reported time per element is the cost of one round
/// (model call, events, one trivial tool call, persistence).
fn loop_rounds(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("loop_per_round");
    for rounds in [1u32, 10] {
        let agent = agent(
            Arc::new(InstantProvider::new(rounds as usize, "noop")),
            rounds,
        );
        group.throughput(Throughput::Elements(u64::from(rounds) + 1));
        group.bench_with_input(BenchmarkId::from_parameter(rounds), &agent, |b, agent| {
            b.to_async(&rt).iter(|| run_once(agent));
        });
    }
    group.finish();
}

/// (a') The same through the session runtime and the memory store: a run
/// is recorded, every event numbered, shown to subscribers and persisted
/// with its turn. Throughput is model rounds.
fn runtime_rounds(c: &mut Criterion) {
    use netherbrain_core::Message;
    use netherbrain_core::runtime::{Runtime, StartRun};
    use netherbrain_core::store::prelude::*;
    use netherbrain_core::store::{MemoryStore, NewConversation, NewUser, UserRole};

    // One thread: the figure is the CPU cost of the runtime path, not the
    // latency of waking tasks on other worker threads.
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let user = rt
        .block_on(store.create_user(NewUser::new("bench", UserRole::User)))
        .expect("user");
    let runtime = Runtime::new(store.clone());
    let mut group = c.benchmark_group("runtime_memory_store_per_round");
    for rounds in [1u32, 10] {
        let agent = Arc::new(agent(
            Arc::new(InstantProvider::new(rounds as usize, "noop")),
            rounds,
        ));
        group.throughput(Throughput::Elements(u64::from(rounds) + 1));
        group.bench_with_input(BenchmarkId::from_parameter(rounds), &agent, |b, agent| {
            b.to_async(&rt).iter(|| async {
                let conversation = store
                    .create_conversation(NewConversation::new(user.id))
                    .await
                    .expect("conversation");
                let run = runtime
                    .start(StartRun::new(
                        conversation.id,
                        agent.clone(),
                        vec![Message::user("go")],
                    ))
                    .await
                    .expect("start");
                let session = runtime.wait(run.session_id).await.expect("wait");
                assert_eq!(session.status, SessionStatus::Committed);
                black_box(session);
            });
        });
    }
    group.finish();
}

/// One round with K parallel trivial calls; compare K=1 and K=16 for the
/// marginal cost of one call (accumulation, validation, execution, result
/// event and persistence).
fn loop_tool_calls(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("loop_parallel_calls");
    for calls in [1usize, 16] {
        let agent = agent(Arc::new(FanOut { calls }), 1);
        group.throughput(Throughput::Elements(calls as u64));
        group.bench_with_input(BenchmarkId::from_parameter(calls), &agent, |b, agent| {
            b.to_async(&rt).iter(|| run_once(agent));
        });
    }
    group.finish();
}

/// (b) Accumulating streamed tool calls: 64 calls, arguments in 16
/// fragments each, interleaved two at a time.
fn accumulation(c: &mut Criterion) {
    const CALLS: usize = 64;
    const FRAGMENTS: usize = 16;
    let args = serde_json::json!({
        "path": "/srv/project/src/main.rs",
        "content": "fn main() { println!(\"hello\"); }",
        "mode": "overwrite",
    })
    .to_string();
    let step = args.len().div_ceil(FRAGMENTS);
    let fragments: Vec<String> = args
        .as_bytes()
        .chunks(step)
        .map(|c| String::from_utf8(c.to_vec()).expect("ascii"))
        .collect();
    let mut events = Vec::new();
    for pair in (0..CALLS).step_by(2) {
        for index in [pair, pair + 1] {
            events.push(ProviderEvent::ToolCallStart {
                index,
                id: Some(format!("call_{index}")),
                name: Some("write_file".into()),
            });
        }
        for fragment in &fragments {
            for index in [pair, pair + 1] {
                events.push(ProviderEvent::ToolCallArgs {
                    index,
                    fragment: fragment.clone(),
                });
            }
        }
        for index in [pair, pair + 1] {
            events.push(ProviderEvent::ToolCallEnd { index });
        }
    }
    events.push(ProviderEvent::Finish(FinishReason::ToolCalls));

    let mut group = c.benchmark_group("accumulator");
    group.throughput(Throughput::Elements(CALLS as u64));
    group.bench_function("per_tool_call", |b| {
        b.iter_batched(
            || events.clone(),
            |events| {
                let mut acc = ResponseAccumulator::new();
                let mut updates = 0usize;
                for event in events {
                    updates += acc.push(event).len();
                }
                let response = acc.finish();
                assert_eq!(response.tool_calls.len(), CALLS);
                black_box((updates, response))
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// `ToolRegistry::call` alone (schema validation, timeout, cancellation
/// watch), to separate it from the loop's share of a call.
fn registry_call(c: &mut Criterion) {
    let rt = runtime();
    let tools = ToolRegistry::new().with(Noop).expect("tool");
    let timeout = std::time::Duration::from_secs(60);
    c.bench_function("registry_call", |b| {
        b.to_async(&rt).iter(|| async {
            let out = tools
                .call(
                    "noop",
                    serde_json::json!({}),
                    ToolContext::default(),
                    timeout,
                )
                .await;
            black_box(out.expect("ok"))
        });
    });
}

criterion_group!(
    benches,
    loop_rounds,
    runtime_rounds,
    loop_tool_calls,
    accumulation,
    registry_call
);
criterion_main!(benches);
