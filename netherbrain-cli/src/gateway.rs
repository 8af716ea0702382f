//! `netherbrain gateway`: the chat gateway's configuration (`[gateway]` in
//! the config file, `NETHER_TELEGRAM_*` and `NETHER_DISCORD_*` variables), running it in-process
//! (inside `netherbrain agent`) or as its own process over the HTTP API,
//! and approving pairing codes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use netherbrain_core::channel::{CancellationToken, Channel};
use netherbrain_core::conversation::ConversationService;
use netherbrain_core::store::StateStore;
use netherbrain_gateway::{AllowEntry, Bridge, BridgeConfig, LocalRuntime, RuntimeApi};
use serde::Deserialize;

use crate::cli::{GatewayArgs, GatewayCommand};
use crate::config::{Env, Settings};
use crate::local::{open_prepared, resolve_user};

pub(crate) const TELEGRAM_TOKEN_ENV: &str = "NETHER_TELEGRAM_TOKEN";
pub(crate) const TELEGRAM_API_URL_ENV: &str = "NETHER_TELEGRAM_API_URL";
pub(crate) const TELEGRAM_WEBHOOK_URL_ENV: &str = "NETHER_TELEGRAM_WEBHOOK_URL";
pub(crate) const TELEGRAM_WEBHOOK_LISTEN_ENV: &str = "NETHER_TELEGRAM_WEBHOOK_LISTEN";
pub(crate) const TELEGRAM_WEBHOOK_SECRET_ENV: &str = "NETHER_TELEGRAM_WEBHOOK_SECRET";
pub(crate) const DISCORD_TOKEN_ENV: &str = "NETHER_DISCORD_TOKEN";
pub(crate) const DISCORD_API_URL_ENV: &str = "NETHER_DISCORD_API_URL";
pub(crate) const DISCORD_GATEWAY_URL_ENV: &str = "NETHER_DISCORD_GATEWAY_URL";

/// `[gateway]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayFile {
    /// At most one edit per chat per this many milliseconds (floor 250).
    edit_interval_ms: Option<u64>,
    /// How long a pairing code works, in seconds.
    pairing_ttl_secs: Option<u64>,
    /// Preset of new chat conversations (by name).
    default_preset: Option<String>,
    /// Largest attachment accepted, in bytes (default 5 MiB).
    max_attachment_bytes: Option<u64>,
    telegram: Option<TelegramFile>,
    discord: Option<DiscordFile>,
    #[serde(default)]
    allow: Vec<AllowFile>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelegramFile {
    token: Option<String>,
    api_url: Option<String>,
    /// The public HTTPS URL Telegram posts updates to (webhook mode; unset:
    /// long polling).
    webhook_url: Option<String>,
    /// The socket address the gateway's webhook listener binds.
    webhook_listen: Option<String>,
    /// The secret token Telegram sends with every update.
    webhook_secret: Option<String>,
}

impl std::fmt::Debug for TelegramFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramFile")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("api_url", &self.api_url)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_listen", &self.webhook_listen)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `[gateway.discord]`: the bot token, and base URLs for a proxy or a
/// test fake.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscordFile {
    token: Option<String>,
    /// The REST API base (`https://discord.com`).
    api_url: Option<String>,
    /// The gateway WebSocket (`wss://gateway.discord.gg`).
    gateway_url: Option<String>,
}

impl std::fmt::Debug for DiscordFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordFile")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("api_url", &self.api_url)
            .field("gateway_url", &self.gateway_url)
            .finish()
    }
}

/// `[[gateway.allow]]`: a platform user served without pairing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowFile {
    channel: String,
    /// The platform's user id.
    sender: String,
    /// The Netherbrain username (or id) they act as.
    user: String,
}

/// The resolved gateway settings.
#[derive(Clone, Default)]
pub(crate) struct GatewaySettings {
    file: GatewayFile,
    telegram_token: Option<String>,
    telegram_api_url: Option<String>,
    /// Webhook mode, validated (its `Debug` redacts the secret).
    telegram_webhook: Option<netherbrain_gateway::telegram::WebhookConfig>,
    discord: DiscordFile,
}

impl std::fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySettings")
            .field("file", &self.file)
            .field(
                "telegram_token",
                &self.telegram_token.as_ref().map(|_| "<redacted>"),
            )
            .field("telegram_api_url", &self.telegram_api_url)
            .field("telegram_webhook", &self.telegram_webhook)
            .field("discord", &self.discord)
            .finish()
    }
}

