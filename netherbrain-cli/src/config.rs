//! Configuration loading.
//!
//! Precedence, highest first: command-line flags, `NETHER_*` environment
//! variables, a `.env` file in the working directory (loaded without
//! overriding the real environment), the TOML configuration file, defaults.
//! Every setting is documented in `docs/configuration.md`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
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

    /// A parsed variable with its source.
    fn parsed<T>(&self, name: &'static str) -> Result<Option<(T, Source)>>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.sourced(name)
            .map(|(v, source)| {
                v.trim()
                    .parse::<T>()
                    .map(|t| (t, source))
                    .map_err(|e| anyhow!("{name}: invalid value `{v}`: {e}"))
            })
            .transpose()
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

/// The default configuration file: `$XDG_CONFIG_HOME/netherbrain/config.toml`,
/// else `~/.config/netherbrain/config.toml`.
pub(crate) fn default_config_path(env: &Env) -> Option<PathBuf> {
    if let Some(xdg) = env.get("XDG_CONFIG_HOME").map(PathBuf::from)
        && xdg.is_absolute()
    {
        return Some(xdg.join("netherbrain/config.toml"));
    }
    env.get("HOME")
        .map(|home| PathBuf::from(home).join(".config/netherbrain/config.toml"))
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
    match default_config_path(env) {
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

/// The value of a string setting from the highest layer that has it.
fn pick(
    sources: &mut BTreeMap<&'static str, Source>,
    env: &Env,
    key: &'static str,
    flag: Option<(String, &'static str)>,
    var: &'static str,
    file: Option<String>,
) -> Option<String> {
    if let Some((v, name)) = flag {
        sources.insert(key, Source::Flag(name));
        return Some(v);
    }
    if let Some((v, source)) = env.sourced(var) {
        sources.insert(key, source);
        return Some(v.to_owned());
    }
    if let Some(v) = file {
        sources.insert(key, Source::File);
        return Some(v);
    }
    None
}

fn resolve(
    flags: &Overrides,
    env: &Env,
    file: FileConfig,
    config_file: Option<PathBuf>,
) -> Result<Settings> {
    let mut sources: BTreeMap<&'static str, Source> = BTreeMap::new();

    // host and port: file, then env, then flags; within a layer a full
    // bind address first, then host / port on their own.
    let mut host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut port = DEFAULT_PORT;
    {
        let mut apply = |bind: Option<(SocketAddr, Source)>,
                         h: Option<(IpAddr, Source)>,
                         p: Option<(u16, Source)>| {
            if let Some((addr, source)) = bind {
                host = addr.ip();
                port = addr.port();
                sources.insert("host", source.clone());
                sources.insert("port", source);
            }
            if let Some((h, source)) = h {
                host = h;
                sources.insert("host", source);
            }
            if let Some((p, source)) = p {
                port = p;
                sources.insert("port", source);
            }
        };
        let file_bind = file
            .bind
            .as_deref()
            .map(|b| parse_bind(b).context("config file `bind`"))
            .transpose()?;
        let file_host = file
            .host
            .as_deref()
            .map(|h| parse_host(h).context("config file `host`"))
            .transpose()?;
        apply(
            file_bind.map(|b| (b, Source::File)),
            file_host.map(|h| (h, Source::File)),
            file.port.map(|p| (p, Source::File)),
        );
        let env_bind = env
            .sourced(env::BIND)
            .map(|(v, s)| parse_bind(v).map(|b| (b, s)))
            .transpose()
            .context(env::BIND)?;
        let env_host = env
            .sourced(env::HOST)
            .map(|(v, s)| parse_host(v).map(|h| (h, s)))
            .transpose()
            .context(env::HOST)?;
        apply(env_bind, env_host, env.parsed::<u16>(env::PORT)?);
        let flag_bind = flags
            .bind
            .as_deref()
            .map(|b| parse_bind(b).map(|b| (b, Source::Flag("--bind"))))
            .transpose()
            .context("--bind")?;
        let flag_host = flags
            .host
            .as_deref()
            .map(|h| parse_host(h).map(|h| (h, Source::Flag("--host"))))
            .transpose()
            .context("--host")?;
        apply(
            flag_bind,
            flag_host,
            flags.port.map(|p| (p, Source::Flag("--port"))),
        );
    }

    let data_dir = pick(
        &mut sources,
        env,
        "data_dir",
        flags
            .data_dir
            .as_ref()
            .map(|d| (d.display().to_string(), "--data-dir")),
        env::DATA_DIR,
        file.data_dir.as_ref().map(|d| d.display().to_string()),
    )
    .map_or_else(netherbrain_store::default_data_dir, PathBuf::from);
    let database_url = match pick(
        &mut sources,
        env,
        "database_url",
        flags.database_url.clone().map(|u| (u, "--database-url")),
        env::DATABASE_URL,
        file.database_url.clone(),
    ) {
        Some(url) => url,
        None => {
            sources.insert("database_url", Source::Derived("data_dir"));
            format!("sqlite://{}", data_dir.join("netherbrain.db").display())
        }
    };
    netherbrain_store::Backend::from_url(&database_url).map_err(|e| anyhow!("{e}"))?;
    let auth_token = pick(
        &mut sources,
        env,
        "auth_token",
        flags.auth_token.clone().map(|t| (t, "--auth-token")),
        env::AUTH_TOKEN,
        file.auth_token.clone(),
    );
    let graceful = match flags.graceful_shutdown_timeout {
        Some(secs) => {
            sources.insert(
                "graceful_shutdown_timeout",
                Source::Flag("--graceful-shutdown-timeout"),
            );
            secs
        }
        None => match env.parsed::<u64>(env::GRACEFUL)? {
            Some((secs, source)) => {
                sources.insert("graceful_shutdown_timeout", source);
                secs
            }
            None => match file.graceful_shutdown_timeout {
                Some(secs) => {
                    sources.insert("graceful_shutdown_timeout", Source::File);
                    secs
                }
                None => DEFAULT_GRACEFUL_SECS,
            },
        },
    };
    let log = pick(&mut sources, env, "log", None, env::LOG, file.log.clone())
        .unwrap_or_else(|| "info".into());
    let log_format = match env.parsed::<LogFormat>(env::LOG_FORMAT)? {
        Some((f, source)) => {
            sources.insert("log_format", source);
            f
        }
        None => match file.log_format {
            Some(f) => {
                sources.insert("log_format", Source::File);
                f
            }
            None => LogFormat::default(),
        },
    };
    let body_limit = match env.parsed::<usize>(env::BODY_LIMIT)? {
        Some((n, source)) => {
            sources.insert("body_limit", source);
            n
        }
        None => match file.body_limit {
            Some(n) => {
                sources.insert("body_limit", Source::File);
                n
            }
            None => DEFAULT_BODY_LIMIT,
        },
    };

    let session_lease = match env.parsed::<u64>(env::SESSION_LEASE)? {
        Some((n, source)) => {
            sources.insert("session_lease", source);
            n
        }
        None => match file.session_lease {
            Some(n) => {
                sources.insert("session_lease", Source::File);
                n
            }
            None => DEFAULT_SESSION_LEASE_SECS,
        },
    };
    if session_lease == 0 {
        bail!("session_lease must be at least 1 second");
    }
    let metrics_public = match env.parsed::<bool>(env::METRICS_PUBLIC)? {
        Some((b, source)) => {
            sources.insert("metrics_public", source);
            b
        }
        None => match file.metrics_public {
            Some(b) => {
                sources.insert("metrics_public", Source::File);
                b
            }
            None => false,
        },
    };
    let mut limit = |key: &'static str, var: &'static str, file: Option<usize>, default: usize| {
        Ok::<usize, anyhow::Error>(match env.parsed::<usize>(var)? {
            Some((n, source)) => {
                sources.insert(key, source);
                n
            }
            None => match file {
                Some(n) => {
                    sources.insert(key, Source::File);
                    n
                }
                None => default,
            },
        })
    };
    let max_runs_per_user = limit(
        "max_runs_per_user",
        env::MAX_RUNS_PER_USER,
        file.max_runs_per_user,
        DEFAULT_MAX_RUNS_PER_USER,
    )?;
    let max_ws_subscriptions = limit(
        "max_ws_subscriptions",
        env::MAX_WS_SUBSCRIPTIONS,
        file.max_ws_subscriptions,
        DEFAULT_MAX_WS_SUBSCRIPTIONS,
    )?;
    if max_runs_per_user == 0 || max_ws_subscriptions == 0 {
        bail!("max_runs_per_user and max_ws_subscriptions must be at least 1");
    }
    let trusted_proxies = match env.sourced(env::TRUSTED_PROXIES) {
        Some((v, source)) => {
            sources.insert("trusted_proxies", source);
            parse_proxies(v.split(',')).context(env::TRUSTED_PROXIES)?
        }
        None => match &file.trusted_proxies {
            Some(list) => {
                sources.insert("trusted_proxies", Source::File);
                parse_proxies(list.iter().map(String::as_str))
                    .context("config file `trusted_proxies`")?
            }
            None => Vec::new(),
        },
    };

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
    let workspace_roots = match file.workspace_roots {
        Some(roots) => {
            sources.insert("workspace_roots", Source::File);
            roots
        }
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
