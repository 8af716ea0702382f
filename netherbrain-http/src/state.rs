//! Shared server state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::conversation::ConversationService;
use netherbrain_core::conversation::providers::ProviderSettings;
use netherbrain_core::runtime::Runtime;
use netherbrain_core::store::StateStore;

use crate::auth::LoginLimiter;
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// What every handler can reach: the [`ConversationService`] (with the
/// store, the session runtime and the agent catalog), the configuration,
/// metrics and the login throttle. Cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    service: ConversationService,
    providers: Option<ProviderSettings>,
    config: ServerConfig,
    metrics: Metrics,
    login_limiter: LoginLimiter,
    /// Set by [`crate::serve`] when it listens off loopback.
    public: AtomicBool,
}

impl AppState {
    /// State over `store` with `config` and private [`Metrics`].
    #[must_use]
    pub fn new(store: Arc<dyn StateStore>, config: ServerConfig) -> Self {
        Self::builder(store).config(config).build()
    }

    /// A builder, for choosing the runtime, catalog, service and metrics.
    pub fn builder(store: Arc<dyn StateStore>) -> AppStateBuilder {
        AppStateBuilder {
            store,
            runtime: None,
            catalog: Arc::new(AgentCatalog::new()),
            service: None,
            providers: None,
            config: ServerConfig::default(),
            metrics: None,
        }
    }

    /// The conversation service every handler calls.
    #[must_use]
    pub fn service(&self) -> &ConversationService {
        &self.inner.service
    }

    /// The provider-profile use-cases of Settings, when the embedder set
    /// them up ([`AppStateBuilder::providers`]).
    #[must_use]
    pub fn providers(&self) -> Option<&ProviderSettings> {
        self.inner.providers.as_ref()
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn StateStore> {
        self.inner.service.store()
    }

    /// The session runtime.
    #[must_use]
    pub fn runtime(&self) -> &Runtime {
        self.inner.service.runtime()
    }

    /// The providers and tool sets presets can use.
    #[must_use]
    pub fn catalog(&self) -> Arc<AgentCatalog> {
        self.inner.service.catalog()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The metrics.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn login_limiter(&self) -> &LoginLimiter {
        &self.inner.login_limiter
    }

    /// Whether [`crate::serve`] listens on a non-loopback address.
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.inner.public.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_public(&self) {
        self.inner.public.store(true, Ordering::Relaxed);
    }
}

/// Builds an [`AppState`].
///
/// ```
/// # fn f(store: std::sync::Arc<dyn netherbrain_core::store::StateStore>) {
/// use netherbrain_http::{AppState, Metrics, ServerConfig};
/// let state = AppState::builder(store)
///     .config(ServerConfig::default())
///     .metrics(Metrics::new())
///     .build();
/// # let _ = state; }
/// ```
#[derive(Debug)]
#[must_use]
pub struct AppStateBuilder {
    store: Arc<dyn StateStore>,
    runtime: Option<Runtime>,
    catalog: Arc<AgentCatalog>,
    service: Option<ConversationService>,
    providers: Option<ProviderSettings>,
    config: ServerConfig,
    metrics: Option<Metrics>,
}

impl AppStateBuilder {
    /// Sets the configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses this runtime (it must run over the same store); by default a
    /// new one is created over the store.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Sets the catalog of providers and tool sets (default: empty).
    pub fn catalog(mut self, catalog: Arc<AgentCatalog>) -> Self {
        self.catalog = catalog;
        self
    }

    /// Uses this conversation service (shared with other surfaces of the
    /// process, such as a gateway); it replaces the store, runtime and
    /// catalog given here.
    pub fn service(mut self, service: ConversationService) -> Self {
        self.service = Some(service);
        self
    }

    /// Enables `/api/providers/*` over these settings; they must rebuild
    /// the catalog of the service given with [`service`](Self::service).
    /// Without them those routes answer `503`.
    pub fn providers(mut self, providers: ProviderSettings) -> Self {
        self.providers = Some(providers);
        self
    }

    /// Sets the metrics (e.g. [`Metrics::install_global`]).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Builds the state.
    pub fn build(self) -> AppState {
        if self
            .config
            .auth_token
            .as_deref()
            .is_some_and(|t| t.chars().count() < crate::MIN_OPERATOR_TOKEN_LEN)
        {
            tracing::warn!(
                "the operator token is shorter than {} characters; it does not count as auth for non-loopback binds",
                crate::MIN_OPERATOR_TOKEN_LEN
            );
        }
        let login_limiter = LoginLimiter::new(self.config.login_rate_limit);
        let service = match self.service {
            Some(service) => service,
            None => {
                let mut builder = ConversationService::builder(self.store).catalog(self.catalog);
                if let Some(runtime) = self.runtime {
                    builder = builder.runtime(runtime);
                }
                builder.build()
            }
        };
        let metrics = self.metrics.unwrap_or_default();
        service.runtime().observe(Arc::new(metrics.clone()));
        AppState {
            inner: Arc::new(Inner {
                service,
                providers: self.providers,
                config: self.config,
                metrics,
                login_limiter,
                public: AtomicBool::new(false),
            }),
        }
    }
}