impl GatewaySettings {
    /// The file section with the environment on top.
    pub(crate) fn resolve(file: Option<GatewayFile>, env: &Env) -> Result<Self> {
        let file = file.unwrap_or_default();
        let telegram = file.telegram.clone().unwrap_or_default();
        let telegram_token = env
            .get(TELEGRAM_TOKEN_ENV)
            .map(str::to_owned)
            .or_else(|| telegram.token.clone());
        let telegram_api_url = env
            .get(TELEGRAM_API_URL_ENV)
            .map(str::to_owned)
            .or_else(|| telegram.api_url.clone());
        if telegram_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            bail!("gateway.telegram.token must not be empty");
        }
        let telegram_webhook = telegram_webhook(&telegram, env, telegram_token.is_some())?;
        let from_file = file.discord.clone().unwrap_or_default();
        let discord = DiscordFile {
            token: env
                .get(DISCORD_TOKEN_ENV)
                .map(str::to_owned)
                .or(from_file.token),
            api_url: env
                .get(DISCORD_API_URL_ENV)
                .map(str::to_owned)
                .or(from_file.api_url),
            gateway_url: env
                .get(DISCORD_GATEWAY_URL_ENV)
                .map(str::to_owned)
                .or(from_file.gateway_url),
        };
        if discord
            .token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            bail!("gateway.discord.token must not be empty");
        }
        Ok(Self {
            file,
            telegram_token,
            telegram_api_url,
            telegram_webhook,
            discord,
        })
    }

    /// Whether any channel is configured.
    pub(crate) fn has_channels(&self) -> bool {
        self.telegram_token.is_some() || self.discord.token.is_some()
    }

    /// The configured channels.
    fn channels(&self) -> Result<Vec<Arc<dyn Channel>>> {
        let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
        if let Some(token) = &self.telegram_token {
            use netherbrain_gateway::telegram::{TelegramChannel, TelegramConfig};
            let mut config = TelegramConfig::new(token.clone());
            if let Some(url) = &self.telegram_api_url {
                config = config.with_api_url(url.clone());
            }
            if let Some(hook) = &self.telegram_webhook {
                config = config.with_webhook(hook.clone());
            }
            channels.push(Arc::new(
                TelegramChannel::new(config).map_err(|e| anyhow!("telegram: {e}"))?,
            ));
        }
        if let Some(token) = &self.discord.token {
            use netherbrain_gateway::discord::{DiscordChannel, DiscordConfig};
            let mut config = DiscordConfig::new(token.clone());
            if let Some(url) = &self.discord.api_url {
                config = config.with_api_url(url.clone());
            }
            if let Some(url) = &self.discord.gateway_url {
                config = config.with_gateway_url(url.clone());
            }
            channels.push(Arc::new(
                DiscordChannel::new(config).map_err(|e| anyhow!("discord: {e}"))?,
            ));
        }
        Ok(channels)
    }

    /// The bridge settings, with usernames and the preset name resolved;
    /// attachments go to the blob store (`NETHER_S3_*`, else
    /// `<data_dir>/blobs`).
    async fn bridge_config(
        &self,
        store: &dyn StateStore,
        data_dir: &std::path::Path,
    ) -> Result<BridgeConfig> {
        let blobs = netherbrain_store::blob::BlobStore::from_env(data_dir)
            .map_err(|e| anyhow!("blob storage for attachments: {e}"))?;
        let mut config =
            BridgeConfig::default().with_attachment_store(Arc::new(BlobAttachments(blobs)));
        if let Some(bytes) = self.file.max_attachment_bytes {
            config = config.with_max_attachment_bytes(bytes);
        }
        if let Some(ms) = self.file.edit_interval_ms {
            config = config.with_edit_interval(Duration::from_millis(ms));
        }
        if let Some(secs) = self.file.pairing_ttl_secs {
            if secs == 0 {
                bail!("gateway.pairing_ttl_secs must be at least 1");
            }
            config.pairing_ttl = Duration::from_secs(secs);
        }
        if let Some(name) = &self.file.default_preset {
            let preset = store
                .get_preset_by_name(name)
                .await
                .with_context(|| format!("gateway.default_preset `{name}`"))?;
            config = config.with_default_preset(Some(preset.id));
        }
        for entry in &self.file.allow {
            let user = resolve_user(store, Some(&entry.user))
                .await
                .with_context(|| format!("gateway.allow user `{}`", entry.user))?;
            config = config.allow(AllowEntry::new(
                entry.channel.clone(),
                entry.sender.clone(),
                user.id,
            ));
        }
        Ok(config)
    }

    /// The `[gateway]` lines of `config show`, the token redacted.
    pub(crate) fn render(&self) -> String {
        let mut out = String::from("\n[gateway]\n");
        if let Some(ms) = self.file.edit_interval_ms {
            out.push_str(&format!("edit_interval_ms = {ms}\n"));
        }
        if let Some(secs) = self.file.pairing_ttl_secs {
            out.push_str(&format!("pairing_ttl_secs = {secs}\n"));
        }
        if let Some(name) = &self.file.default_preset {
            out.push_str(&format!("default_preset = {}\n", toml_str(name)));
        }
        if let Some(bytes) = self.file.max_attachment_bytes {
            out.push_str(&format!("max_attachment_bytes = {bytes}\n"));
        }
        if self.telegram_token.is_some() || self.telegram_api_url.is_some() {
            out.push_str("[gateway.telegram]\n");
            if self.telegram_token.is_some() {
                out.push_str("token = \"<redacted>\"\n");
            }
            if let Some(url) = &self.telegram_api_url {
                out.push_str(&format!("api_url = {}\n", toml_str(url)));
            }
            if let Some(hook) = &self.telegram_webhook {
                out.push_str(&format!(
                    "webhook_url = {}\nwebhook_listen = {}\nwebhook_secret = \"<redacted>\"\n",
                    toml_str(hook.url().as_str()),
                    toml_str(&hook.listen().to_string())
                ));
            }
        }
        let discord = &self.discord;
        if discord.token.is_some() || discord.api_url.is_some() || discord.gateway_url.is_some() {
            out.push_str("[gateway.discord]\n");
            if discord.token.is_some() {
                out.push_str("token = \"<redacted>\"\n");
            }
            if let Some(url) = &discord.api_url {
                out.push_str(&format!("api_url = {}\n", toml_str(url)));
            }
            if let Some(url) = &discord.gateway_url {
                out.push_str(&format!("gateway_url = {}\n", toml_str(url)));
            }
        }
        for a in &self.file.allow {
            out.push_str(&format!(
                "[[gateway.allow]]\nchannel = {}\nsender = {}\nuser = {}\n",
                toml_str(&a.channel),
                toml_str(&a.sender),
                toml_str(&a.user)
            ));
        }
        out
    }
}

