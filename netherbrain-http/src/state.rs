//! Shared server state.

use std::sync::Arc;

use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::runtime::Runtime;
use netherbrain_core::store::StateStore;

use crate::auth::LoginLimiter;
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// What every handler can reach: the store, the configuration, metrics and
/// the login throttle. Cheap to clone (one `Arc`).
///
/// The session [`Runtime`] runs agents built from presets by the
/// [`AgentCatalog`] (the provider profiles and tool sets of this
/// deployment).
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn StateStore>,
    runtime: Runtime,
    catalog: Arc<AgentCatalog>,
    config: ServerConfig,
    metrics: Metrics,
    login_limiter: LoginLimiter,
}

impl AppState {
    /// State over `store` with `config` and private [`Metrics`].
    #[must_use]
    pub fn new(store: Arc<dyn StateStore>, config: ServerConfig) -> Self {
        Self::builder(store).config(config).build()
    }

    /// A builder, for choosing metrics (and, later, the runtime).
    pub fn builder(store: Arc<dyn StateStore>) -> AppStateBuilder {
        AppStateBuilder {
            store,
            runtime: None,
            catalog: Arc::new(AgentCatalog::new()),
            config: ServerConfig::default(),
            metrics: None,
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    /// The session runtime.
    #[must_use]
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The providers and tool sets presets can use.
    #[must_use]
    pub fn catalog(&self) -> &Arc<AgentCatalog> {
        &self.inner.catalog
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
        AppState {
            inner: Arc::new(Inner {
                runtime: self
                    .runtime
                    .unwrap_or_else(|| Runtime::new(self.store.clone())),
                catalog: self.catalog,
                store: self.store,
                config: self.config,
                metrics: self.metrics.unwrap_or_default(),
                login_limiter,
            }),
        }
    }
}
