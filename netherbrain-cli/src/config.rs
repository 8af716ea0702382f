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
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use netherbrain_core::provider::{ProviderKind, ProviderProfile};
use serde::{Deserialize, Serialize};

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

/// A document of presets: `[[presets]]`, as `config show` writes it.
#[derive(Debug, Serialize)]
struct PresetsDoc<'a> {
    presets: &'a [PresetDoc],
}

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
    auth_token: Option<String>,
    graceful_shutdown_timeout: Option<u64>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    body_limit: Option<usize>,
    session_lease: Option<u64>,
    workspace_roots: Option<Vec<PathBuf>>,
    metrics_public: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    max_runs_per_user: Option<usize>,
    max_ws_subscriptions: Option<usize>,
    #[serde(default)]
    providers: Vec<ProviderProfile>,
    #[serde(default)]
    presets: Vec<PresetDoc>,
    gateway: Option<crate::gateway::GatewayFile>,
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
    pub(crate) auth_token: Option<String>,
    /// How long a running session's lease lasts without renewal.
    pub(crate) session_lease: Duration,
    pub(crate) graceful_shutdown_timeout: Duration,
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
    pub(crate) providers: Vec<ProviderProfile>,
    pub(crate) presets: Vec<PresetDoc>,
    /// Where workspaces' project directories may lie.
    pub(crate) workspace_roots: Vec<PathBuf>,
    /// The chat gateway's channels and settings.
    pub(crate) gateway: crate::gateway::GatewaySettings,
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

fn parse_host(value: &str) -> Result<IpAddr> {
    let value = value.trim().trim_start_matches('[').trim_end_matches(']');
    if value.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    value
        .parse()
        .map_err(|_| anyhow!("`{value}` is not an IP address"))
}

fn parse_bind(value: &str) -> Result<SocketAddr> {
    let value = value.trim();
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    if let Some((host, port)) = value.rsplit_once(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| anyhow!("`{value}`: `{port}` is not a port"))?;
        return Ok(SocketAddr::new(parse_host(host)?, port));
    }
    bail!("`{value}` is not HOST:PORT")
}

/// Loads the configuration: `.env`, environment, file, flags.
pub(crate) fn load(overrides: &Overrides, env: &Env) -> Result<Settings> {
    let (file, path) = load_file(overrides, env)?;
    resolve(overrides, env, file, path)
}

/// One layer of settings for figment, named as `config show` prints its
/// source (`config file`, `env NETHER_PORT`, `.env NETHER_PORT`, `flag
/// --port`).
struct Layer {
    name: String,
    dict: Dict,
}

impl Layer {
    fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            dict: Dict::new(),
        }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.dict.insert(key.to_owned(), value);
        self
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The settings every layer (file, `.env`, environment, flags) may set, by
/// TOML key. Tables (`[[providers]]`, `[[presets]]`, `[gateway]`) come from
/// the file alone.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Scalars {
    host: Option<String>,
    port: Option<u16>,
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    auth_token: Option<String>,
    graceful_shutdown_timeout: Option<u64>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    body_limit: Option<usize>,
    session_lease: Option<u64>,
    workspace_roots: Option<Vec<PathBuf>>,
    metrics_public: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    max_runs_per_user: Option<usize>,
    max_ws_subscriptions: Option<usize>,
}

/// How an environment variable's text becomes a value.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// A number or `true` / `false`.
    Scalar,
    /// Comma-separated.
    List,
}

/// The environment variable of each setting.
const VARS: &[(&str, &str, Kind)] = &[
    ("host", env::HOST, Kind::Text),
    ("port", env::PORT, Kind::Scalar),
    ("bind", env::BIND, Kind::Text),
    ("data_dir", env::DATA_DIR, Kind::Text),
    ("database_url", env::DATABASE_URL, Kind::Text),
    ("auth_token", env::AUTH_TOKEN, Kind::Text),
    ("graceful_shutdown_timeout", env::GRACEFUL, Kind::Scalar),
    ("log", env::LOG, Kind::Text),
    ("log_format", env::LOG_FORMAT, Kind::Text),
    ("body_limit", env::BODY_LIMIT, Kind::Scalar),
    ("session_lease", env::SESSION_LEASE, Kind::Scalar),
    ("metrics_public", env::METRICS_PUBLIC, Kind::Scalar),
    ("trusted_proxies", env::TRUSTED_PROXIES, Kind::List),
    ("max_runs_per_user", env::MAX_RUNS_PER_USER, Kind::Scalar),
    (
        "max_ws_subscriptions",
        env::MAX_WS_SUBSCRIPTIONS,
        Kind::Scalar,
    ),
];

