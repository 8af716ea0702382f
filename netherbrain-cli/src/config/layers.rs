//! The configuration's layers, merged by figment: the file, `.env`, the
//! environment and the flags, one named layer per source so each value's
//! source can be read back; then the settings derived from the merge.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use netherbrain_core::provider::{ProviderKind, ProviderProfile};
use serde::{Deserialize, Serialize};

use super::{
    DEFAULT_BODY_LIMIT, DEFAULT_GRACEFUL_SECS, DEFAULT_MAX_RUNS_PER_USER, DEFAULT_MAX_TOKENS,
    DEFAULT_MAX_WS_SUBSCRIPTIONS, DEFAULT_PORT, DEFAULT_SESSION_LEASE_SECS, Env, FileConfig,
    LogFormat, Overrides, Settings, Source, env,
};

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
    ("redis_url", env::REDIS_URL, Kind::Text),
    ("drain_delay", env::DRAIN_DELAY, Kind::Scalar),
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
    ("default_max_tokens", env::DEFAULT_MAX_TOKENS, Kind::Scalar),
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
            redis_url: self.redis_url.clone(),
            auth_token: self.auth_token.clone(),
            graceful_shutdown_timeout: self.graceful_shutdown_timeout,
            drain_delay: self.drain_delay,
            log: self.log.clone(),
            log_format: self.log_format,
            body_limit: self.body_limit,
            session_lease: self.session_lease,
            workspace_roots: self.workspace_roots.clone(),
            metrics_public: self.metrics_public,
            trusted_proxies: self.trusted_proxies.clone(),
            max_runs_per_user: self.max_runs_per_user,
            max_ws_subscriptions: self.max_ws_subscriptions,
            default_max_tokens: self.default_max_tokens,
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

pub(super) fn resolve(
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
    let backend =
        netherbrain_store::Backend::from_url(&database_url).map_err(|e| anyhow!("{e}"))?;
    let redis_url = merged.redis_url.filter(|u| !u.trim().is_empty());
    if let Some(url) = &redis_url
        && !["redis://", "rediss://", "unix://", "redis+unix://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
    {
        bail!("redis_url must be a redis://, rediss:// or unix:// URL");
    }
    if redis_url.is_some() && backend == netherbrain_store::Backend::Sqlite {
        bail!(
            "redis_url (NETHER_REDIS_URL) is for several replicas sharing one Postgres database; SQLite serves a single process: set database_url to a postgres:// URL or leave redis_url out"
        );
    }
    // Several replicas: a balancer needs a moment to notice a stopping one.
    let drain_delay = merged
        .drain_delay
        .unwrap_or(if redis_url.is_some() { 5 } else { 0 });
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
    let default_max_tokens = match merged.default_max_tokens {
        None => Some(DEFAULT_MAX_TOKENS),
        Some(0) => None,
        Some(n) => Some(n),
    };
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

    let memory = check_memory(file.memory.unwrap_or_default(), &providers)?;
    let tasks = check_tasks(file.tasks.unwrap_or_default())?;
    let budgets = file.budgets.unwrap_or_default();
    if budgets.user_daily_tokens == Some(0) {
        bail!("budgets.user_daily_tokens must be at least 1 (leave it out for no cap)");
    }
    Ok(Settings {
        config_file,
        host,
        port,
        data_dir,
        database_url,
        redis_url,
        auth_token,
        graceful_shutdown_timeout: Duration::from_secs(graceful),
        drain_delay: Duration::from_secs(drain_delay),
        log,
        log_format,
        body_limit,
        metrics_public,
        trusted_proxies,
        max_runs_per_user,
        max_ws_subscriptions,
        default_max_tokens,
        session_lease: Duration::from_secs(session_lease),
        providers,
        presets: file.presets,
        workspace_roots,
        gateway: crate::gateway::GatewaySettings::resolve(file.gateway, env)?,
        memory,
        tasks,
        budgets,
        sources,
    })
}

/// The `[tasks]` section, checked: limits of at least 1, a poll interval
/// of 0.05 s to 60 s.
fn check_tasks(tasks: super::TasksFile) -> Result<super::TasksFile> {
    if tasks.max_per_user == Some(0) || tasks.min_interval == Some(0) {
        bail!("tasks.max_per_user and tasks.min_interval must be at least 1");
    }
    if let Some(poll) = tasks.poll_interval
        && !(0.05..=60.0).contains(&poll)
    {
        bail!("tasks.poll_interval must be between 0.05 and 60 seconds");
    }
    Ok(tasks)
}

/// The `[memory]` section, checked: limits of at least 1, a named
/// embeddings profile that exists and has an `embeddings_model`.
fn check_memory(
    memory: super::MemoryFile,
    providers: &[netherbrain_core::provider::ProviderProfile],
) -> Result<super::MemoryFile> {
    if memory.max_per_user == Some(0) || memory.max_chars == Some(0) {
        bail!("memory.max_per_user and memory.max_chars must be at least 1");
    }
    if let Some(chars) = memory.max_chars
        && chars > netherbrain_core::store::validate::MAX_MEMORY_LEN
    {
        bail!(
            "memory.max_chars must be at most {}",
            netherbrain_core::store::validate::MAX_MEMORY_LEN
        );
    }
    if let Some(name) = &memory.embeddings_profile {
        match providers.iter().find(|p| &p.name == name) {
            None => bail!("memory.embeddings_profile names no provider profile `{name}`"),
            Some(p) if p.embeddings_model.is_none() => {
                bail!("memory.embeddings_profile `{name}` has no embeddings_model")
            }
            Some(_) => {}
        }
    }
    Ok(memory)
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
