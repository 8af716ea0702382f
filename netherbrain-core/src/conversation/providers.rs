//! Provider profiles managed from Settings: the admin's use-cases (list,
//! create, update, delete, test) over the config file's profiles (read-only)
//! and the ones stored in the database ([`ProviderStore`](crate::store::ProviderStore)), with API keys
//! sealed by a [`SecretCipher`] before they reach the store.
//!
//! Every change rebuilds the agent catalog from both sets and swaps it into
//! the [`ConversationService`], so runs started afterwards use it at once.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};

use super::{ConversationService, ServiceError};
use crate::agent::AgentCatalog;
use crate::auth::Principal;
use crate::preset::PresetConfig;
use crate::provider::{ProviderKind, ProviderProfile};
use crate::store::{
    NewPreset, NewStoredProvider, ProviderPatch, SealedSecret, StoreError, StoredProvider,
};

/// How long [`ProviderSettings::test`] waits for the endpoint.
pub const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Name of the preset created when the first provider is added and no
/// preset exists.
pub const DEFAULT_PRESET: &str = "default";

/// Why a secret could not be sealed or opened.
///
/// ```
/// use netherbrain_core::conversation::providers::CipherError;
/// let e = CipherError::Open("wrong key".into());
/// assert!(e.to_string().contains("wrong key"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CipherError {
    /// Encrypting failed.
    #[error("cannot encrypt the secret: {0}")]
    Seal(String),
    /// Decrypting failed (another key, or a damaged value).
    #[error("cannot decrypt the secret: {0}")]
    Open(String),
}

/// Encrypts secrets for the store and decrypts them again: an AEAD with a
/// key the deployment keeps outside the database. `context` (the profile
/// name) is bound to the ciphertext, so a sealed value moved to another
/// row does not open.
///
/// ```
/// use netherbrain_core::conversation::providers::{CipherError, SecretCipher};
/// use netherbrain_core::store::SealedSecret;
///
/// /// Not a cipher: for illustration only.
/// #[derive(Debug)]
/// struct Plain;
/// impl SecretCipher for Plain {
///     fn seal(&self, _context: &str, plaintext: &str) -> Result<SealedSecret, CipherError> {
///         Ok(SealedSecret::new(vec![0; 12], plaintext.as_bytes().to_vec()))
///     }
///     fn open(&self, _context: &str, sealed: &SealedSecret) -> Result<String, CipherError> {
///         String::from_utf8(sealed.ciphertext.clone()).map_err(|e| CipherError::Open(e.to_string()))
///     }
/// }
/// let sealed = Plain.seal("p", "key").unwrap();
/// assert_eq!(Plain.open("p", &sealed).unwrap(), "key");
/// ```
pub trait SecretCipher: Send + Sync + fmt::Debug {
    /// Seals `plaintext` for the row named `context`.
    ///
    /// # Errors
    ///
    /// [`CipherError::Seal`].
    fn seal(&self, context: &str, plaintext: &str) -> Result<SealedSecret, CipherError>;
    /// Opens a value sealed for `context`.
    ///
    /// # Errors
    ///
    /// [`CipherError::Open`] for another key or a damaged value.
    fn open(&self, context: &str, sealed: &SealedSecret) -> Result<String, CipherError>;
}

/// Builds the catalog from provider profiles (the embedder adds its tool
/// sets and MCP connector).
pub type CatalogBuilder = Arc<dyn Fn(&[ProviderProfile]) -> AgentCatalog + Send + Sync>;

/// Where a profile comes from.
///
/// ```
/// use netherbrain_core::conversation::providers::ProviderSource;
/// assert_eq!(ProviderSource::Config.as_str(), "config");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderSource {
    /// The config file: read-only here.
    Config,
    /// Added from Settings, stored in the database.
    Settings,
}

impl ProviderSource {
    /// `config` or `settings`.
    ///
    /// ```
    /// use netherbrain_core::conversation::providers::ProviderSource;
    /// assert_eq!(ProviderSource::Settings.as_str(), "settings");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Settings => "settings",
        }
    }
}

