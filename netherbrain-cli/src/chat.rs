//! `netherbrain chat`: a terminal chat, in-process or (later) remote.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt as _;
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::runtime::{PresetRun, Runtime, RuntimeError};
use netherbrain_core::store::{ConversationPatch, NewConversation, Preset, StateStore};
use netherbrain_core::{AgentEvent, ConversationId, Message, PresetId, SessionStatus};
use tokio::sync::mpsc;

use crate::cli::ChatArgs;
use crate::config::Settings;
use crate::local::{admin_user, bootstrap_quietly, build_catalog, open_store};

/// Exit status of a one-shot chat whose run was interrupted (as for SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

pub(crate) async fn run(settings: &Settings, args: ChatArgs) -> Result<ExitCode> {
    if let Some(url) = &args.url {
        bail!(
            "remote chat (--url {url}) is not supported yet: this build has no client for the server's conversation run API; run `netherbrain chat` on the server's machine instead"
        );
    }
    let store = open_store(settings).await?;
    bootstrap_quietly(store.as_ref(), settings).await?;
    let user = admin_user(store.as_ref()).await?;
    let catalog = build_catalog(&settings.providers);
    let runtime = Runtime::new(store.clone());

    let requested = match &args.preset {
        Some(name) => Some(preset_by_name(store.as_ref(), name).await?),
        None => None,
    };
    let preset_id = requested.as_ref().map(|p| p.id);
    let conversation = match &args.conversation {
        Some(id) => {
            let id: ConversationId = id
                .parse()
                .map_err(|_| anyhow!("`{id}` is not a conversation id"))?;
            let conversation = store.get_conversation(id).await.map_err(|e| {
                if e.is_not_found() {
                    anyhow!("no conversation {id}")
                } else {
                    e.into()
                }
            })?;
            if conversation.owner != user.id {
                bail!("conversation {id} belongs to another user");
            }
            if let Some(preset) = &requested {
                let mut patch = ConversationPatch::default();
                patch.default_preset = Some(Some(preset.id));
                store.update_conversation(id, patch).await?;
            }
            conversation.id
        }
        None => {
            let preset = match requested {
                Some(p) => p,
                None => only_preset(store.as_ref()).await?,
            };
            let mut new = NewConversation::new(user.id);
            new.default_preset = Some(preset.id);
            new.title = args
                .message
                .as_deref()
                .map(|m| m.chars().take(60).collect());
            store.create_conversation(new).await?.id
        }
    };
    let chat = Chat {
        runtime,
        catalog,
        conversation,
        preset_id,
    };
    match args.message {
        Some(message) => {
            let outcome = chat.turn(message).await?;
            Ok(match outcome {
                SessionStatus::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
                _ => ExitCode::SUCCESS,
            })
        }
        None => {
            eprintln!(
                "conversation {conversation}: Ctrl-C interrupts an answer; Ctrl-C or Ctrl-D at the prompt exits"
            );
            chat.repl().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn preset_by_name(store: &dyn StateStore, name: &str) -> Result<Preset> {
    store.get_preset_by_name(name).await.map_err(|e| {
        if e.is_not_found() {
            anyhow!("no preset named `{name}` (see `netherbrain presets list`)")
        } else {
            e.into()
        }
    })
}

async fn only_preset(store: &dyn StateStore) -> Result<Preset> {
    let mut presets = store.list_presets().await?;
    match presets.len() {
        0 => bail!("there are no presets: import one with `netherbrain presets import FILE`"),
        1 => Ok(presets.remove(0)),
        _ => {
            let names: Vec<_> = presets.iter().map(|p| p.name.as_str()).collect();
            bail!("choose a preset with --preset NAME ({})", names.join(", "))
        }
    }
}

struct Chat {
    runtime: Runtime,
    catalog: AgentCatalog,
    conversation: ConversationId,
    preset_id: Option<PresetId>,
}

impl Chat {
    /// Runs one message and streams the answer; Ctrl-C interrupts the run.
    async fn turn(&self, text: String) -> Result<SessionStatus> {
        let run = PresetRun::new(self.conversation, vec![Message::user(text)])
            .with_preset(self.preset_id);
        let handle = self
            .runtime
            .start_preset(&self.catalog, run)
            .await
            .map_err(|e| match e {
                RuntimeError::Busy { session_id } => anyhow!(
                    "the conversation is busy with session {session_id}; wait for it or interrupt it"
                ),
                other => anyhow!("{other}"),
            })?;
        let mut events = self
            .runtime
            .subscribe(handle.session_id, 0)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let mut stdout = std::io::stdout();
        let mut status = SessionStatus::Committed;
        let mut error = None;
        let mut wrote = false;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let mut interrupted = false;
        loop {
            tokio::select! {
                event = events.next() => {
                    let Some(envelope) = event else { break };
                    match envelope.event {
                        AgentEvent::TextMessageContent { delta, .. } => {
                            let _ = write!(stdout, "{delta}");
                            let _ = stdout.flush();
                            wrote = true;
                        }
                        AgentEvent::ToolCallStart { tool_call_name, .. } => {
                            eprintln!("\n[tool: {tool_call_name}]");
                        }
                        AgentEvent::RunFinished { result, .. } => status = result.status,
                        AgentEvent::RunError { message, .. } => {
                            status = SessionStatus::Failed;
                            error = Some(message);
                        }
                        _ => {}
                    }
                }
                _ = &mut ctrl_c, if !interrupted => {
                    interrupted = true;
                    let _ = self.runtime.interrupt(handle.session_id);
                }
            }
        }
        if wrote {
            let _ = writeln!(stdout);
            let _ = stdout.flush();
        }
        match status {
            SessionStatus::Interrupted => eprintln!("[interrupted]"),
            SessionStatus::AwaitingToolResults => {
                eprintln!("[the run is waiting for tool approval; approve it in the web UI or API]")
            }
            SessionStatus::Failed => {
                bail!("{}", error.unwrap_or_else(|| "the run failed".into()))
            }
            _ => {}
        }
        Ok(status)
    }

    /// Reads lines until Ctrl-C or Ctrl-D at the prompt.
    async fn repl(self) -> Result<()> {
        let mut lines = stdin_lines();
        loop {
            eprint!("> ");
            let _ = std::io::stderr().flush();
            let line = tokio::select! {
                line = lines.recv() => line,
                _ = tokio::signal::ctrl_c() => None,
            };
            let Some(line) = line else {
                eprintln!();
                return Ok(());
            };
            let line = line.context("reading stdin")?;
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            if matches!(text, "/exit" | "/quit") {
                return Ok(());
            }
            if let Err(e) = self.turn(text.to_owned()).await {
                eprintln!("error: {e:#}");
            }
        }
    }
}

/// Lines of stdin, read on a plain thread (a blocked read must not hold up
/// the exit).
fn stdin_lines() -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if tx
                        .blocking_send(Ok(line.trim_end_matches(['\r', '\n']).to_owned()))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}
