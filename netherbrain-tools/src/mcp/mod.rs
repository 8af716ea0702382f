//! MCP servers as tools, through the official Rust SDK (`rmcp`).
//!
//! A preset declares servers in `mcp_servers` (stdio: `command`, `args`,
//! `env`; streamable HTTP: `url`, `headers`; secrets through `env_from` /
//! `headers_from_env`). [`Mcp`] is the [`McpConnector`] the catalog asks
//! for their tools whenever it builds an agent:
//!
//! - each tool becomes `mcp_<server>_<tool>`, with the server's input
//!   schema, validated by the registry like a built-in's;
//! - the tool list of a server is cached (by server name and
//!   configuration) and listed again after [`McpConnector::refresh`] or
//!   when the server announces that its tools changed;
//! - the connection belongs to the agent, and so to its run: it is opened
//!   on the first call (or when the list is not cached yet), opened again
//!   after it failed, and closed when the run ends. A stdio server runs in
//!   its own process group, killed when the connection is dropped.
//!
//! A server that cannot be started or listed is an error of
//! [`McpConnector::tools`]; the catalog logs it and skips the server.

mod connection;
mod output;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use netherbrain_core::provider::ToolDefinition;
use netherbrain_core::tool::{
    DynTool, McpConnector, McpServerConfig, ToolContext, ToolError, ToolOutput,
};
use serde_json::Value;

use connection::Connection;

/// The longest tool name OpenAI-compatible servers accept.
const MAX_TOOL_NAME: usize = 64;

/// A tool as a server listed it, before it is namespaced.
#[derive(Debug, Clone)]
struct Listed {
    name: String,
    description: String,
    schema: Value,
    read_only: bool,
}

type CacheKey = (String, String);

/// Shared between [`Mcp`] and the connections, which forget a server's list
/// when it announces a change.
#[derive(Debug, Default)]
struct ListCache {
    lists: Mutex<HashMap<CacheKey, Arc<Vec<Listed>>>>,
}

impl ListCache {
    fn get(&self, key: &CacheKey) -> Option<Arc<Vec<Listed>>> {
        self.lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn put(&self, key: CacheKey, list: Arc<Vec<Listed>>) {
        self.lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, list);
    }

    fn forget(&self, key: &CacheKey) {
        self.lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    fn clear(&self) {
        self.lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The MCP connector: register it with
/// [`AgentCatalog::with_mcp`](netherbrain_core::agent::AgentCatalog::with_mcp).
///
/// ```
/// use std::sync::Arc;
/// use netherbrain_core::agent::AgentCatalog;
/// let catalog = AgentCatalog::new().with_mcp(Arc::new(netherbrain_tools::mcp::Mcp::new()));
/// # let _ = catalog;
/// ```
#[derive(Debug, Default, Clone)]
pub struct Mcp {
    cache: Arc<ListCache>,
}

impl Mcp {
    /// A connector with an empty tool-list cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl McpConnector for Mcp {
    async fn tools(
        &self,
        server: &str,
        config: &McpServerConfig,
    ) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        config.validate().map_err(ToolError::failed)?;
        let key: CacheKey = (
            server.to_owned(),
            serde_json::to_string(config).unwrap_or_default(),
        );
        let connection = Arc::new(Connection::new(
            server,
            config.clone(),
            self.cache.clone(),
            key.clone(),
        ));
        let listed = match self.cache.get(&key) {
            Some(list) => list,
            None => {
                let list = Arc::new(connection.list_tools().await?);
                self.cache.put(key, list.clone());
                list
            }
        };
        let mut tools: Vec<Arc<dyn DynTool>> = Vec::with_capacity(listed.len());
        for tool in listed.iter() {
            let name = namespaced(server, &tool.name);
            if name.len() > MAX_TOOL_NAME {
                tracing::warn!(server, tool = %tool.name, "skipping MCP tool: `{name}` is longer than {MAX_TOOL_NAME} characters");
                continue;
            }
            tools.push(Arc::new(McpTool {
                definition: ToolDefinition::new(
                    name,
                    tool.description.clone(),
                    tool.schema.clone(),
                ),
                remote: tool.name.clone(),
                read_only: tool.read_only,
                connection: connection.clone(),
            }));
        }
        Ok(tools)
    }

    fn refresh(&self) {
        self.cache.clear();
    }
}

/// `mcp_<server>_<tool>`, with characters function names may not hold
/// replaced by `_`.
fn namespaced(server: &str, tool: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("mcp_{}_{}", clean(server), clean(tool))
}

/// One tool of an MCP server, calling it over the run's connection.
#[derive(Debug)]
struct McpTool {
    definition: ToolDefinition,
    /// The name the server knows.
    remote: String,
    read_only: bool,
    connection: Arc<Connection>,
}

#[async_trait]
impl DynTool for McpTool {
    fn definition(&self) -> &ToolDefinition {
        &self.definition
    }

    /// Tools the server marks read-only run; the others ask by default (the
    /// preset's `tool_policy` can say otherwise).
    fn requires_approval(&self) -> bool {
        !self.read_only
    }

    async fn call_json(&self, args: Value, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let Value::Object(arguments) = args else {
            return Err(ToolError::InvalidArguments(
                "the arguments must be an object".into(),
            ));
        };
        let cancel = ctx.cancel.clone();
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(ToolError::Cancelled),
            result = self.connection.call(&self.remote, arguments) => result,
        }
    }
}

/// The listed form of a server's tool: its schema made usable as an
/// argument schema (a missing root `type` becomes `object`).
fn listed(tool: rmcp::model::Tool) -> Listed {
    let mut schema = Value::Object((*tool.input_schema).clone());
    if let Some(obj) = schema.as_object_mut() {
        obj.entry("type")
            .or_insert_with(|| Value::String("object".into()));
        obj.remove("$schema");
    }
    let read_only = tool
        .annotations
        .as_ref()
        .and_then(|a| a.read_only_hint)
        .unwrap_or(false);
    Listed {
        description: tool
            .description
            .as_deref()
            .map_or_else(|| tool.name.to_string(), str::to_owned),
        name: tool.name.into_owned(),
        schema,
        read_only,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_and_cleaned() {
        assert_eq!(namespaced("git", "log"), "mcp_git_log");
        assert_eq!(namespaced("docs", "search.v2 x"), "mcp_docs_search_v2_x");
    }
}
