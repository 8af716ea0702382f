//! What one API request may change about its run: sampling settings,
//! the tool choice and tools the client answers itself.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::Agent;
use crate::provider::{ToolChoice, ToolDefinition};
use crate::tool::{DynTool, RegistryError, ToolContext, ToolError, ToolOutput};

/// At most this many stop sequences (OpenAI's limit).
const MAX_STOP_SEQUENCES: usize = 4;

/// Why a request's overrides cannot apply to its agent.
///
/// ```
/// use netherbrain_core::agent::OverrideError;
/// let e = OverrideError::Invalid("`temperature` must be between 0 and 2".into());
/// assert_eq!(e.to_string(), "`temperature` must be between 0 and 2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OverrideError {
    /// A value outside what the request may ask for.
    #[error("{0}")]
    Invalid(String),
    /// A client tool cannot be registered (a name the agent already has, a
    /// schema that is not an object or not valid).
    #[error("client tool: {0}")]
    Tool(#[from] RegistryError),
}

/// Per-request changes to a run, applied with [`Agent::with_overrides`]
/// within the preset's limits:
///
/// - `temperature` replaces the preset's (0 to 2);
/// - `max_tokens` replaces it, capped by the preset's own `max_tokens`;
/// - `stop` replaces the preset's stop sequences (at most 4);
/// - `tool_choice` binds the run's first model call (`function` must name
///   one of the run's tools);
/// - `client_tools` are tools the caller answers: a call to one ends the run
///   `awaiting_tool_results` with the call in `deferredToolCalls`.
///
/// ```
/// use netherbrain_core::agent::RunOverrides;
/// use netherbrain_core::provider::ToolDefinition;
/// let o = RunOverrides::default()
///     .with_temperature(0.2)
///     .with_max_tokens(100)
///     .with_client_tools(vec![ToolDefinition::new(
///         "get_weather", "Weather in a city",
///         serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
///     )]);
/// assert!(o.validate().is_ok());
/// assert!(RunOverrides::default().with_temperature(3.0).validate().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RunOverrides {
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Maximum output tokens of each model call.
    pub max_tokens: Option<u32>,
    /// Stop sequences.
    pub stop: Option<Vec<String>>,
    /// Tool choice of the first model call.
    pub tool_choice: Option<ToolChoice>,
    /// Tools the client answers.
    pub client_tools: Vec<ToolDefinition>,
}

impl RunOverrides {
    /// Sets the temperature.
    #[must_use]
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the output token limit.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets the stop sequences.
    #[must_use]
    pub fn with_stop(mut self, stop: Vec<String>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Sets the tool choice.
    #[must_use]
    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Sets the client tools.
    #[must_use]
    pub fn with_client_tools(mut self, tools: Vec<ToolDefinition>) -> Self {
        self.client_tools = tools;
        self
    }

    /// Whether nothing is overridden.
    ///
    /// ```
    /// assert!(netherbrain_core::agent::RunOverrides::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Checks the values that do not depend on the agent.
    ///
    /// # Errors
    ///
    /// [`OverrideError::Invalid`] for a temperature outside 0..=2, a zero
    /// `max_tokens`, more than 4 or empty stop sequences.
    pub fn validate(&self) -> Result<(), OverrideError> {
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(OverrideError::Invalid(
                "`temperature` must be between 0 and 2".into(),
            ));
        }
        if self.max_tokens == Some(0) {
            return Err(OverrideError::Invalid(
                "`max_tokens` must be at least 1".into(),
            ));
        }
        if let Some(stop) = &self.stop {
            if stop.len() > MAX_STOP_SEQUENCES {
                return Err(OverrideError::Invalid(format!(
                    "`stop` holds at most {MAX_STOP_SEQUENCES} sequences"
                )));
            }
            if stop.iter().any(String::is_empty) {
                return Err(OverrideError::Invalid(
                    "`stop` sequences must not be empty".into(),
                ));
            }
        }
        Ok(())
    }
}

impl Agent {
    /// This agent with a request's overrides applied (see
    /// [`RunOverrides`]); the preset's own agent is not changed.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use netherbrain_core::agent::{Agent, RunOverrides};
    /// use netherbrain_core::provider::ModelSettings;
    /// # use netherbrain_core::testing::ScriptedProvider;
    /// let agent = Agent::builder(Arc::new(ScriptedProvider::new([])), "m")
    ///     .settings(ModelSettings::default().with_max_tokens(256))
    ///     .build()
    ///     .with_overrides(&RunOverrides::default().with_max_tokens(10_000))
    ///     .unwrap();
    /// assert_eq!(agent.settings().max_tokens, Some(256)); // capped by the preset
    /// ```
    ///
    /// # Errors
    ///
    /// Invalid values, a `tool_choice` naming no tool of the run, or a
    /// client tool that cannot be registered.
    pub fn with_overrides(mut self, overrides: &RunOverrides) -> Result<Self, OverrideError> {
        overrides.validate()?;
        if let Some(t) = overrides.temperature {
            self.settings.temperature = Some(t);
        }
        if let Some(max) = overrides.max_tokens {
            self.settings.max_tokens = Some(self.settings.max_tokens.map_or(max, |p| p.min(max)));
        }
        if let Some(stop) = &overrides.stop {
            self.settings.stop.clone_from(stop);
        }
        for def in &overrides.client_tools {
            self.tools.add_dyn(Arc::new(ClientTool {
                definition: def.clone(),
            }))?;
        }
        if let Some(choice) = &overrides.tool_choice {
            if let ToolChoice::Function(name) = choice
                && self.tools.get(name).is_none()
            {
                return Err(OverrideError::Invalid(format!(
                    "`tool_choice` names `{name}`, which is not a tool of this request"
                )));
            }
            self.tool_choice = Some(choice.clone());
        }
        Ok(self)
    }
}

/// A tool the API client answers: every call is deferred.
#[derive(Debug)]
struct ClientTool {
    definition: ToolDefinition,
}

#[async_trait]
impl DynTool for ClientTool {
    fn definition(&self) -> &ToolDefinition {
        &self.definition
    }

    fn deferred(&self) -> bool {
        true
    }

    async fn call_json(&self, _args: Value, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        Err(ToolError::failed(
            "this tool is answered by the API client, not the server",
        ))
    }
}
