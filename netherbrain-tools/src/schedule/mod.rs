//! The `schedule` tool set: the agent schedules work for its user —
//! `schedule_create`, `schedule_list`, `schedule_cancel`.
//!
//! Every call acts for the user who owns the run's conversation, and a new
//! task runs the run's own preset; both are read from the store through
//! the run's server-owned context, never from the arguments. Creating and
//! cancelling a task need the user's approval by default (the preset's
//! `tool_policy` can change that); limits, validation and the minimum
//! interval are core's [`Tasks`].

use std::sync::Arc;

use async_trait::async_trait;
use netherbrain_core::TaskId;
use netherbrain_core::conversation::ServiceError;
use netherbrain_core::schemars::{self, JsonSchema};
use netherbrain_core::store::ScheduledTask;
use netherbrain_core::tasks::{TaskSchedule, TaskSpec, Tasks};
use netherbrain_core::tool::{
    DynTool, RegistryError, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSet,
};
use serde::Deserialize;
use serde_json::json;

/// The `schedule` tool set.
#[derive(Debug, Clone)]
pub struct ScheduleTools {
    tasks: Tasks,
}

impl ScheduleTools {
    /// The set over the server's tasks.
    #[must_use]
    pub fn new(tasks: Tasks) -> Self {
        Self { tasks }
    }

    /// The tools as a registry.
    ///
    /// # Errors
    ///
    /// Never in practice.
    pub fn registry(&self) -> Result<ToolRegistry, RegistryError> {
        ToolRegistry::new()
            .with(Create(self.tasks.clone()))?
            .with(List(self.tasks.clone()))?
            .with(Cancel(self.tasks.clone()))
    }
}

#[async_trait]
impl ToolSet for ScheduleTools {
    fn name(&self) -> &str {
        "schedule"
    }
    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        let r = self
            .registry()
            .map_err(|e| ToolError::failed(e.to_string()))?;
        Ok(["schedule_create", "schedule_list", "schedule_cancel"]
            .iter()
            .filter_map(|n| r.get(n).cloned())
            .collect())
    }
}

fn refused(e: ServiceError) -> ToolError {
    ToolError::failed(e)
}

/// A task as the model sees it.
fn view(t: &ScheduledTask) -> serde_json::Value {
    json!({
        "id": t.id,
        "name": t.name,
        "schedule": t.schedule.to_string(),
        "prompt": t.prompt,
        "conversation_id": t.conversation_id,
        "enabled": t.enabled,
        "next_run_at": t.next_run_at,
        "last_run_at": t.last_run_at,
        "last_error": t.last_error,
    })
}

/// Where a scheduled run goes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A new conversation each time (default).
    #[default]
    NewConversation,
    /// This conversation.
    ThisConversation,
}

/// Arguments of `schedule_create`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// A short unique name ("morning-alerts").
    pub name: String,
    /// A five-field cron expression ("0 7 * * 1-5") or @hourly, @daily,
    /// @weekly, @monthly; give this or `every_seconds`.
    #[serde(default)]
    pub cron: Option<String>,
    /// The IANA time zone of `cron` (default UTC), e.g. "Europe/Berlin".
    #[serde(default)]
    pub timezone: Option<String>,
    /// Run every so many seconds instead of on a cron schedule.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub every_seconds: Option<u64>,
    /// The message each run starts with: what to do, self-contained.
    pub prompt: String,
    /// Where each run goes (default a new conversation each time).
    #[serde(default)]
    pub target: Target,
    /// Run once at start a slot missed while the server was down.
    #[serde(default)]
    pub catch_up: bool,
}

#[derive(Debug)]
struct Create(Tasks);

#[async_trait]
impl Tool for Create {
    type Args = CreateArgs;
    fn name(&self) -> &str {
        "schedule_create"
    }
    fn description(&self) -> &str {
        "Schedules a recurring task for the user: a prompt run with this agent on a cron schedule (in a time zone) or every N seconds, in a new conversation each time or in this one."
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: CreateArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let schedule = match (args.cron, args.every_seconds) {
            (Some(expression), None) => TaskSchedule::cron(
                expression,
                args.timezone.unwrap_or_else(|| "UTC".to_owned()),
            ),
            (None, Some(seconds)) => TaskSchedule::every(seconds),
            _ => {
                return Err(ToolError::failed(
                    "give exactly one of `cron` and `every_seconds`",
                ));
            }
        };
        let (owner, preset) = self
            .0
            .run_context(ctx.conversation_id, ctx.session_id)
            .await
            .map_err(refused)?;
        let preset = preset.ok_or_else(|| ToolError::failed("this run has no preset"))?;
        let conversation = (args.target == Target::ThisConversation).then_some(ctx.conversation_id);
        let spec = TaskSpec::new(args.name, schedule, preset, args.prompt)
            .with_conversation(conversation)
            .with_catch_up(args.catch_up);
        let task = self.0.create(owner, spec).await.map_err(refused)?;
        Ok(ToolOutput::json(&json!({ "scheduled": view(&task) })))
    }
}

/// Arguments of `schedule_list` (none).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {}

#[derive(Debug)]
struct List(Tasks);

#[async_trait]
impl Tool for List {
    type Args = ListArgs;
    fn name(&self) -> &str {
        "schedule_list"
    }
    fn description(&self) -> &str {
        "Lists the user's scheduled tasks with their ids, schedules and next runs."
    }
    async fn call(&self, _args: ListArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let (owner, _) = self
            .0
            .run_context(ctx.conversation_id, ctx.session_id)
            .await
            .map_err(refused)?;
        let tasks = self.0.list(owner).await.map_err(refused)?;
        let tasks: Vec<_> = tasks.iter().map(view).collect();
        Ok(ToolOutput::json(&json!({ "tasks": tasks })))
    }
}

/// Arguments of `schedule_cancel`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelArgs {
    /// The id of the task (from `schedule_list`).
    pub id: String,
}

#[derive(Debug)]
struct Cancel(Tasks);

#[async_trait]
impl Tool for Cancel {
    type Args = CancelArgs;
    fn name(&self) -> &str {
        "schedule_cancel"
    }
    fn description(&self) -> &str {
        "Deletes one of the user's scheduled tasks by its id (from schedule_list)."
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: CancelArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let id: TaskId = args
            .id
            .trim()
            .parse()
            .map_err(|_| ToolError::failed(format!("`{}` is not a task id", args.id)))?;
        let (owner, _) = self
            .0
            .run_context(ctx.conversation_id, ctx.session_id)
            .await
            .map_err(refused)?;
        self.0.delete(owner, id).await.map_err(|e| match e {
            ServiceError::Store(s) if s.is_not_found() => {
                ToolError::failed(format!("no task `{id}`"))
            }
            other => refused(other),
        })?;
        Ok(ToolOutput::json(&json!({ "cancelled": id })))
    }
}
