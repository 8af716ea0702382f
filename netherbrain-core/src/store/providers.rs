//! [`ProviderStore`]: provider profiles added from Settings (the web UI or
//! the API), kept in the database beside the ones of the config file.
//!
//! The store keeps an API key only sealed ([`SealedSecret`]): the caller
//! encrypts it before it reaches the store and decrypts it when it builds
//! the provider, so a database dump or backup holds no usable key.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::provider::{ProviderKind, ProviderProfile};

/// An encrypted secret: the AEAD ciphertext (with its tag) and the nonce
/// it was sealed with. `Debug` shows only the lengths.
///
/// ```
/// use netherbrain_core::store::SealedSecret;
/// let s = SealedSecret::new(vec![1; 12], vec![2; 40]);
/// assert!(!format!("{s:?}").contains("2, 2"));
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SealedSecret {
    /// The nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext, tag included.
    pub ciphertext: Vec<u8>,
}

impl SealedSecret {
    /// A sealed secret from its parts.
    ///
    /// ```
    /// let s = netherbrain_core::store::SealedSecret::new(vec![0; 12], vec![0; 16]);
    /// assert_eq!(s.nonce.len(), 12);
    /// ```
    #[must_use]
    pub fn new(nonce: Vec<u8>, ciphertext: Vec<u8>) -> Self {
        Self { nonce, ciphertext }
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("nonce_len", &self.nonce.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// A provider profile stored in the database.
///
/// ```
/// use netherbrain_core::store::StoredProvider;
/// fn keyed(p: &StoredProvider) -> bool {
///     p.api_key.is_some()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredProvider {
    /// The name presets refer to (unique).
    pub name: String,
    /// The wire protocol.
    pub kind: ProviderKind,
    /// API root; the kind's default when absent.
    pub base_url: Option<String>,
    /// Models offered through the profile.
    pub models: Vec<String>,
    /// The model a new preset starts with.
    pub default_model: Option<String>,
    /// Extra headers for every request.
    pub headers: BTreeMap<String, String>,
    /// The sealed API key, if one was entered.
    pub api_key: Option<SealedSecret>,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

impl StoredProvider {
    /// The profile the catalog builds, with the API key the caller opened
    /// from [`api_key`](Self::api_key). The default model is listed first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
    /// use netherbrain_core::provider::ProviderKind;
    /// use netherbrain_core::store::{MemoryStore, NewStoredProvider, ProviderStore};
    /// let store = MemoryStore::new();
    /// let mut new = NewStoredProvider::new("local", ProviderKind::Openai);
    /// new.models = vec!["a".into(), "b".into()];
    /// new.default_model = Some("b".into());
    /// let stored = store.create_provider(new).await?;
    /// let profile = stored.to_profile(Some("sk-1".into()));
    /// assert_eq!(profile.models, ["b", "a"]);
    /// assert_eq!(profile.api_key.as_deref(), Some("sk-1"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn to_profile(&self, api_key: Option<String>) -> ProviderProfile {
        let mut profile = ProviderProfile::new(&self.name, self.kind);
        profile.base_url.clone_from(&self.base_url);
        profile.api_key = api_key;
        profile.headers.clone_from(&self.headers);
        let mut models = self.models.clone();
        if let Some(default) = &self.default_model {
            models.retain(|m| m != default);
            models.insert(0, default.clone());
        }
        profile.models = models;
        profile
    }
}

/// A provider profile to store.
///
/// ```
/// use netherbrain_core::provider::ProviderKind;
/// use netherbrain_core::store::NewStoredProvider;
/// let p = NewStoredProvider::new("ollama", ProviderKind::Openai);
/// assert!(p.api_key.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewStoredProvider {
    /// The name (unique).
    pub name: String,
    /// The wire protocol.
    pub kind: ProviderKind,
    /// API root.
    pub base_url: Option<String>,
    /// Models offered.
    pub models: Vec<String>,
    /// The default model (one of `models`).
    pub default_model: Option<String>,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// The sealed API key.
    pub api_key: Option<SealedSecret>,
}

impl NewStoredProvider {
    /// A profile with no URL, models, headers or key.
    ///
    /// ```
    /// use netherbrain_core::provider::ProviderKind;
    /// let p = netherbrain_core::store::NewStoredProvider::new("x", ProviderKind::Anthropic);
    /// assert_eq!(p.name, "x");
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
}

/// Changes to a stored profile; `None` keeps a field. The name is fixed.
///
/// ```
/// use netherbrain_core::store::ProviderPatch;
/// let mut patch = ProviderPatch::default();
/// patch.api_key = Some(None); // clears the key
/// assert!(patch.models.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderPatch {
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
    /// A new sealed key (`Some(None)` clears it).
    pub api_key: Option<Option<SealedSecret>>,
}

impl ProviderPatch {
    /// Applies the patch to a stored profile and checks the result
    /// ([`validate::provider_fields`](super::validate::provider_fields)), so
    /// every backend merges the same way.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
    /// use netherbrain_core::provider::ProviderKind;
    /// use netherbrain_core::store::{MemoryStore, NewStoredProvider, ProviderPatch, ProviderStore};
    /// let store = MemoryStore::new();
    /// let mut stored = store.create_provider(NewStoredProvider::new("p", ProviderKind::Openai)).await?;
    /// let mut patch = ProviderPatch::default();
    /// patch.models = Some(vec!["m".into()]);
    /// patch.apply(&mut stored)?;
    /// assert_eq!(stored.models, ["m"]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when the merged
    /// profile is invalid (a default model not among the models).
    pub fn apply(self, target: &mut StoredProvider) -> StoreResult<()> {
        let mut next = target.clone();
        if let Some(kind) = self.kind {
            next.kind = kind;
        }
        if let Some(url) = self.base_url {
            next.base_url = url;
        }
        if let Some(models) = self.models {
            next.models = models;
        }
        if let Some(default) = self.default_model {
            next.default_model = default;
        }
        if let Some(headers) = self.headers {
            next.headers = headers;
        }
        if let Some(key) = self.api_key {
            next.api_key = key;
        }
        super::validate::provider_fields(
            next.base_url.as_deref(),
            &next.models,
            next.default_model.as_deref(),
            &next.headers,
            next.api_key.as_ref(),
        )?;
        *target = next;
        Ok(())
    }
}

/// Provider profiles stored in the database, by name.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netherbrain_core::store::StoreError> {
/// use netherbrain_core::provider::ProviderKind;
/// use netherbrain_core::store::{MemoryStore, NewStoredProvider, ProviderStore};
/// let store = MemoryStore::new();
/// store.create_provider(NewStoredProvider::new("ollama", ProviderKind::Openai)).await?;
/// assert_eq!(store.list_providers().await?.len(), 1);
/// store.delete_provider("ollama").await?;
/// assert!(store.get_provider("ollama").await.is_err());
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait ProviderStore: Send + Sync + fmt::Debug {
    /// Stores a profile; a taken name conflicts.
    async fn create_provider(&self, provider: NewStoredProvider) -> StoreResult<StoredProvider>;
    /// Gets a profile by name.
    async fn get_provider(&self, name: &str) -> StoreResult<StoredProvider>;
    /// Lists profiles by name.
    async fn list_providers(&self) -> StoreResult<Vec<StoredProvider>>;
    /// Changes a profile.
    async fn update_provider(
        &self,
        name: &str,
        patch: ProviderPatch,
    ) -> StoreResult<StoredProvider>;
    /// Deletes a profile.
    async fn delete_provider(&self, name: &str) -> StoreResult<()>;
}
