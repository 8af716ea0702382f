//! Configuration loading.
//!
//! Precedence, highest first: command-line flags, `NETHER_*` environment
//! variables, a `.env` file in the working directory (loaded without
//! overriding the real environment), the TOML configuration file, defaults.
//! The layers are merged by `figment`, one named layer per source, so
//! `config show` reads each value's source back from the merge; default
//! paths come from the `directories` crate. Every setting is documented in
//! `docs/configuration.md`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use netherbrain_core::provider::ProviderProfile;
use serde::{Deserialize, Serialize};

mod layers;
mod show;

use self::layers::resolve;
use self::show::REDACTED;
pub(crate) use self::show::{redact_url, render};

/// Default listen port.
pub(crate) const DEFAULT_PORT: u16 = 9001;
/// Default graceful shutdown timeout in seconds.
pub(crate) const DEFAULT_GRACEFUL_SECS: u64 = 30;
/// Default request body limit in bytes.
pub(crate) const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default limit of concurrent runs per user.
pub(crate) const DEFAULT_MAX_RUNS_PER_USER: usize = 16;
/// Default limit of conversations one WebSocket follows.
pub(crate) const DEFAULT_MAX_WS_SUBSCRIPTIONS: usize = 64;
/// Default `max_tokens` of presets that set none (the output cap of a run).
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Default session lease in seconds.
pub(crate) const DEFAULT_SESSION_LEASE_SECS: u64 = 15;

/// Environment variables this module reads.
pub(crate) mod env {
    pub(crate) const CONFIG: &str = "NETHER_CONFIG";
    pub(crate) const HOST: &str = "NETHER_HOST";
    pub(crate) const PORT: &str = "NETHER_PORT";
    pub(crate) const BIND: &str = "NETHER_BIND";
    pub(crate) const DATA_DIR: &str = "NETHER_DATA_DIR";
    pub(crate) const DATABASE_URL: &str = "NETHER_DATABASE_URL";
    pub(crate) const REDIS_URL: &str = "NETHER_REDIS_URL";
    pub(crate) const DRAIN_DELAY: &str = "NETHER_DRAIN_DELAY";
    pub(crate) const AUTH_TOKEN: &str = "NETHER_AUTH_TOKEN";
    pub(crate) const GRACEFUL: &str = "NETHER_GRACEFUL_SHUTDOWN_TIMEOUT";
    pub(crate) const LOG: &str = "NETHER_LOG";
    pub(crate) const LOG_FORMAT: &str = "NETHER_LOG_FORMAT";
    pub(crate) const BODY_LIMIT: &str = "NETHER_BODY_LIMIT";
    pub(crate) const SESSION_LEASE: &str = "NETHER_SESSION_LEASE";
    pub(crate) const METRICS_PUBLIC: &str = "NETHER_METRICS_PUBLIC";
    pub(crate) const TRUSTED_PROXIES: &str = "NETHER_TRUSTED_PROXIES";
    pub(crate) const MAX_RUNS_PER_USER: &str = "NETHER_MAX_RUNS_PER_USER";
    pub(crate) const MAX_WS_SUBSCRIPTIONS: &str = "NETHER_MAX_WS_SUBSCRIPTIONS";
    pub(crate) const DEFAULT_MAX_TOKENS: &str = "NETHER_DEFAULT_MAX_TOKENS";
    pub(crate) const OPENAI_API_KEY: &str = "OPENAI_API_KEY";
    pub(crate) const OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";
    pub(crate) const ANTHROPIC_API_KEY: &str = "ANTHROPIC_API_KEY";
    pub(crate) const ANTHROPIC_BASE_URL: &str = "ANTHROPIC_BASE_URL";
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => bail!("log format must be `text` or `json`, not `{other}`"),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// A preset as written in TOML: `name`, optional `description`, `[config]`.
pub(crate) use netherbrain_core::conversation::PresetDocument as PresetDoc;

/// Parses a preset file: one preset (`name`, `[config]`) or `[[presets]]`.
pub(crate) fn parse_presets(text: &str) -> Result<Vec<PresetDoc>> {
    netherbrain_core::conversation::parse_preset_documents(text).map_err(|e| anyhow!("{e}"))
}

/// The TOML configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    host: Option<String>,
    port: Option<u16>,
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    redis_url: Option<String>,
    auth_token: Option<String>,
    graceful_shutdown_timeout: Option<u64>,
    drain_delay: Option<u64>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    body_limit: Option<usize>,
    session_lease: Option<u64>,
    workspace_roots: Option<Vec<PathBuf>>,
    metrics_public: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    max_runs_per_user: Option<usize>,
    max_ws_subscriptions: Option<usize>,
    default_max_tokens: Option<u32>,
    #[serde(default)]
    providers: Vec<ProviderProfile>,
    #[serde(default)]
    presets: Vec<PresetDoc>,
    gateway: Option<crate::gateway::GatewayFile>,
    memory: Option<MemoryFile>,
    tasks: Option<TasksFile>,
    budgets: Option<BudgetsFile>,
}