/// The flag of each setting that has one.
const FLAGS: &[(&str, &str)] = &[
    ("host", "--host"),
    ("port", "--port"),
    ("bind", "--bind"),
    ("data_dir", "--data-dir"),
    ("database_url", "--database-url"),
    ("auth_token", "--auth-token"),
    ("graceful_shutdown_timeout", "--graceful-shutdown-timeout"),
];

impl FileConfig {
    /// The file's layer: its scalar settings.
    fn layer(&self) -> Result<Layer> {
        let scalars = Scalars {
            host: self.host.clone(),
            port: self.port,
            bind: self.bind.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            auth_token: self.auth_token.clone(),
            graceful_shutdown_timeout: self.graceful_shutdown_timeout,
            log: self.log.clone(),
            log_format: self.log_format,
            body_limit: self.body_limit,
            session_lease: self.session_lease,
            workspace_roots: self.workspace_roots.clone(),
            metrics_public: self.metrics_public,
            trusted_proxies: self.trusted_proxies.clone(),
            max_runs_per_user: self.max_runs_per_user,
            max_ws_subscriptions: self.max_ws_subscriptions,
        };
        let mut layer = Layer::new(FILE_LAYER);
        if let Value::Dict(_, dict) = Value::serialize(&scalars)? {
            layer.dict = dict
                .into_iter()
                .filter(|(_, v)| !matches!(v, Value::Empty(..)))
                .collect();
        }
        Ok(layer)
    }
}

const FILE_LAYER: &str = "config file";

/// A number or boolean from text; other text stays text (and is refused
/// with its variable's name when the setting needs a number).
fn scalar(text: &str) -> Value {
    let t = text.trim();
    if let Ok(b) = t.parse::<bool>() {
        Value::from(b)
    } else if let Ok(n) = t.parse::<u64>() {
        Value::from(n)
    } else if let Ok(n) = t.parse::<i64>() {
        Value::from(n)
    } else {
        Value::from(text.to_owned())
    }
}

impl Env {
    /// One layer per set variable, so each value's source names its
    /// variable; those from `.env` before the real environment.
    fn layers(&self) -> Vec<Layer> {
        let mut dotenv = Vec::new();
        let mut real = Vec::new();
        for (key, var, kind) in VARS {
            let Some((text, source)) = self.sourced(var) else {
                continue;
            };
            let value = match kind {
                Kind::Text => Value::from(text.to_owned()),
                Kind::Scalar => scalar(text),
                Kind::List => Value::from(
                    text.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<String>>(),
                ),
            };
            let layer = Layer::new(source.to_string()).with(key, value);
            match source {
                Source::DotEnv(_) => dotenv.push(layer),
                _ => real.push(layer),
            }
        }
        dotenv.extend(real);
        dotenv
    }
}

impl Overrides {
    /// The flags' layer.
    fn layer(&self) -> Layer {
        let mut layer = Layer::new("flags");
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                layer.dict.insert(key.to_owned(), v);
            }
        };
        set("host", self.host.clone().map(Value::from));
        set("port", self.port.map(Value::from));
        set("bind", self.bind.clone().map(Value::from));
        set(
            "data_dir",
            self.data_dir
                .as_ref()
                .map(|d| Value::from(d.display().to_string())),
        );
        set("database_url", self.database_url.clone().map(Value::from));
        set("auth_token", self.auth_token.clone().map(Value::from));
        set(
            "graceful_shutdown_timeout",
            self.graceful_shutdown_timeout.map(Value::from),
        );
        layer
    }
}

/// Where the value of `key` came from, from the layer figment took it from.
fn source_of(figment: &Figment, key: &'static str) -> Option<Source> {
    let name = figment.find_metadata(key)?.name.as_ref();
    if name == FILE_LAYER {
        return Some(Source::File);
    }
    if name == "flags" {
        return FLAGS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, flag)| Source::Flag(flag));
    }
    VARS.iter().find(|(k, _, _)| *k == key).map(|(_, var, _)| {
        if name.starts_with(".env") {
            Source::DotEnv(var)
        } else {
            Source::Env(var)
        }
    })
}

