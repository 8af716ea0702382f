//! [`Agent`] and its builder.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::limits::AgentLimits;
use super::request::{RunControl, RunOutcome, RunRequest};
use super::run::Runner;
use super::sink::RunSink;
use super::stream::RunStream;
use crate::preset::{ApprovalPolicy, ToolPolicy, resolve_policy};
use crate::provider::{ModelSettings, Provider, ToolChoice};
use crate::tool::ToolRegistry;

/// An agent: a model with a system prompt, tools, an approval policy and
/// limits. Runs borrow it, so one agent serves many runs at once.
///
/// ```
/// use std::sync::Arc;
/// use netherbrain_core::agent::{Agent, AgentLimits};
/// use netherbrain_core::testing::ScriptedProvider;
/// use netherbrain_core::tool::ToolRegistry;
/// let agent = Agent::builder(Arc::new(ScriptedProvider::new([])), "gpt-4o-mini")
///     .system_prompt("You are helpful.")
///     .tools(ToolRegistry::new())
///     .limits(AgentLimits::default().with_max_tool_rounds(4))
///     .build();
/// assert_eq!(agent.model(), "gpt-4o-mini");
/// assert_eq!(agent.limits().max_tool_rounds, 4);
/// ```
#[derive(Debug, Clone)]
pub struct Agent {
    pub(super) provider: Arc<dyn Provider>,
    pub(super) model: String,
    pub(super) system_prompt: Option<String>,
    pub(super) settings: ModelSettings,
    pub(super) tools: ToolRegistry,
    pub(super) approval: ApprovalPolicy,
    pub(super) tool_policy: BTreeMap<String, ToolPolicy>,
    pub(super) tool_options: Arc<BTreeMap<String, serde_json::Value>>,
    pub(super) limits: AgentLimits,
    /// The tool choice of a run's first model call
    /// ([`RunOverrides::tool_choice`](super::RunOverrides::tool_choice)).
    pub(super) tool_choice: Option<ToolChoice>,
}

impl Agent {
    /// Starts building an agent for a provider and model.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use netherbrain_core::{agent::Agent, testing::ScriptedProvider};
    /// let agent = Agent::builder(Arc::new(ScriptedProvider::new([])), "m").build();
    /// assert!(agent.tools().is_empty());
    /// ```
    pub fn builder(provider: Arc<dyn Provider>, model: impl Into<String>) -> AgentBuilder {
        AgentBuilder {
            agent: Self {
                provider,
                model: model.into(),
                system_prompt: None,
                settings: ModelSettings::default(),
                tools: ToolRegistry::new(),
                approval: ApprovalPolicy::default(),
                tool_policy: BTreeMap::new(),
                tool_options: Arc::default(),
                limits: AgentLimits::default(),
                tool_choice: None,
            },
        }
    }

    /// The model name.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The limits of each run.
    #[must_use]
    pub fn limits(&self) -> &AgentLimits {
        &self.limits
    }

    /// The model settings (the preset's, with any request overrides).
    #[must_use]
    pub fn settings(&self) -> &ModelSettings {
        &self.settings
    }

    /// The tools.
    #[must_use]
    pub fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    /// The system prompt.
    #[must_use]
    pub fn system_prompt(&self) -> Option<&str> {
        self.system_prompt.as_deref()
    }

    /// The approval policy.
    #[must_use]
    pub fn approval(&self) -> &ApprovalPolicy {
        &self.approval
    }

    /// The policy for a call of `tool`; see [`PresetConfig::policy_for`](crate::PresetConfig::policy_for).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use netherbrain_core::{agent::Agent, testing::ScriptedProvider, ToolPolicy};
    /// let agent = Agent::builder(Arc::new(ScriptedProvider::new([])), "m")
    ///     .tool_policy([("shell_run".to_owned(), ToolPolicy::Deny)].into())
    ///     .build();
    /// assert_eq!(agent.policy_for("shell_run", true), ToolPolicy::Deny);
    /// assert_eq!(agent.policy_for("clock", false), ToolPolicy::Auto);
    /// ```
    #[must_use]
    pub fn policy_for(&self, tool: &str, tool_asks: bool) -> ToolPolicy {
        resolve_policy(&self.tool_policy, &self.approval, tool, tool_asks)
    }