/// Webhook mode from `[gateway.telegram]` with `NETHER_TELEGRAM_WEBHOOK_*`
/// on top: `None` without a webhook URL (long polling); with one, the
/// listener address and the secret are required.
fn telegram_webhook(
    file: &TelegramFile,
    env: &Env,
    has_token: bool,
) -> Result<Option<netherbrain_gateway::telegram::WebhookConfig>> {
    use netherbrain_gateway::telegram::{MIN_SECRET_LEN, WebhookConfig};
    let pick = |name: &str, from_file: &Option<String>| {
        env.get(name)
            .map(str::to_owned)
            .or_else(|| from_file.clone())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let Some(url) = pick(TELEGRAM_WEBHOOK_URL_ENV, &file.webhook_url) else {
        return Ok(None);
    };
    if !has_token {
        bail!(
            "gateway.telegram.webhook_url needs a bot token (gateway.telegram.token or {TELEGRAM_TOKEN_ENV})"
        );
    }
    let Some(listen) = pick(TELEGRAM_WEBHOOK_LISTEN_ENV, &file.webhook_listen) else {
        bail!(
            "gateway.telegram.webhook_listen (or {TELEGRAM_WEBHOOK_LISTEN_ENV}) is required with webhook_url: the address the gateway listens on, e.g. 127.0.0.1:8443"
        );
    };
    let listen: std::net::SocketAddr = listen.parse().map_err(|_| {
        anyhow!("gateway.telegram.webhook_listen `{listen}` is not a socket address (e.g. 127.0.0.1:8443)")
    })?;
    let Some(secret) = pick(TELEGRAM_WEBHOOK_SECRET_ENV, &file.webhook_secret) else {
        bail!(
            "gateway.telegram.webhook_secret (or {TELEGRAM_WEBHOOK_SECRET_ENV}) is required with webhook_url: at least {MIN_SECRET_LEN} characters of A-Z, a-z, 0-9, `_` and `-`"
        );
    };
    WebhookConfig::new(&url, listen, secret)
        .map(Some)
        .map_err(|e| anyhow!("gateway.telegram.webhook: {e}"))
}

/// Chat attachments kept in the blob store.
#[derive(Debug)]
struct BlobAttachments(netherbrain_store::blob::BlobStore);

#[async_trait::async_trait]
impl netherbrain_gateway::AttachmentStore for BlobAttachments {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> std::result::Result<(), String> {
        self.0
            .put(key, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Starts the configured channels inside the agent process, over its
/// conversation service. `None` when no channel is configured.
pub(crate) async fn spawn_in_process(
    settings: &Settings,
    service: &ConversationService,
    cancel: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let gateway = &settings.gateway;
    if !gateway.has_channels() {
        return Ok(None);
    }
    let store = service.store().clone();
    let config = gateway
        .bridge_config(store.as_ref(), &settings.data_dir)
        .await?;
    let api: Arc<dyn RuntimeApi> = Arc::new(LocalRuntime::new(service.clone()));
    let bridge = Bridge::new(api, store, gateway.channels()?, config);
    tracing::info!("gateway channels started in-process");
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = bridge.run(cancel).await {
            tracing::error!(error = %e, "the gateway stopped");
        }
    })))
}

