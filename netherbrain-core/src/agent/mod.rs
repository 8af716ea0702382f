//! The agent loop: model rounds, tool execution, interrupt, steer,
//! approval and context compaction.
//!
//! An [`Agent`] holds what does not change between runs (provider, model,
//! system prompt, tools, approval policy, limits). [`Agent::run`] executes
//! one run: it streams model rounds, runs the tools the model asks for
//! (concurrently, bounded), and repeats until the model answers without
//! tools. Everything it produces goes to a [`RunSink`] as it happens:
//! [`AgentEvent`](crate::AgentEvent)s in the AG-UI vocabulary and every
//! completed message, so the caller can persist a run incrementally.
//! [`Agent::run_stream`] runs on a spawned task and hands out the events as
//! a [`Stream`](futures::Stream) instead.
//!
//! ```
//! use std::sync::Arc;
//! use netherbrain_core::agent::{Agent, CollectingSink, RunControl, RunRequest};
//! use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
//! use netherbrain_core::{ConversationId, SessionId, SessionStatus};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let provider = Arc::new(ScriptedProvider::new([ScriptedResponse::text("Hello!")]));
//! let agent = Agent::builder(provider, "test-model").system_prompt("Be brief.").build();
//! let request = RunRequest::new(ConversationId::new(), SessionId::new()).with_user_text("Hi");
//! let mut sink = CollectingSink::new();
//! let outcome = agent.run(request, RunControl::default(), &mut sink).await;
//! assert_eq!(outcome.status, SessionStatus::Committed);
//! assert_eq!(outcome.final_message.as_deref(), Some("Hello!"));
//! assert_eq!(sink.event_types().first(), Some(&"RUN_STARTED"));
//! assert_eq!(sink.event_types().last(), Some(&"RUN_FINISHED"));
//! # });
//! ```
//!
//! # Run semantics
//!
//! - **History**: only the messages from the last one holding a
//!   [`Summary`](crate::ContentPart::Summary) on are sent; calls left without
//!   a result get a synthetic `cancel` result in the request.
//! - **Tools**: the calls of one round run concurrently, at most
//!   [`AgentLimits::max_parallel_tool_calls`] at once, each bounded by
//!   [`AgentLimits::tool_timeout`]. Malformed arguments, unknown tools,
//!   invalid arguments, timeouts and tool failures become `error` results
//!   for the model, never a failed run.
//! - **Interrupt** ([`RunControl::cancel`]): the run stops at once; partial
//!   text is kept, unfinished calls get `cancel` results, status
//!   `interrupted`.
//! - **Steer** ([`RunControl::steering`]): queued text becomes a user
//!   message at the next model-round boundary (also when the model had
//!   finished: it then gets another round).
//! - **Approval**: calls that need approval are deferred and the run ends
//!   `awaiting_tool_results`; a later run with [`RunRequest::resume`]
//!   decisions executes, denies or answers them and continues.
//! - **Compaction**: when history and input exceed
//!   [`AgentLimits::context_budget`] (estimated at ~4 characters per token)
//!   before the first model call, older messages are truncated for this
//!   request or summarised into a persisted summary message.

mod builder;
mod catalog;
mod history;
mod limits;
mod request;
mod run;
mod sink;
mod stream;

pub use builder::{Agent, AgentBuilder};
pub use catalog::{AgentCatalog, CatalogError, ProfileInfo};
pub use limits::{AgentLimits, CompactionStrategy};
pub use request::{
    RunControl, RunFailure, RunOutcome, RunRequest, SteeringQueue, ToolDecision, pending_tool_calls,
};
pub use sink::{CollectingSink, NullSink, RunSink, SinkError};
pub use stream::RunStream;
