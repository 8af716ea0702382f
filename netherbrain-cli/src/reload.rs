//! `SIGHUP` for `netherbrain agent`: the config file is read again; its
//! presets and provider profiles take effect at once, and every other
//! change is announced as needing a restart.

use anyhow::{Context, Result};
use netherbrain_core::conversation::providers::ProviderSettings;

use crate::config::Settings;
use crate::local::import_presets;

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reloaded {
    /// Presets of the file created or replaced.
    pub(crate) presets: usize,
    /// Whether the provider profiles changed (the catalog was replaced).
    pub(crate) providers: bool,
    /// Settings that changed but only apply after a restart.
    pub(crate) need_restart: Vec<&'static str>,
}

/// Applies `new` over `current`: presets are imported when they changed
/// (each must name a profile of `new`), a changed set of provider profiles
/// replaces the service's catalog (with the profiles stored from
/// Settings; runs going on keep theirs), and the
/// names of other changed settings are returned. A preset naming an
/// unknown profile is refused before anything changes.
pub(crate) async fn apply(
    current: &mut Settings,
    new: Settings,
    providers: &ProviderSettings,
) -> Result<Reloaded> {
    let service = providers.service();
    let mut reloaded = Reloaded {
        need_restart: restart_needed(current, &new),
        ..Reloaded::default()
    };
    let presets_changed = new.presets != current.presets && !new.presets.is_empty();
    if presets_changed {
        crate::presets::check_profiles(&new.presets, &new)?;
    }
    // Profiles first, so a new preset never names a profile the catalog
    // does not have yet.
    if new.providers != current.providers {
        providers
            .replace_config_profiles(new.providers.clone())
            .await
            .context("rebuilding the provider catalog")?;
        reloaded.providers = true;
    }
    if presets_changed {
        reloaded.presets = import_presets(service.store().clone(), &new.presets)
            .await
            .context("importing the presets of the config file")?
            .len();
    }
    current.presets = new.presets;
    current.providers = new.providers;
    Ok(reloaded)
}

/// Settings that differ and are fixed for the life of the process.
fn restart_needed(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("host", old.host != new.host);
    check("port", old.port != new.port);
    check("data_dir", old.data_dir != new.data_dir);
    check("database_url", old.database_url != new.database_url);
    check("redis_url", old.redis_url != new.redis_url);
    check("drain_delay", old.drain_delay != new.drain_delay);
    check("auth_token", old.auth_token != new.auth_token);
    check("session_lease", old.session_lease != new.session_lease);
    check(
        "graceful_shutdown_timeout",
        old.graceful_shutdown_timeout != new.graceful_shutdown_timeout,
    );
    check("log", old.log != new.log);
    check("log_format", old.log_format != new.log_format);
    check("body_limit", old.body_limit != new.body_limit);
    check("metrics_public", old.metrics_public != new.metrics_public);
    check(
        "trusted_proxies",
        old.trusted_proxies != new.trusted_proxies,
    );
    check(
        "max_runs_per_user",
        old.max_runs_per_user != new.max_runs_per_user,
    );
    check("memory", old.memory != new.memory);
    check("tasks", old.tasks != new.tasks);
    check("budgets", old.budgets != new.budgets);
    check(
        "max_ws_subscriptions",
        old.max_ws_subscriptions != new.max_ws_subscriptions,
    );
    check(
        "default_max_tokens",
        old.default_max_tokens != new.default_max_tokens,
    );
    check(
        "workspace_roots",
        old.workspace_roots != new.workspace_roots,
    );
    check("gateway", old.gateway.render() != new.gateway.render());
    changed
}

/// Reloads on every `SIGHUP` until the process ends: `load` reads the
/// configuration again; failures are logged and change nothing.
#[cfg(unix)]
pub(crate) async fn on_sighup(
    mut current: Settings,
    load: impl Fn() -> Result<Settings> + Send,
    providers: ProviderSettings,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; configuration reloads are off");
        return;
    };
    while hup.recv().await.is_some() {
        let outcome = match load() {
            Ok(new) => apply(&mut current, new, &providers).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(r) => {
                tracing::info!(
                    presets = r.presets,
                    providers_replaced = r.providers,
                    "configuration reloaded on SIGHUP"
                );
                if !r.need_restart.is_empty() {
                    tracing::warn!(
                        settings = r.need_restart.join(", "),
                        "these settings changed in the configuration but apply only after a restart"
                    );
                }
            }
            Err(e) => tracing::error!(
                "configuration reload failed, keeping the running configuration: {e:#}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use netherbrain_core::conversation::ConversationService;
    use netherbrain_core::store::{MemoryStore, NewUser, StateStore, UserRole};

    use super::apply;
    use crate::config::{Env, Overrides, load, parse_presets};

    /// Settings from a config file: `top` keys, the `local` profile, then
    /// `tables`.
    fn settings(dir: &std::path::Path, top: &str, tables: &str) -> crate::config::Settings {
        let file = dir.join("config.toml");
        std::fs::write(
            &file,
            format!(
                "{top}[[providers]]\nname = \"local\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"m\"]\n{tables}"
            ),
        )
        .unwrap();
        let overrides = Overrides {
            config: Some(file),
            data_dir: Some(dir.to_owned()),
            ..Overrides::default()
        };
        load(&overrides, &Env::default()).unwrap()
    }

    #[tokio::test]
    async fn presets_and_profiles_apply_and_the_rest_is_announced() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        store
            .create_user(NewUser::new("admin", UserRole::Admin))
            .await
            .unwrap();
        let mut current = settings(dir.path(), "", "");
        let service = ConversationService::new(
            store.clone(),
            Arc::new(crate::local::build_catalog(
                &current.providers,
                current.default_max_tokens,
                &crate::local::ServerTools::new(&store, &current),
            )),
        );
        let service = crate::local::provider_settings(&service, &current)
            .await
            .unwrap();
        let preset =
            "[[presets]]\nname = \"fresh\"\n[presets.config]\nprofile = \"local\"\nmodel = \"m\"\n";
        let new = settings(dir.path(), "port = 9555\n", preset);
        let r = apply(&mut current, new, &service).await.unwrap();
        assert_eq!(r.presets, 1);
        assert!(!r.providers);
        assert_eq!(r.need_restart, ["port"]);
        assert!(store.get_preset_by_name("fresh").await.is_ok());

        let more = "[[providers]]\nname = \"second\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"n\"]\n";
        let new = settings(dir.path(), "", &format!("{preset}{more}"));
        let r = apply(&mut current, new, &service).await.unwrap();
        assert_eq!((r.presets, r.providers), (0, true), "{r:?}");
        assert_eq!(service.service().catalog().profiles().len(), 2);

        // A preset naming an unknown profile changes nothing.
        let bad = settings(
            dir.path(),
            "",
            "[[presets]]\nname = \"bad\"\n[presets.config]\nprofile = \"nope\"\nmodel = \"m\"\n",
        );
        assert!(apply(&mut current, bad, &service).await.is_err());
        assert!(store.get_preset_by_name("bad").await.is_err());
        assert_eq!(current.presets, parse_presets(preset).unwrap());
        assert_eq!(service.service().catalog().profiles().len(), 2);
    }
}
