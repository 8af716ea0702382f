//! A store whose health check and catalog can be switched to fail, for
//! error-mapping tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{
    MemoryStore, NewPreset, NewWorkspace, Preset, PresetPatch, StoreError, StoreParts, StoreResult,
    Workspace, WorkspacePatch,
};
use netherbrain_core::{PresetId, WorkspaceId};

/// A `MemoryStore` whose `ping` and catalog calls (presets, workspaces)
/// fail while a failure is set; users, conversations and sessions keep
/// working, so requests still authenticate.
#[derive(Debug, Default)]
pub struct FlakyStore {
    inner: Arc<MemoryStore>,
    failure: Mutex<Option<StoreError>>,
}

impl FlakyStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The store to serve: the memory store, with this one's parts.
    pub fn store(self: &Arc<Self>) -> Arc<dyn StateStore> {
        Arc::new(
            StoreParts::new(self.inner.clone())
                .with_health(self.clone())
                .with_catalog(self.clone()),
        )
    }

    /// The flaky calls fail with `error` from now on (`None`: work again).
    pub fn fail_with(&self, error: Option<StoreError>) {
        *self.failure.lock().unwrap() = error;
    }

    fn check(&self) -> StoreResult<()> {
        match self.failure.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl StoreHealth for FlakyStore {
    async fn ping(&self) -> StoreResult<()> {
        self.check()?;
        self.inner.ping().await
    }
}

#[async_trait]
impl CatalogStore for FlakyStore {
    async fn create_preset(&self, preset: NewPreset) -> StoreResult<Preset> {
        self.check()?;
        self.inner.create_preset(preset).await
    }

    async fn get_preset(&self, id: PresetId) -> StoreResult<Preset> {
        self.check()?;
        self.inner.get_preset(id).await
    }

    async fn get_preset_by_name(&self, name: &str) -> StoreResult<Preset> {
        self.check()?;
        self.inner.get_preset_by_name(name).await
    }

    async fn list_presets(&self) -> StoreResult<Vec<Preset>> {
        self.check()?;
        self.inner.list_presets().await
    }

    async fn update_preset(&self, id: PresetId, patch: PresetPatch) -> StoreResult<Preset> {
        self.check()?;
        self.inner.update_preset(id, patch).await
    }

    async fn delete_preset(&self, id: PresetId) -> StoreResult<()> {
        self.check()?;
        self.inner.delete_preset(id).await
    }

    async fn create_workspace(&self, workspace: NewWorkspace) -> StoreResult<Workspace> {
        self.check()?;
        self.inner.create_workspace(workspace).await
    }

    async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        self.check()?;
        self.inner.get_workspace(id).await
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.check()?;
        self.inner.list_workspaces().await
    }

    async fn update_workspace(
        &self,
        id: WorkspaceId,
        patch: WorkspacePatch,
    ) -> StoreResult<Workspace> {
        self.check()?;
        self.inner.update_workspace(id, patch).await
    }

    async fn delete_workspace(&self, id: WorkspaceId) -> StoreResult<()> {
        self.check()?;
        self.inner.delete_workspace(id).await
    }
}
