//! The `delegate` tool set: the agent hands a task to another preset — a
//! subagent — which runs in a new conversation of the same user.
//!
//! `delegate { preset, task, background }` starts the subagent through
//! [`ConversationService::delegate`]. In the foreground the call waits for
//! the subagent's final answer and returns it; in the background it returns
//! the child conversation's id at once, and the answer reaches this
//! conversation as a message when the subagent finishes. The parent's
//! stream carries `subagent_started` and `subagent_completed` events.
//!
//! Limits: subagents nest at most `max_depth` levels (default 2) and one
//! run has at most `max_children` going at once (default 4). A preset may
//! change them in its tool options, up to [`CEILING_DEPTH`] and
//! [`CEILING_CHILDREN`]:
//!
//! ```toml
//! [presets.lead.tool_options.delegate]
//! max_depth = 1
//! max_children = 2
//! ```
//!
//! The set needs the conversation service it runs under; the binary
//! creates it unbound, puts it in the service's catalog, then
//! [`bind`](Delegate::bind)s it:
//!
//! ```
//! use std::sync::Arc;
//! use netherbrain_core::agent::AgentCatalog;
//! use netherbrain_core::conversation::ConversationService;
//! use netherbrain_core::store::MemoryStore;
//! use netherbrain_tools::delegate::Delegate;
//!
//! let delegate = Delegate::new();
//! let catalog = AgentCatalog::new().with_toolset(Arc::new(delegate.clone()));
//! let service = ConversationService::new(Arc::new(MemoryStore::new()), Arc::new(catalog));
//! delegate.bind(&service);
//! assert!(delegate.is_bound());
//! ```

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use netherbrain_core::SessionStatus;
use netherbrain_core::conversation::{
    ConversationService, DelegateLimits, Delegated, Delegation, WeakConversationService,
};
use netherbrain_core::provider::ToolDefinition;
use netherbrain_core::schemars::{self, JsonSchema};
use netherbrain_core::tool::{DynTool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSet};
use serde::Deserialize;
use serde_json::{Value, json};

/// The deepest nesting a preset may allow.
pub const CEILING_DEPTH: u32 = 5;
/// The most subagents per run a preset may allow.
pub const CEILING_CHILDREN: usize = 16;

/// Arguments of `delegate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegateArgs {
    /// The name of the preset (agent) to hand the task to.
    pub preset: String,
    /// The task, complete and self-contained: the subagent sees nothing
    /// else of this conversation.
    pub task: String,
    /// Return at once instead of waiting; the subagent's answer arrives
    /// later in this conversation as a message.
    #[serde(default)]
    pub background: bool,
}

/// The preset's options for the set (`tool_options.delegate`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegateOptions {
    /// Levels of subagents allowed below a conversation that was not
    /// delegated.
    pub max_depth: Option<u32>,
    /// Subagents one run may have going at once.
    pub max_children: Option<usize>,
}

impl DelegateOptions {
    /// The limits these options give over `base`, capped by the ceilings.
    ///
    /// ```
    /// use netherbrain_core::conversation::DelegateLimits;
    /// use netherbrain_tools::delegate::DelegateOptions;
    /// let opts = DelegateOptions { max_depth: Some(99), max_children: None };
    /// let limits = opts.limits(DelegateLimits::default());
    /// assert_eq!((limits.max_depth, limits.max_children), (5, 4));
    /// ```
    #[must_use]
    pub fn limits(&self, base: DelegateLimits) -> DelegateLimits {
        base.with_max_depth(self.max_depth.unwrap_or(base.max_depth).min(CEILING_DEPTH))
            .with_max_children(
                self.max_children
                    .unwrap_or(base.max_children)
                    .min(CEILING_CHILDREN),
            )
    }
}

/// The `delegate` tool set. Clones share the binding to the service.
#[derive(Debug, Clone)]
pub struct Delegate {
    service: Arc<OnceLock<WeakConversationService>>,
    limits: DelegateLimits,
    tool: Arc<DelegateTool>,
}

impl Default for Delegate {
    fn default() -> Self {
        Self::new()
    }
}

