//! Presets as TOML documents: parsing, importing (create or replace by
//! name) and exporting.

use serde::{Deserialize, Serialize};

use super::{ConversationService, ServiceError};
use crate::auth::Principal;
use crate::preset::PresetConfig;
use crate::store::{NewPreset, Preset, PresetPatch, validate};

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
            let (action, preset) = match store.get_preset_by_name(&doc.name).await {
                Ok(existing) => {
                    let patch = PresetPatch {
                        description: Some(doc.description),
                        config: Some(doc.config),
                        ..PresetPatch::default()
                    };
                    (
                        ImportAction::Updated,
                        store.update_preset(existing.id, patch).await?,
                    )
                }
                Err(e) if e.is_not_found() => {
                    let mut new = NewPreset::new(doc.name, doc.config);
                    new.description = doc.description;
                    (ImportAction::Created, store.create_preset(new).await?)
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
