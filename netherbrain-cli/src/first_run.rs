//! What `netherbrain agent` sets up so the web UI works on first launch: a
//! `default` workspace, a `default` preset when exactly one provider is
//! configured and none exists, and the UI's address (with the one-time admin
//! token when one was just generated).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use netherbrain_core::PresetConfig;
use netherbrain_core::provider::ProviderProfile;
use netherbrain_core::store::{NewPreset, NewWorkspace, StateStore, StoreError};

/// Name of the workspace and preset created on first launch.
pub(crate) const DEFAULT_NAME: &str = "default";

/// What [`prepare`] created.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Prepared {
    pub(crate) workspace: bool,
    pub(crate) preset: bool,
}

/// Creates the `default` workspace when there is none, and the `default`
/// preset (the provider's first model) when exactly one provider profile
/// with a model is configured and no preset exists. Idempotent; a
/// concurrent creation by another process is not an error.
pub(crate) async fn prepare(
    store: &dyn StateStore,
    providers: &[ProviderProfile],
) -> Result<Prepared> {
    let mut prepared = Prepared::default();
    if store
        .list_workspaces()
        .await
        .context("listing workspaces")?
        .is_empty()
    {
        match store
            .create_workspace(NewWorkspace::new(DEFAULT_NAME))
            .await
        {
            Ok(_) => prepared.workspace = true,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e).context("creating the default workspace"),
        }
    }
    if let [only] = providers
        && let Some(model) = only.models.first()
        && store
            .list_presets()
            .await
            .context("listing presets")?
            .is_empty()
    {
        let preset = NewPreset::new(DEFAULT_NAME, PresetConfig::new(&only.name, model));
        match store.create_preset(preset).await {
            Ok(_) => prepared.preset = true,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e).context("creating the default preset"),
        }
    }
    Ok(prepared)
}

/// The line printed once the server listens: where the web UI is, signed
/// in with `token` when the admin's token was just generated (the UI takes
/// it from `?token=` and removes it from the address bar).
pub(crate) fn ui_notice(addr: SocketAddr, token: Option<&str>) -> String {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    match token {
        Some(token) => format!(
            "Web UI: http://{host}/?token={token}\n(the link signs you in as the admin; it works once the token is stored, so keep it private)\n"
        ),
        None => format!("Web UI: http://{host}/\n"),
    }
}

#[cfg(test)]
mod tests {
    use netherbrain_core::provider::ProviderKind;
    use netherbrain_core::store::MemoryStore;
    use netherbrain_core::store::prelude::*;

    use super::*;

    fn profile(name: &str, models: &[&str]) -> ProviderProfile {
        let mut p = ProviderProfile::new(name, ProviderKind::Openai);
        p.models = models.iter().map(|m| (*m).to_owned()).collect();
        p
    }

    #[tokio::test]
    async fn one_provider_gives_a_default_workspace_and_preset_once() {
        let store = MemoryStore::new();
        let providers = [profile("fake", &["m1", "m2"])];
        let first = prepare(&store, &providers).await.unwrap();
        assert_eq!(
            first,
            Prepared {
                workspace: true,
                preset: true
            }
        );
        let presets = store.list_presets().await.unwrap();
        assert_eq!(presets.len(), 1);
        assert_eq!(presets[0].name, "default");
        assert_eq!(presets[0].config.profile, "fake");
        assert_eq!(presets[0].config.model, "m1");
        assert_eq!(
            prepare(&store, &providers).await.unwrap(),
            Prepared::default()
        );
        assert_eq!(store.list_workspaces().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn no_preset_without_exactly_one_provider() {
        let store = MemoryStore::new();
        let none = prepare(&store, &[]).await.unwrap();
        assert!(none.workspace && !none.preset);
        let two = [profile("a", &["m"]), profile("b", &["m"])];
        assert!(!prepare(&store, &two).await.unwrap().preset);
        assert!(store.list_presets().await.unwrap().is_empty());
    }

    #[test]
    fn the_notice_names_a_reachable_address() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(ui_notice(any, None), "Web UI: http://127.0.0.1:8080/\n");
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(
            ui_notice(local, Some("nb_x_y"))
                .starts_with("Web UI: http://127.0.0.1:9/?token=nb_x_y\n")
        );
    }
}
