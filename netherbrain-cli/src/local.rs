//! Wiring shared by the commands: opening the store, the admin account,
//! the agent catalog and the conversation service.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::auth::{BOOTSTRAP_ADMIN_USERNAME, bootstrap_admin, operator_admin};
use netherbrain_core::conversation::providers::ProviderSettings;
use netherbrain_core::conversation::{
    ConversationService, ImportAction, ImportedPreset, TokenBudgets,
};
use netherbrain_core::memory::{Memories, MemoryConfig};
use netherbrain_core::provider::ProviderProfile;
use netherbrain_core::runtime::{Runtime, RuntimeConfig};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{Preset, StoreError, User};
use netherbrain_core::tasks::{TaskConfig, Tasks};

use crate::config::Settings;

/// Opens (and, for SQLite, migrates) the configured database.
pub(crate) async fn open_store(settings: &Settings) -> Result<Arc<dyn StateStore>> {
    netherbrain_store::connect(&settings.database_url)
        .await
        .map_err(|e| {
            anyhow!(
                "cannot open database {}: {e}",
                crate::config::redact_url(&settings.database_url)
            )
        })
}

/// The notice printed when bootstrap generated the admin token.
pub(crate) fn admin_token_notice(token: &str) -> String {
    format!(
        "Created the `{BOOTSTRAP_ADMIN_USERNAME}` account. Its API token is shown only this once; store it now:\n\n    {token}\n\nSend it as `Authorization: Bearer <token>`. Create more with `netherbrain keys create`.\n"
    )
}

/// Makes an opened store ready, the same way for every command: creates
/// the admin account on an empty database (returning its generated token,
/// for the caller to print), imports the config file's presets (each must
/// name a configured provider profile) and creates the first-run defaults
/// (a `default` workspace; a `default` preset when exactly one provider is
/// configured and there is none). Idempotent, and safe beside another
/// process doing the same.
pub(crate) async fn prepare_store(
    store: &Arc<dyn StateStore>,
    settings: &Settings,
) -> Result<Option<String>> {
    let generated = bootstrap_admin(store.as_ref(), settings.auth_token.as_deref()).await?;
    if !settings.presets.is_empty() {
        crate::presets::check_profiles(&settings.presets, settings)?;
        let imported = import_presets(store.clone(), &settings.presets)
            .await
            .context("importing the presets of the config file")?;
        tracing::info!(
            count = imported.len(),
            "imported presets from the config file"
        );
    }
    // Profiles added from Settings count too (their keys are not needed).
    let mut providers = settings.providers.clone();
    for stored in store
        .list_providers()
        .await
        .context("listing stored provider profiles")?
    {
        if !providers.iter().any(|p| p.name == stored.name) {
            providers.push(stored.to_profile(None));
        }
    }
    let prepared = crate::first_run::prepare(store.as_ref(), &providers).await?;
    tracing::debug!(?prepared, "first-run defaults");
    Ok(generated)
}

/// Opens the store and prepares it ([`prepare_store`]) for a command other
/// than `agent`: a generated admin token is printed on stderr, since these
/// commands keep stdout for their own output.
pub(crate) async fn open_prepared(settings: &Settings) -> Result<Arc<dyn StateStore>> {
    let store = open_store(settings).await?;
    if let Some(token) = prepare_store(&store, settings).await? {
        eprint!("{}", admin_token_notice(&token));
    }
    Ok(store)
}

/// The admin the local commands act as: `admin`, else the first active
/// admin.
pub(crate) async fn admin_user(store: &dyn StateStore) -> Result<User> {
    operator_admin(store)
        .await
        .map_err(|_| anyhow!("the database has no active admin account"))
}

/// A user named by username or id; the admin when `None`.
pub(crate) async fn resolve_user(store: &dyn StateStore, user: Option<&str>) -> Result<User> {
    let Some(user) = user else {
        return admin_user(store).await;
    };
    if let Ok(id) = user.parse::<uuid::Uuid>() {
        return store
            .get_user(id.into())
            .await
            .map_err(|e| not_found(e, &format!("no user with id {user}")));
    }
    store
        .get_user_by_username(user)
        .await
        .map_err(|e| not_found(e, &format!("no user named `{user}`")))
}

fn not_found(e: StoreError, message: &str) -> anyhow::Error {
    if e.is_not_found() {
        anyhow!("{message}")
    } else {
        e.into()
    }
}

/// The tool sets that need the server's own parts: subagents (bound to
/// the service once it is built), memories and scheduled tasks.
#[derive(Debug, Clone)]
pub(crate) struct ServerTools {
    pub(crate) delegate: netherbrain_tools::delegate::Delegate,
    pub(crate) memories: Memories,
    pub(crate) tasks: Tasks,
}

impl ServerTools {
    /// The parts the settings describe, over `store`.
    pub(crate) fn new(store: &Arc<dyn StateStore>, settings: &Settings) -> Self {
        Self {
            delegate: netherbrain_tools::delegate::Delegate::new(),
            memories: memories(store.clone(), settings),
            tasks: tasks(store.clone(), settings),
        }
    }