/// A profile as the admin sees it: never the API key itself.
///
/// ```
/// use netherbrain_core::conversation::providers::ProviderEntry;
/// fn label(p: &ProviderEntry) -> String {
///     format!("{} ({})", p.name, p.source.as_str())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderEntry {
    /// The name presets refer to.
    pub name: String,
    /// Where it comes from.
    pub source: ProviderSource,
    /// The wire protocol.
    pub kind: ProviderKind,
    /// The API root, when set.
    pub base_url: Option<String>,
    /// The models offered.
    pub models: Vec<String>,
    /// The default model.
    pub default_model: Option<String>,
    /// Names of the extra headers (their values may be credentials).
    pub header_names: Vec<String>,
    /// Whether an API key is set (inline, stored, or by environment
    /// variable).
    pub has_api_key: bool,
    /// Why the profile is not usable right now, if it is not.
    pub problem: Option<String>,
    /// When stored (Settings profiles).
    pub created_at: Option<DateTime<Utc>>,
    /// When last changed (Settings profiles).
    pub updated_at: Option<DateTime<Utc>>,
}

/// A profile to add from Settings. `Debug` never shows the key.
///
/// ```
/// use netherbrain_core::conversation::providers::NewProvider;
/// use netherbrain_core::provider::ProviderKind;
/// let p = NewProvider::new("ollama", ProviderKind::Openai).with_api_key("sk-secret");
/// assert!(!format!("{p:?}").contains("sk-secret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewProvider {
    /// The name (unique among config and Settings profiles).
    pub name: String,
    /// The wire protocol.
    pub kind: ProviderKind,
    /// API root.
    pub base_url: Option<String>,
    /// Models offered (a repeated name is kept once).
    pub models: Vec<String>,
    /// The default model (one of `models`).
    pub default_model: Option<String>,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// The API key; empty means none.
    pub api_key: Option<String>,
}

impl fmt::Debug for NewProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewProvider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("models", &self.models)
            .field("default_model", &self.default_model)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl NewProvider {
    /// A profile without URL, models, headers or key.
    ///
    /// ```
    /// use netherbrain_core::conversation::providers::NewProvider;
    /// use netherbrain_core::provider::ProviderKind;
    /// assert!(NewProvider::new("a", ProviderKind::Anthropic).models.is_empty());
    /// ```
    #[must_use]
    pub fn new(name: impl Into<String>, kind: ProviderKind) -> Self {
        Self {
            name: name.into(),
            kind,
            base_url: None,
            models: Vec::new(),
            default_model: None,
            headers: BTreeMap::new(),
            api_key: None,
        }
    }

    /// Sets the base URL.
    ///
    /// ```
    /// use netherbrain_core::conversation::providers::NewProvider;
    /// use netherbrain_core::provider::ProviderKind;
    /// let p = NewProvider::new("a", ProviderKind::Openai).with_base_url("http://127.0.0.1:1/v1");
    /// assert!(p.base_url.is_some());
    /// ```
    #[must_use]
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the models.
    ///
    /// ```
    /// use netherbrain_core::conversation::providers::NewProvider;
    /// use netherbrain_core::provider::ProviderKind;
    /// let p = NewProvider::new("a", ProviderKind::Openai).with_models(vec!["m".into()]);
    /// assert_eq!(p.models, ["m"]);
    /// ```
    #[must_use]
    pub fn with_models(mut self, models: Vec<String>) -> Self {
        self.models = models;
        self
    }

    /// Sets the API key.
    ///
    /// ```
    /// use netherbrain_core::conversation::providers::NewProvider;
    /// use netherbrain_core::provider::ProviderKind;
    /// let p = NewProvider::new("a", ProviderKind::Openai).with_api_key("k");
    /// assert!(p.api_key.is_some());
    /// ```
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
}