/// Rank of a source's layer: a higher one wins.
fn rank(source: Option<&Source>) -> u8 {
    match source {
        None | Some(Source::Default | Source::Derived(_)) => 0,
        Some(Source::File) => 1,
        Some(Source::DotEnv(_)) => 2,
        Some(Source::Env(_)) => 3,
        Some(Source::Flag(_)) => 4,
    }
}

fn resolve(
    flags: &Overrides,
    env: &Env,
    file: FileConfig,
    config_file: Option<PathBuf>,
) -> Result<Settings> {
    let mut figment = Figment::new().merge(file.layer()?);
    for layer in env.layers() {
        figment = figment.merge(layer);
    }
    let figment = figment.merge(flags.layer());
    let merged: Scalars = figment
        .extract()
        .map_err(|e| anyhow!("{}", e.to_string().replace("default.", "")))?;
    let mut sources: BTreeMap<&'static str, Source> = BTreeMap::new();
    for (key, _, _) in VARS {
        if let Some(source) = source_of(&figment, key) {
            sources.insert(key, source);
        }
    }
    for key in ["workspace_roots"] {
        if let Some(source) = source_of(&figment, key) {
            sources.insert(key, source);
        }
    }

    // host and port: the highest layer wins; within one layer a full bind
    // address first, then host / port on their own.
    let bind_source = sources.remove("bind");
    let bind = merged
        .bind
        .as_deref()
        .map(|b| parse_bind(b).context("bind"))
        .transpose()?;
    let mut host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut port = DEFAULT_PORT;
    if let Some(addr) = bind {
        host = addr.ip();
        port = addr.port();
    }
    if let Some(h) = &merged.host
        && rank(sources.get("host")) >= rank(bind_source.as_ref())
    {
        host = parse_host(h).context("host")?;
    } else if let Some(source) = &bind_source {
        sources.insert("host", source.clone());
    }
    if let Some(p) = merged.port
        && rank(sources.get("port")) >= rank(bind_source.as_ref())
    {
        port = p;
    } else if let Some(source) = &bind_source {
        sources.insert("port", source.clone());
    }

    let data_dir = merged
        .data_dir
        .unwrap_or_else(netherbrain_store::default_data_dir);
    let database_url = match merged.database_url {
        Some(url) => url,
        None => {
            sources.insert("database_url", Source::Derived("data_dir"));
            format!("sqlite://{}", data_dir.join("netherbrain.db").display())
        }
    };
    netherbrain_store::Backend::from_url(&database_url).map_err(|e| anyhow!("{e}"))?;
    let session_lease = merged.session_lease.unwrap_or(DEFAULT_SESSION_LEASE_SECS);
    if session_lease == 0 {
        bail!("session_lease must be at least 1 second");
    }
    let max_runs_per_user = merged
        .max_runs_per_user
        .unwrap_or(DEFAULT_MAX_RUNS_PER_USER);
    let max_ws_subscriptions = merged
        .max_ws_subscriptions
        .unwrap_or(DEFAULT_MAX_WS_SUBSCRIPTIONS);
    if max_runs_per_user == 0 || max_ws_subscriptions == 0 {
        bail!("max_runs_per_user and max_ws_subscriptions must be at least 1");
    }
    let trusted_proxies =
        parse_proxies(merged.trusted_proxies.iter().flatten().map(String::as_str))
            .context("trusted_proxies")?;
    let auth_token = merged.auth_token;
    let graceful = merged
        .graceful_shutdown_timeout
        .unwrap_or(DEFAULT_GRACEFUL_SECS);
    let log = merged.log.unwrap_or_else(|| "info".into());
    let log_format = merged.log_format.unwrap_or_default();
    let body_limit = merged.body_limit.unwrap_or(DEFAULT_BODY_LIMIT);
    let metrics_public = merged.metrics_public.unwrap_or(false);

    let providers = if file.providers.is_empty() {
        let derived = derived_providers(env);
        if !derived.is_empty() {
            sources.insert(
                "providers",
                Source::Derived("OPENAI_* / ANTHROPIC_* variables"),
            );
        }
        derived
    } else {
        sources.insert("providers", Source::File);
        file.providers
    };
    let mut seen = HashSet::new();
    for p in &providers {
        if p.name.trim().is_empty() {
            bail!("a provider profile has an empty name");
        }
        if !seen.insert(p.name.as_str()) {
            bail!("provider profile `{}` is configured twice", p.name);
        }
    }
    if !file.presets.is_empty() {
        sources.insert("presets", Source::File);
    }
    let workspace_roots = match merged.workspace_roots {
        Some(roots) => roots,
        None => {
            sources.insert("workspace_roots", Source::Derived("data_dir"));
            vec![data_dir.join("workspaces")]
        }
    };

    Ok(Settings {
        config_file,
        host,
        port,
        data_dir,
        database_url,
        auth_token,
        graceful_shutdown_timeout: Duration::from_secs(graceful),
        log,
        log_format,
        body_limit,
        metrics_public,
        trusted_proxies,
        max_runs_per_user,
        max_ws_subscriptions,
        session_lease: Duration::from_secs(session_lease),
        providers,
        presets: file.presets,
        workspace_roots,
        gateway: crate::gateway::GatewaySettings::resolve(file.gateway, env)?,
        sources,
    })
}

