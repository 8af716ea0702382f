//! MCP servers a preset declares, and the connector that turns them into
//! tools.
//!
//! Core only describes a server ([`McpServerConfig`]) and the interface a
//! connector implements ([`McpConnector`]); the connector itself (the
//! `rmcp` client) lives in `netherbrain-tools`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DynTool, ToolError};

/// One MCP server: a command started over stdio (`command`, `args`, `env`)
/// or a streamable-HTTP endpoint (`url`, `headers`). Secrets stay out of
/// the preset: `env_from` and `headers_from_env` name variables of the
/// server's own environment whose values are read when the server is
/// connected.
///
/// ```
/// use netherbrain_core::tool::McpServerConfig;
/// let stdio: McpServerConfig = serde_json::from_value(serde_json::json!({
///     "command": "mcp-server-git", "args": ["--repository", "."]
/// })).unwrap();
/// assert!(stdio.validate().is_ok());
/// let http = McpServerConfig::http("http://127.0.0.1:8000/mcp")
///     .with_header_from_env("Authorization", "DOCS_MCP_TOKEN");
/// assert!(http.validate().is_ok());
/// assert!(McpServerConfig::default().validate().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct McpServerConfig {
    /// Program to start (stdio transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Variables set for the program (besides `PATH`, `HOME` and `LANG`;
    /// nothing else of the server's environment is passed on).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Variables set for the program from the server's environment:
    /// program variable → server variable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_from: BTreeMap<String, String>,
    /// Working directory of the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Endpoint URL (streamable-HTTP transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Headers sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Headers whose values come from the server's environment:
    /// header → server variable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_from_env: BTreeMap<String, String>,
    /// Seconds to wait for the server to start and list its tools, and for
    /// one call (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

impl McpServerConfig {
    /// A stdio server started with `command`.
    ///
    /// ```
    /// let s = netherbrain_core::tool::McpServerConfig::stdio("my-server").with_args(["--fast"]);
    /// assert_eq!(s.args, ["--fast"]);
    /// ```
    #[must_use]
    pub fn stdio(command: impl Into<String>) -> Self {
        Self {
            command: Some(command.into()),
            ..Self::default()
        }
    }

    /// A streamable-HTTP server at `url`.
    ///
    /// ```
    /// let s = netherbrain_core::tool::McpServerConfig::http("http://127.0.0.1:9/mcp");
    /// assert!(s.command.is_none());
    /// ```
    #[must_use]
    pub fn http(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::default()
        }
    }

    /// Sets the program's arguments.
    #[must_use]
    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets one variable of the program.
    #[must_use]
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Sets one variable of the program from the server's environment.
    #[must_use]
    pub fn with_env_from(mut self, name: impl Into<String>, server_var: impl Into<String>) -> Self {
        self.env_from.insert(name.into(), server_var.into());
        self
    }

    /// Sets one header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets one header from the server's environment.
    #[must_use]
    pub fn with_header_from_env(
        mut self,
        name: impl Into<String>,
        server_var: impl Into<String>,
    ) -> Self {
        self.headers_from_env.insert(name.into(), server_var.into());
        self
    }

    /// Sets the start and call timeout.
    #[must_use]
    pub fn with_timeout_secs(mut self, secs: u64) -> Self {
        self.timeout_secs = Some(secs);
        self
    }

    /// Checks that exactly one transport is described and that no secret
    /// of the server itself (`NETHER_*`) is passed on.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => return Err("give either `command` or `url`, not both".into()),
            (None, None) => return Err("give `command` (stdio) or `url` (streamable HTTP)".into()),
            (Some(c), None) if c.trim().is_empty() => return Err("`command` is empty".into()),
            (None, Some(u)) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                return Err("`url` must be http:// or https://".into());
            }
            _ => {}
        }
        if self.url.is_some()
            && (!self.args.is_empty()
                || !self.env.is_empty()
                || !self.env_from.is_empty()
                || self.cwd.is_some())
        {
            return Err("`args`, `env`, `env_from` and `cwd` apply to `command` only".into());
        }
        if self.command.is_some() && (!self.headers.is_empty() || !self.headers_from_env.is_empty())
        {
            return Err("`headers` and `headers_from_env` apply to `url` only".into());
        }
        if let Some(var) = self
            .env_from
            .values()
            .chain(self.headers_from_env.values())
            .find(|v| v.starts_with("NETHER_"))
        {
            return Err(format!(
                "`{var}`: the server's own NETHER_* variables cannot be passed on"
            ));
        }
        Ok(())
    }
}

/// The schema states what [`McpServerConfig::validate`] checks: a stdio
/// server (`command`, with `args`, `env`, `env_from`, `cwd`) or a
/// streamable-HTTP one (an `http(s)://` `url`, with `headers`,
/// `headers_from_env`), never `NETHER_*` variables passed on.
impl JsonSchema for McpServerConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "McpServerConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let strings =
            serde_json::json!({"type": "object", "additionalProperties": {"type": "string"}});
        let own_vars = serde_json::json!({
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": "^(?!NETHER_)"}
        });
        let none = serde_json::json!({"type": "object", "maxProperties": 0});
        let timeout = serde_json::json!({"type": ["integer", "null"], "minimum": 0});
        schemars::json_schema!({
            "description": "An MCP server: `command` (stdio) or `url` (streamable HTTP), not both.",
            "oneOf": [
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["command"],
                    "properties": {
                        "command": {"type": "string", "pattern": "\\S"},
                        "args": {"type": "array", "items": {"type": "string"}},
                        "env": strings,
                        "env_from": own_vars,
                        "cwd": {"type": ["string", "null"]},
                        "url": {"type": "null"},
                        "headers": none,
                        "headers_from_env": none,
                        "timeout_secs": timeout
                    }
                },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["url"],
                    "properties": {
                        "url": {"type": "string", "pattern": "^https?://"},
                        "headers": strings,
                        "headers_from_env": own_vars,
                        "command": {"type": "null"},
                        "args": {"type": "array", "maxItems": 0},
                        "env": none,
                        "env_from": none,
                        "cwd": {"type": "null"},
                        "timeout_secs": timeout
                    }
                }
            ]
        })
    }
}

/// Whether a name can be an MCP server's name in a preset: ASCII letters,
/// digits and `-`, 1 to 32 characters (it becomes part of tool names).
///
/// ```
/// use netherbrain_core::tool::valid_mcp_server_name;
/// assert!(valid_mcp_server_name("git-2"));
/// assert!(!valid_mcp_server_name("a b"));
/// assert!(!valid_mcp_server_name(""));
/// ```
#[must_use]
pub fn valid_mcp_server_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Turns a preset's MCP servers into tools.
///
/// The catalog calls [`tools`](Self::tools) for each server of a preset
/// every time it builds an agent; the tools it returns belong to that agent
/// (and so to its run): a connector may start a process for them and stop it
/// when the last of them is dropped. A server that fails is logged and
/// skipped by the catalog, never fatal.
#[async_trait]
pub trait McpConnector: Send + Sync + fmt::Debug {
    /// The tools of one server, named `mcp_<server>_<tool>`.
    ///
    /// # Errors
    ///
    /// The server could not be started, reached or listed.
    async fn tools(
        &self,
        server: &str,
        config: &McpServerConfig,
    ) -> Result<Vec<Arc<dyn DynTool>>, ToolError>;

    /// Forgets cached tool lists, so the next agents list them again.
    fn refresh(&self) {}
}