/// Changes to a Settings profile; `None` keeps a field. `api_key`:
/// `None` keeps the stored key, `Some("")` clears it, anything else
/// replaces it. `Debug` never shows the key.
///
/// ```
/// use netherbrain_core::conversation::providers::ProviderUpdate;
/// let mut u = ProviderUpdate::default();
/// u.api_key = Some("sk-new".into());
/// assert!(!format!("{u:?}").contains("sk-new"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderUpdate {
    /// A new wire protocol.
    pub kind: Option<ProviderKind>,
    /// A new base URL (`Some(None)` clears it).
    pub base_url: Option<Option<String>>,
    /// New models.
    pub models: Option<Vec<String>>,
    /// A new default model (`Some(None)` clears it).
    pub default_model: Option<Option<String>>,
    /// New headers (replacing all).
    pub headers: Option<BTreeMap<String, String>>,
    /// The API key: keep, clear (`""`) or replace.
    pub api_key: Option<String>,
}

impl fmt::Debug for ProviderUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderUpdate")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("models", &self.models)
            .field("default_model", &self.default_model)
            .field(
                "headers",
                &self.headers.as_ref().map(|h| h.keys().collect::<Vec<_>>()),
            )
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What testing a profile found: the endpoint's model ids, or why the
/// endpoint could not be asked.
///
/// ```
/// use netherbrain_core::conversation::providers::ProviderTest;
/// fn show(t: &ProviderTest) -> String {
///     match t {
///         ProviderTest::Models(ids) => ids.join(", "),
///         ProviderTest::Failed(why) => why.clone(),
///         _ => String::new(),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderTest {
    /// The endpoint answered with these model ids.
    Models(Vec<String>),
    /// It did not; a one-line reason (never the upstream body).
    Failed(String),
}

/// The provider-profile use-cases, for admins: the config file's profiles
/// (read-only) and those stored from Settings. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
/// use netherbrain_core::agent::AgentCatalog;
/// use netherbrain_core::auth::Principal;
/// use netherbrain_core::conversation::ConversationService;
/// use netherbrain_core::conversation::providers::{NewProvider, ProviderSettings};
/// use netherbrain_core::provider::{ProviderKind, ProviderProfile};
/// use netherbrain_core::store::MemoryStore;
///
/// let service = ConversationService::new(Arc::new(MemoryStore::new()), Arc::new(AgentCatalog::new()));
/// let settings = ProviderSettings::new(
///     service.clone(),
///     vec![ProviderProfile::new("from-file", ProviderKind::Openai)],
///     Arc::new(|profiles: &[ProviderProfile]| AgentCatalog::from_profiles(profiles).unwrap_or_default()),
/// );
/// let admin = Principal::admin(netherbrain_core::UserId::new());
/// let new = NewProvider::new("local", ProviderKind::Openai)
///     .with_base_url("http://127.0.0.1:11434/v1")
///     .with_models(vec!["llama3.2".into()]);
/// settings.create(&admin, new).await.unwrap();
/// assert_eq!(settings.list(&admin).await.unwrap().len(), 2);
/// assert_eq!(service.catalog().profiles().len(), 2, "the catalog was rebuilt");
/// # }
/// ```
#[derive(Clone)]
pub struct ProviderSettings {
    service: ConversationService,
    config: Arc<RwLock<Vec<ProviderProfile>>>,
    cipher: Option<Arc<dyn SecretCipher>>,
    build: CatalogBuilder,
    /// Serialises changes with their catalog rebuilds.
    changes: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("config_profiles", &self.config_profiles().len())
            .field("cipher", &self.cipher.is_some())
            .finish_non_exhaustive()
    }
}

fn invalid(e: StoreError) -> ServiceError {
    ServiceError::Store(e)
}

/// The models in order, each once.
fn dedup(models: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    models
        .into_iter()
        .filter(|m| seen.insert(m.clone()))
        .collect()
}