/// Trusted proxy addresses: IPs (`10.0.0.2`) or networks (`10.0.0.0/24`).
fn parse_proxies<'a>(items: impl Iterator<Item = &'a str>) -> Result<Vec<ipnet::IpNet>> {
    items
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow!("`{s}` is not an IP address or network (CIDR)"))
        })
        .collect()
}

/// Profiles derived from the conventional provider variables, used when the
/// configuration file lists none.
fn derived_providers(env: &Env) -> Vec<ProviderProfile> {
    let mut out = Vec::new();
    let openai_key = env.get(env::OPENAI_API_KEY).is_some();
    let openai_url = env.get(env::OPENAI_BASE_URL);
    if openai_key || openai_url.is_some() {
        let mut p = ProviderProfile::new("openai", ProviderKind::Openai);
        if openai_key {
            p = p.with_api_key_env(env::OPENAI_API_KEY);
        }
        if let Some(url) = openai_url {
            p = p.with_base_url(url);
        }
        out.push(p);
    }
    if env.get(env::ANTHROPIC_API_KEY).is_some() {
        let mut p = ProviderProfile::new("anthropic", ProviderKind::Anthropic)
            .with_api_key_env(env::ANTHROPIC_API_KEY);
        if let Some(url) = env.get(env::ANTHROPIC_BASE_URL) {
            p = p.with_base_url(url);
        }
        out.push(p);
    }
    out
}

const REDACTED: &str = "<redacted>";

/// Whether a URL query parameter likely holds a credential.
fn is_secret_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("password")
        || lower.contains("key")
        || lower.contains("token")
        || lower.contains("secret")
        || lower.contains("signature")
        || lower.contains("credential")
        || lower == "sig"
        || lower == "auth"
}

