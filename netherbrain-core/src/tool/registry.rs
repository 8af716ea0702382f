//! The set of tools one run may call, with schema validation.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{DynTool, Tool, ToolContext, ToolError, ToolOutput, ToolSet};
use crate::provider::ToolDefinition;

/// Why a tool could not be registered.
///
/// ```
/// use netherbrain_core::tool::RegistryError;
/// let e = RegistryError::DuplicateName("add".into());
/// assert_eq!(e.to_string(), "a tool named `add` is already registered");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two tools share a name.
    #[error("a tool named `{0}` is already registered")]
    DuplicateName(String),
    /// The argument schema's root is not `type: object`.
    #[error("the argument schema of `{0}` must have `type: object` at its root")]
    SchemaNotObject(String),
    /// The argument schema is not a valid JSON Schema.
    #[error("the argument schema of `{tool}` is invalid: {message}")]
    InvalidSchema {
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// A tool set failed to list its tools.
    #[error("tool set `{set}` failed: {message}")]
    ToolSet {
        /// The set.
        set: String,
        /// What happened.
        message: String,
    },
}

struct Entry {
    tool: Arc<dyn DynTool>,
    validator: jsonschema::Validator,
}

/// The tools available to a run.
///
/// Registration generates the schema once and compiles a validator for it;
/// [`call`](Self::call) validates arguments, enforces the timeout and watches
/// cancellation, turning every failure into a [`ToolError`].
///
/// ```
/// use netherbrain_core::tool::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
/// # use netherbrain_core::schemars::JsonSchema;
/// # #[derive(serde::Deserialize, JsonSchema)] struct Args { text: String }
/// # #[derive(Debug)] struct Echo;
/// # #[async_trait::async_trait] impl Tool for Echo {
/// #   type Args = Args;
/// #   fn name(&self) -> &str { "echo" }
/// #   fn description(&self) -> &str { "Echoes" }
/// #   async fn call(&self, a: Args, _: ToolContext) -> Result<ToolOutput, ToolError> { Ok(a.text.into()) }
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let tools = ToolRegistry::new().with(Echo).unwrap();
/// let timeout = std::time::Duration::from_secs(5);
/// let out = tools.call("echo", serde_json::json!({"text": "hi"}), ToolContext::default(), timeout).await;
/// assert_eq!(out.unwrap().content, "hi");
/// let bad = tools.call("echo", serde_json::json!({"text": 1}), ToolContext::default(), timeout).await;
/// assert!(matches!(bad, Err(ToolError::InvalidArguments(_))));
/// # });
/// ```
#[derive(Default, Clone)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<Entry>>,
}

impl fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    ///
    /// ```
    /// assert!(netherbrain_core::tool::ToolRegistry::new().is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a typed tool.
    ///
    /// # Errors
    ///
    /// A duplicate name or an argument type whose schema is not an object.
    pub fn add<T: Tool>(&mut self, tool: T) -> Result<&mut Self, RegistryError> {
        self.add_dyn(Arc::new(TypedTool::new(tool)))
    }

    /// Adds a typed tool, builder style.
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add).
    pub fn with<T: Tool>(mut self, tool: T) -> Result<Self, RegistryError> {
        self.add(tool)?;
        Ok(self)
    }

    /// Adds an already-erased tool.
    ///
    /// # Errors
    ///
    /// A duplicate name, or a schema that is not an object or not valid.
    pub fn add_dyn(&mut self, tool: Arc<dyn DynTool>) -> Result<&mut Self, RegistryError> {
        let def = tool.definition();
        let name = def.name.clone();
        if self.tools.contains_key(&name) {
            return Err(RegistryError::DuplicateName(name));
        }
        if def.parameters.get("type").and_then(Value::as_str) != Some("object") {
            return Err(RegistryError::SchemaNotObject(name));
        }
        let validator = jsonschema::validator_for(&def.parameters).map_err(|e| {
            RegistryError::InvalidSchema {
                tool: name.clone(),
                message: e.to_string(),
            }
        })?;
        self.tools.insert(name, Arc::new(Entry { tool, validator }));
        Ok(self)
    }

    /// Adds every tool of a set.
    ///
    /// # Errors
    ///
    /// The set failed to list its tools, or one of them could not be added.
    pub async fn add_set(&mut self, set: &dyn ToolSet) -> Result<&mut Self, RegistryError> {
        let tools = set.tools().await.map_err(|e| RegistryError::ToolSet {
            set: set.name().to_owned(),
            message: e.to_string(),
        })?;
        for tool in tools {
            self.add_dyn(tool)?;
        }
        Ok(self)
    }

    /// The definitions to send to the model, by name.
    #[must_use]
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.tools
            .values()
            .map(|e| e.tool.definition().clone())
            .collect()
    }

    /// A tool by name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Arc<dyn DynTool>> {
        self.tools.get(name).map(|e| &e.tool)
    }

    /// Whether there are no tools.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Number of tools.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Validates `args` against the named tool's schema.
    ///
    /// # Errors
    ///
    /// [`ToolError::UnknownTool`] or [`ToolError::InvalidArguments`] listing
    /// every violation with its JSON path.
    pub fn validate(&self, name: &str, args: &Value) -> Result<(), ToolError> {
        let entry = self
            .tools
            .get(name)
            .ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
        let errors: Vec<String> = entry
            .validator
            .iter_errors(args)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ToolError::InvalidArguments(errors.join("; ")))
        }
    }

    /// Validates and runs a call, bounded by `timeout` and by the context's
    /// cancellation token.
    ///
    /// # Errors
    ///
    /// Unknown tool, invalid arguments, timeout, cancellation or the tool's
    /// own failure.
    pub async fn call(
        &self,
        name: &str,
        args: Value,
        ctx: ToolContext,
        timeout: Duration,
    ) -> Result<ToolOutput, ToolError> {
        self.validate(name, &args)?;
        let entry = self
            .tools
            .get(name)
            .ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
        let cancel = ctx.cancel.clone();
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(ToolError::Cancelled),
            result = tokio::time::timeout(timeout, entry.tool.call_json(args, ctx)) => {
                result.unwrap_or(Err(ToolError::Timeout(timeout)))
            }
        }
    }
}

