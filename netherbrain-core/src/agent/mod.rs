//! The agent loop: model rounds, tool execution, interrupt, steer,
//! approval and context compaction.

mod limits;

pub use limits::{AgentLimits, CompactionStrategy};
