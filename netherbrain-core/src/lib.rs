//! # netherbrain-core
//!
//! The Netherbrain SDK: everything needed to run LLM agents with tools from
//! any Rust program, and the traits every other Netherbrain crate adapts.
//!
//! Start with:
//! - [`provider::Provider`] — one streaming call to a model; adapters for
//!   OpenAI-compatible servers ([`provider::openai`], feature `openai`) and
//!   Anthropic ([`provider::anthropic`], feature `anthropic`).
//! - [`tool::Tool`] — a typed tool; [`tool::ToolRegistry`] validates
//!   arguments and runs calls.
//! - [`agent`] — the loop that runs model rounds and tools, emitting
//!   [`AgentEvent`]s (AG-UI vocabulary).
//! - [`store::StateStore`] — persistence, with [`store::MemoryStore`].
//! - [`channel::Channel`] — a chat platform, for gateways.
//! - [`runtime`] — the session registry: one run per conversation,
//!   subscriptions with replay, interrupt, steer and drain.
//! - [`conversation`] — the conversation service: the use-cases every
//!   surface calls (send, resume, interrupt, steer, fork, turns, summarize,
//!   follow), with ownership checked once.
//! - [`cluster`] — replicas sharing one deployment: live events and
//!   commands across processes.
//! - [`auth`] — the acting [`auth::Principal`], API keys, bootstrap.
//!
//! With `default-features = false` the crate pulls no HTTP client.

#![warn(missing_docs)]

pub mod agent;
pub mod auth;
pub mod channel;
pub mod cluster;
pub mod conversation;
mod event;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod ids;
pub mod memory;
mod message;
mod preset;
pub mod provider;
pub mod runtime;
mod session;
pub mod store;
pub mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tool;
mod usage;
pub mod workspace;

pub use event::{AgentEvent, EventEnvelope, RunResult, SubagentCompleted, SubagentStarted, custom};
pub use ids::{
    ApiKeyId, ConversationId, EventSeq, MailboxId, MemoryId, ParseIdError, PresetId, SessionId,
    TaskId, UserId, WorkspaceId,
};
pub use message::{
    ContentPart, ImageSource, Message, Role, ToolCall, ToolResult, ToolResultStatus,
};
pub use preset::{ApprovalPolicy, MemorySettings, PresetConfig, ToolPolicy};
pub use provider::{FinishReason, ProviderError};
pub use session::{ParseStatusError, SessionStatus};
pub use usage::{Usage, UsageByModel};

/// Re-exported so tool authors can derive `JsonSchema` without adding the
/// dependency themselves.
pub use schemars;

/// The examples of `docs/sdk.md`, compiled and run as doc tests so the
/// guide stays true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/sdk.md")]
mod sdk_guide {}