/// Erases a typed [`Tool`] into a [`DynTool`], generating its schema once.
struct TypedTool<T: Tool> {
    tool: T,
    definition: ToolDefinition,
}

impl<T: Tool> TypedTool<T> {
    fn new(tool: T) -> Self {
        let definition =
            ToolDefinition::new(tool.name(), tool.description(), schema_for::<T::Args>());
        Self { tool, definition }
    }
}

impl<T: Tool> fmt::Debug for TypedTool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTool")
            .field("name", &self.definition.name)
            .finish()
    }
}

#[async_trait]
impl<T: Tool> DynTool for TypedTool<T> {
    fn definition(&self) -> &ToolDefinition {
        &self.definition
    }

    fn requires_approval(&self) -> bool {
        self.tool.requires_approval()
    }

    async fn call_json(&self, args: Value, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let args: T::Args =
            serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        self.tool.call(args, ctx).await
    }
}

/// The JSON Schema of an argument type, without the `$schema` and `title`
/// keys models do not need.
fn schema_for<A: schemars::JsonSchema>() -> Value {
    let mut value = schemars::schema_for!(A).to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, schemars::JsonSchema)]
    struct SleepArgs {
        ms: u64,
    }

    #[derive(Debug)]
    struct Sleep;

    #[async_trait]
    impl Tool for Sleep {
        type Args = SleepArgs;
        fn name(&self) -> &str {
            "sleep"
        }
        fn description(&self) -> &str {
            "Sleeps"
        }
        async fn call(&self, args: SleepArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
            tokio::time::sleep(Duration::from_millis(args.ms)).await;
            Ok("slept".into())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_unknown_and_cancel() {
        let tools = ToolRegistry::new().with(Sleep).unwrap();
        let t = Duration::from_secs(1);
        let slow = tools
            .call(
                "sleep",
                serde_json::json!({"ms": 5000}),
                ToolContext::default(),
                t,
            )
            .await;
        assert_eq!(slow, Err(ToolError::Timeout(t)));
        let unknown = tools
            .call("nope", serde_json::json!({}), ToolContext::default(), t)
            .await;
        assert_eq!(unknown, Err(ToolError::UnknownTool("nope".into())));
        let ctx = ToolContext::default();
        ctx.cancel.cancel();
        let cancelled = tools
            .call("sleep", serde_json::json!({"ms": 10}), ctx, t)
            .await;
        assert_eq!(cancelled, Err(ToolError::Cancelled));
    }

    #[test]
    fn schema_is_object_and_duplicates_rejected() {
        let mut tools = ToolRegistry::new();
        tools.add(Sleep).unwrap();
        assert_eq!(tools.definitions()[0].parameters["type"], "object");
        assert!(matches!(
            tools.add(Sleep),
            Err(RegistryError::DuplicateName(_))
        ));
    }
}
