//! What a model call asks for.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::message::Message;

/// How hard a reasoning model should think.
///
/// ```
/// use netherbrain_core::provider::ReasoningEffort;
/// assert_eq!(serde_json::to_string(&ReasoningEffort::High).unwrap(), "\"high\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReasoningEffort {
    /// Little reasoning.
    Low,
    /// The provider's default.
    Medium,
    /// Much reasoning.
    High,
}

impl ReasoningEffort {
    /// The lowercase wire name.
    ///
    /// ```
    /// assert_eq!(netherbrain_core::provider::ReasoningEffort::Low.as_str(), "low");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// Whether the model must call a tool, and which (OpenAI's `tool_choice`).
///
/// ```
/// use netherbrain_core::provider::ToolChoice;
/// let c: ToolChoice = serde_json::from_value(serde_json::json!({"function": "lookup"})).unwrap();
/// assert_eq!(c, ToolChoice::Function("lookup".into()));
/// assert_eq!(serde_json::to_value(ToolChoice::Required).unwrap(), "required");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Function(String),
}

/// Sampling and output settings; `None` leaves the provider's default.
///
/// ```
/// use netherbrain_core::provider::ModelSettings;
/// let s = ModelSettings::default().with_temperature(0.2).with_max_tokens(512);
/// assert_eq!(s.max_tokens, Some(512));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[non_exhaustive]
pub struct ModelSettings {
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Maximum output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Reasoning effort for models that reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Stop sequences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

impl ModelSettings {
    /// Sets the temperature.
    ///
    /// ```
    /// let s = netherbrain_core::provider::ModelSettings::default().with_temperature(0.0);
    /// assert_eq!(s.temperature, Some(0.0));
    /// ```
    #[must_use]
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets nucleus sampling.
    ///
    /// ```
    /// let s = netherbrain_core::provider::ModelSettings::default().with_top_p(0.9);
    /// assert_eq!(s.top_p, Some(0.9));
    /// ```
    #[must_use]
    pub fn with_top_p(mut self, top_p: f32) -> Self {
        self.top_p = Some(top_p);
        self
    }

    /// Sets the output token limit.
    ///
    /// ```
    /// let s = netherbrain_core::provider::ModelSettings::default().with_max_tokens(100);
    /// assert_eq!(s.max_tokens, Some(100));
    /// ```
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets the reasoning effort.
    ///
    /// ```
    /// use netherbrain_core::provider::{ModelSettings, ReasoningEffort};
    /// let s = ModelSettings::default().with_reasoning_effort(ReasoningEffort::Low);
    /// assert_eq!(s.reasoning_effort, Some(ReasoningEffort::Low));
    /// ```
    #[must_use]
    pub fn with_reasoning_effort(mut self, effort: ReasoningEffort) -> Self {
        self.reasoning_effort = Some(effort);
        self
    }

    /// Sets the stop sequences.
    ///
    /// ```
    /// let s = netherbrain_core::provider::ModelSettings::default().with_stop(vec!["END".into()]);
    /// assert_eq!(s.stop, vec!["END".to_string()]);
    /// ```
    #[must_use]
    pub fn with_stop(mut self, stop: Vec<String>) -> Self {
        self.stop = stop;
        self
    }
}

/// A tool as the model sees it: name, description and JSON Schema of the
/// arguments (root `type: object`).
///
/// ```
/// use netherbrain_core::provider::ToolDefinition;
/// let def = ToolDefinition::new("clock", "Current time", serde_json::json!({"type": "object"}));
/// assert_eq!(def.name, "clock");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolDefinition {
    /// Unique tool name.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

impl ToolDefinition {
    /// Creates a definition.
    ///
    /// ```
    /// let d = netherbrain_core::provider::ToolDefinition::new("t", "d", serde_json::json!({"type": "object"}));
    /// # let _ = d;
    /// ```
    #[must_use]
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }
}

/// One model call: the model, the conversation so far and what it may use.
///
/// ```
/// use netherbrain_core::provider::{ModelRequest, ModelSettings};
/// use netherbrain_core::Message;
/// let req = ModelRequest::new("gpt-4o-mini", vec![Message::user("hi")])
///     .with_system("Be brief.")
///     .with_settings(ModelSettings::default().with_max_tokens(64));
/// assert_eq!(req.system.as_deref(), Some("Be brief."));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelRequest {
    /// Model name as the provider knows it.
    pub model: String,
    /// The system prompt, sent the way the provider expects.
    pub system: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<ToolDefinition>,
    /// Sampling and output settings.
    pub settings: ModelSettings,
    /// Whether and which tool the model must call; `None` leaves it to the
    /// provider's default (the model decides). Sent only with tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

impl ModelRequest {
    /// A request with no system prompt, no tools and default settings.
    ///
    /// ```
    /// let r = netherbrain_core::provider::ModelRequest::new("m", vec![]);
    /// assert!(r.tools.is_empty());
    /// ```
    #[must_use]
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            system: None,
            messages,
            tools: Vec::new(),
            settings: ModelSettings::default(),
            tool_choice: None,
        }
    }

    /// Sets the system prompt.
    ///
    /// ```
    /// let r = netherbrain_core::provider::ModelRequest::new("m", vec![]).with_system("s");
    /// assert_eq!(r.system.as_deref(), Some("s"));
    /// ```
    #[must_use]
    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Sets the tools.
    ///
    /// ```
    /// let r = netherbrain_core::provider::ModelRequest::new("m", vec![]).with_tools(vec![]);
    /// assert!(r.tools.is_empty());
    /// ```
    #[must_use]
    pub fn with_tools(mut self, tools: Vec<ToolDefinition>) -> Self {
        self.tools = tools;
        self
    }

    /// Sets the settings.
    ///
    /// ```
    /// use netherbrain_core::provider::{ModelRequest, ModelSettings};
    /// let r = ModelRequest::new("m", vec![]).with_settings(ModelSettings::default());
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn with_settings(mut self, settings: ModelSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Sets the tool choice.
    ///
    /// ```
    /// use netherbrain_core::provider::{ModelRequest, ToolChoice};
    /// let r = ModelRequest::new("m", vec![]).with_tool_choice(Some(ToolChoice::None));
    /// assert_eq!(r.tool_choice, Some(ToolChoice::None));
    /// ```
    #[must_use]
    pub fn with_tool_choice(mut self, choice: Option<ToolChoice>) -> Self {
        self.tool_choice = choice;
        self
    }
}