    /// The parts `service` uses, with the delegate bound to it.
    pub(crate) fn of(service: &ConversationService) -> Self {
        Self {
            delegate: netherbrain_tools::delegate::Delegate::bound(service),
            memories: service.memories().clone(),
            tasks: service.tasks().clone(),
        }
    }
}

/// Builds the agent catalog of provider `profiles` (skipping, with a
/// warning, profiles that cannot be built, e.g. because their API key
/// variable is not set), the built-in tool sets, the server's tool sets
/// (`delegate`, `memory`, `schedule`), MCP and the default output cap
/// (`default_max_tokens`).
pub(crate) fn build_catalog(
    profiles: &[ProviderProfile],
    default_max_tokens: Option<u32>,
    tools: &ServerTools,
) -> AgentCatalog {
    let usable: Vec<ProviderProfile> = profiles
        .iter()
        .filter(|p| match p.build() {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("skipping provider profile `{}`: {e}", p.name);
                false
            }
        })
        .cloned()
        .collect();
    // Every profile left builds, so this cannot fail; stay defensive.
    let catalog = AgentCatalog::from_profiles(&usable).unwrap_or_else(|e| {
        tracing::warn!("cannot build the provider catalog: {e}");
        AgentCatalog::new()
    });
    netherbrain_tools::builtin()
        .into_iter()
        .fold(catalog, AgentCatalog::with_toolset)
        .with_toolset(Arc::new(tools.delegate.clone()))
        .with_toolset(Arc::new(netherbrain_tools::memory::MemoryTools::new(
            tools.memories.clone(),
        )))
        .with_toolset(Arc::new(netherbrain_tools::schedule::ScheduleTools::new(
            tools.tasks.clone(),
        )))
        .with_mcp(Arc::new(netherbrain_tools::mcp::Mcp::new()))
        .with_default_max_tokens(default_max_tokens)
}

/// The conversation service the settings describe, over `store` and
/// `runtime`: catalog, workspace roots, run quota, memories, tasks and
/// budgets, with the `delegate` tool set bound to it and the provider
/// profiles stored from Settings loaded.
pub(crate) async fn service(
    store: Arc<dyn StateStore>,
    settings: &Settings,
    runtime: Runtime,
) -> Result<(ConversationService, ProviderSettings)> {
    let tools = ServerTools::new(&store, settings);
    let catalog = Arc::new(build_catalog(
        &settings.providers,
        settings.default_max_tokens,
        &tools,
    ));
    let service = ConversationService::builder(store)
        .runtime(runtime)
        .catalog(catalog)
        .workspace_roots(workspace_roots(settings)?)
        .max_runs_per_user(Some(settings.max_runs_per_user))
        .memories(tools.memories.clone())
        .tasks(tools.tasks.clone())
        .token_budgets(
            TokenBudgets::default().with_user_daily_tokens(settings.budgets.user_daily_tokens),
        )
        .build();
    tools.delegate.bind(&service);
    let providers = provider_settings(&service, settings).await?;
    Ok((service, providers))
}

/// The provider profiles of Settings over `service`: the config file's
/// profiles and the stored ones, whose API keys the data directory's key
/// file (`secret.key`) seals. Rebuilds the service's catalog from both
/// before it returns, so stored profiles work from the start.
pub(crate) async fn provider_settings(
    service: &ConversationService,
    settings: &Settings,
) -> Result<ProviderSettings> {
    let default_max_tokens = settings.default_max_tokens;
    let tools = ServerTools::of(service);
    let providers = ProviderSettings::new(
        service.clone(),
        settings.providers.clone(),
        Arc::new(move |profiles: &[ProviderProfile]| {
            build_catalog(profiles, default_max_tokens, &tools)
        }),
    )
    .with_cipher(Arc::new(netherbrain_store::secret::KeyFile::new(
        &settings.data_dir,
    )));
    providers
        .rebuild()
        .await
        .map_err(|e| anyhow!("loading the stored provider profiles: {e}"))?;
    Ok(providers)
}

/// The scheduled tasks the settings describe: limits and timing.
pub(crate) fn tasks(store: Arc<dyn StateStore>, settings: &Settings) -> Tasks {
    let t = &settings.tasks;
    let defaults = TaskConfig::default();
    let mut config = TaskConfig::default()
        .with_max_per_user(t.max_per_user.unwrap_or(defaults.max_per_user))
        .with_min_interval(
            t.min_interval
                .map_or(defaults.min_interval, std::time::Duration::from_secs),
        );
    if let Some(poll) = t.poll_interval {
        config = config.with_poll_interval(std::time::Duration::from_secs_f64(poll));
    }
    if let Some(grace) = t.grace {
        config = config.with_grace(std::time::Duration::from_secs(grace));
    }
    Tasks::new(store, config)
}