/// The `[tasks]` section: scheduled-task limits and timing.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TasksFile {
    /// Whether this process runs due tasks (default `true`; every process
    /// sharing a database may, each slot runs once).
    pub(crate) scheduler: Option<bool>,
    /// Most tasks per user (default 100).
    pub(crate) max_per_user: Option<u32>,
    /// Shortest interval of a task, in seconds (default 60).
    pub(crate) min_interval: Option<u64>,
    /// How often due tasks are looked for, in seconds (default 1).
    pub(crate) poll_interval: Option<f64>,
    /// How late a slot may run and still be on time, in seconds (default
    /// 60); a later one was missed.
    pub(crate) grace: Option<u64>,
}

/// The `[budgets]` section: daily token caps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetsFile {
    /// Most tokens each user's runs may spend per day (UTC); none: no cap.
    pub(crate) user_daily_tokens: Option<u64>,
}

/// The `[memory]` section: long-term memory limits and embeddings.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemoryFile {
    /// Most memories per user (default 1000).
    pub(crate) max_per_user: Option<u32>,
    /// Most characters of one memory (default 2000).
    pub(crate) max_chars: Option<usize>,
    /// The provider profile whose `embeddings_model` embeds memories
    /// (default: the first profile that has one; none: full-text only).
    pub(crate) embeddings_profile: Option<String>,
    /// Least cosine similarity of a recall by embedding (default 0.5).
    pub(crate) min_similarity: Option<f32>,
}

/// Values given on the command line.
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    pub(crate) config: Option<PathBuf>,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) bind: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) database_url: Option<String>,
    pub(crate) auth_token: Option<String>,
    pub(crate) graceful_shutdown_timeout: Option<u64>,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Default,
    File,
    DotEnv(&'static str),
    Env(&'static str),
    Flag(&'static str),
    Derived(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File => f.write_str("config file"),
            Self::DotEnv(var) => write!(f, ".env {var}"),
            Self::Env(var) => write!(f, "env {var}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
            Self::Derived(what) => write!(f, "derived from {what}"),
        }
    }
}

/// The environment as read once at start-up, remembering which variables
/// came from `.env`.
#[derive(Debug, Default)]
pub(crate) struct Env {
    vars: BTreeMap<String, String>,
    from_dotenv: HashSet<String>,
}

impl Env {
    /// Loads `./.env` (without overriding set variables) and snapshots the
    /// environment. Call before any thread is started.
    pub(crate) fn load() -> Result<Self> {
        let before: HashSet<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect();
        match dotenvy::from_path(".env") {
            Ok(()) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(anyhow!("cannot load .env: {e}")),
        }
        let vars: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let from_dotenv = vars
            .keys()
            .filter(|k| !before.contains(*k))
            .cloned()
            .collect();
        Ok(Self { vars, from_dotenv })
    }

    /// An environment from pairs (tests).
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self {
            vars: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            from_dotenv: HashSet::new(),
        }
    }

    /// A non-empty variable.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A non-empty variable with its source.
    fn sourced(&self, name: &'static str) -> Option<(&str, Source)> {
        let value = self.get(name)?;
        let source = if self.from_dotenv.contains(name) {
            Source::DotEnv(name)
        } else {
            Source::Env(name)
        };
        Some((value, source))
    }
}

/// The effective configuration.
#[derive(Clone)]
pub(crate) struct Settings {
    /// The configuration file that was read, if any.
    pub(crate) config_file: Option<PathBuf>,
    pub(crate) host: IpAddr,
    pub(crate) port: u16,
    pub(crate) data_dir: PathBuf,
    pub(crate) database_url: String,
    /// Redis for several replicas on one Postgres database (multi-replica
    /// mode); `None`: a single process.
    pub(crate) redis_url: Option<String>,
    pub(crate) auth_token: Option<String>,
    /// How long a running session's lease lasts without renewal.
    pub(crate) session_lease: Duration,
    pub(crate) graceful_shutdown_timeout: Duration,
    /// After a shutdown signal: how long the server reports not-ready
    /// while still taking runs, so a load balancer moves new work away
    /// before the drain begins.
    pub(crate) drain_delay: Duration,
    pub(crate) log: String,
    pub(crate) log_format: LogFormat,
    pub(crate) body_limit: usize,
    /// Whether `GET /metrics` stays open without a token off loopback.
    pub(crate) metrics_public: bool,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    /// Runs one user may have going at once.
    pub(crate) max_runs_per_user: usize,
    /// Conversations one WebSocket may follow.
    pub(crate) max_ws_subscriptions: usize,
    /// `max_tokens` of presets that set none; `None` (configured `0`):
    /// the provider's own.
    pub(crate) default_max_tokens: Option<u32>,
    pub(crate) providers: Vec<ProviderProfile>,
    pub(crate) presets: Vec<PresetDoc>,
    /// Where workspaces' project directories may lie.
    pub(crate) workspace_roots: Vec<PathBuf>,
    /// The chat gateway's channels and settings.
    pub(crate) gateway: crate::gateway::GatewaySettings,
    /// Long-term memory.
    pub(crate) memory: MemoryFile,
    /// Scheduled tasks.
    pub(crate) tasks: TasksFile,
    /// Daily token caps.
    pub(crate) budgets: BudgetsFile,
    /// Where each setting came from, by TOML key.
    pub(crate) sources: BTreeMap<&'static str, Source>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("config_file", &self.config_file)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("auth_token", &self.auth_token.as_ref().map(|_| REDACTED))
            .field("session_lease", &self.session_lease)
            .field("body_limit", &self.body_limit)
            .field("metrics_public", &self.metrics_public)
            .field("trusted_proxies", &self.trusted_proxies)
            // ProviderProfile's Debug redacts its key.
            .field("providers", &self.providers)
            .field("presets", &self.presets.len())
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The listen address.
    pub(crate) fn bind(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// Names of the configured provider profiles.
    pub(crate) fn profile_names(&self) -> Vec<&str> {
        self.providers.iter().map(|p| p.name.as_str()).collect()
    }

    fn source(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }
}

/// The default configuration file: `config.toml` in the platform's
/// configuration directory for `netherbrain` (on Linux
/// `$XDG_CONFIG_HOME/netherbrain`, else `~/.config/netherbrain`).
pub(crate) fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "netherbrain")
        .map(|dirs| dirs.config_dir().join("config.toml"))
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().to_owned();
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].lines().count().max(1);
                anyhow!("config file {} line {line}: {msg}", path.display())
            }
            None => anyhow!("config file {}: {msg}", path.display()),
        }
    })
}

