//! Presets: named agent configurations.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::AgentLimits;
use crate::provider::ModelSettings;
use crate::tool::McpServerConfig;

/// Which tool calls need the user's approval before they run.
///
/// ```
/// use netherbrain_core::ApprovalPolicy;
/// let p = ApprovalPolicy::Tools { names: vec!["shell".into()] };
/// assert!(p.requires_approval("shell", false));
/// assert!(!p.requires_approval("clock", false));
/// assert!(ApprovalPolicy::ToolDefault.requires_approval("rm", true));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ApprovalPolicy {
    /// Each tool decides ([`crate::tool::Tool::requires_approval`]).
    #[default]
    ToolDefault,
    /// Every tool call needs approval.
    Always,
    /// No tool call needs approval.
    Never,
    /// These tools need approval, as do tools that ask for it.
    Tools {
        /// Tool names.
        names: Vec<String>,
    },
}

impl ApprovalPolicy {
    /// Whether a call of `tool` needs approval, given whether the tool itself
    /// asks for it.
    #[must_use]
    pub fn requires_approval(&self, tool: &str, tool_asks: bool) -> bool {
        match self {
            Self::ToolDefault => tool_asks,
            Self::Always => true,
            Self::Never => false,
            Self::Tools { names } => tool_asks || names.iter().any(|n| n == tool),
        }
    }
}

/// What happens when the model calls a tool, per preset and tool: set in
/// [`PresetConfig::tool_policy`], enforced by the agent loop (never by the
/// tool), so an agent cannot change its own policy.
///
/// ```
/// use netherbrain_core::ToolPolicy;
/// let p: ToolPolicy = serde_json::from_str("\"deny\"").unwrap();
/// assert_eq!(p, ToolPolicy::Deny);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolPolicy {
    /// Runs without asking.
    Auto,
    /// Waits for the user's approval (the run ends `awaiting_tool_results`).
    Ask,
    /// Never runs; the model gets a `denied` result.
    Deny,
}

impl PresetConfig {
    /// The policy for a call of `tool`: the preset's entry for the tool's
    /// name, else its `"*"` entry, else [`ApprovalPolicy`] with the tool's
    /// own default (`tool_asks`: shell and writing tools ask).
    ///
    /// ```
    /// use netherbrain_core::{PresetConfig, ToolPolicy};
    /// let mut cfg = PresetConfig::new("p", "m");
    /// cfg.tool_policy.insert("shell_run".into(), ToolPolicy::Deny);
    /// assert_eq!(cfg.policy_for("shell_run", true), ToolPolicy::Deny);
    /// assert_eq!(cfg.policy_for("filesystem_write", true), ToolPolicy::Ask);
    /// assert_eq!(cfg.policy_for("filesystem_view", false), ToolPolicy::Auto);
    /// ```
    #[must_use]
    pub fn policy_for(&self, tool: &str, tool_asks: bool) -> ToolPolicy {
        resolve_policy(&self.tool_policy, &self.approval, tool, tool_asks)
    }
}

/// See [`PresetConfig::policy_for`].
pub(crate) fn resolve_policy(
    policies: &BTreeMap<String, ToolPolicy>,
    approval: &ApprovalPolicy,
    tool: &str,
    tool_asks: bool,
) -> ToolPolicy {
    if let Some(p) = policies.get(tool).or_else(|| policies.get("*")) {
        return *p;
    }
    if approval.requires_approval(tool, tool_asks) {
        ToolPolicy::Ask
    } else {
        ToolPolicy::Auto
    }
}

