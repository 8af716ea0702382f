//! `netherbrain chat`: a terminal chat, in-process against the local
//! database or remote through the typed HTTP client.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use netherbrain_core::auth::Principal;
use netherbrain_core::conversation::{ConversationService, RunTarget, SendMessage, ServiceError};
use netherbrain_core::runtime::RuntimeError;
use netherbrain_core::store::{ConversationPatch, NewConversation};
use netherbrain_core::{
    AgentEvent, ConversationId, EventEnvelope, Message, PresetId, SessionStatus,
};
use netherbrain_http::client::Client;
use netherbrain_http::dto::{RunConversationRequest, RunInput};
use tokio::sync::mpsc;

use crate::cli::ChatArgs;
use crate::config::Settings;
use crate::local::{admin_user, only_preset, open_prepared, preset_by_name};

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
            let history = settings.data_dir.join("chat_history");
            if let Some(dir) = history.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            chat.repl(Some(history)).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// In-process: a runtime and catalog over the configured database, as the
/// admin user.
async fn local(settings: &Settings, args: &ChatArgs) -> Result<Chat> {
    let store = open_prepared(settings).await?;
    let user = admin_user(store.as_ref()).await?;
    let (service, _) = crate::local::service(
        store.clone(),
        settings,
        crate::local::runtime(store.clone(), settings).await?,
    )
    .await?;

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
        let mut out = Answer::new();
        let mut status = SessionStatus::Committed;
        let mut error = None;
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
                _ = &mut ctrl_c, if !interrupted => {
                    interrupted = true;
                    self.interrupt(&running).await;
                }
            }
        }
        out.finish();
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

    /// Reads lines until Ctrl-C or Ctrl-D at the prompt (or `/exit`).
    async fn repl(mut self, history: Option<std::path::PathBuf>) -> Result<()> {
        let mut input = Input::open(history)?;
        loop {
            let typed = tokio::select! {
                typed = input.next() => typed,
                _ = tokio::signal::ctrl_c() => Typed::Interrupted,
            };
            let line = match typed {
                Typed::Line(line) => line,
                Typed::Interrupted | Typed::Eof => {
                    eprintln!();
                    return Ok(());
                }
                Typed::Failed(e) => bail!("reading the prompt: {e}"),
            };
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

/// What the prompt read.
enum Typed {
    Line(String),
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Ctrl-D or the end of stdin.
    Eof,
    Failed(String),
}

/// The prompt: on a terminal, rustyline (line editing, and history kept
/// in a file across sessions); otherwise plain lines of stdin, so piped
/// input works.
enum Input {
    Editor {
        /// Asks the editor thread for the next line.
        ask: std::sync::mpsc::Sender<()>,
        lines: mpsc::Receiver<Typed>,
    },
    Plain(mpsc::Receiver<std::io::Result<String>>),
}

impl Input {
    fn open(history: Option<std::path::PathBuf>) -> Result<Self> {
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            return Ok(Self::Plain(stdin_lines()));
        }
        let mut editor = rustyline::DefaultEditor::new()
            .map_err(|e| anyhow!("cannot open the terminal: {e}"))?;
        if let Some(path) = &history {
            // A first session has no history yet.
            let _ = editor.load_history(path);
        }
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let (tx, lines) = mpsc::channel(1);
        // readline blocks: it runs on its own thread, one line per ask.
        std::thread::spawn(move || {
            while asked.recv().is_ok() {
                let typed = match editor.readline("> ") {
                    Ok(line) => {
                        if !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                            if let Some(path) = &history
                                && let Err(e) = editor.save_history(path)
                            {
                                tracing::debug!(error = %e, "cannot save the chat history");
                            }
                        }
                        Typed::Line(line)
                    }
                    Err(rustyline::error::ReadlineError::Interrupted) => Typed::Interrupted,
                    Err(rustyline::error::ReadlineError::Eof) => Typed::Eof,
                    Err(e) => Typed::Failed(e.to_string()),
                };
                if tx.blocking_send(typed).is_err() {
                    return;
                }
            }
        });
        Ok(Self::Editor { ask, lines })
    }

    async fn next(&mut self) -> Typed {
        match self {
            Self::Editor { ask, lines } => {
                if ask.send(()).is_err() {
                    return Typed::Eof;
                }
                lines.recv().await.unwrap_or(Typed::Eof)
            }
            Self::Plain(lines) => {
                eprint!("> ");
                let _ = std::io::stderr().flush();
                match lines.recv().await {
                    Some(Ok(line)) => Typed::Line(line),
                    Some(Err(e)) => Typed::Failed(e.to_string()),
                    None => Typed::Eof,
                }
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

/// Where an answer goes: stdout, as it streams. On a terminal (unless
/// `NO_COLOR` is set) Markdown is rendered line by line and a spinner on
/// stderr shows the model is working; otherwise the text is written as it
/// comes, unstyled, so it can be piped.
pub(crate) struct Answer {
    stdout: std::io::Stdout,
    markdown: Option<crate::terminal::MarkdownLines>,
    spinner: Option<indicatif::ProgressBar>,
    wrote: bool,
    /// Whether what was written so far ends with a newline.
    at_line_start: bool,
}

impl Answer {
    pub(crate) fn new() -> Self {
        use std::io::IsTerminal as _;
        let stdout = std::io::stdout();
        let styled = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let mut answer = Self {
            stdout,
            markdown: styled.then(crate::terminal::MarkdownLines::default),
            spinner: None,
            wrote: false,
            at_line_start: true,
        };
        answer.spin("thinking…");
        answer
    }

    /// Shows the spinner (hidden by indicatif when stderr is no terminal).
    fn spin(&mut self, message: &str) {
        let spinner = self.spinner.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        spinner.set_message(message.to_owned());
    }

    /// Writes to stdout with the spinner out of the way.
    fn write(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let stdout = &mut self.stdout;
        let mut put = || {
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        };
        match &self.spinner {
            Some(spinner) => spinner.suspend(put),
            None => put(),
        }
        self.wrote = true;
        self.at_line_start = text.ends_with('\n');
    }

    pub(crate) fn text(&mut self, delta: &str) {
        match self.markdown.as_mut() {
            Some(markdown) => {
                let lines = markdown.push(delta);
                self.spin("writing…");
                self.write(&lines);
            }
            None => {
                // Unstyled text is written mid-line: no spinner over it.
                if let Some(spinner) = self.spinner.take() {
                    spinner.finish_and_clear();
                }
                let text = crate::terminal::printable(delta).into_owned();
                self.write(&text);
            }
        }
    }

    pub(crate) fn tool(&mut self, name: &str) {
        let name = crate::terminal::printable(name).into_owned();
        let line = format!("\n[tool: {name}]");
        match &self.spinner {
            Some(spinner) => spinner.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
        if self.markdown.is_some() {
            self.spin(&format!("running {name}…"));
        }
    }

    pub(crate) fn finish(&mut self) {
        let rest = self
            .markdown
            .as_mut()
            .map(crate::terminal::MarkdownLines::finish)
            .unwrap_or_default();
        self.write(&rest);
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
        if self.wrote && !self.at_line_start {
            let _ = writeln!(self.stdout);
            let _ = self.stdout.flush();
        }
    }
}