/// A URL with its credentials replaced: the password of the userinfo (the
/// whole userinfo when it is a bare token with no `user:` part, unless the
/// URL is a database URL where it is the user name) and query parameters
/// like `password=`, `key=`, `api_key=`, `token=`, `sig=`.
pub(crate) fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            let web = out[..scheme_end].eq_ignore_ascii_case("http")
                || out[..scheme_end].eq_ignore_ascii_case("https");
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, REDACTED);
            } else if web && !userinfo.is_empty() {
                out.replace_range(rest_start..rest_start + at, REDACTED);
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_param(k) => {
                    format!("{k}={REDACTED}")
                }
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The effective configuration as TOML, secrets redacted, each value
/// annotated with where it came from.
pub(crate) fn render(settings: &Settings) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Effective netherbrain configuration (secrets redacted)."
    );
    match &settings.config_file {
        Some(path) => {
            let _ = writeln!(out, "# config file: {}", path.display());
        }
        None => {
            let _ = writeln!(out, "# config file: none");
        }
    }
    let mut line = |key: &'static str, value: Option<String>| {
        let source = settings.source(key);
        match value {
            Some(v) => {
                let _ = writeln!(out, "{key} = {v}  # {source}");
            }
            None => {
                let _ = writeln!(out, "# {key} = (not set)");
            }
        }
    };
    line("host", Some(toml_str(&settings.host.to_string())));
    line("port", Some(settings.port.to_string()));
    line(
        "data_dir",
        Some(toml_str(&settings.data_dir.display().to_string())),
    );
    line(
        "database_url",
        Some(toml_str(&redact_url(&settings.database_url))),
    );
    line(
        "auth_token",
        settings.auth_token.as_ref().map(|_| toml_str(REDACTED)),
    );
    line(
        "graceful_shutdown_timeout",
        Some(settings.graceful_shutdown_timeout.as_secs().to_string()),
    );
    line("log", Some(toml_str(&settings.log)));
    line(
        "log_format",
        Some(toml_str(&settings.log_format.to_string())),
    );
    line("body_limit", Some(settings.body_limit.to_string()));
    line(
        "session_lease",
        Some(settings.session_lease.as_secs().to_string()),
    );
    let roots: Vec<String> = settings
        .workspace_roots
        .iter()
        .map(|r| toml_str(&r.display().to_string()))
        .collect();
    line("workspace_roots", Some(format!("[{}]", roots.join(", "))));
    line("metrics_public", Some(settings.metrics_public.to_string()));
    line(
        "max_runs_per_user",
        Some(settings.max_runs_per_user.to_string()),
    );
    line(
        "max_ws_subscriptions",
        Some(settings.max_ws_subscriptions.to_string()),
    );
    line(
        "trusted_proxies",
        Some(
            toml::Value::Array(
                settings
                    .trusted_proxies
                    .iter()
                    .map(|n| toml::Value::String(n.to_string()))
                    .collect(),
            )
            .to_string(),
        ),
    );

    if let Ok(Some(s3)) = netherbrain_store::blob::S3Config::from_env() {
        // Not a config file setting: shown as comments so the output still
        // loads as a config file.
        let _ = writeln!(
            out,
            "\n# blob storage: env NETHER_S3_* (not a config file setting)"
        );
        if let Some(endpoint) = &s3.endpoint {
            let _ = writeln!(out, "#   endpoint = {}", toml_str(&redact_url(endpoint)));
        }
        let _ = writeln!(out, "#   bucket = {}", toml_str(&s3.bucket));
        let _ = writeln!(out, "#   region = {}", toml_str(&s3.region));
        if s3.access_key_id.is_some() {
            let _ = writeln!(out, "#   access_key_id = {}", toml_str(REDACTED));
        }
        if s3.secret_access_key.is_some() {
            let _ = writeln!(out, "#   secret_access_key = {}", toml_str(REDACTED));
        }
        let _ = writeln!(out, "#   path_style = {}", s3.path_style);
        let _ = writeln!(out, "#   allow_http = {}", s3.allow_http);
    }

    if settings.providers.is_empty() {
        let _ = writeln!(
            out,
            "\n# providers: none (set OPENAI_API_KEY / ANTHROPIC_API_KEY or add [[providers]])"
        );
    } else {
        let _ = writeln!(out, "\n# providers: {}", settings.source("providers"));
        for p in &settings.providers {
            if p.resolve_api_key().is_err() {
                let _ = writeln!(
                    out,
                    "# profile `{}`: {} is not set: this profile is skipped",
                    p.name,
                    p.api_key_env.as_deref().unwrap_or("the API key")
                );
            }
        }
        let shown: Vec<ProviderProfile> = settings.providers.iter().map(redacted_profile).collect();
        let doc = ProvidersDoc { providers: &shown };
        let _ = writeln!(out, "{}", toml::to_string(&doc).unwrap_or_default());
    }
    if !settings.presets.is_empty() {
        let _ = writeln!(
            out,
            "# presets: config file (imported by every command that opens the database)"
        );
        let doc = PresetsDoc {
            presets: &settings.presets,
        };
        let _ = write!(out, "{}", toml::to_string(&doc).unwrap_or_default());
    }
    if settings.gateway.has_channels() {
        out.push_str(&settings.gateway.render());
    }
    out
}

/// A document of provider profiles: `[[providers]]` with their
/// `[providers.headers]`, as `config show` writes it.
#[derive(Debug, Serialize)]
struct ProvidersDoc<'a> {
    providers: &'a [ProviderProfile],
}

/// Whether a header's value is likely a credential.
fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "auth",
        "key",
        "token",
        "secret",
        "cookie",
        "session",
        "password",
        "signature",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// A profile as `config show` prints it: the inline key, credentials in
/// the base URL and credential-like header values redacted.
fn redacted_profile(p: &ProviderProfile) -> ProviderProfile {
    let mut shown = p.clone();
    if shown.api_key.is_some() {
        shown.api_key = Some(REDACTED.into());
    }
    shown.base_url = shown.base_url.as_deref().map(redact_url);
    for (name, value) in &mut shown.headers {
        if is_secret_header(name) && !value.is_empty() {
            *value = REDACTED.into();
        }
    }
    shown
}

#[cfg(test)]
mod tests {
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
            for name in [env::PORT, env::HOST, env::BIND, env::BODY_LIMIT, env::TRUSTED_PROXIES, env::METRICS_PUBLIC, env::MAX_RUNS_PER_USER] {
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