/// The agent configuration a preset names: which model, how to prompt it,
/// which tools it gets and the limits of a run.
///
/// ```
/// use netherbrain_core::PresetConfig;
/// let cfg = PresetConfig::new("openai", "gpt-4o-mini").with_system_prompt("You are helpful.");
/// let toml_like = serde_json::to_value(&cfg).unwrap();
/// assert_eq!(toml_like["model"], "gpt-4o-mini");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct PresetConfig {
    /// Name of the provider profile (from configuration).
    pub profile: String,
    /// Model name as the provider knows it.
    pub model: String,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Sampling and output settings.
    #[serde(default)]
    pub settings: ModelSettings,
    /// Names of the tool sets the agent gets.
    #[serde(default)]
    pub toolsets: Vec<String>,
    /// Which calls need approval.
    #[serde(default)]
    pub approval: ApprovalPolicy,
    /// Per-tool policy (`auto`, `ask`, `deny`) by tool name; `"*"` is the
    /// default for tools not named. Wins over `approval`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tool_policy: BTreeMap<String, ToolPolicy>,
    /// Options of each tool set, by set name (e.g. `web.allow_private`);
    /// tools read them from [`ToolContext::options`](crate::tool::ToolContext::options).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tool_options: BTreeMap<String, serde_json::Value>,
    /// MCP servers whose tools the agent gets, by server name; their tools
    /// are named `mcp_<server>_<tool>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z0-9-]{1,32}$" }))]
    pub mcp_servers: BTreeMap<String, McpServerConfig>,
    /// Run limits.
    #[serde(default)]
    pub limits: AgentLimits,
    /// Whether the user's relevant long-term memories are added to the
    /// system prompt of each run.
    #[serde(default, skip_serializing_if = "MemorySettings::is_default")]
    pub memory: MemorySettings,
    /// Most tokens (input plus output) all runs of this preset may spend
    /// per day (UTC), across users; a run started once they are spent is
    /// refused. `None`: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub daily_token_budget: Option<u64>,
}

/// A preset's use of the user's long-term memories: with `inject`, each
/// run recalls the `top_k` memories most relevant to its input (within
/// `token_budget`, estimated at ~4 characters per token), adds them to the
/// system prompt and emits a `memories_recalled` event naming them.
///
/// ```
/// use netherbrain_core::MemorySettings;
/// let m: MemorySettings = serde_json::from_str(r#"{"inject": true}"#).unwrap();
/// assert!(m.inject);
/// assert_eq!(m.top_k, 5);
/// assert_eq!(m.token_budget, 500);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MemorySettings {
    /// Add relevant memories to the system prompt.
    pub inject: bool,
    /// Most memories added (1–50).
    #[schemars(range(min = 1, max = 50))]
    pub top_k: u32,
    /// Most tokens the added memories may take (16–8000).
    #[schemars(range(min = 16, max = 8000))]
    pub token_budget: u32,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            inject: false,
            top_k: 5,
            token_budget: 500,
        }
    }
}

impl MemorySettings {
    /// Injection on, with the default `top_k` and `token_budget`.
    ///
    /// ```
    /// assert!(netherbrain_core::MemorySettings::injected().inject);
    /// ```
    #[must_use]
    pub fn injected() -> Self {
        Self {
            inject: true,
            ..Self::default()
        }
    }

    /// Sets `top_k`, clamped to 1–50.
    ///
    /// ```
    /// use netherbrain_core::MemorySettings;
    /// assert_eq!(MemorySettings::injected().with_top_k(99).top_k, 50);
    /// ```
    #[must_use]
    pub fn with_top_k(mut self, top_k: u32) -> Self {
        self.top_k = top_k.clamp(1, 50);
        self
    }

    /// Sets `token_budget`, clamped to 16–8000.
    ///
    /// ```
    /// use netherbrain_core::MemorySettings;
    /// assert_eq!(MemorySettings::injected().with_token_budget(1).token_budget, 16);
    /// ```
    #[must_use]
    pub fn with_token_budget(mut self, token_budget: u32) -> Self {
        self.token_budget = token_budget.clamp(16, 8000);
        self
    }