impl ProviderSettings {
    /// Settings over `service`, with the config file's profiles and the
    /// function that builds a catalog from profiles. Without a cipher
    /// ([`with_cipher`](Self::with_cipher)) API keys cannot be stored.
    #[must_use]
    pub fn new(
        service: ConversationService,
        config_profiles: Vec<ProviderProfile>,
        build: CatalogBuilder,
    ) -> Self {
        Self {
            service,
            config: Arc::new(RwLock::new(config_profiles)),
            cipher: None,
            build,
            changes: Arc::default(),
        }
    }

    /// Seals and opens stored API keys with `cipher`.
    ///
    /// ```
    /// # fn f(s: netherbrain_core::conversation::providers::ProviderSettings,
    /// #      c: std::sync::Arc<dyn netherbrain_core::conversation::providers::SecretCipher>) {
    /// let settings = s.with_cipher(c);
    /// # let _ = settings; }
    /// ```
    #[must_use]
    pub fn with_cipher(mut self, cipher: Arc<dyn SecretCipher>) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// The conversation service whose catalog this rebuilds.
    #[must_use]
    pub fn service(&self) -> &ConversationService {
        &self.service
    }

    /// The config file's profiles.
    #[must_use]
    pub fn config_profiles(&self) -> Vec<ProviderProfile> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the config file's profiles (a configuration reload) and
    /// rebuilds the catalog.
    ///
    /// # Errors
    ///
    /// The store could not list the stored profiles.
    pub async fn replace_config_profiles(
        &self,
        profiles: Vec<ProviderProfile>,
    ) -> Result<(), ServiceError> {
        let _guard = self.changes.lock().await;
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = profiles;
        self.rebuild_locked().await
    }

    /// Rebuilds the catalog from the config file's profiles and the stored
    /// ones (at startup, and after every change). A stored profile whose
    /// key cannot be opened is left out, with a warning.
    ///
    /// # Errors
    ///
    /// The store could not list the stored profiles.
    pub async fn rebuild(&self) -> Result<(), ServiceError> {
        let _guard = self.changes.lock().await;
        self.rebuild_locked().await
    }

    async fn rebuild_locked(&self) -> Result<(), ServiceError> {
        let profiles = self.all_profiles().await?;
        let catalog = (self.build)(&profiles);
        self.service.replace_catalog(Arc::new(catalog));
        Ok(())
    }

    /// Config profiles, then the stored ones not shadowed by a config name.
    async fn all_profiles(&self) -> Result<Vec<ProviderProfile>, ServiceError> {
        let mut profiles = self.config_profiles();
        for stored in self.service.store().list_providers().await? {
            if profiles.iter().any(|p| p.name == stored.name) {
                tracing::warn!(
                    provider = %stored.name,
                    "a stored provider profile has the name of a config file profile; the config file's wins"
                );
                continue;
            }
            match self.open_key(&stored) {
                Ok(key) => profiles.push(stored.to_profile(key)),
                Err(e) => tracing::warn!(provider = %stored.name, "skipping provider profile: {e}"),
            }
        }
        Ok(profiles)
    }

