//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

/// Netherbrain: a self-hosted LLM agent service.
///
/// Configuration comes from flags, then NETHER_* environment variables, then
/// a .env file in the working directory, then the TOML file (--config), then
/// defaults. See docs/configuration.md.
#[derive(Debug, Parser)]
#[command(name = "netherbrain", version, about, long_about)]
pub(crate) struct Cli {
    /// TOML configuration file [default: $XDG_CONFIG_HOME/netherbrain/config.toml,
    /// used when it exists] [env: NETHER_CONFIG]
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,

    /// Database URL (sqlite://PATH, postgres://…) [env: NETHER_DATABASE_URL]
    /// [default: SQLite file netherbrain.db in the data directory]
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) database_url: Option<String>,

    /// Data directory [env: NETHER_DATA_DIR] [default: $XDG_DATA_HOME/netherbrain
    /// or ~/.local/share/netherbrain]
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// The configuration values given as flags.
    pub(crate) fn overrides(&self) -> Overrides {
        let mut o = Overrides {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..Overrides::default()
        };
        let server = match &self.command {
            Command::Agent(args) => Some(&args.server),
            Command::Config {
                command: ConfigCommand::Show(args),
            } => Some(&args.server),
            _ => None,
        };
        if let Some(s) = server {
            o.host = s.host.clone();
            o.port = s.port;
            o.bind = s.bind.clone();
            o.auth_token = s.auth_token.clone();
            o.graceful_shutdown_timeout = s.graceful_shutdown_timeout;
        }
        o
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the agent server (HTTP API, SSE/WebSocket streaming, OpenAI-compatible endpoint) until SIGTERM/SIGINT.
    ///
    /// On a fresh database it creates the `admin` account and prints its API
    /// token once. On SIGTERM or Ctrl-C it stops accepting runs, lets running
    /// ones finish for up to the graceful shutdown timeout, interrupts the
    /// rest (their output is committed) and exits 0; a second signal exits
    /// 130. On SIGHUP it reads the config file again: presets and provider
    /// profiles apply to the next run, other changes are logged as needing a
    /// restart.
    Agent(AgentArgs),
    /// Run the chat gateway (Telegram, Discord) as its own process against a running
    /// agent (--runtime-url with an API key), or approve a pairing code.
    ///
    /// To run the channels inside the agent process instead, configure
    /// the `[gateway]` table and start `netherbrain agent`. See docs/gateway.md.
    Gateway(GatewayArgs),
    /// Database schema migrations.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Chat with an agent from the terminal.
    ///
    /// Runs in-process against the configured database (as the admin user)
    /// unless --url is given. Without -m it starts an interactive session:
    /// on a terminal with line editing and a history kept in the data
    /// directory (`chat_history`), answers rendered as Markdown and a spinner
    /// while the model works (plain text when piped or with NO_COLOR). Ctrl-C
    /// during an answer interrupts the run; Ctrl-C or Ctrl-D at the prompt
    /// exits.
    Chat(ChatArgs),
    /// Manage presets (named agent configurations).
    Presets {
        #[command(subcommand)]
        command: PresetsCommand,
    },
    /// Manage API keys in the local database.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage scheduled tasks in the local database (the running server
    /// picks changes up within a second).
    Tasks {
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// Server settings given as flags.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ServerArgs {
    /// Address to listen on [env: NETHER_HOST] [default: 127.0.0.1]. A
    /// non-loopback address (e.g. 0.0.0.0) is refused, with exit status 1,
    /// unless NETHER_AUTH_TOKEN (at least 16 characters) is set or an admin
    /// account has a password; off loopback GET /metrics then needs a token
    /// (unless NETHER_METRICS_PUBLIC=true) and a warning says that the
    /// server speaks plain HTTP (put a TLS reverse proxy in front)
    #[arg(long, value_name = "IP", conflicts_with = "bind")]
    pub(crate) host: Option<String>,
    /// Port to listen on [env: NETHER_PORT] [default: 9001]
    #[arg(long, value_name = "PORT", conflicts_with = "bind")]
    pub(crate) port: Option<u16>,
    /// Address and port to listen on, e.g. 0.0.0.0:9001 [env: NETHER_BIND]
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) bind: Option<String>,
    /// Operator token: authenticates as the admin; required for
    /// non-loopback binds on a fresh database [env: NETHER_AUTH_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub(crate) auth_token: Option<String>,
    /// Seconds running agent runs may continue after SIGTERM before they are
    /// interrupted [env: NETHER_GRACEFUL_SHUTDOWN_TIMEOUT] [default: 30]
    #[arg(long, value_name = "SECONDS")]
    pub(crate) graceful_shutdown_timeout: Option<u64>,
}

/// `netherbrain agent`.
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

/// `netherbrain db …`.
#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Apply every pending migration.
    Upgrade,
    /// Show the newest applied migration.
    Current,
    /// List every migration and when it was applied.
    History,
}