impl Delegate {
    /// An unbound set with the default limits ([`DelegateLimits::default`]).
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(DelegateLimits::default())
    }

    /// An unbound set with these limits (presets may change them).
    ///
    /// ```
    /// use netherbrain_core::conversation::DelegateLimits;
    /// let set = netherbrain_tools::delegate::Delegate::with_limits(DelegateLimits::default().with_max_depth(1));
    /// assert!(!set.is_bound());
    /// ```
    #[must_use]
    pub fn with_limits(limits: DelegateLimits) -> Self {
        let service = Arc::new(OnceLock::new());
        let mut schema = schemars::schema_for!(DelegateArgs).to_value();
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("$schema");
            obj.remove("title");
        }
        Self {
            tool: Arc::new(DelegateTool {
                definition: ToolDefinition::new(
                    "delegate",
                    "Hands a self-contained task to another agent (a preset, by name) that works on it in its own conversation. By default waits and returns that agent's final answer; with `background: true` returns at once, and the answer arrives later in this conversation as a message.",
                    schema,
                ),
                service: service.clone(),
                limits,
            }),
            service,
            limits,
        }
    }

    /// A set bound to `service` already (for a catalog rebuilt while the
    /// service runs).
    #[must_use]
    pub fn bound(service: &ConversationService) -> Self {
        let set = Self::new();
        set.bind(service);
        set
    }

    /// Binds the set (and its clones) to the service whose runs call it;
    /// without it the tool answers with an error. Only the first binding
    /// counts.
    pub fn bind(&self, service: &ConversationService) {
        let _ = self.service.set(service.downgrade());
    }

    /// Whether [`bind`](Self::bind) was called.
    #[must_use]
    pub fn is_bound(&self) -> bool {
        self.service.get().is_some()
    }

    /// The limits before a preset's options.
    #[must_use]
    pub fn limits(&self) -> DelegateLimits {
        self.limits
    }

    /// The set's tools as a registry (for tests).
    ///
    /// # Errors
    ///
    /// Never in practice (one tool with a valid schema).
    pub fn registry(&self) -> Result<ToolRegistry, netherbrain_core::tool::RegistryError> {
        let mut registry = ToolRegistry::new();
        registry.add_dyn(self.tool.clone())?;
        Ok(registry)
    }
}

#[derive(Debug)]
struct DelegateTool {
    definition: ToolDefinition,
    service: Arc<OnceLock<WeakConversationService>>,
    limits: DelegateLimits,
}

#[async_trait]
impl DynTool for DelegateTool {
    fn definition(&self) -> &ToolDefinition {
        &self.definition
    }

    async fn call_json(&self, args: Value, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let args: DelegateArgs =
            serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let service = self
            .service
            .get()
            .and_then(WeakConversationService::upgrade)
            .ok_or_else(|| ToolError::failed("subagents are not available here"))?;
        let limits = ctx
            .option::<DelegateOptions>("delegate")?
            .limits(self.limits);
        let mut delegation = Delegation::new(args.preset, args.task);
        if args.background {
            delegation = delegation.in_background();
        }
        let delegated = service
            .delegate(&ctx, limits, delegation)
            .await
            .map_err(ToolError::failed)?;
        match delegated {
            Delegated::Started {
                child_conversation_id,
                child_session_id,
            } => Ok(ToolOutput::json(&json!({
                "status": "started",
                "child_conversation_id": child_conversation_id,
                "child_session_id": child_session_id,
                "note": "the subagent works in the background; its answer will arrive in this conversation as a message",
            }))),
            Delegated::Finished(_) if ctx.cancel.is_cancelled() => Err(ToolError::Cancelled),
            Delegated::Finished(result) if result.status == SessionStatus::Committed => {
                Ok(ToolOutput::text(result.answer.unwrap_or_default()))
            }
            Delegated::Finished(result) => Err(ToolError::failed(format!(
                "the subagent's run ended {}{}",
                result.status,
                result.error.map(|e| format!(": {e}")).unwrap_or_default()
            ))),
            _ => Err(ToolError::failed("the subagent ended in an unknown way")),
        }
    }
}

#[async_trait]
impl ToolSet for Delegate {
    fn name(&self) -> &str {
        "delegate"
    }
    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        Ok(vec![self.tool.clone()])
    }
}