/// The users' long-term memories the settings describe: limits, and the
/// embeddings of `memory.embeddings_profile` (else of the first profile
/// with an `embeddings_model`); a profile that cannot be built leaves
/// recall to full-text search, with a warning.
pub(crate) fn memories(store: Arc<dyn StateStore>, settings: &Settings) -> Memories {
    let m = &settings.memory;
    let defaults = MemoryConfig::default();
    let mut config = MemoryConfig::default().with_limits(
        m.max_per_user.unwrap_or(defaults.max_per_user),
        m.max_chars.unwrap_or(defaults.max_chars),
    );
    if let Some(similarity) = m.min_similarity {
        config = config.with_min_similarity(similarity);
    }
    let profile = match &m.embeddings_profile {
        Some(name) => settings.providers.iter().find(|p| &p.name == name),
        None => settings
            .providers
            .iter()
            .find(|p| p.embeddings_model.is_some()),
    };
    let embedder = profile.and_then(|p| match p.build_embedder() {
        Ok(embedder) => embedder,
        Err(e) => {
            tracing::warn!("memory embeddings of profile `{}` unavailable: {e}", p.name);
            None
        }
    });
    Memories::new(store, config).with_embedder(embedder)
}

/// The session runtime the settings describe; with `redis_url` it joins
/// the deployment's other replicas.
pub(crate) async fn runtime(store: Arc<dyn StateStore>, settings: &Settings) -> Result<Runtime> {
    let runtime = Runtime::with_config(
        store,
        RuntimeConfig::default().with_lease(settings.session_lease),
    );
    if let Some(url) = &settings.redis_url {
        join_cluster(&runtime, url).await?;
    }
    Ok(runtime)
}

/// Multi-replica mode: shares the runtime's runs with the other replicas
/// through Redis. A Redis that is down now is joined when it answers.
async fn join_cluster(runtime: &Runtime, url: &str) -> Result<()> {
    use netherbrain_cluster::{RedisCluster, RedisConfig};
    let shown = crate::config::redact_url(url);
    let cluster = RedisCluster::connect(url, RedisConfig::default())
        .map_err(|e| anyhow!("redis_url {shown}: {e}"))?;
    runtime.join_cluster(cluster.clone());
    match cluster.ping_now().await {
        Ok(()) => tracing::info!(redis = %shown, "multi-replica mode: Redis is reachable"),
        Err(e) => tracing::warn!(
            redis = %shown,
            error = %e,
            "multi-replica mode: Redis is unreachable; serving this replica's runs alone until it answers"
        ),
    }
    Ok(())
}

/// Imports presets as the admin, through the conversation service.
pub(crate) async fn import_presets(
    store: Arc<dyn StateStore>,
    docs: &[crate::config::PresetDoc],
) -> Result<Vec<ImportedPreset>> {
    let admin = admin_user(store.as_ref()).await?;
    let service = ConversationService::new(store, Arc::new(AgentCatalog::new()));
    service
        .import_presets(
            &netherbrain_core::auth::Principal::of(&admin),
            docs.to_vec(),
        )
        .await
        .map_err(|e| anyhow!("importing presets: {e}"))
}

/// `created` or `updated`, for printing.
pub(crate) fn import_action(action: ImportAction) -> &'static str {
    match action {
        ImportAction::Updated => "updated",
        _ => "created",
    }
}

/// The allowed workspace roots; the default one (`workspaces/` in the data
/// directory) is created when missing.
pub(crate) fn workspace_roots(
    settings: &Settings,
) -> Result<netherbrain_core::workspace::WorkspaceRoots> {
    let default = settings.data_dir.join("workspaces");
    for root in &settings.workspace_roots {
        if *root == default {
            std::fs::create_dir_all(root)
                .map_err(|e| anyhow!("cannot create {}: {e}", root.display()))?;
        }
    }
    netherbrain_core::workspace::WorkspaceRoots::new(settings.workspace_roots.clone())
        .map_err(|e| anyhow!("workspace_roots: {e}"))
}

/// The preset named `name`, with a hint when there is none.
pub(crate) async fn preset_by_name(store: &dyn StateStore, name: &str) -> Result<Preset> {
    store.get_preset_by_name(name).await.map_err(|e| {
        if e.is_not_found() {
            anyhow!("no preset named `{name}` (see `netherbrain presets list`)")
        } else {
            e.into()
        }
    })
}

/// The only preset, or an error asking to choose one.
pub(crate) fn only_preset(mut presets: Vec<Preset>) -> Result<Preset> {
    match presets.len() {
        0 => bail!("there are no presets: import one with `netherbrain presets import FILE`"),
        1 => Ok(presets.remove(0)),
        _ => {
            let names: Vec<_> = presets.iter().map(|p| p.name.as_str()).collect();
            bail!("choose a preset with --preset NAME ({})", names.join(", "))
        }
    }
}
