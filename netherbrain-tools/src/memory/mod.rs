//! The `memory` tool set: the agent keeps long-term memories of its user
//! across conversations — `memory_remember`, `memory_recall`,
//! `memory_forget`.
//!
//! Every call acts for the user who owns the run's conversation (read from
//! the store through the run's server-owned context, never from the
//! arguments), within the conversation's workspace; another user's
//! memories can be neither seen nor forgotten. Limits, embeddings and
//! ranking are core's [`Memories`].

use std::sync::Arc;

use async_trait::async_trait;
use netherbrain_core::MemoryId;
use netherbrain_core::conversation::ServiceError;
use netherbrain_core::memory::Memories;
use netherbrain_core::schemars::{self, JsonSchema};
use netherbrain_core::store::MemoryRecord;
use netherbrain_core::tool::{
    DynTool, RegistryError, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSet,
};
use serde::Deserialize;
use serde_json::json;

/// Most memories `memory_recall` returns.
pub const MAX_RECALL: u32 = 20;

/// The `memory` tool set.
#[derive(Debug, Clone)]
pub struct MemoryTools {
    memories: Memories,
}

impl MemoryTools {
    /// The set over the server's memories.
    #[must_use]
    pub fn new(memories: Memories) -> Self {
        Self { memories }
    }

    /// The tools as a registry.
    ///
    /// # Errors
    ///
    /// Never in practice.
    pub fn registry(&self) -> Result<ToolRegistry, RegistryError> {
        ToolRegistry::new()
            .with(Remember(self.memories.clone()))?
            .with(Recall(self.memories.clone()))?
            .with(Forget(self.memories.clone()))
    }
}

#[async_trait]
impl ToolSet for MemoryTools {
    fn name(&self) -> &str {
        "memory"
    }
    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        let r = self
            .registry()
            .map_err(|e| ToolError::failed(e.to_string()))?;
        Ok(["memory_remember", "memory_recall", "memory_forget"]
            .iter()
            .filter_map(|n| r.get(n).cloned())
            .collect())
    }
}

/// A refusal or failure as the model reads it.
fn refused(e: ServiceError) -> ToolError {
    ToolError::failed(e)
}

/// One memory as the model sees it.
fn view(m: &MemoryRecord) -> serde_json::Value {
    json!({
        "id": m.id,
        "content": m.content,
        "created_at": m.created_at,
    })
}

/// Arguments of `memory_remember`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RememberArgs {
    /// What to remember, as one self-contained statement about the user
    /// or their work ("Ada prefers answers in German").
    pub content: String,
}

#[derive(Debug)]
struct Remember(Memories);

#[async_trait]
impl Tool for Remember {
    type Args = RememberArgs;
    fn name(&self) -> &str {
        "memory_remember"
    }
    fn description(&self) -> &str {
        "Stores a long-term memory about the user (a preference, a fact, a decision) that later conversations can recall. Keep each memory short and self-contained."
    }
    async fn call(&self, args: RememberArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let (owner, workspace) = self
            .0
            .run_owner(ctx.conversation_id)
            .await
            .map_err(refused)?;
        let memory = self
            .0
            .remember(
                owner,
                workspace,
                &args.content,
                Some(ctx.conversation_id),
                Some(ctx.session_id),
            )
            .await
            .map_err(refused)?;
        Ok(ToolOutput::json(&json!({ "remembered": view(&memory) })))
    }
}

/// Arguments of `memory_recall`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecallArgs {
    /// Words to look for.
    pub query: String,
    /// Most memories to return (default 5, at most 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 20))]
    pub limit: Option<u32>,
}

#[derive(Debug)]
struct Recall(Memories);

#[async_trait]
impl Tool for Recall {
    type Args = RecallArgs;
    fn name(&self) -> &str {
        "memory_recall"
    }
    fn description(&self) -> &str {
        "Searches the user's long-term memories and returns the most relevant ones with their ids."
    }
    async fn call(&self, args: RecallArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let (owner, workspace) = self
            .0
            .run_owner(ctx.conversation_id)
            .await
            .map_err(refused)?;
        let limit = args.limit.unwrap_or(5).clamp(1, MAX_RECALL);
        let found = self
            .0
            .recall(owner, workspace, &args.query, limit)
            .await
            .map_err(refused)?;
        let memories: Vec<_> = found.iter().map(view).collect();
        Ok(ToolOutput::json(&json!({ "memories": memories })))
    }
}

/// Arguments of `memory_forget`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgetArgs {
    /// The id of the memory (from `memory_recall`).
    pub id: String,
}

#[derive(Debug)]
struct Forget(Memories);

#[async_trait]
impl Tool for Forget {
    type Args = ForgetArgs;
    fn name(&self) -> &str {
        "memory_forget"
    }
    fn description(&self) -> &str {
        "Deletes one of the user's long-term memories by its id (from memory_recall), e.g. when it is wrong or the user asks to forget it."
    }
    async fn call(&self, args: ForgetArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let id: MemoryId = args
            .id
            .trim()
            .parse()
            .map_err(|_| ToolError::failed(format!("`{}` is not a memory id", args.id)))?;
        let (owner, _) = self
            .0
            .run_owner(ctx.conversation_id)
            .await
            .map_err(refused)?;
        self.0.forget(owner, id).await.map_err(|e| match e {
            ServiceError::Store(s) if s.is_not_found() => {
                ToolError::failed(format!("no memory `{id}`"))
            }
            other => refused(other),
        })?;
        Ok(ToolOutput::json(&json!({ "forgotten": id })))
    }
}
