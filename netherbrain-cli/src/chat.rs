//! `netherbrain chat`: a terminal chat, in-process against the local
//! database or remote through the typed HTTP client.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use netherbrain_core::auth::Principal;
use netherbrain_core::conversation::{ConversationService, RunTarget, SendMessage, ServiceError};
use netherbrain_core::runtime::RuntimeError;
use netherbrain_core::store::{ConversationPatch, NewConversation, Preset, StateStore};
use netherbrain_core::{
    AgentEvent, ConversationId, EventEnvelope, Message, PresetId, SessionStatus,
};
use netherbrain_http::client::Client;
use netherbrain_http::dto::{RunConversationRequest, RunInput};
use tokio::sync::mpsc;

use crate::cli::ChatArgs;
use crate::config::Settings;
use crate::local::{admin_user, build_catalog, open_prepared};

/// Exit status of a one-shot chat whose run was interrupted (as for SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

pub(crate) async fn run(settings: &Settings, args: ChatArgs) -> Result<ExitCode> {
    let chat = match &args.url {
        Some(url) => remote(url, &args).await?,
        None => local(settings, &args).await?,
    };
    match args.message {
        Some(message) => {
            let mut chat = chat;
            let outcome = chat.turn(message).await?;
            Ok(match outcome {
                SessionStatus::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
                _ => ExitCode::SUCCESS,
            })
        }
        None => {
            match chat.conversation {
                Some(id) => eprintln!("conversation {id}"),
                None => eprintln!("new conversation"),
            }
            eprintln!("Ctrl-C interrupts an answer; Ctrl-C or Ctrl-D at the prompt exits");
            chat.repl().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// In-process: a runtime and catalog over the configured database, as the
/// admin user.
async fn local(settings: &Settings, args: &ChatArgs) -> Result<Chat> {
    let store = open_prepared(settings).await?;
    let user = admin_user(store.as_ref()).await?;
    let catalog = std::sync::Arc::new(build_catalog(&settings.providers));
    let service = ConversationService::builder(store.clone())
        .runtime(crate::local::runtime(store.clone(), settings))
        .catalog(catalog)
        .workspace_roots(crate::local::workspace_roots(settings)?)
        .build();

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
                None => only_preset(store.list_presets().await?)?,
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
    Ok(Chat {
        backend: Backend::Local {
            service,
            who: Principal::of(&user),
            preset_id,
        },
        conversation: Some(conversation),
    })
}

/// Remote: the server's conversation API through the typed client.
async fn remote(url: &str, args: &ChatArgs) -> Result<Chat> {
    let token = args
        .token
        .clone()
        .ok_or_else(|| anyhow!("--url needs --token (or NETHER_TOKEN)"))?;
    let client = Client::new(url, Some(token)).map_err(|e| anyhow!("{url}: {e}"))?;
    let conversation = args
        .conversation
        .as_deref()
        .map(|id| {
            id.parse::<ConversationId>()
                .map_err(|_| anyhow!("`{id}` is not a conversation id"))
        })
        .transpose()?;
    let presets = client
        .list_presets()
        .await
        .map_err(|e| anyhow!("{url}: {e}"))?;
    let preset_id = match &args.preset {
        Some(name) => Some(
            presets
                .iter()
                .find(|p| &p.name == name)
                .map(|p| p.id)
                .ok_or_else(|| anyhow!("the server has no preset named `{name}`"))?,
        ),
        None if conversation.is_none() => {
            let only = match presets.len() {
                0 => bail!("the server has no presets"),
                1 => presets[0].id,
                _ => {
                    let names: Vec<_> = presets.iter().map(|p| p.name.as_str()).collect();
                    bail!("choose a preset with --preset NAME ({})", names.join(", "))
                }
            };
            Some(only)
        }
        None => None,
    };
    Ok(Chat {
        backend: Backend::Remote { client, preset_id },
        conversation,
    })
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

fn only_preset(mut presets: Vec<Preset>) -> Result<Preset> {
    match presets.len() {
        0 => bail!("there are no presets: import one with `netherbrain presets import FILE`"),
        1 => Ok(presets.remove(0)),
        _ => {
            let names: Vec<_> = presets.iter().map(|p| p.name.as_str()).collect();
            bail!("choose a preset with --preset NAME ({})", names.join(", "))
        }
    }
}

enum Backend {
    Local {
        service: ConversationService,
        who: Principal,
        preset_id: Option<PresetId>,
    },
    Remote {
        client: Client,
        preset_id: Option<uuid::Uuid>,
    },
}

/// What to interrupt when Ctrl-C arrives.
enum Running {
    Session(netherbrain_core::SessionId),
    Remote,
}

struct Chat {
    backend: Backend,
    /// `None` until the server names the conversation a remote run created.
    conversation: Option<ConversationId>,
}

impl Chat {
    /// Starts a run and returns its event stream.
    async fn start(
        &self,
        text: String,
    ) -> Result<(BoxStream<'static, Result<EventEnvelope>>, Running)> {
        match &self.backend {
            Backend::Local {
                service,
                who,
                preset_id,
            } => {
                let conversation = self
                    .conversation
                    .ok_or_else(|| anyhow!("no conversation"))?;
                let message = SendMessage::to(conversation, vec![Message::user(text)])
                    .with_preset(*preset_id);
                let sent = service.send(who, message).await.map_err(|e| match e {
                    ServiceError::Runtime(RuntimeError::Busy { session_id }) => anyhow!(
                        "the conversation is busy with session {session_id}; wait for it or interrupt it"
                    ),
                    other => anyhow!("{other}"),
                })?;
                let handle = sent.handle().clone();
                let events = service
                    .events(who, handle.session_id, 0)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                Ok((events.map(Ok).boxed(), Running::Session(handle.session_id)))
            }
            Backend::Remote { client, preset_id } => {
                let req = RunConversationRequest {
                    conversation_id: self.conversation.map(Into::into),
                    // The conversation keeps its preset after the first run.
                    preset_id: if self.conversation.is_some() {
                        None
                    } else {
                        *preset_id
                    },
                    input: RunInput::Text(text),
                    stream: true,
                };
                let events = client
                    .run_stream(&req)
                    .map(|e| e.map_err(|e| anyhow!("{e}")))
                    .boxed();
                Ok((events, Running::Remote))
            }
        }
    }

    async fn interrupt(&self, running: &Running) {
        match (running, &self.backend) {
            (Running::Session(id), Backend::Local { service, who, .. }) => {
                let _ = service.interrupt(who, RunTarget::Session(*id)).await;
            }
            (Running::Remote, Backend::Remote { client, .. }) => {
                if let Some(id) = self.conversation
                    && let Err(e) = client.interrupt_conversation(id.into()).await
                {
                    eprintln!("\n[cannot interrupt: {e}]");
                }
            }
            _ => {}
        }
    }

    /// Runs one message and streams the answer; Ctrl-C interrupts the run.
    async fn turn(&mut self, text: String) -> Result<SessionStatus> {
        let (mut events, running) = self.start(text).await?;
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
                    match envelope?.event {
                        AgentEvent::RunStarted { thread_id, .. } => {
                            self.conversation = Some(thread_id);
                        }
                        AgentEvent::TextMessageContent { delta, .. } => {
                            let _ = write!(stdout, "{}", crate::terminal::printable(&delta));
                            let _ = stdout.flush();
                            wrote = true;
                        }
                        AgentEvent::ToolCallStart { tool_call_name, .. } => {
                            eprintln!("\n[tool: {}]", crate::terminal::printable(&tool_call_name));
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
                    self.interrupt(&running).await;
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
                let error = error.unwrap_or_else(|| "the run failed".into());
                bail!("{}", crate::terminal::printable(&error))
            }
            _ => {}
        }
        Ok(status)
    }

    /// Reads lines until Ctrl-C or Ctrl-D at the prompt.
    async fn repl(mut self) -> Result<()> {
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