/// `netherbrain chat`.
#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// Send this one message, print the answer and exit.
    #[arg(short, long, value_name = "TEXT")]
    pub(crate) message: Option<String>,
    /// Preset to use [default: the conversation's preset, or the only preset]
    #[arg(short, long, value_name = "NAME")]
    pub(crate) preset: Option<String>,
    /// Continue this conversation (id) instead of starting a new one.
    #[arg(short, long, value_name = "ID")]
    pub(crate) conversation: Option<String>,
    /// Talk to a remote server at this URL instead of the local database.
    #[arg(long, value_name = "URL", requires = "token")]
    pub(crate) url: Option<String>,
    /// API token for --url [env: NETHER_TOKEN]
    #[arg(
        long,
        value_name = "TOKEN",
        env = "NETHER_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
}

/// `netherbrain presets …`.
#[derive(Debug, Subcommand)]
pub(crate) enum PresetsCommand {
    /// Import presets from a TOML file (one preset, or a `[[presets]]` array);
    /// existing presets with the same name are updated.
    Import {
        /// The TOML file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List presets.
    List,
}

/// `netherbrain keys …`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create an API key and print its token (shown once) on stdout.
    Create {
        /// A name for the key (e.g. what uses it).
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Owner: username or user id [default: admin]
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Lifetime, e.g. 90m, 12h, 30d, 4w [default: never expires]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<chrono::Duration>,
    },
    /// List a user's API keys (including revoked and expired ones).
    List {
        /// Owner: username or user id [default: admin]
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Revoke an API key.
    Revoke {
        /// The key id (from `keys list`).
        #[arg(value_name = "ID")]
        id: uuid::Uuid,
    },
}

/// `netherbrain config …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TasksCommand {
    /// Schedule a prompt: on a cron expression (in a time zone) or every
    /// interval, in a new conversation each time or in one conversation.
    Add(TaskAddArgs),
    /// List a user's tasks with their next and last runs.
    List {
        /// Whose tasks (username or id; default: the admin's).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Delete a task.
    Remove {
        /// The task's name or id.
        #[arg(value_name = "TASK")]
        task: String,
        /// Whose task (username or id; default: the admin's).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Run a task now, here, and print its answer (its schedule stays).
    RunNow {
        /// The task's name or id.
        #[arg(value_name = "TASK")]
        task: String,
        /// Whose task (username or id; default: the admin's).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct TaskAddArgs {
    /// A name, unique per user.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// A five-field cron expression (e.g. "0 7 * * 1-5") or @hourly,
    /// @daily, @weekly, @monthly, @yearly.
    #[arg(
        long,
        value_name = "EXPR",
        conflicts_with = "every",
        required_unless_present = "every"
    )]
    pub(crate) cron: Option<String>,
    /// The cron expression's IANA time zone.
    #[arg(long, value_name = "ZONE", default_value = "UTC", requires = "cron")]
    pub(crate) timezone: String,
    /// Run at this interval instead (e.g. 30m, 6h, 1d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) every: Option<chrono::Duration>,
    /// The message each run starts with.
    #[arg(long, value_name = "TEXT")]
    pub(crate) prompt: String,
    /// The preset each run uses (default: the only preset).
    #[arg(short, long, value_name = "NAME")]
    pub(crate) preset: Option<String>,
    /// Send every run to this conversation (default: a new one each time).
    #[arg(long, value_name = "ID")]
    pub(crate) conversation: Option<uuid::Uuid>,
    /// Run once at start a slot missed while no server was running.
    #[arg(long)]
    pub(crate) catch_up: bool,
    /// Create it paused.
    #[arg(long)]
    pub(crate) paused: bool,
    /// Whose task (username or id; default: the admin's).
    #[arg(long, value_name = "USER")]
    pub(crate) user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the effective configuration as TOML (secrets redacted), with
    /// where each value came from.
    Show(ShowArgs),
}

/// `netherbrain config show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

/// Parses `30s`, `90m`, `12h`, `30d`, `4w`.
fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` needs a unit: s, m, h, d or w (e.g. 30d)"))?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30d"))?;
    if n <= 0 {
        return Err("the duration must be positive".into());
    }
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("unknown unit `{unit}`: use s, m, h, d or w")),
    };
    n.checked_mul(secs)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| "the duration is too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30d").unwrap().num_days(), 30);
        assert_eq!(parse_duration("90m").unwrap().num_minutes(), 90);
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("3y").is_err());
    }
}

/// `netherbrain gateway`.
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    #[command(subcommand)]
    pub(crate) command: Option<GatewayCommand>,
    /// The agent to serve chats from, e.g. http://127.0.0.1:9001
    /// [env: NETHER_RUNTIME_URL]
    #[arg(long, value_name = "URL", env = "NETHER_RUNTIME_URL")]
    pub(crate) runtime_url: Option<String>,
    /// API key for --runtime-url [env: NETHER_API_KEY]
    #[arg(
        long,
        value_name = "KEY",
        env = "NETHER_API_KEY",
        hide_env_values = true
    )]
    pub(crate) api_key: Option<String>,
}

/// `netherbrain gateway …`.
#[derive(Debug, Subcommand)]
pub(crate) enum GatewayCommand {
    /// Approve a pairing code an unknown chat user received: they are served
    /// from now on, acting as USER.
    Pair {
        /// The code the bot sent.
        code: String,
        /// Netherbrain username (or id) they act as [default: the admin]
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
}
