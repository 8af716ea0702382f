//! Turning presets into agents: the providers and tool sets a deployment
//! offers, by name.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::preset::PresetConfig;
use crate::provider::{ProfileError, Provider, ProviderProfile};
use crate::tool::{McpConnector, RegistryError, ToolRegistry, ToolSet, valid_mcp_server_name};

use super::Agent;

/// Why a preset could not be turned into an agent.
///
/// ```
/// use netherbrain_core::agent::CatalogError;
/// let e = CatalogError::UnknownProfile("gpt".into());
/// assert_eq!(e.to_string(), "unknown provider profile `gpt`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The preset names a profile the catalog does not have.
    #[error("unknown provider profile `{0}`")]
    UnknownProfile(String),
    /// The preset names a tool set the catalog does not have.
    #[error("unknown tool set `{0}`")]
    UnknownToolSet(String),
    /// Tools could not be registered (duplicate names, bad schema, a tool
    /// set that failed).
    #[error(transparent)]
    Tools(#[from] RegistryError),
    /// A profile could not be built.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The preset declares an MCP server that cannot be used as written.
    #[error("MCP server `{server}`: {message}")]
    InvalidMcpServer {
        /// The server's name in the preset.
        server: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Clone)]
struct ProviderEntry {
    provider: Arc<dyn Provider>,
    kind: Option<&'static str>,
    models: Vec<String>,
}

/// A provider profile as discovery shows it.
///
/// ```
/// let catalog = netherbrain_core::agent::AgentCatalog::new();
/// assert!(catalog.profiles().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileInfo {
    /// Profile name.
    pub name: String,
    /// `openai`, `anthropic`, or `None` for a custom provider.
    pub kind: Option<&'static str>,
    /// Models the profile advertises.
    pub models: Vec<String>,
}

/// The providers (by profile name) and tool sets (by name) a deployment
/// offers; [`agent`](Self::agent) builds the [`Agent`] a preset describes.
///
/// ```
/// use std::sync::Arc;
/// use netherbrain_core::agent::AgentCatalog;
/// use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
/// use netherbrain_core::PresetConfig;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let catalog = AgentCatalog::new()
///     .with_provider("local", Arc::new(ScriptedProvider::new([ScriptedResponse::text("hi")])), vec!["tiny".into()]);
/// let agent = catalog
///     .agent(&PresetConfig::new("local", "tiny").with_system_prompt("Be brief."))
///     .await
///     .unwrap();
/// assert_eq!(agent.model(), "tiny");
/// assert!(catalog.agent(&PresetConfig::new("missing", "x")).await.is_err());
/// # });
/// ```
#[derive(Clone, Default)]
pub struct AgentCatalog {
    providers: BTreeMap<String, ProviderEntry>,
    toolsets: BTreeMap<String, Arc<dyn ToolSet>>,
    /// Registries already built, by the tool-set names of a preset: their
    /// schemas and compiled validators are reused by every later agent.
    registries: Arc<Mutex<HashMap<Vec<String>, ToolRegistry>>>,
    /// Connects the MCP servers presets declare.
    mcp: Option<Arc<dyn McpConnector>>,
    /// `max_tokens` for presets that set none.
    default_max_tokens: Option<u32>,
}

/// Registries kept before the cache starts over.
const MAX_CACHED_REGISTRIES: usize = 256;

