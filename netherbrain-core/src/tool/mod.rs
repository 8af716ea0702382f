//! Tools the model can call.
//!
//! Authors implement the typed [`Tool`] trait: an argument type deriving
//! [`JsonSchema`](schemars::JsonSchema) and [`Deserialize`](serde::Deserialize),
//! a description, and an async `call`. The [`ToolRegistry`] erases tools
//! into [`DynTool`] (the object-safe form the loop calls with JSON), generates
//! each schema once and validates arguments against it before every call.
//! Sources of several tools (an MCP server, say) implement [`ToolSet`].

mod context;
mod mcp;
mod registry;

use std::fmt;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use context::{ToolContext, ToolEvents};
pub use mcp::{McpConnector, McpServerConfig, valid_mcp_server_name};
pub use registry::{RegistryError, ToolRegistry};

use crate::provider::ToolDefinition;

/// What a tool call produced, as text for the model.
///
/// ```
/// use netherbrain_core::tool::ToolOutput;
/// let out = ToolOutput::json(&serde_json::json!({"sum": 3}));
/// assert_eq!(out.content, r#"{"sum":3}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolOutput {
    /// The text the model reads.
    pub content: String,
}

impl ToolOutput {
    /// Text output.
    ///
    /// ```
    /// let out = netherbrain_core::tool::ToolOutput::text("done");
    /// assert_eq!(out.content, "done");
    /// ```
    #[must_use]
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
        }
    }

    /// JSON output, serialized compactly.
    ///
    /// ```
    /// let out = netherbrain_core::tool::ToolOutput::json(&vec![1, 2]);
    /// assert_eq!(out.content, "[1,2]");
    /// ```
    #[must_use]
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        Self {
            content: serde_json::to_string(value)
                .unwrap_or_else(|e| format!("unserializable output: {e}")),
        }
    }
}

impl From<String> for ToolOutput {
    fn from(content: String) -> Self {
        Self::text(content)
    }
}

impl From<&str> for ToolOutput {
    fn from(content: &str) -> Self {
        Self::text(content)
    }
}

/// Why a tool call failed. The loop turns every variant into an error
/// result the model reads; none of them fails the run.
///
/// ```
/// use netherbrain_core::tool::ToolError;
/// let e = ToolError::failed("disk full");
/// assert_eq!(e.to_string(), "disk full");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The arguments do not match the tool's schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// No tool has this name.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The call took longer than the per-tool timeout.
    #[error("the tool timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The run was interrupted.
    #[error("the tool call was cancelled")]
    Cancelled,
    /// The tool ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    /// A [`ToolError::Failed`] with a message for the model.
    ///
    /// ```
    /// let e = netherbrain_core::tool::ToolError::failed("no such file");
    /// # let _ = e;
    /// ```
    #[must_use]
    pub fn failed(message: impl fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }
}

/// A typed tool.
///
/// ```
/// use netherbrain_core::tool::{Tool, ToolContext, ToolError, ToolOutput};
/// use netherbrain_core::schemars::JsonSchema;
/// use serde::Deserialize;
///
/// /// Arguments of [`Add`].
/// #[derive(Deserialize, JsonSchema)]
/// struct AddArgs {
///     /// First addend.
///     a: i64,
///     /// Second addend.
///     b: i64,
/// }
///
/// /// Adds two integers.
/// #[derive(Debug)]
/// struct Add;
///
/// #[async_trait::async_trait]
/// impl Tool for Add {
///     type Args = AddArgs;
///     fn name(&self) -> &str { "add" }
///     fn description(&self) -> &str { "Adds two integers" }
///     async fn call(&self, args: AddArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
///         Ok(ToolOutput::text((args.a + args.b).to_string()))
///     }
/// }
/// ```
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// The arguments. Its schema must describe a JSON object.
    type Args: DeserializeOwned + schemars::JsonSchema + Send;

    /// Unique name the model uses.
    fn name(&self) -> &str;

    /// What the tool does, for the model.
    fn description(&self) -> &str;

    /// Whether each call needs the user's approval first.
    fn requires_approval(&self) -> bool {
        false
    }

    /// Runs the tool.
    async fn call(&self, args: Self::Args, ctx: ToolContext) -> Result<ToolOutput, ToolError>;
}

/// The object-safe form of a tool, called with JSON arguments.
///
/// [`ToolRegistry`] wraps typed [`Tool`]s into this; implement it directly for
/// tools whose schema is only known at run time (MCP tools, HTTP callbacks).
/// Arguments are validated against [`definition`](Self::definition) before
/// [`call_json`](Self::call_json) is called.
#[async_trait]
pub trait DynTool: Send + Sync + fmt::Debug {
    /// Name, description and argument schema.
    fn definition(&self) -> &ToolDefinition;

    /// Whether each call needs the user's approval first.
    fn requires_approval(&self) -> bool {
        false
    }

    /// Whether calls are answered outside the run (by the user or the API
    /// client, like `ask_user`): the run ends `awaiting_tool_results` and a
    /// resume with a `result` decision answers it.
    fn deferred(&self) -> bool {
        false
    }

    /// Runs the tool with validated arguments.
    async fn call_json(&self, args: Value, ctx: ToolContext) -> Result<ToolOutput, ToolError>;
}

/// A source of several tools, such as an MCP server.
#[async_trait]
pub trait ToolSet: Send + Sync + fmt::Debug {
    /// Name used in presets to enable the set.
    fn name(&self) -> &str;

    /// The tools the set offers now.
    async fn tools(&self) -> Result<Vec<std::sync::Arc<dyn DynTool>>, ToolError>;
}
