//! Token usage, per request and aggregated per model.

use std::collections::BTreeMap;
use std::ops::{Add, AddAssign};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Tokens and requests spent by model calls.
///
/// ```
/// use netherbrain_core::Usage;
/// let a = Usage { input_tokens: 10, output_tokens: 5, requests: 1, ..Usage::default() };
/// let total = a + a;
/// assert_eq!(total.input_tokens, 20);
/// assert_eq!(total.requests, 2);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Usage {
    /// Prompt tokens, including cached ones.
    pub input_tokens: u64,
    /// Completion tokens, including reasoning tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write_tokens: u64,
    /// Completion tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// Number of model requests.
    pub requests: u64,
}

impl Usage {
    /// Input plus output tokens.
    ///
    /// ```
    /// let u = netherbrain_core::Usage { input_tokens: 3, output_tokens: 4, ..Default::default() };
    /// assert_eq!(u.total_tokens(), 7);
    /// ```
    #[must_use]
    pub const fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Whether nothing was counted.
    ///
    /// ```
    /// assert!(netherbrain_core::Usage::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Add for Usage {
    type Output = Self;

    fn add(mut self, rhs: Self) -> Self {
        self += rhs;
        self
    }
}

/// Saturating: counts come from providers, and a hostile or broken one
/// must not overflow (panic in debug builds, wrap in release).
impl AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens = self.input_tokens.saturating_add(rhs.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(rhs.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(rhs.cache_read_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(rhs.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(rhs.reasoning_tokens);
        self.requests = self.requests.saturating_add(rhs.requests);
    }
}

/// Usage aggregated per model name, ordered by name for stable output.
///
/// ```
/// use netherbrain_core::{Usage, UsageByModel};
/// let mut by_model = UsageByModel::default();
/// by_model.add("gpt-4o", Usage { input_tokens: 5, requests: 1, ..Default::default() });
/// by_model.add("gpt-4o", Usage { input_tokens: 7, requests: 1, ..Default::default() });
/// assert_eq!(by_model.get("gpt-4o").unwrap().input_tokens, 12);
/// assert_eq!(by_model.total().requests, 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct UsageByModel(BTreeMap<String, Usage>);

impl UsageByModel {
    /// Adds usage for a model.
    ///
    /// ```
    /// let mut u = netherbrain_core::UsageByModel::default();
    /// u.add("m", netherbrain_core::Usage::default());
    /// ```
    pub fn add(&mut self, model: &str, usage: Usage) {
        *self.0.entry(model.to_owned()).or_default() += usage;
    }

    /// Merges another aggregate into this one.
    ///
    /// ```
    /// let mut a = netherbrain_core::UsageByModel::default();
    /// a.merge(&netherbrain_core::UsageByModel::default());
    /// assert!(a.is_empty());
    /// ```
    pub fn merge(&mut self, other: &Self) {
        for (model, usage) in &other.0 {
            self.add(model, *usage);
        }
    }

    /// Usage of one model.
    ///
    /// ```
    /// assert!(netherbrain_core::UsageByModel::default().get("m").is_none());
    /// ```
    #[must_use]
    pub fn get(&self, model: &str) -> Option<&Usage> {
        self.0.get(model)
    }

    /// The sum over all models.
    ///
    /// ```
    /// assert!(netherbrain_core::UsageByModel::default().total().is_empty());
    /// ```
    #[must_use]
    pub fn total(&self) -> Usage {
        self.0.values().fold(Usage::default(), |acc, u| acc + *u)
    }

    /// Whether no model was used.
    ///
    /// ```
    /// assert!(netherbrain_core::UsageByModel::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates `(model, usage)` pairs in model-name order.
    ///
    /// ```
    /// assert_eq!(netherbrain_core::UsageByModel::default().iter().count(), 0);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Usage)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}
