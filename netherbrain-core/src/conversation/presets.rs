//! Presets as TOML documents: parsing, importing (create or replace by
//! name) and exporting.

use serde::{Deserialize, Serialize};

use super::{ConversationService, ServiceError};
use crate::auth::Principal;
use crate::preset::PresetConfig;
use crate::store::{NewPreset, Preset, PresetPatch, StoreError, validate};

/// One preset in a TOML document:
///
/// ```toml
/// name = "coder"
/// description = "Writes code"
/// [config]
/// profile = "openai"
/// model = "gpt-4o-mini"
/// ```
///
/// Several presets: an array of tables `[[presets]]` of this shape.
///
/// ```
/// use netherbrain_core::conversation::{PresetDocument, parse_preset_documents};
/// let docs = parse_preset_documents(
///     "name = \"coder\"\n[config]\nprofile = \"openai\"\nmodel = \"gpt-4o-mini\"\n",
/// )
/// .unwrap();
/// assert_eq!(docs[0].name, "coder");
/// let text = docs[0].to_toml().unwrap();
/// assert_eq!(parse_preset_documents(&text).unwrap(), docs);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PresetDocument {
    /// Unique name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The agent configuration.
    pub config: PresetConfig,
}

impl PresetDocument {
    /// A document for a preset.
    #[must_use]
    pub fn new(name: impl Into<String>, config: PresetConfig) -> Self {
        Self {
            name: name.into(),
            description: None,
            config,
        }
    }

    /// The document as TOML that [`parse_preset_documents`] reads back.
    ///
    /// # Errors
    ///
    /// A configuration TOML cannot represent.
    pub fn to_toml(&self) -> Result<String, ServiceError> {
        toml::to_string_pretty(self).or_else(|first| {
            // TOML has no `null`: a configuration holding one (a tool
            // option, a model setting) is written without it, which reads
            // back as the same absent value.
            let mut value = serde_json::to_value(self)
                .map_err(|e| ServiceError::Invalid(format!("cannot write the preset: {e}")))?;
            drop_nulls(&mut value);
            toml::to_string_pretty(&value).map_err(|_| {
                ServiceError::Invalid(format!("cannot write the preset as TOML: {first}"))
            })
        })
    }
}

/// Removes every `null` (object members and array items) from a JSON value.
fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(drop_nulls);
        }
        _ => {}
    }
}

