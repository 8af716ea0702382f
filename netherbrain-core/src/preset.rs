//! Presets: named agent configurations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::AgentLimits;
use crate::provider::ModelSettings;

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
    /// Run limits.
    #[serde(default)]
    pub limits: AgentLimits,
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
            limits: AgentLimits::default(),
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

    /// Sets the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: AgentLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the model settings.
    #[must_use]
    pub fn with_settings(mut self, settings: ModelSettings) -> Self {
        self.settings = settings;
        self
    }
}
