//! `netherbrain tasks add | list | remove | run-now` against the local
//! database, through the conversation service as the admin acting for the
//! task's user.

use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use futures::StreamExt as _;
use netherbrain_core::auth::Principal;
use netherbrain_core::conversation::{ConversationService, ServiceError};
use netherbrain_core::store::{ScheduledTask, User};
use netherbrain_core::tasks::{TaskSchedule, TaskSpec};
use netherbrain_core::{AgentEvent, ConversationId, SessionStatus, TaskId};

use crate::chat::Answer;
use crate::cli::{TaskAddArgs, TasksCommand};
use crate::config::Settings;
use crate::local::{admin_user, only_preset, open_prepared, preset_by_name, resolve_user};

pub(crate) async fn run(settings: &Settings, command: TasksCommand) -> Result<ExitCode> {
    let store = open_prepared(settings).await?;
    let admin = Principal::of(&admin_user(store.as_ref()).await?);
    let (service, _) = crate::local::service(
        store.clone(),
        settings,
        crate::local::runtime(store.clone(), settings).await?,
    )
    .await?;
    match command {
        TasksCommand::Add(args) => {
            let user = resolve_user(store.as_ref(), args.user.as_deref()).await?;
            let task = add(&service, &admin, &user, args).await?;
            println!(
                "scheduled `{}` ({}) for {}: {}; next run {}",
                task.name,
                task.id,
                user.username,
                task.schedule,
                if task.enabled {
                    task.next_run_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
                } else {
                    "none (paused)".to_owned()
                }
            );
        }
        TasksCommand::List { user } => {
            let user = resolve_user(store.as_ref(), user.as_deref()).await?;
            let tasks = service
                .list_tasks(&admin, Some(user.id))
                .await
                .map_err(|e| anyhow!("{e}"))?;
            if tasks.is_empty() {
                eprintln!("{} has no scheduled tasks", user.username);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36} {:<20} {:<32} {:<17} {:<17} LAST",
                "ID", "NAME", "SCHEDULE", "NEXT", "LAST RUN"
            );
            for t in tasks {
                let next = if t.enabled {
                    t.next_run_at.format("%Y-%m-%d %H:%M").to_string()
                } else {
                    "paused".to_owned()
                };
                let last_run = t.last_run_at.map_or_else(
                    || "never".to_owned(),
                    |at| at.format("%Y-%m-%d %H:%M").to_string(),
                );
                let last = match (&t.last_error, t.last_session_id) {
                    (Some(e), _) => crate::terminal::printable(e).into_owned(),
                    (None, Some(s)) => format!("ran as session {s}"),
                    (None, None) => "-".to_owned(),
                };
                println!(
                    "{:<36} {:<20} {:<32} {next:<17} {last_run:<17} {last}",
                    t.id.to_string(),
                    crate::terminal::printable(&t.name),
                    t.schedule.to_string(),
                );
            }
        }
        TasksCommand::Remove { task, user } => {
            let user = resolve_user(store.as_ref(), user.as_deref()).await?;
            let found = find(&service, &admin, &user, &task).await?;
            service
                .delete_task(&admin, Some(user.id), found.id)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            println!("removed task `{}` ({})", found.name, found.id);
        }
        TasksCommand::RunNow { task, user } => {
            let user = resolve_user(store.as_ref(), user.as_deref()).await?;
            let found = find(&service, &admin, &user, &task).await?;
            return run_now(&service, &admin, &user, &found).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn add(
    service: &ConversationService,
    admin: &Principal,
    user: &User,
    args: TaskAddArgs,
) -> Result<ScheduledTask> {
    let store = service.store();
    let preset = match &args.preset {
        Some(name) => preset_by_name(store.as_ref(), name).await?,
        None => only_preset(store.list_presets().await?)?,
    };
    let schedule = match (args.cron, args.every) {
        (Some(expression), _) => TaskSchedule::cron(expression, args.timezone),
        (None, Some(every)) => {
            TaskSchedule::every(u64::try_from(every.num_seconds()).unwrap_or(u64::MAX))
        }
        (None, None) => bail!("give --cron EXPR or --every DURATION"),
    };
    let spec = TaskSpec::new(args.name, schedule, preset.id, args.prompt)
        .with_conversation(args.conversation.map(ConversationId::from_uuid))
        .with_catch_up(args.catch_up)
        .with_enabled(!args.paused);
    service
        .create_task(admin, Some(user.id), spec)
        .await
        .map_err(|e| match e {
            ServiceError::Store(s) if s.is_not_found() => anyhow!("{s}"),
            other => anyhow!("{other}"),
        })
}

/// A task of `user` by id or name.
async fn find(
    service: &ConversationService,
    admin: &Principal,
    user: &User,
    task: &str,
) -> Result<ScheduledTask> {
    let tasks = service
        .list_tasks(admin, Some(user.id))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let id = task.parse::<TaskId>().ok();
    tasks
        .into_iter()
        .find(|t| Some(t.id) == id || t.name == task)
        .ok_or_else(|| {
            anyhow!(
                "{} has no task `{task}` (see `netherbrain tasks list`)",
                user.username
            )
        })
}

/// Runs the task here and prints its answer as it streams.
async fn run_now(
    service: &ConversationService,
    admin: &Principal,
    user: &User,
    task: &ScheduledTask,
) -> Result<ExitCode> {
    let handle = service
        .run_task(admin, Some(user.id), task.id)
        .await
        .map_err(|e| anyhow!("cannot run `{}`: {e}", task.name))?;
    eprintln!(
        "running `{}` in conversation {} (session {})",
        task.name, handle.conversation_id, handle.session_id
    );
    let mut events = service
        .events(admin, handle.session_id, 0)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut out = Answer::new();
    let mut status = SessionStatus::Committed;
    let mut error = None;
    while let Some(envelope) = events.next().await {
        match envelope.event {
            AgentEvent::TextMessageContent { delta, .. } => out.text(&delta),
            AgentEvent::ToolCallStart { tool_call_name, .. } => out.tool(&tool_call_name),
            AgentEvent::RunFinished { result, .. } => status = result.status,
            AgentEvent::RunError { message, .. } => {
                status = SessionStatus::Failed;
                error = Some(message);
            }
            _ => {}
        }
    }
    out.finish();
    match status {
        SessionStatus::Failed => {
            let error = error.unwrap_or_else(|| "the run failed".into());
            bail!("{}", crate::terminal::printable(&error))
        }
        SessionStatus::AwaitingToolResults => {
            eprintln!("[the run is waiting for tool approval; approve it in the web UI or API]");
            Ok(ExitCode::SUCCESS)
        }
        SessionStatus::Interrupted => {
            eprintln!("[interrupted]");
            Ok(ExitCode::from(130))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}
