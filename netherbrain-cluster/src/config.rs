//! Tunables of a [`RedisCluster`](crate::RedisCluster).

use std::time::Duration;

/// Tunables of a [`RedisCluster`](crate::RedisCluster).
///
/// ```
/// use std::time::Duration;
/// use netherbrain_cluster::RedisConfig;
/// let config = RedisConfig::default()
///     .with_prefix("staging")
///     .with_stream_max_len(1000)
///     .with_command_timeout(Duration::from_secs(2));
/// assert_eq!(config.prefix, "staging");
/// assert_eq!(config.stream_max_len, 1000);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Prefix of every key and channel, so deployments can share a Redis.
    /// Default `netherbrain`.
    pub prefix: String,
    /// Events kept per session stream (approximately: Redis trims whole
    /// nodes); older ones are read from the database. Default 2048.
    pub stream_max_len: usize,
    /// Time to live of a running session's stream, set when it is created
    /// and renewed while events come. Default 1 hour.
    pub stream_ttl: Duration,
    /// Time to live of a stream once its run has ended (the database has
    /// it all by then). Default 60 s.
    pub ended_ttl: Duration,
    /// How long a command waits for the owner's acknowledgement.
    /// Default 5 s.
    pub command_timeout: Duration,
    /// How long one Redis request may take before Redis counts as down.
    /// Default 2 s.
    pub response_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            prefix: "netherbrain".to_owned(),
            stream_max_len: 2048,
            stream_ttl: Duration::from_secs(3600),
            ended_ttl: Duration::from_secs(60),
            command_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(2),
        }
    }
}

impl RedisConfig {
    /// Sets the key prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the events kept per session stream (at least 16).
    #[must_use]
    pub fn with_stream_max_len(mut self, events: usize) -> Self {
        self.stream_max_len = events.max(16);
        self
    }

    /// Sets the time to live of running and ended sessions' streams (at
    /// least 1 s each).
    #[must_use]
    pub fn with_stream_ttl(mut self, running: Duration, ended: Duration) -> Self {
        self.stream_ttl = running.max(Duration::from_secs(1));
        self.ended_ttl = ended.max(Duration::from_secs(1));
        self
    }

    /// Sets how long a command waits for its acknowledgement (at least
    /// 100 ms).
    #[must_use]
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout.max(Duration::from_millis(100));
        self
    }

    /// Sets how long one Redis request may take (at least 50 ms).
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout.max(Duration::from_millis(50));
        self
    }
}
