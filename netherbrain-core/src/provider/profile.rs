//! Provider profiles: named provider configurations, as they appear in a
//! configuration file, turned into [`Provider`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Provider;

/// The wire protocol a profile speaks.
///
/// ```
/// use netherbrain_core::provider::ProviderKind;
/// let k: ProviderKind = serde_json::from_str("\"anthropic\"").unwrap();
/// assert_eq!(k, ProviderKind::Anthropic);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI Chat Completions and compatible servers.
    Openai,
    /// Anthropic Messages API.
    Anthropic,
}

impl ProviderKind {
    /// The snake_case name.
    ///
    /// ```
    /// assert_eq!(netherbrain_core::provider::ProviderKind::Openai.as_str(), "openai");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// Why a profile could not be turned into a provider.
///
/// ```
/// use netherbrain_core::provider::ProfileError;
/// let e = ProfileError::MissingApiKey { profile: "claude".into(), env: Some("ANTHROPIC_API_KEY".into()) };
/// assert!(e.to_string().contains("ANTHROPIC_API_KEY"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The profile needs an API key and none was found.
    #[error("provider profile `{profile}` has no API key{}", env.as_ref().map(|e| format!(" (environment variable {e} is not set)")).unwrap_or_default())]
    MissingApiKey {
        /// The profile.
        profile: String,
        /// The environment variable that was consulted.
        env: Option<String>,
    },
    /// The adapter for this kind was compiled out (cargo feature off).
    #[error("provider profile `{profile}` needs the `{kind}` feature of netherbrain-core")]
    Unsupported {
        /// The profile.
        profile: String,
        /// The kind.
        kind: &'static str,
    },
    /// The profile is malformed.
    #[error("provider profile `{profile}`: {message}")]
    Invalid {
        /// The profile.
        profile: String,
        /// What is wrong.
        message: String,
    },
}

/// A named provider configuration: kind, base URL, credentials and extra
/// headers. A preset names a profile and a model.
///
/// The API key is given inline or, better, as the name of the environment
/// variable that holds it. `Debug` never shows the key.
///
/// ```
/// use netherbrain_core::provider::{ProviderKind, ProviderProfile};
/// let ollama = ProviderProfile::new("local", ProviderKind::Openai)
///     .with_base_url("http://127.0.0.1:11434/v1")
///     .with_models(vec!["llama3.2".into()]);
/// assert!(!format!("{ollama:?}").contains("secret"));
/// # #[cfg(feature = "openai")]
/// let provider = ollama.build().unwrap();
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProviderProfile {
    /// Name presets refer to.
    pub name: String,
    /// Wire protocol.
    pub kind: ProviderKind,
    /// API root; the kind's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The API key itself (prefer `api_key_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Environment variable holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Extra headers for every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Models offered through this profile (for discovery).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// `false` asks OpenAI-compatible servers for whole answers instead of
    /// streams (for servers that cannot stream with tools); default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// The embeddings model of this profile (OpenAI-compatible kinds:
    /// `POST {base_url}/embeddings`), for long-term memory recall by
    /// similarity; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings_model: Option<String>,
}

impl fmt::Debug for ProviderProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderProfile")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_env", &self.api_key_env)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("models", &self.models)
            .field("stream", &self.stream)
            .field("embeddings_model", &self.embeddings_model)
            .finish()
    }
}

impl ProviderProfile {
    /// A profile with the kind's defaults.
    ///
    /// ```
    /// use netherbrain_core::provider::{ProviderKind, ProviderProfile};
    /// let p = ProviderProfile::new("openai", ProviderKind::Openai).with_api_key_env("OPENAI_API_KEY");
    /// assert_eq!(p.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
    /// ```
    #[must_use]
    pub fn new(name: impl Into<String>, kind: ProviderKind) -> Self {
        Self {
            name: name.into(),
            kind,
            base_url: None,
            api_key: None,
            api_key_env: None,
            headers: BTreeMap::new(),
            models: Vec::new(),
            stream: None,
            embeddings_model: None,
        }
    }

    /// Sets the base URL.
    #[must_use]
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the API key inline.
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Names the environment variable holding the API key.
    #[must_use]
    pub fn with_api_key_env(mut self, var: impl Into<String>) -> Self {
        self.api_key_env = Some(var.into());
        self
    }

    /// Adds an extra header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets the advertised models.
    #[must_use]
    pub fn with_models(mut self, models: Vec<String>) -> Self {
        self.models = models;
        self
    }

