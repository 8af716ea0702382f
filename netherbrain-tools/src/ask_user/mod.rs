//! The `ask_user` tool set: the agent asks the user a question. The call
//! is deferred: the run ends `awaiting_tool_results` and any surface (the
//! web UI, a chat gateway, the API's resume with a `result` decision)
//! answers it; the answer is the tool's result and the run continues.

use std::sync::Arc;

use async_trait::async_trait;
use netherbrain_core::provider::ToolDefinition;
use netherbrain_core::schemars::{self, JsonSchema};
use netherbrain_core::tool::{DynTool, ToolContext, ToolError, ToolOutput, ToolSet};
use serde::Deserialize;
use serde_json::Value;

/// Arguments of `ask_user`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AskArgs {
    /// The question, as the user will read it.
    pub question: String,
    /// Suggested answers, if the question has a few.
    #[serde(default)]
    pub options: Vec<String>,
}

/// The `ask_user` tool set.
#[derive(Debug, Clone)]
pub struct AskUser {
    tool: Arc<AskTool>,
}

impl Default for AskUser {
    fn default() -> Self {
        Self::new()
    }
}

impl AskUser {
    /// The set.
    #[must_use]
    pub fn new() -> Self {
        let mut schema = schemars::schema_for!(AskArgs).to_value();
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("$schema");
            obj.remove("title");
        }
        Self {
            tool: Arc::new(AskTool {
                definition: ToolDefinition::new(
                    "ask_user",
                    "Asks the user a question and waits for the answer, which becomes this call's result. Use it when you need a decision or information only the user has.",
                    schema,
                ),
            }),
        }
    }
}

#[derive(Debug)]
struct AskTool {
    definition: ToolDefinition,
}

#[async_trait]
impl DynTool for AskTool {
    fn definition(&self) -> &ToolDefinition {
        &self.definition
    }

    fn deferred(&self) -> bool {
        true
    }

    async fn call_json(&self, _args: Value, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        // reached only when a client approves instead of answering
        Err(ToolError::failed(
            "the user approved the question without answering it",
        ))
    }
}

#[async_trait]
impl ToolSet for AskUser {
    fn name(&self) -> &str {
        "ask_user"
    }
    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        Ok(vec![self.tool.clone()])
    }
}