/// `netherbrain gateway …`.
pub(crate) async fn run(settings: &Settings, args: GatewayArgs) -> Result<()> {
    match args.command {
        Some(GatewayCommand::Pair { code, user }) => pair(settings, &code, user.as_deref()).await,
        None => run_remote(settings, args.runtime_url, args.api_key).await,
    }
}

async fn pair(settings: &Settings, code: &str, user: Option<&str>) -> Result<()> {
    let store = open_prepared(settings).await?;
    let user = resolve_user(store.as_ref(), user).await?;
    let identity = store
        .approve_pairing(code.trim(), user.id, chrono::Utc::now())
        .await
        .map_err(|e| {
            if e.is_not_found() {
                anyhow!(
                    "no pending pairing has code {} (it may have expired)",
                    code.trim()
                )
            } else {
                anyhow!("{e}")
            }
        })?;
    println!(
        "paired {} user {} as {}",
        identity.channel, identity.sender_id, user.username
    );
    Ok(())
}

/// The gateway in its own process: runs over the HTTP API with an API key;
/// its records live in the same database as the runtime's.
async fn run_remote(
    settings: &Settings,
    runtime_url: Option<String>,
    api_key: Option<String>,
) -> Result<()> {
    let Some(url) = runtime_url else {
        bail!(
            "--runtime-url is required to run the gateway as its own process (in-process: configure [gateway] and run `netherbrain agent`)"
        );
    };
    let Some(key) = api_key else {
        bail!("--api-key (or NETHER_API_KEY) is required with --runtime-url");
    };
    let gateway = &settings.gateway;
    if !gateway.has_channels() {
        bail!(
            "no gateway channel is configured (set NETHER_TELEGRAM_TOKEN or NETHER_DISCORD_TOKEN, or a token in [gateway.telegram] or [gateway.discord])"
        );
    }
    let client = netherbrain_http::client::Client::new(url.clone(), Some(key))
        .map_err(|e| anyhow!("{e}"))?;
    // The key's user: every chat acts as it on the runtime.
    let me = loop {
        match client.me().await {
            Ok(me) => break me,
            Err(e) if e.status().is_some_and(|s| s == 401 || s == 403) => {
                bail!("the runtime refused the API key: {e}")
            }
            Err(e) => {
                tracing::warn!(error = %e, "runtime at {url} unreachable; retrying in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let store = open_prepared(settings).await?;
    let mut config = gateway
        .bridge_config(store.as_ref(), &settings.data_dir)
        .await?;
    // Paired or allow-listed users all act as the key's user remotely.
    let key_user = netherbrain_core::UserId::from(me.id);
    for entry in &mut config.allow {
        entry.user_id = key_user;
    }
    let api: Arc<dyn RuntimeApi> =
        Arc::new(netherbrain_gateway::remote::RemoteRuntime::new(client));
    let store: Arc<dyn netherbrain_core::store::GatewayStore> = Arc::new(KeyUserStore {
        inner: store,
        user: key_user,
    });
    let bridge = Bridge::new(api, store, gateway.channels()?, config);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    #[cfg(unix)]
    {
        let stop = cancel.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                term.recv().await;
                stop.cancel();
            }
        });
    }
    tracing::info!(runtime = %url, "gateway running against a remote runtime");
    bridge.run(cancel).await.map_err(|e| anyhow!("{e}"))
}

/// The gateway store of a remote gateway: pairings approved for any user
/// act as the API key's user (the only one it can act as).
#[derive(Debug)]
struct KeyUserStore {
    inner: Arc<dyn StateStore>,
    user: netherbrain_core::UserId,
}

#[async_trait::async_trait]
impl netherbrain_core::store::GatewayStore for KeyUserStore {
    async fn chat_binding(
        &self,
        channel: &str,
        chat_id: &str,
    ) -> netherbrain_core::store::StoreResult<Option<netherbrain_core::store::ChatBinding>> {
        self.inner.chat_binding(channel, chat_id).await
    }
    async fn bind_chat(
        &self,
        binding: netherbrain_core::store::NewChatBinding,
    ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::ChatBinding> {
        self.inner.bind_chat(binding).await
    }
    async fn mark_delivered(
        &self,
        channel: &str,
        chat_id: &str,
        session_id: netherbrain_core::SessionId,
        seq: netherbrain_core::EventSeq,
    ) -> netherbrain_core::store::StoreResult<()> {
        self.inner
            .mark_delivered(channel, chat_id, session_id, seq)
            .await
    }
    async fn list_chat_bindings(
        &self,
        channel: &str,
    ) -> netherbrain_core::store::StoreResult<Vec<netherbrain_core::store::ChatBinding>> {
        self.inner.list_chat_bindings(channel).await
    }
    async fn gateway_identity(
        &self,
        channel: &str,
        sender_id: &str,
    ) -> netherbrain_core::store::StoreResult<Option<netherbrain_core::store::GatewayIdentity>>
    {
        let found = self.inner.gateway_identity(channel, sender_id).await?;
        Ok(found.map(|mut identity| {
            identity.user_id = self.user;
            identity
        }))
    }
    async fn create_pairing(
        &self,
        pairing: netherbrain_core::store::NewPairing,
    ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::PairingRequest> {
        self.inner.create_pairing(pairing).await
    }
    async fn pending_pairings(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> netherbrain_core::store::StoreResult<Vec<netherbrain_core::store::PairingRequest>> {
        self.inner.pending_pairings(now).await
    }
    async fn approve_pairing(
        &self,
        code: &str,
        user_id: netherbrain_core::UserId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> netherbrain_core::store::StoreResult<netherbrain_core::store::GatewayIdentity> {
        self.inner.approve_pairing(code, user_id, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "file-secret-0123456789-abcdefghijkl";

    fn file(text: &str) -> GatewayFile {
        toml::from_str(text).unwrap()
    }

    fn webhook_file(extra: &str) -> GatewayFile {
        file(&format!(
            "[telegram]\ntoken = \"1:tok\"\nwebhook_url = \"https://bot.example.com/tg\"\nwebhook_listen = \"127.0.0.1:8443\"\nwebhook_secret = \"{SECRET}\"\n{extra}"
        ))
    }

    fn error(file: GatewayFile, env: &[(&str, &str)]) -> String {
        let e = GatewaySettings::resolve(Some(file), &Env::from_pairs(env)).unwrap_err();
        let e = format!("{e:#}");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(!e.contains(SECRET), "{e}");
        e
    }

    #[test]
    fn the_webhook_comes_from_the_file_and_its_secret_is_redacted() {
        let s = GatewaySettings::resolve(Some(webhook_file("")), &Env::default()).unwrap();
        let hook = s.telegram_webhook.as_ref().unwrap();
        assert_eq!(hook.url().as_str(), "https://bot.example.com/tg");
        assert_eq!(hook.listen().to_string(), "127.0.0.1:8443");
        let shown = s.render();
        assert!(
            shown.contains("webhook_url = \"https://bot.example.com/tg\""),
            "{shown}"
        );
        assert!(
            shown.contains("webhook_listen = \"127.0.0.1:8443\""),
            "{shown}"
        );
        assert!(shown.contains("webhook_secret = \"<redacted>\""), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
        let debug = format!("{s:?}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!format!("{:?}", s.file).contains(SECRET));
    }

    #[test]
    fn the_environment_beats_the_file_for_the_webhook() {
        let env = Env::from_pairs(&[
            (TELEGRAM_WEBHOOK_URL_ENV, "https://env.example.com/hook"),
            (TELEGRAM_WEBHOOK_LISTEN_ENV, "0.0.0.0:9443"),
            (
                TELEGRAM_WEBHOOK_SECRET_ENV,
                "env-secret-0123456789-abcdefghijkl",
            ),
        ]);
        let s = GatewaySettings::resolve(Some(webhook_file("")), &env).unwrap();
        let hook = s.telegram_webhook.as_ref().unwrap();
        assert_eq!(hook.url().as_str(), "https://env.example.com/hook");
        assert_eq!(hook.listen().to_string(), "0.0.0.0:9443");
        assert!(!s.render().contains("env-secret"));
        // Only from the environment, with the token there too.
        let env = Env::from_pairs(&[
            (TELEGRAM_TOKEN_ENV, "1:tok"),
            (TELEGRAM_WEBHOOK_URL_ENV, "https://env.example.com/hook"),
            (TELEGRAM_WEBHOOK_LISTEN_ENV, "127.0.0.1:8443"),
            (
                TELEGRAM_WEBHOOK_SECRET_ENV,
                "env-secret-0123456789-abcdefghijkl",
            ),
        ]);
        let s = GatewaySettings::resolve(None, &env).unwrap();
        assert!(s.telegram_webhook.is_some());
        assert!(s.channels().unwrap().len() == 1);
    }

    #[test]
    fn without_a_webhook_url_the_gateway_polls() {
        let s = GatewaySettings::resolve(
            Some(file(
                "[telegram]\ntoken = \"1:tok\"\nwebhook_listen = \"127.0.0.1:8443\"\n",
            )),
            &Env::default(),
        )
        .unwrap();
        assert!(s.telegram_webhook.is_none());
        assert!(!s.render().contains("webhook"));
    }

    #[test]
    fn an_incomplete_or_bad_webhook_is_a_one_line_error() {
        let base = "[telegram]\ntoken = \"1:tok\"\nwebhook_url = \"https://bot.example.com/tg\"\n";
        let e = error(
            file(&format!("{base}webhook_listen = \"127.0.0.1:8443\"\n")),
            &[],
        );
        assert!(e.contains("webhook_secret"), "{e}");
        assert!(e.contains(TELEGRAM_WEBHOOK_SECRET_ENV), "{e}");
        let e = error(file(&format!("{base}webhook_secret = \"{SECRET}\"\n")), &[]);
        assert!(e.contains("webhook_listen"), "{e}");
        let e = error(
            webhook_file(""),
            &[(TELEGRAM_WEBHOOK_SECRET_ENV, "too-short")],
        );
        assert!(e.contains("32"), "{e}");
        let e = error(
            webhook_file(""),
            &[(
                TELEGRAM_WEBHOOK_SECRET_ENV,
                "has spaces in it 0123456789 abcdefgh",
            )],
        );
        assert!(e.contains("A-Z"), "{e}");
        let e = error(
            webhook_file(""),
            &[(TELEGRAM_WEBHOOK_URL_ENV, "http://bot.example.com/tg")],
        );
        assert!(e.contains("https"), "{e}");
        let e = error(
            webhook_file(""),
            &[(TELEGRAM_WEBHOOK_LISTEN_ENV, "localhost")],
        );
        assert!(e.contains("not a socket address"), "{e}");
        let e = error(
            file(&format!(
                "[telegram]\nwebhook_url = \"https://bot.example.com/tg\"\nwebhook_listen = \"127.0.0.1:8443\"\nwebhook_secret = \"{SECRET}\"\n"
            )),
            &[],
        );
        assert!(e.contains("bot token"), "{e}");
        assert!(toml::from_str::<GatewayFile>("[telegram]\nwebhook = 1\n").is_err());
    }
}