    /// The API key: inline, else from `api_key_env`.
    ///
    /// # Errors
    ///
    /// [`ProfileError::MissingApiKey`] when `api_key_env` names a variable
    /// that is not set.
    pub fn resolve_api_key(&self) -> Result<Option<String>, ProfileError> {
        if let Some(key) = &self.api_key {
            return Ok(Some(key.clone()));
        }
        match &self.api_key_env {
            Some(var) => match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => Ok(Some(key)),
                _ => Err(ProfileError::MissingApiKey {
                    profile: self.name.clone(),
                    env: Some(var.clone()),
                }),
            },
            None => Ok(None),
        }
    }

    /// Sets the embeddings model.
    ///
    /// ```
    /// use netherbrain_core::provider::{ProviderKind, ProviderProfile};
    /// let p = ProviderProfile::new("openai", ProviderKind::Openai).with_embeddings_model("text-embedding-3-small");
    /// assert_eq!(p.embeddings_model.as_deref(), Some("text-embedding-3-small"));
    /// ```
    #[must_use]
    pub fn with_embeddings_model(mut self, model: impl Into<String>) -> Self {
        self.embeddings_model = Some(model.into());
        self
    }

    /// The profile's embeddings endpoint, when it names an
    /// `embeddings_model`.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build); [`ProfileError::Invalid`] for a kind
    /// without embeddings (Anthropic).
    ///
    /// ```
    /// use netherbrain_core::provider::{ProviderKind, ProviderProfile};
    /// let p = ProviderProfile::new("local", ProviderKind::Openai).with_base_url("http://127.0.0.1:9/v1");
    /// assert!(p.build_embedder().unwrap().is_none());
    /// # #[cfg(feature = "openai")]
    /// assert!(p.with_embeddings_model("nomic-embed-text").build_embedder().unwrap().is_some());
    /// ```
    pub fn build_embedder(&self) -> Result<Option<Arc<dyn crate::memory::Embedder>>, ProfileError> {
        let Some(model) = &self.embeddings_model else {
            return Ok(None);
        };
        let api_key = self.resolve_api_key()?;
        match self.kind {
            ProviderKind::Openai => self.build_openai_embeddings(api_key, model).map(Some),
            ProviderKind::Anthropic => Err(ProfileError::Invalid {
                profile: self.name.clone(),
                message: "Anthropic profiles have no embeddings endpoint".into(),
            }),
        }
    }

    #[cfg(feature = "openai")]
    fn build_openai_embeddings(
        &self,
        api_key: Option<String>,
        model: &str,
    ) -> Result<Arc<dyn crate::memory::Embedder>, ProfileError> {
        use super::openai::{OpenAiConfig, OpenAiEmbeddings};
        let mut config = OpenAiConfig::default();
        if let Some(url) = &self.base_url {
            config = config.with_base_url(url.clone());
        }
        if let Some(key) = api_key {
            config = config.with_api_key(key);
        }
        for (name, value) in &self.headers {
            config = config.with_header(name.clone(), value.clone());
        }
        Ok(Arc::new(OpenAiEmbeddings::new(config, model)))
    }

    #[cfg(not(feature = "openai"))]
    fn build_openai_embeddings(
        &self,
        _api_key: Option<String>,
        _model: &str,
    ) -> Result<Arc<dyn crate::memory::Embedder>, ProfileError> {
        Err(ProfileError::Unsupported {
            profile: self.name.clone(),
            kind: "openai",
        })
    }

    /// Builds the provider.
    ///
    /// # Errors
    ///
    /// A missing API key, or a kind whose adapter feature is off.
    pub fn build(&self) -> Result<Arc<dyn Provider>, ProfileError> {
        if self.name.trim().is_empty() {
            return Err(ProfileError::Invalid {
                profile: self.name.clone(),
                message: "the name must not be empty".into(),
            });
        }
        let api_key = self.resolve_api_key()?;
        match self.kind {
            ProviderKind::Openai => self.build_openai(api_key),
            ProviderKind::Anthropic => self.build_anthropic(api_key),
        }
    }

    #[cfg(feature = "openai")]
    fn build_openai(&self, api_key: Option<String>) -> Result<Arc<dyn Provider>, ProfileError> {
        use super::openai::{OpenAiConfig, OpenAiProvider};
        let mut config = OpenAiConfig::default();
        if let Some(url) = &self.base_url {
            config = config.with_base_url(url.clone());
        }
        if let Some(key) = api_key {
            config = config.with_api_key(key);
        }
        for (name, value) in &self.headers {
            config = config.with_header(name.clone(), value.clone());
        }
        if let Some(stream) = self.stream {
            config = config.with_stream(stream);
        }
        Ok(Arc::new(OpenAiProvider::new(config)))
    }

    #[cfg(not(feature = "openai"))]
    fn build_openai(&self, _api_key: Option<String>) -> Result<Arc<dyn Provider>, ProfileError> {
        Err(ProfileError::Unsupported {
            profile: self.name.clone(),
            kind: "openai",
        })
    }

    #[cfg(feature = "anthropic")]
    fn build_anthropic(&self, api_key: Option<String>) -> Result<Arc<dyn Provider>, ProfileError> {
        use super::anthropic::{AnthropicConfig, AnthropicProvider};
        let key = api_key.ok_or_else(|| ProfileError::MissingApiKey {
            profile: self.name.clone(),
            env: self.api_key_env.clone(),
        })?;
        let mut config = AnthropicConfig::new(key);
        if let Some(url) = &self.base_url {
            config = config.with_base_url(url.clone());
        }
        for (name, value) in &self.headers {
            config = config.with_header(name.clone(), value.clone());
        }
        Ok(Arc::new(AnthropicProvider::new(config)))
    }

    #[cfg(not(feature = "anthropic"))]
    fn build_anthropic(&self, _api_key: Option<String>) -> Result<Arc<dyn Provider>, ProfileError> {
        Err(ProfileError::Unsupported {
            profile: self.name.clone(),
            kind: "anthropic",
        })
    }
}
