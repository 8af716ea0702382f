//! Limits that bound one run.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How history that exceeds the context budget is shortened.
///
/// ```
/// use netherbrain_core::agent::CompactionStrategy;
/// assert_eq!(CompactionStrategy::default(), CompactionStrategy::Summarize);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CompactionStrategy {
    /// Older turns are summarised through the model into one message.
    #[default]
    Summarize,
    /// Older turns are dropped.
    Truncate,
}

/// Limits of one run.
///
/// ```
/// use std::time::Duration;
/// use netherbrain_core::agent::AgentLimits;
/// let limits = AgentLimits::default()
///     .with_max_tool_rounds(5)
///     .with_tool_timeout(Duration::from_secs(10))
///     .with_context_budget(Some(32_000));
/// assert_eq!(limits.max_tool_rounds, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[non_exhaustive]
pub struct AgentLimits {
    /// Model rounds that may call tools before the run stops.
    pub max_tool_rounds: u32,
    /// How long one tool call may take.
    #[serde(with = "duration_secs", rename = "tool_timeout_secs")]
    #[schemars(with = "f64", range(min = 0.0, max = 1.0e9))]
    pub tool_timeout: Duration,
    /// Tool calls of one round that run at the same time.
    pub max_parallel_tool_calls: usize,
    /// Estimated tokens of history allowed before compaction; `None` never
    /// compacts.
    pub context_budget: Option<u64>,
    /// How history over budget is shortened.
    pub compaction: CompactionStrategy,
    /// Retries of a retryable provider error before the run fails (on top
    /// of the adapter's own retries).
    pub max_provider_retries: u32,
    /// Wall-clock time a whole run may take; past it the run stops with
    /// `RUN_ERROR` code `deadline` (what it produced is kept). `None`: no
    /// limit.
    #[serde(with = "opt_duration_secs", rename = "run_timeout_secs")]
    #[schemars(with = "Option<f64>", range(min = 0.0, max = 1.0e9))]
    pub run_timeout: Option<Duration>,
    /// Bytes of text, reasoning and tool arguments one model round may
    /// stream; past it the round is cut and the run stops with `RUN_ERROR`
    /// code `output_limit` (a guard against a provider that never stops;
    /// the preset's `max_tokens` is the model-side cap).
    pub max_output_bytes: u64,
}

impl Default for AgentLimits {
    fn default() -> Self {
        Self {
            max_tool_rounds: 25,
            tool_timeout: Duration::from_secs(120),
            max_parallel_tool_calls: 8,
            context_budget: None,
            compaction: CompactionStrategy::default(),
            max_provider_retries: 0,
            run_timeout: Some(Duration::from_secs(30 * 60)),
            max_output_bytes: 1024 * 1024,
        }
    }
}

impl AgentLimits {
    /// Sets the maximum number of tool rounds.
    ///
    /// ```
    /// let l = netherbrain_core::agent::AgentLimits::default().with_max_tool_rounds(3);
    /// assert_eq!(l.max_tool_rounds, 3);
    /// ```
    #[must_use]
    pub fn with_max_tool_rounds(mut self, rounds: u32) -> Self {
        self.max_tool_rounds = rounds;
        self
    }

    /// Sets the per-call tool timeout.
    ///
    /// ```
    /// let l = netherbrain_core::agent::AgentLimits::default().with_tool_timeout(std::time::Duration::from_secs(1));
    /// assert_eq!(l.tool_timeout.as_secs(), 1);
    /// ```
    #[must_use]
    pub fn with_tool_timeout(mut self, timeout: Duration) -> Self {
        self.tool_timeout = timeout;
        self
    }

    /// Sets how many calls of one round run concurrently (at least 1).
    ///
    /// ```
    /// let l = netherbrain_core::agent::AgentLimits::default().with_max_parallel_tool_calls(0);
    /// assert_eq!(l.max_parallel_tool_calls, 1);
    /// ```
    #[must_use]
    pub fn with_max_parallel_tool_calls(mut self, n: usize) -> Self {
        self.max_parallel_tool_calls = n.max(1);
        self
    }

    /// Sets the context budget in estimated tokens.
    ///
    /// ```
    /// let l = netherbrain_core::agent::AgentLimits::default().with_context_budget(Some(1000));
    /// assert_eq!(l.context_budget, Some(1000));
    /// ```
    #[must_use]
    pub fn with_context_budget(mut self, budget: Option<u64>) -> Self {
        self.context_budget = budget;
        self
    }

    /// Sets the compaction strategy.
    ///
    /// ```
    /// use netherbrain_core::agent::{AgentLimits, CompactionStrategy};
    /// let l = AgentLimits::default().with_compaction(CompactionStrategy::Truncate);
    /// assert_eq!(l.compaction, CompactionStrategy::Truncate);
    /// ```
    #[must_use]
    pub fn with_compaction(mut self, strategy: CompactionStrategy) -> Self {
        self.compaction = strategy;
        self
    }

    /// Sets the loop-level provider retries.
    ///
    /// ```
    /// let l = netherbrain_core::agent::AgentLimits::default().with_max_provider_retries(2);
    /// assert_eq!(l.max_provider_retries, 2);
    /// ```
    #[must_use]
    pub fn with_max_provider_retries(mut self, retries: u32) -> Self {
        self.max_provider_retries = retries;
        self
    }

    /// Sets the wall-clock limit of a run (`None`: none).
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = netherbrain_core::agent::AgentLimits::default().with_run_timeout(Some(Duration::from_secs(60)));
    /// assert_eq!(l.run_timeout, Some(Duration::from_secs(60)));
    /// ```
    #[must_use]
    pub fn with_run_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.run_timeout = timeout;
        self
    }

    /// Sets the bytes one model round may stream.
    ///
    /// ```
    /// let l = netherbrain_core::agent::AgentLimits::default().with_max_output_bytes(4096);
    /// assert_eq!(l.max_output_bytes, 4096);
    /// ```
    #[must_use]
    pub fn with_max_output_bytes(mut self, bytes: u64) -> Self {
        self.max_output_bytes = bytes;
        self
    }
}

/// The longest duration a limit takes, in seconds (about 31 years).
const MAX_DURATION_SECS: f64 = 1.0e9;

/// Seconds as a [`Duration`]: finite, `0 ..= MAX_DURATION_SECS`.
fn secs_to_duration(secs: f64) -> Result<Duration, String> {
    if !(0.0..=MAX_DURATION_SECS).contains(&secs) {
        return Err(format!(
            "a duration must be between 0 and {MAX_DURATION_SECS} seconds, got {secs}"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::secs_to_duration(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod opt_duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| super::secs_to_duration(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
}
