//! The connection to Redis shared by every part, and whether Redis is up.

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use netherbrain_core::cluster::ClusterError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::RedisConfig;
use crate::keys::Keys;

/// Gauge: 1 while Redis answers, 0 while it does not.
pub(crate) const REDIS_UP: &str = "netherbrain_redis_up";
/// Counter: Redis requests that failed.
pub(crate) const REDIS_ERRORS: &str = "netherbrain_redis_errors_total";

/// One client, one auto-reconnecting multiplexed connection, the config.
pub(crate) struct Link {
    pub(crate) client: redis::Client,
    manager: ConnectionManager,
    pub(crate) config: RedisConfig,
    pub(crate) keys: Keys,
    up: AtomicBool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("prefix", &self.config.prefix)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new(
        client: redis::Client,
        config: RedisConfig,
    ) -> Result<Self, redis::RedisError> {
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.response_timeout))
            .set_number_of_retries(2);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
        metrics::describe_gauge!(REDIS_UP, "1 while Redis answers, 0 while it does not");
        metrics::describe_counter!(REDIS_ERRORS, "Redis requests that failed");
        metrics::gauge!(REDIS_UP).set(0.0);
        Ok(Self {
            client,
            manager,
            keys: Keys::new(&config.prefix),
            config,
            up: AtomicBool::new(false),
        })
    }

    /// The shared connection (a cheap clone).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// A request succeeded.
    pub(crate) fn ok(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            metrics::gauge!(REDIS_UP).set(1.0);
            tracing::info!("Redis is reachable: events and commands reach the other replicas");
        }
    }

    /// A request failed; the first failure after success is logged as a
    /// warning.
    pub(crate) fn failed(&self, what: &str, err: &dyn Display) {
        metrics::counter!(REDIS_ERRORS).increment(1);
        if self.up.swap(false, Ordering::AcqRel) {
            metrics::gauge!(REDIS_UP).set(0.0);
            tracing::warn!(
                error = %err,
                "Redis is unreachable ({what}): this replica serves its own runs and reads other replicas' runs from the database until Redis returns"
            );
        } else {
            tracing::debug!(error = %err, "Redis still unreachable ({what})");
        }
    }

    /// Runs a request within the response timeout, recording the outcome.
    pub(crate) async fn call<T>(
        &self,
        what: &str,
        request: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout(self.config.response_timeout, request).await {
            Ok(Ok(value)) => {
                self.ok();
                Ok(value)
            }
            Ok(Err(err)) if is_unreachable(&err) => {
                self.failed(what, &err);
                Err(ClusterError::Unavailable(err.to_string()))
            }
            Ok(Err(err)) => {
                // Redis answered, with an error: it is up.
                self.ok();
                tracing::warn!(error = %err, "Redis refused a request ({what})");
                Err(ClusterError::Malformed(err.to_string()))
            }
            Err(_) => {
                let err = format!("no answer within {:?}", self.config.response_timeout);
                self.failed(what, &err);
                Err(ClusterError::Unavailable(err))
            }
        }
    }
}

/// Whether an error means Redis could not be reached (as opposed to a
/// command Redis refused).
fn is_unreachable(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}