/// Reads the configuration file (explicit: must exist; default: optional).
fn load_file(overrides: &Overrides, env: &Env) -> Result<(FileConfig, Option<PathBuf>)> {
    let explicit = overrides
        .config
        .clone()
        .or_else(|| env.get(env::CONFIG).map(PathBuf::from));
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("config file {} does not exist", path.display());
        }
        return Ok((read_file(&path)?, Some(path)));
    }
    match default_config_path() {
        Some(path) if path.is_file() => Ok((read_file(&path)?, Some(path))),
        _ => Ok((FileConfig::default(), None)),
    }
}

/// Loads the configuration: `.env`, environment, file, flags.
pub(crate) fn load(overrides: &Overrides, env: &Env) -> Result<Settings> {
    let (file, path) = load_file(overrides, env)?;
    resolve(overrides, env, file, path)
}

#[cfg(test)]
mod tests {
    use netherbrain_core::provider::ProviderKind;

    use super::show::redacted_profile;
    use super::*;

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let f = file("port = 1111\nhost = \"0.0.0.0\"\nlog = \"debug\"\n");
        let env = Env::from_pairs(&[(env::PORT, "2222"), (env::LOG, "warn")]);
        let flags = Overrides {
            port: Some(3333),
            ..Overrides::default()
        };
        let s = resolve(&flags, &env, f, None).unwrap();
        assert_eq!(s.port, 3333);
        assert_eq!(s.sources["port"], Source::Flag("--port"));
        assert_eq!(s.host.to_string(), "0.0.0.0");
        assert_eq!(s.sources["host"], Source::File);
        assert_eq!(s.log, "warn");
        let s = resolve(&Overrides::default(), &env, FileConfig::default(), None).unwrap();
        assert_eq!(s.port, 2222);
        assert_eq!(s.sources["port"], Source::Env(env::PORT));
    }

    #[test]
    fn bind_is_split_into_host_and_port() {
        let env = Env::from_pairs(&[(env::BIND, "0.0.0.0:8080"), (env::PORT, "9090")]);
        let s = resolve(&Overrides::default(), &env, FileConfig::default(), None).unwrap();
        assert_eq!(s.bind().to_string(), "0.0.0.0:9090");
        let env = Env::from_pairs(&[(env::BIND, "nope")]);
        assert!(resolve(&Overrides::default(), &env, FileConfig::default(), None).is_err());
    }

    #[test]
    fn database_url_defaults_into_the_data_dir() {
        let flags = Overrides {
            data_dir: Some("/srv/nb".into()),
            ..Overrides::default()
        };
        let s = resolve(&flags, &Env::default(), FileConfig::default(), None).unwrap();
        assert_eq!(s.database_url, "sqlite:///srv/nb/netherbrain.db");
        let env = Env::from_pairs(&[(env::DATABASE_URL, "mysql://x")]);
        assert!(resolve(&flags, &env, FileConfig::default(), None).is_err());
    }

    #[test]
    fn redis_needs_postgres_and_lengthens_the_drain_delay() {
        let flags = Overrides::default();
        let s = resolve(&flags, &Env::default(), FileConfig::default(), None).unwrap();
        assert_eq!((s.redis_url, s.drain_delay), (None, Duration::ZERO));
        let env = Env::from_pairs(&[(env::REDIS_URL, "redis://127.0.0.1:6379")]);
        let err = resolve(&flags, &env, FileConfig::default(), None).unwrap_err();
        assert!(
            err.to_string().contains("SQLite serves a single process"),
            "{err}"
        );
        let env = Env::from_pairs(&[
            (env::REDIS_URL, "redis://127.0.0.1:6379"),
            (env::DATABASE_URL, "postgres://nb@db/nb"),
        ]);
        let s = resolve(&flags, &env, FileConfig::default(), None).unwrap();
        assert_eq!(s.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        let env = Env::from_pairs(&[
            (env::REDIS_URL, "http://127.0.0.1:6379"),
            (env::DATABASE_URL, "postgres://nb@db/nb"),
        ]);
        let err = resolve(&flags, &env, FileConfig::default(), None).unwrap_err();
        assert!(err.to_string().contains("redis://"), "{err}");
        assert_eq!(s.drain_delay, Duration::from_secs(5));
        let f = file(
            "redis_url = \"redis://r:6379\"\ndrain_delay = 12\ndatabase_url = \"postgres://nb@db/nb\"\n",
        );
        let s = resolve(&flags, &Env::default(), f, None).unwrap();
        assert_eq!(s.redis_url.as_deref(), Some("redis://r:6379"));
        assert_eq!(s.drain_delay, Duration::from_secs(12));
    }

    #[test]
    fn providers_are_derived_from_conventional_variables() {
        let env = Env::from_pairs(&[
            (env::OPENAI_BASE_URL, "http://127.0.0.1:11434/v1"),
            (env::ANTHROPIC_API_KEY, "sk-ant"),
        ]);
        let s = resolve(&Overrides::default(), &env, FileConfig::default(), None).unwrap();
        assert_eq!(s.profile_names(), ["openai", "anthropic"]);
        assert_eq!(s.providers[0].api_key_env, None);
        let f = file("[[providers]]\nname = \"local\"\nkind = \"openai\"\n");
        let s = resolve(&Overrides::default(), &env, f, None).unwrap();
        assert_eq!(s.profile_names(), ["local"]);
    }

    #[test]
    fn default_max_tokens_is_4096_and_zero_turns_it_off() {
        let s = resolve(
            &Overrides::default(),
            &Env::default(),
            FileConfig::default(),
            None,
        )
        .unwrap();
        assert_eq!(s.default_max_tokens, Some(DEFAULT_MAX_TOKENS));
        let s = resolve(
            &Overrides::default(),
            &Env::default(),
            file("default_max_tokens = 512\n"),
            None,
        )
        .unwrap();
        assert_eq!(s.default_max_tokens, Some(512));
        let env = Env::from_pairs(&[(env::DEFAULT_MAX_TOKENS, "0")]);
        let s = resolve(
            &Overrides::default(),
            &env,
            file("default_max_tokens = 512\n"),
            None,
        )
        .unwrap();
        assert_eq!(
            s.default_max_tokens, None,
            "the environment wins; 0 leaves it to the provider"
        );
        let env = Env::from_pairs(&[(env::DEFAULT_MAX_TOKENS, "lots")]);
        assert!(resolve(&Overrides::default(), &env, FileConfig::default(), None).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any file text and environment values: an error or settings,
        /// never a panic.
        #[test]
        fn config_parsing_never_panics(
            text in "\\PC{0,200}",
            key in "(host|port|bind|body_limit|session_lease|trusted_proxies|metrics_public|max_runs_per_user)",
            value in "[ -~]{0,24}",
            var in "[ -~]{0,24}",
        ) {
            let _ = toml::from_str::<FileConfig>(&text);
            if let Ok(f) = toml::from_str::<FileConfig>(&format!("{key} = {value}\n")) {
                let _ = resolve(&Overrides::default(), &Env::default(), f, None);
            }
            for name in [env::PORT, env::HOST, env::BIND, env::BODY_LIMIT, env::TRUSTED_PROXIES, env::METRICS_PUBLIC, env::MAX_RUNS_PER_USER, env::DEFAULT_MAX_TOKENS] {
                let env = Env::from_pairs(&[(name, var.as_str())]);
                let _ = resolve(&Overrides::default(), &env, FileConfig::default(), None);
            }
            let _ = redact_url(&var);
            let _ = redact_url(&text);
        }
    }

    #[test]
    fn settings_debug_prints_no_secret() {
        let f = file(
            "auth_token = \"operator-secret-0123456789\"\ndatabase_url = \"postgres://u:pg-secret@h/db\"\n[[providers]]\nname = \"p\"\nkind = \"openai\"\napi_key = \"sk-inline-secret\"\n",
        );
        let settings = resolve(&Overrides::default(), &Env::default(), f, None).unwrap();
        let text = format!("{settings:?}");
        for secret in ["operator-secret", "pg-secret", "sk-inline-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn provider_urls_and_headers_are_redacted() {
        assert_eq!(
            redact_url("https://sk-abc@llm.example/v1?api_key=sk-def&model=x"),
            "https://<redacted>@llm.example/v1?api_key=<redacted>&model=x"
        );
        assert_eq!(
            redact_url("https://u:pw@s3.example?X-Amz-Signature=abc"),
            "https://u:<redacted>@s3.example?X-Amz-Signature=<redacted>"
        );
        let p = ProviderProfile::new("p", ProviderKind::Openai)
            .with_base_url("https://tok@h.example/v1")
            .with_header("Cookie", "session=abc")
            .with_header("X-Title", "nb");
        let shown = redacted_profile(&p);
        assert_eq!(shown.headers["Cookie"], REDACTED);
        assert_eq!(shown.headers["X-Title"], "nb");
        assert_eq!(
            shown.base_url.as_deref(),
            Some("https://<redacted>@h.example/v1")
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://nb:s3cret@db:5432/nb"),
            "postgres://nb:<redacted>@db:5432/nb"
        );
        assert_eq!(
            redact_url("postgres://db/nb?user=nb&password=s3cret"),
            "postgres://db/nb?user=nb&password=<redacted>"
        );
        assert_eq!(redact_url("sqlite:///a/b.db"), "sqlite:///a/b.db");
        assert_eq!(redact_url("postgres://nb@db/nb"), "postgres://nb@db/nb");
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("prot = 1").is_err());
    }

    #[test]
    fn preset_documents_parse() {
        let one =
            parse_presets("name = \"a\"\n[config]\nprofile = \"p\"\nmodel = \"m\"\n").unwrap();
        assert_eq!(one[0].name, "a");
        let many = parse_presets(
            "[[presets]]\nname = \"a\"\n[presets.config]\nprofile = \"p\"\nmodel = \"m\"\n",
        )
        .unwrap();
        assert_eq!(many.len(), 1);
        assert!(parse_presets("presets = []").is_err());
        assert!(parse_presets("name = ").is_err());
    }

    #[test]
    fn documented_examples_parse() {
        let docs = parse_presets(
            r#"
[[presets]]
name = "helper"
description = "General assistant"
[presets.config]
profile = "openai"
model = "gpt-4o-mini"
system_prompt = "You are a concise assistant."
toolsets = []
approval = { mode = "tool_default" }
[presets.config.settings]
temperature = 0.3
[presets.config.limits]
max_tool_rounds = 8
"#,
        )
        .unwrap();
        assert_eq!(docs[0].config.limits.max_tool_rounds, 8);
        let file: FileConfig = toml::from_str(
            r#"
host = "127.0.0.1"
port = 9001
data_dir = "/var/lib/netherbrain"
graceful_shutdown_timeout = 30
log = "info,netherbrain=debug"
log_format = "json"
body_limit = 1048576

[[providers]]
name = "openrouter"
kind = "openai"
base_url = "https://openrouter.ai/api/v1"
api_key = "sk-or-x"
headers = { "X-Title" = "netherbrain" }

[[presets]]
name = "default"
[presets.config]
profile = "openrouter"
model = "gpt-4o-mini"
"#,
        )
        .unwrap();
        let s = resolve(&Overrides::default(), &Env::default(), file, None).unwrap();
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.presets.len(), 1);
        assert!(!render(&s).contains("sk-or-x"));
    }
}