    /// Executes one run, sending events and completed messages to `sink`.
    ///
    /// Never panics on provider, tool or sink failures: they end the run
    /// `failed` (or become tool error results) and are described in the
    /// returned [`RunOutcome`]. The last event is always `RUN_FINISHED` or
    /// `RUN_ERROR` unless the sink itself failed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::agent::{Agent, NullSink, RunControl, RunRequest};
    /// use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
    /// use netherbrain_core::{ConversationId, SessionId};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let agent = Agent::builder(Arc::new(ScriptedProvider::new([ScriptedResponse::text("4")])), "m").build();
    /// let request = RunRequest::new(ConversationId::new(), SessionId::new()).with_user_text("2+2?");
    /// let outcome = agent.run(request, RunControl::default(), &mut NullSink).await;
    /// assert_eq!(outcome.new_messages.len(), 2); // the input and the answer
    /// # });
    /// ```
    pub async fn run(
        &self,
        request: RunRequest,
        control: RunControl,
        sink: &mut dyn RunSink,
    ) -> RunOutcome {
        Runner::new(self, &request, control, sink)
            .execute(request)
            .await
    }

    /// Executes one run on a spawned task and streams its events.
    ///
    /// Must be called within a Tokio runtime. Events are delivered through
    /// a bounded channel: a slow consumer slows the run down, nothing is
    /// dropped. [`RunStream::outcome`] gives the result.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use futures::StreamExt;
    /// use netherbrain_core::agent::{Agent, RunControl, RunRequest};
    /// use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
    /// use netherbrain_core::{ConversationId, SessionId, SessionStatus};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let agent = Arc::new(Agent::builder(Arc::new(ScriptedProvider::new([ScriptedResponse::text("hi")])), "m").build());
    /// let request = RunRequest::new(ConversationId::new(), SessionId::new()).with_user_text("hello");
    /// let mut stream = agent.run_stream(request, RunControl::default());
    /// let mut types = Vec::new();
    /// while let Some(event) = stream.next().await {
    ///     types.push(event.type_name());
    /// }
    /// assert_eq!(types.last(), Some(&"RUN_FINISHED"));
    /// assert_eq!(stream.outcome().await.status, SessionStatus::Committed);
    /// # });
    /// ```
    #[must_use]
    pub fn run_stream(self: Arc<Self>, request: RunRequest, control: RunControl) -> RunStream {
        RunStream::spawn(self, request, control)
    }
}

/// Builds an [`Agent`]; see [`Agent::builder`].
///
/// ```
/// # use std::sync::Arc;
/// use netherbrain_core::agent::Agent;
/// use netherbrain_core::provider::ModelSettings;
/// use netherbrain_core::ApprovalPolicy;
/// # use netherbrain_core::testing::ScriptedProvider;
/// let agent = Agent::builder(Arc::new(ScriptedProvider::new([])), "m")
///     .settings(ModelSettings::default().with_temperature(0.0))
///     .approval(ApprovalPolicy::Always)
///     .build();
/// assert_eq!(agent.approval(), &ApprovalPolicy::Always);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AgentBuilder {
    agent: Agent,
}

impl AgentBuilder {
    /// Sets the system prompt.
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.agent.system_prompt = Some(prompt.into());
        self
    }

    /// Sets the model settings.
    pub fn settings(mut self, settings: ModelSettings) -> Self {
        self.agent.settings = settings;
        self
    }

    /// Sets the tools.
    pub fn tools(mut self, tools: ToolRegistry) -> Self {
        self.agent.tools = tools;
        self
    }

    /// Sets the approval policy.
    pub fn approval(mut self, approval: ApprovalPolicy) -> Self {
        self.agent.approval = approval;
        self
    }

    /// Sets the per-tool policies (by tool name, `"*"` for the rest).
    pub fn tool_policy(mut self, policy: BTreeMap<String, ToolPolicy>) -> Self {
        self.agent.tool_policy = policy;
        self
    }

    /// Sets the tool-set options tools read from their context.
    pub fn tool_options(mut self, options: BTreeMap<String, serde_json::Value>) -> Self {
        self.agent.tool_options = Arc::new(options);
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: AgentLimits) -> Self {
        self.agent.limits = limits;
        self
    }

    /// Builds the agent.
    #[must_use]
    pub fn build(self) -> Agent {
        self.agent
    }
}