impl fmt::Debug for AgentCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentCatalog")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("toolsets", &self.toolsets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AgentCatalog {
    /// An empty catalog.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a catalog from provider profiles.
    ///
    /// # Errors
    ///
    /// The first profile that cannot be built (e.g. a missing API key).
    pub fn from_profiles(profiles: &[ProviderProfile]) -> Result<Self, CatalogError> {
        let mut catalog = Self::new();
        for profile in profiles {
            let provider = profile.build()?;
            catalog.providers.insert(
                profile.name.clone(),
                ProviderEntry {
                    provider,
                    kind: Some(profile.kind.as_str()),
                    models: profile.models.clone(),
                },
            );
        }
        Ok(catalog)
    }

    /// Adds (or replaces) a provider under a profile name.
    #[must_use]
    pub fn with_provider(
        mut self,
        name: impl Into<String>,
        provider: Arc<dyn Provider>,
        models: Vec<String>,
    ) -> Self {
        self.providers.insert(
            name.into(),
            ProviderEntry {
                provider,
                kind: None,
                models,
            },
        );
        self
    }

    /// Adds (or replaces) a tool set under its name.
    #[must_use]
    pub fn with_toolset(mut self, toolset: Arc<dyn ToolSet>) -> Self {
        self.toolsets.insert(toolset.name().to_owned(), toolset);
        self.registries = Arc::default();
        self
    }

    /// Sets the connector for the MCP servers presets declare
    /// ([`PresetConfig::mcp_servers`]); without one such servers are
    /// skipped with a warning.
    #[must_use]
    pub fn with_mcp(mut self, connector: Arc<dyn McpConnector>) -> Self {
        self.mcp = Some(connector);
        self
    }

    /// Sets the `max_tokens` every agent of a preset that sets none gets:
    /// the output cap a run has by default (`None`, the default: the
    /// provider's own). A preset's `settings.max_tokens` wins; a request's
    /// `max_tokens` is capped by whichever applies.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use netherbrain_core::agent::AgentCatalog;
    /// use netherbrain_core::PresetConfig;
    /// use netherbrain_core::testing::ScriptedProvider;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let catalog = AgentCatalog::new()
    ///     .with_provider("local", Arc::new(ScriptedProvider::new([])), vec![])
    ///     .with_default_max_tokens(Some(4096));
    /// let agent = catalog.agent(&PresetConfig::new("local", "m")).await.unwrap();
    /// assert_eq!(agent.settings().max_tokens, Some(4096));
    /// # });
    /// ```
    #[must_use]
    pub fn with_default_max_tokens(mut self, max_tokens: Option<u32>) -> Self {
        self.default_max_tokens = max_tokens.filter(|&n| n > 0);
        self
    }

    /// Forgets the tools listed so far (tool sets and MCP servers), so the
    /// next agents list them again (after a tool set's tools changed).
    pub fn refresh_tools(&self) {
        self.registries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        if let Some(mcp) = &self.mcp {
            mcp.refresh();
        }
    }

    /// Adds the tools of a preset's MCP servers; a server that fails, or a
    /// tool that cannot be registered, is logged and skipped.
    async fn add_mcp_tools(&self, config: &PresetConfig, tools: &mut ToolRegistry) {
        if config.mcp_servers.is_empty() {
            return;
        }
        let Some(mcp) = &self.mcp else {
            tracing::warn!("the preset declares MCP servers but no MCP connector is registered");
            return;
        };
        for (name, server) in &config.mcp_servers {
            match mcp.tools(name, server).await {
                Ok(list) => {
                    for tool in list {
                        let tool_name = tool.definition().name.clone();
                        if let Err(e) = tools.add_dyn(tool) {
                            tracing::warn!(server = %name, tool = %tool_name, "skipping MCP tool: {e}");
                        }
                    }
                }
                Err(e) => tracing::warn!(server = %name, "skipping MCP server: {e}"),
            }
        }
    }

    /// The registry of a preset's tool sets: cached, else listed and
    /// compiled once.
    async fn registry(&self, names: &[String]) -> Result<ToolRegistry, CatalogError> {
        let cached = self
            .registries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(names)
            .cloned();
        if let Some(tools) = cached {
            return Ok(tools);
        }
        let mut tools = ToolRegistry::new();
        for name in names {
            let set = self
                .toolsets
                .get(name)
                .ok_or_else(|| CatalogError::UnknownToolSet(name.clone()))?;
            tools.add_set(set.as_ref()).await?;
        }
        let mut cache = self
            .registries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_REGISTRIES {
            cache.clear();
        }
        cache.insert(names.to_vec(), tools.clone());
        Ok(tools)
    }

    /// The provider of a profile.
    #[must_use]
    pub fn provider(&self, profile: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(profile).map(|e| &e.provider)
    }

    /// Profiles with their advertised models, by name.
    #[must_use]
    pub fn profiles(&self) -> Vec<ProfileInfo> {
        self.providers
            .iter()
            .map(|(name, e)| ProfileInfo {
                name: name.clone(),
                kind: e.kind,
                models: e.models.clone(),
            })
            .collect()
    }

    /// Names of the tool sets, sorted.
    #[must_use]
    pub fn toolset_names(&self) -> Vec<String> {
        self.toolsets.keys().cloned().collect()
    }

    /// The tool sets, by name.
    pub fn toolsets(&self) -> impl Iterator<Item = &Arc<dyn ToolSet>> {
        self.toolsets.values()
    }

    /// Checks that a preset's profile and tool sets exist and its MCP
    /// servers are well formed, without building or connecting anything.
    ///
    /// # Errors
    ///
    /// [`CatalogError::UnknownProfile`], [`CatalogError::UnknownToolSet`] or
    /// [`CatalogError::InvalidMcpServer`].
    pub fn check(&self, config: &PresetConfig) -> Result<(), CatalogError> {
        if !self.providers.contains_key(&config.profile) {
            return Err(CatalogError::UnknownProfile(config.profile.clone()));
        }
        if let Some(missing) = config
            .toolsets
            .iter()
            .find(|t| !self.toolsets.contains_key(*t))
        {
            return Err(CatalogError::UnknownToolSet(missing.clone()));
        }
        for (name, server) in &config.mcp_servers {
            let invalid = |message: String| CatalogError::InvalidMcpServer {
                server: name.clone(),
                message,
            };
            if !valid_mcp_server_name(name) {
                return Err(invalid(
                    "a server name is 1 to 32 ASCII letters, digits or `-`".into(),
                ));
            }
            server.validate().map_err(invalid)?;
        }
        Ok(())
    }

    /// Builds the agent a preset describes: its profile's provider, model,
    /// prompt, settings, the tools of its tool sets, approval policy and
    /// limits. Tool sets are listed and their validators compiled once per
    /// combination; later agents reuse them (see
    /// [`refresh_tools`](Self::refresh_tools)).
    ///
    /// # Errors
    ///
    /// Unknown profile or tool set, or tools that cannot be registered. MCP
    /// servers that fail are skipped (logged), never an error.
    pub async fn agent(&self, config: &PresetConfig) -> Result<Agent, CatalogError> {
        self.check(config)?;
        let provider = self
            .providers
            .get(&config.profile)
            .map(|e| e.provider.clone())
            .ok_or_else(|| CatalogError::UnknownProfile(config.profile.clone()))?;
        let mut tools = self.registry(&config.toolsets).await?;
        self.add_mcp_tools(config, &mut tools).await;
        let mut settings = config.settings.clone();
        if settings.max_tokens.is_none() {
            settings.max_tokens = self.default_max_tokens;
        }
        let mut builder = Agent::builder(provider, config.model.clone())
            .settings(settings)
            .tools(tools)
            .approval(config.approval.clone())
            .tool_policy(config.tool_policy.clone())
            .tool_options(config.tool_options.clone())
            .limits(config.limits.clone());
        if let Some(prompt) = &config.system_prompt {
            builder = builder.system_prompt(prompt.clone());
        }
        Ok(builder.build())
    }
}