    /// `top_k` and `token_budget` within their ranges (a preset file may
    /// hold anything).
    ///
    /// ```
    /// use netherbrain_core::MemorySettings;
    /// let mut m = MemorySettings::injected();
    /// m.top_k = 0;
    /// assert_eq!(m.clamped().top_k, 1);
    /// ```
    #[must_use]
    pub fn clamped(self) -> Self {
        self.with_top_k(self.top_k)
            .with_token_budget(self.token_budget)
    }

    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl PresetConfig {
    /// A configuration with defaults for everything but profile and model.
    #[must_use]
    pub fn new(profile: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            profile: profile.into(),
            model: model.into(),
            system_prompt: None,
            settings: ModelSettings::default(),
            toolsets: Vec::new(),
            approval: ApprovalPolicy::default(),
            tool_policy: BTreeMap::new(),
            tool_options: BTreeMap::new(),
            mcp_servers: BTreeMap::new(),
            limits: AgentLimits::default(),
            memory: MemorySettings::default(),
            daily_token_budget: None,
        }
    }

    /// Sets the system prompt.
    #[must_use]
    pub fn with_system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = Some(prompt.into());
        self
    }

    /// Sets the tool sets.
    #[must_use]
    pub fn with_toolsets(mut self, toolsets: Vec<String>) -> Self {
        self.toolsets = toolsets;
        self
    }

    /// Sets the approval policy.
    #[must_use]
    pub fn with_approval(mut self, approval: ApprovalPolicy) -> Self {
        self.approval = approval;
        self
    }

    /// Sets one tool's policy (`"*"`: tools not named otherwise).
    ///
    /// ```
    /// use netherbrain_core::{PresetConfig, ToolPolicy};
    /// let cfg = PresetConfig::new("p", "m").with_tool_policy("shell_run", ToolPolicy::Deny);
    /// assert_eq!(cfg.policy_for("shell_run", true), ToolPolicy::Deny);
    /// ```
    #[must_use]
    pub fn with_tool_policy(mut self, tool: impl Into<String>, policy: ToolPolicy) -> Self {
        self.tool_policy.insert(tool.into(), policy);
        self
    }

    /// Sets one tool set's options.
    ///
    /// ```
    /// let cfg = netherbrain_core::PresetConfig::new("p", "m")
    ///     .with_tool_options("web", serde_json::json!({"allow_private": true}));
    /// assert_eq!(cfg.tool_options["web"]["allow_private"], true);
    /// ```
    #[must_use]
    pub fn with_tool_options(mut self, set: impl Into<String>, options: serde_json::Value) -> Self {
        self.tool_options.insert(set.into(), options);
        self
    }

    /// Declares one MCP server.
    ///
    /// ```
    /// use netherbrain_core::{PresetConfig, tool::McpServerConfig};
    /// let cfg = PresetConfig::new("p", "m").with_mcp_server("git", McpServerConfig::stdio("mcp-git"));
    /// assert_eq!(cfg.mcp_servers["git"].command.as_deref(), Some("mcp-git"));
    /// ```
    #[must_use]
    pub fn with_mcp_server(mut self, name: impl Into<String>, server: McpServerConfig) -> Self {
        self.mcp_servers.insert(name.into(), server);
        self
    }

    /// Sets the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: AgentLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the use of long-term memories.
    ///
    /// ```
    /// use netherbrain_core::{MemorySettings, PresetConfig};
    /// let cfg = PresetConfig::new("p", "m").with_memory(MemorySettings::injected());
    /// assert!(cfg.memory.inject);
    /// ```
    #[must_use]
    pub fn with_memory(mut self, memory: MemorySettings) -> Self {
        self.memory = memory;
        self
    }

    /// Caps the tokens all runs of the preset spend per day (`None` or
    /// `Some(0)`: no cap).
    ///
    /// ```
    /// use netherbrain_core::PresetConfig;
    /// let cfg = PresetConfig::new("openai", "gpt-4o").with_daily_token_budget(Some(100_000));
    /// assert_eq!(cfg.daily_token_budget, Some(100_000));
    /// ```
    #[must_use]
    pub fn with_daily_token_budget(mut self, tokens: Option<u64>) -> Self {
        self.daily_token_budget = tokens.filter(|t| *t > 0);
        self
    }

    /// Sets the model settings.
    #[must_use]
    pub fn with_settings(mut self, settings: ModelSettings) -> Self {
        self.settings = settings;
        self
    }
}