impl From<Preset> for PresetDocument {
    fn from(p: Preset) -> Self {
        Self {
            name: p.name,
            description: p.description,
            config: p.config,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetsDocument {
    presets: Vec<PresetDocument>,
}

/// Parses a preset document: one preset, or `[[presets]]`. Names are
/// checked and must be unique within the document.
///
/// # Errors
///
/// [`ServiceError::Malformed`] for TOML syntax errors,
/// [`ServiceError::Invalid`] for a document of the wrong shape, without
/// presets, with a bad or repeated name.
///
/// ```
/// use netherbrain_core::conversation::{parse_preset_documents, ServiceError};
/// assert!(matches!(parse_preset_documents("name = "), Err(ServiceError::Malformed(_))));
/// assert!(matches!(parse_preset_documents("presets = []"), Err(ServiceError::Invalid(_))));
/// ```
pub fn parse_preset_documents(text: &str) -> Result<Vec<PresetDocument>, ServiceError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ServiceError::Malformed(format!("invalid TOML: {e}")))?;
    let shape = |e: toml::de::Error| ServiceError::Invalid(format!("invalid preset document: {e}"));
    let docs = if table.contains_key("presets") {
        table.try_into::<PresetsDocument>().map_err(shape)?.presets
    } else {
        vec![table.try_into::<PresetDocument>().map_err(shape)?]
    };
    if docs.is_empty() {
        return Err(ServiceError::Invalid(
            "the document contains no presets".into(),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for doc in &docs {
        validate::name("name", &doc.name)?;
        if !names.insert(doc.name.as_str()) {
            return Err(ServiceError::Invalid(format!(
                "preset `{}` appears twice in the document",
                doc.name
            )));
        }
    }
    Ok(docs)
}

/// Whether an import created or replaced a preset.
///
/// ```
/// use netherbrain_core::conversation::ImportAction;
/// assert_ne!(ImportAction::Created, ImportAction::Updated);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportAction {
    /// A new preset.
    Created,
    /// An existing preset of that name, replaced.
    Updated,
}

/// One imported preset.
///
/// ```
/// # use netherbrain_core::conversation::ImportedPreset;
/// # fn f(i: ImportedPreset) { println!("{:?} {}", i.action, i.preset.name); }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ImportedPreset {
    /// Created or replaced.
    pub action: ImportAction,
    /// The stored preset.
    pub preset: Preset,
}

impl ConversationService {
    /// Imports presets (admins only): each document creates the preset of
    /// its name or replaces its description and configuration.
    ///
    /// # Errors
    ///
    /// [`ServiceError::Forbidden`] for a non-admin; store errors for
    /// invalid presets.
    pub async fn import_presets(
        &self,
        who: &Principal,
        documents: Vec<PresetDocument>,
    ) -> Result<Vec<ImportedPreset>, ServiceError> {
        who.require_admin()?;
        let store = &self.inner.store;
        let mut imported = Vec::with_capacity(documents.len());
        for doc in documents {
            let patch = PresetPatch {
                description: Some(doc.description.clone()),
                config: Some(doc.config.clone()),
                ..PresetPatch::default()
            };
            let (action, preset) = match store.get_preset_by_name(&doc.name).await {
                Ok(existing) => (
                    ImportAction::Updated,
                    store.update_preset(existing.id, patch).await?,
                ),
                Err(e) if e.is_not_found() => {
                    let mut new = NewPreset::new(doc.name.clone(), doc.config);
                    new.description = doc.description;
                    match store.create_preset(new).await {
                        Ok(preset) => (ImportAction::Created, preset),
                        // Another process (a second `netherbrain` on the
                        // same database) created it in the meantime: this
                        // document replaces it, as for any existing preset.
                        Err(StoreError::Conflict(_)) => {
                            let existing = store.get_preset_by_name(&doc.name).await?;
                            (
                                ImportAction::Updated,
                                store.update_preset(existing.id, patch).await?,
                            )
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            imported.push(ImportedPreset { action, preset });
        }
        Ok(imported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use async_trait::async_trait;

    use crate::agent::AgentCatalog;
    use crate::ids::{PresetId, WorkspaceId};
    use crate::store::prelude::*;
    use crate::store::{
        MemoryStore, NewUser, NewWorkspace, StoreParts, StoreResult, UserRole, Workspace,
        WorkspacePatch,
    };

    /// A catalog whose first preset creation loses a race: another process
    /// creates the same preset just before, so the insert conflicts.
    #[derive(Debug)]
    struct Racing(Arc<MemoryStore>, std::sync::atomic::AtomicBool);

    #[async_trait]
    impl CatalogStore for Racing {
        async fn create_preset(&self, preset: NewPreset) -> StoreResult<Preset> {
            if !self.1.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let other = NewPreset::new(preset.name.clone(), PresetConfig::new("other", "x"));
                self.0.create_preset(other).await?;
            }
            self.0.create_preset(preset).await
        }
        async fn get_preset(&self, id: PresetId) -> StoreResult<Preset> {
            self.0.get_preset(id).await
        }
        async fn get_preset_by_name(&self, name: &str) -> StoreResult<Preset> {
            self.0.get_preset_by_name(name).await
        }
        async fn list_presets(&self) -> StoreResult<Vec<Preset>> {
            self.0.list_presets().await
        }
        async fn update_preset(&self, id: PresetId, patch: PresetPatch) -> StoreResult<Preset> {
            self.0.update_preset(id, patch).await
        }
        async fn delete_preset(&self, id: PresetId) -> StoreResult<()> {
            self.0.delete_preset(id).await
        }
        async fn create_workspace(&self, workspace: NewWorkspace) -> StoreResult<Workspace> {
            self.0.create_workspace(workspace).await
        }
        async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
            self.0.get_workspace(id).await
        }
        async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
            self.0.list_workspaces().await
        }
        async fn update_workspace(
            &self,
            id: WorkspaceId,
            patch: WorkspacePatch,
        ) -> StoreResult<Workspace> {
            self.0.update_workspace(id, patch).await
        }
        async fn delete_workspace(&self, id: WorkspaceId) -> StoreResult<()> {
            self.0.delete_workspace(id).await
        }
    }

    /// Two processes importing the same new preset at once: the one whose
    /// insert conflicts replaces the other's, instead of failing.
    #[tokio::test]
    async fn an_import_that_loses_the_create_race_updates_the_winner() {
        let base = Arc::new(MemoryStore::new());
        let racing = Arc::new(Racing(base.clone(), Default::default()));
        let store = Arc::new(StoreParts::new(base.clone()).with_catalog(racing));
        let admin = store
            .create_user(NewUser::new("admin", UserRole::Admin))
            .await
            .unwrap();
        let service = ConversationService::new(store, Arc::new(AgentCatalog::new()));
        let doc = PresetDocument {
            name: "shared".into(),
            description: Some("mine".into()),
            config: PresetConfig::new("local", "m"),
        };
        let imported = service
            .import_presets(&Principal::of(&admin), vec![doc])
            .await
            .unwrap();
        assert_eq!(imported[0].action, ImportAction::Updated);
        let stored = base.get_preset_by_name("shared").await.unwrap();
        assert_eq!(stored.config.profile, "local", "this document won");
        assert_eq!(stored.description.as_deref(), Some("mine"));
        assert_eq!(base.list_presets().await.unwrap().len(), 1);
    }

    /// TOML has no null: a configuration holding one exports without it
    /// and reads back.
    #[test]
    fn a_config_with_a_null_exports_and_reads_back() {
        let mut config = PresetConfig::new("openai", "m");
        config.tool_options.insert(
            "web".into(),
            serde_json::json!({"allow_private": null, "max": 3}),
        );
        let doc = PresetDocument {
            name: "p".into(),
            description: None,
            config,
        };
        let text = doc.to_toml().unwrap();
        let back = parse_preset_documents(&text).unwrap();
        assert_eq!(
            back[0].config.tool_options["web"],
            serde_json::json!({"max": 3})
        );
    }

    #[test]
    fn parses_one_or_many() {
        let one =
            parse_preset_documents("name = \"a\"\n[config]\nprofile = \"openai\"\nmodel = \"m\"\n")
                .unwrap();
        assert_eq!(one.len(), 1);
        let many = parse_preset_documents(
            "[[presets]]\nname = \"a\"\n[presets.config]\nprofile = \"p\"\nmodel = \"m\"\n\
             [[presets]]\nname = \"b\"\n[presets.config]\nprofile = \"p\"\nmodel = \"m\"\n",
        )
        .unwrap();
        assert_eq!(many.len(), 2);
    }

    #[test]
    fn rejects_bad_documents() {
        let check = |text: &str, malformed: bool| {
            let e = parse_preset_documents(text).unwrap_err();
            assert_eq!(
                matches!(e, ServiceError::Malformed(_)),
                malformed,
                "{text}: {e}"
            );
        };
        check("name = ", true);
        check("name = \"a\"", false);
        check("presets = []", false);
        check(
            "[[presets]]\nname = \"a\"\n[presets.config]\nprofile = \"p\"\nmodel = \"m\"\n\
             [[presets]]\nname = \"a\"\n[presets.config]\nprofile = \"p\"\nmodel = \"m\"\n",
            false,
        );
        check(
            "name = \"\"\n[config]\nprofile = \"p\"\nmodel = \"m\"\n",
            false,
        );
    }

    #[test]
    fn export_round_trips() {
        let doc = PresetDocument::new(
            "a",
            PresetConfig::new("openai", "gpt").with_system_prompt("hi\nthere"),
        );
        let back = parse_preset_documents(&doc.to_toml().unwrap()).unwrap();
        assert_eq!(back[0], doc);
    }
}