    fn open_key(&self, stored: &StoredProvider) -> Result<Option<String>, CipherError> {
        match (&stored.api_key, &self.cipher) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(CipherError::Open(
                "no secret key is configured to decrypt its API key".into(),
            )),
            (Some(sealed), Some(cipher)) => cipher.open(&stored.name, sealed).map(Some),
        }
    }

    fn seal(&self, name: &str, key: &str) -> Result<SealedSecret, ServiceError> {
        let cipher = self.cipher.as_ref().ok_or_else(|| {
            ServiceError::Unavailable(
                "this server has no secret key, so it cannot store API keys".into(),
            )
        })?;
        cipher.seal(name, key).map_err(|e| {
            tracing::error!("sealing an API key failed: {e}");
            ServiceError::Unavailable(format!("the API key could not be stored: {e}"))
        })
    }

    fn is_config(&self, name: &str) -> bool {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|p| p.name == name)
    }

    fn read_only(name: &str) -> ServiceError {
        ServiceError::Conflict(format!(
            "provider `{name}` comes from the config file and is read-only here"
        ))
    }

    /// Every profile: the config file's first, then the stored ones, by
    /// name. Admins only.
    ///
    /// # Errors
    ///
    /// Not an admin; a store failure.
    pub async fn list(&self, principal: &Principal) -> Result<Vec<ProviderEntry>, ServiceError> {
        principal.require_admin()?;
        let mut entries: Vec<ProviderEntry> = self
            .config_profiles()
            .iter()
            .map(|p| ProviderEntry {
                name: p.name.clone(),
                source: ProviderSource::Config,
                kind: p.kind,
                base_url: p.base_url.clone(),
                models: p.models.clone(),
                default_model: p.models.first().cloned(),
                header_names: p.headers.keys().cloned().collect(),
                has_api_key: p.api_key.is_some() || p.api_key_env.is_some(),
                problem: p.build().err().map(|e| e.to_string()),
                created_at: None,
                updated_at: None,
            })
            .collect();
        for stored in self.service.store().list_providers().await? {
            let problem = self.problem(&stored);
            entries.push(self.entry(&stored, problem));
        }
        Ok(entries)
    }

    /// Why a stored profile is not in the catalog, if it is not.
    fn problem(&self, stored: &StoredProvider) -> Option<String> {
        if self.is_config(&stored.name) {
            return Some("a config file profile has the same name and is used instead".into());
        }
        match self.open_key(stored) {
            Ok(key) => stored.to_profile(key).build().err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        }
    }

    fn entry(&self, stored: &StoredProvider, problem: Option<String>) -> ProviderEntry {
        ProviderEntry {
            name: stored.name.clone(),
            source: ProviderSource::Settings,
            kind: stored.kind,
            base_url: stored.base_url.clone(),
            models: stored.models.clone(),
            default_model: stored.default_model.clone(),
            header_names: stored.headers.keys().cloned().collect(),
            has_api_key: stored.api_key.is_some(),
            problem,
            created_at: Some(stored.created_at),
            updated_at: Some(stored.updated_at),
        }
    }

    /// Stores a profile, rebuilds the catalog and, when it is the only
    /// provider and no preset exists, creates the `default` preset with its
    /// default (else first) model. Admins only.
    ///
    /// # Errors
    ///
    /// Not an admin; a name of the config file or a stored one (conflict);
    /// invalid fields; no cipher for a key.
    pub async fn create(
        &self,
        principal: &Principal,
        new: NewProvider,
    ) -> Result<ProviderEntry, ServiceError> {
        principal.require_admin()?;
        let _guard = self.changes.lock().await;
        if self.is_config(&new.name) {
            return Err(ServiceError::Conflict(format!(
                "provider `{}` exists in the config file",
                new.name
            )));
        }
        let mut record = NewStoredProvider::new(new.name.clone(), new.kind);
        record.base_url = new.base_url;
        record.models = dedup(new.models);
        record.default_model = new.default_model;
        record.headers = new.headers;
        // Check the fields before sealing, so bad input is a 4xx whatever
        // the cipher does.
        crate::store::validate::new_provider(&record).map_err(invalid)?;
        record.api_key = match new.api_key.as_deref() {
            None | Some("") => None,
            Some(key) => Some(self.seal(&new.name, key)?),
        };
        let stored = self.service.store().create_provider(record).await?;
        self.rebuild_locked().await?;
        self.default_preset(&stored).await;
        let problem = self.problem(&stored);
        Ok(self.entry(&stored, problem))
    }

    /// The first-run rule: exactly one provider, no preset → a `default`
    /// preset. Failures are logged; the profile stays.
    async fn default_preset(&self, stored: &StoredProvider) {
        let store = self.service.store();
        let Some(model) = stored
            .default_model
            .clone()
            .or_else(|| stored.models.first().cloned())
        else {
            return;
        };
        let only = match store.list_providers().await {
            Ok(list) => list.len() == 1 && self.config_profiles().is_empty(),
            Err(_) => false,
        };
        if !only || !store.list_presets().await.is_ok_and(|p| p.is_empty()) {
            return;
        }
        let preset = NewPreset::new(DEFAULT_PRESET, PresetConfig::new(&stored.name, model));
        match store.create_preset(preset).await {
            Ok(_) => tracing::info!(provider = %stored.name, "created the default preset"),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => tracing::warn!("cannot create the default preset: {e}"),
        }
    }

    /// Changes a stored profile and rebuilds the catalog. Admins only.
    ///
    /// # Errors
    ///
    /// Not an admin; a config file profile (conflict: read-only); an
    /// unknown name; invalid fields.
    pub async fn update(
        &self,
        principal: &Principal,
        name: &str,
        update: ProviderUpdate,
    ) -> Result<ProviderEntry, ServiceError> {
        principal.require_admin()?;
        let _guard = self.changes.lock().await;
        if self.is_config(name) {
            return Err(Self::read_only(name));
        }
        let store = self.service.store();
        let mut current = store.get_provider(name).await?;
        let mut patch = ProviderPatch {
            kind: update.kind,
            base_url: update.base_url,
            models: update.models.map(dedup),
            default_model: update.default_model,
            headers: update.headers,
            ..ProviderPatch::default()
        };
        // Check the merged fields before sealing.
        patch.clone().apply(&mut current).map_err(invalid)?;
        patch.api_key = match update.api_key.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(key) => Some(Some(self.seal(name, key)?)),
        };
        let stored = store.update_provider(name, patch).await?;
        self.rebuild_locked().await?;
        let problem = self.problem(&stored);
        Ok(self.entry(&stored, problem))
    }

    /// Deletes a stored profile and rebuilds the catalog. Admins only.
    ///
    /// # Errors
    ///
    /// Not an admin; a config file profile, or one presets still name
    /// (conflict); an unknown name.
    pub async fn delete(&self, principal: &Principal, name: &str) -> Result<(), ServiceError> {
        principal.require_admin()?;
        let _guard = self.changes.lock().await;
        if self.is_config(name) {
            return Err(Self::read_only(name));
        }
        let store = self.service.store();
        store.get_provider(name).await?;
        let users: Vec<String> = store
            .list_presets()
            .await?
            .into_iter()
            .filter(|p| p.config.profile == name)
            .map(|p| p.name)
            .collect();
        if !users.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "provider `{name}` is used by presets: {}; change or delete them first",
                users.join(", ")
            )));
        }
        store.delete_provider(name).await?;
        self.rebuild_locked().await
    }

    /// Asks the profile's endpoint for its models through the real adapter,
    /// waiting at most [`TEST_TIMEOUT`]. Admins only.
    ///
    /// # Errors
    ///
    /// Not an admin; an unknown name. An endpoint that fails is a
    /// [`ProviderTest::Failed`], not an error.
    pub async fn test(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<ProviderTest, ServiceError> {
        principal.require_admin()?;
        let profile = match self.config_profiles().into_iter().find(|p| p.name == name) {
            Some(profile) => profile,
            None => {
                let stored = self.service.store().get_provider(name).await?;
                match self.open_key(&stored) {
                    Ok(key) => stored.to_profile(key),
                    Err(e) => return Ok(ProviderTest::Failed(e.to_string())),
                }
            }
        };
        let provider = match profile.build() {
            Ok(provider) => provider,
            Err(e) => return Ok(ProviderTest::Failed(e.to_string())),
        };
        Ok(
            match tokio::time::timeout(TEST_TIMEOUT, provider.list_models()).await {
                Ok(Ok(models)) => ProviderTest::Models(models),
                Ok(Err(e)) => ProviderTest::Failed(e.to_string()),
                Err(_) => ProviderTest::Failed(format!(
                    "the endpoint did not answer within {} s",
                    TEST_TIMEOUT.as_secs()
                )),
            },
        )
    }
}
