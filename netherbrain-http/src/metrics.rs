//! Prometheus metrics.
//!
//! A [`Metrics`] owns a Prometheus recorder. By default it is private to the
//! server (so several servers, e.g. in tests, never share counters); the
//! binary calls [`Metrics::install_global`] so that code anywhere in the
//! process using the `metrics` macros is exported too.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Requests served, labelled `method`, `route` (the matched route pattern,
/// or `unmatched`) and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "netherbrain_http_requests_total";
/// Request latency in seconds, labelled `method` and `route`.
pub const HTTP_REQUEST_DURATION: &str = "netherbrain_http_request_duration_seconds";
/// Sessions running now.
pub const ACTIVE_SESSIONS: &str = "netherbrain_active_sessions";
/// Tokens spent, labelled `model` and `kind` (`input` or `output`).
pub const TOKENS_TOTAL: &str = "netherbrain_tokens_total";
/// Provider call latency in seconds, labelled `provider`.
pub const PROVIDER_DURATION: &str = "netherbrain_provider_request_duration_seconds";
/// Provider errors, labelled `provider` and `kind`.
pub const PROVIDER_ERRORS_TOTAL: &str = "netherbrain_provider_errors_total";
/// Password verifications (Argon2) started since the server started.
pub const LOGIN_VERIFICATIONS_TOTAL: &str = "netherbrain_login_verifications_total";
/// The most password verifications that ever ran at once.
pub const LOGIN_VERIFICATIONS_PEAK: &str = "netherbrain_login_verifications_peak";

/// The `method` label: a standard method's name, anything else `other`, so
/// a client cannot grow the label set.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Error installing the global recorder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Another global recorder is installed already.
    #[error("a global metrics recorder is already installed")]
    AlreadyInstalled,
    /// The exporter rejected its configuration.
    #[error("metrics exporter: {0}")]
    Exporter(String),
}

/// The server's metrics: the Prometheus text renderer plus typed helpers for
/// the series the server and runtime update.
///
/// ```
/// let m = netherbrain_http::Metrics::new();
/// m.set_active_sessions(2);
/// m.record_tokens("gpt-4o-mini", 10, 5);
/// let text = m.render();
/// assert!(text.contains("netherbrain_active_sessions 2"));
/// assert!(text.contains("netherbrain_tokens_total"));
/// ```
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` when the recorder is the process-wide one.
    local: Option<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("global", &self.inner.local.is_none())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn builder() -> Result<PrometheusBuilder, MetricsError> {
    let mut b = PrometheusBuilder::new();
    for name in [HTTP_REQUEST_DURATION, PROVIDER_DURATION] {
        b = b
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(name.to_owned()),
                LATENCY_BUCKETS,
            )
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
    }
    Ok(b)
}

impl Metrics {
    /// Metrics with a recorder private to this value.
    #[must_use]
    pub fn new() -> Self {
        let recorder = builder()
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self {
            inner: Arc::new(Inner {
                local: Some(recorder),
                handle,
            }),
        };
        metrics.describe();
        metrics
    }

    /// Installs the recorder process-wide, so `metrics::counter!` and friends
    /// anywhere in the process are exported by `GET /metrics`.
    ///
    /// # Errors
    ///
    /// [`MetricsError::AlreadyInstalled`] if a global recorder exists.
    pub fn install_global() -> Result<Self, MetricsError> {
        let recorder = builder()?.build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
        let metrics = Self {
            inner: Arc::new(Inner {
                local: None,
                handle,
            }),
        };
        metrics.describe();
        Ok(metrics)
    }

    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.inner.local {
            Some(recorder) => metrics::with_local_recorder(recorder, f),
            None => f(),
        }
    }

    fn describe(&self) {
        self.with(|| {
            metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests served");
            metrics::describe_histogram!(
                HTTP_REQUEST_DURATION,
                metrics::Unit::Seconds,
                "HTTP request latency"
            );
            metrics::describe_gauge!(ACTIVE_SESSIONS, "Sessions running now");
            metrics::describe_counter!(TOKENS_TOTAL, "Tokens spent, by model and kind");
            metrics::describe_histogram!(
                PROVIDER_DURATION,
                metrics::Unit::Seconds,
                "Provider call latency"
            );
            metrics::describe_counter!(PROVIDER_ERRORS_TOTAL, "Provider errors, by kind");
            metrics::gauge!(ACTIVE_SESSIONS).set(0.0);
        });
    }

    /// Runs the exporter's upkeep (draining histogram buckets) every
    /// `interval` until the returned task is aborted; without it histogram
    /// samples accumulate in memory between scrapes.
    #[must_use]
    pub fn spawn_upkeep(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let handle = self.inner.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }

    /// Counts one served request.
    ///
    /// `route` must be a route template (or `unmatched`), never a raw path;
    /// methods outside the standard ones are counted as `other`.
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let (method, route) = (method_label(method), route.to_owned());
        self.with(|| {
            metrics::counter!(
                HTTP_REQUESTS_TOTAL,
                "method" => method,
                "route" => route.clone(),
                "status" => status.to_string()
            )
            .increment(1);
            metrics::histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route)
                .record(elapsed.as_secs_f64());
        });
    }

    /// Records password verification counts: started so far, and the most
    /// that ran at once.
    pub fn set_login_verifications(&self, total: u64, peak: usize) {
        #[allow(clippy::cast_precision_loss)]
        let (total, peak) = (total as f64, peak as f64);
        self.with(|| {
            metrics::gauge!(LOGIN_VERIFICATIONS_TOTAL).set(total);
            metrics::gauge!(LOGIN_VERIFICATIONS_PEAK).set(peak);
        });
    }

    /// Sets the number of running sessions.
    pub fn set_active_sessions(&self, n: u64) {
        #[allow(clippy::cast_precision_loss)]
        let n = n as f64;
        self.with(|| metrics::gauge!(ACTIVE_SESSIONS).set(n));
    }

    /// Adds tokens spent by `model`.
    pub fn record_tokens(&self, model: &str, input: u64, output: u64) {
        let model = model.to_owned();
        self.with(|| {
            metrics::counter!(TOKENS_TOTAL, "model" => model.clone(), "kind" => "input")
                .increment(input);
            metrics::counter!(TOKENS_TOTAL, "model" => model, "kind" => "output").increment(output);
        });
    }

    /// Records the latency of one provider call.
    pub fn record_provider_latency(&self, provider: &str, elapsed: Duration) {
        let provider = provider.to_owned();
        self.with(|| {
            metrics::histogram!(PROVIDER_DURATION, "provider" => provider)
                .record(elapsed.as_secs_f64());
        });
    }

    /// Counts one provider error of `kind` (e.g. `rate_limited`, `auth`).
    pub fn record_provider_error(&self, provider: &str, kind: &str) {
        let (provider, kind) = (provider.to_owned(), kind.to_owned());
        self.with(|| {
            metrics::counter!(PROVIDER_ERRORS_TOTAL, "provider" => provider, "kind" => kind)
                .increment(1);
        });
    }
}

impl netherbrain_core::runtime::RunObserver for Metrics {
    fn run_started(&self, _run: &netherbrain_core::runtime::RunHandle, running: usize) {
        self.set_active_sessions(running as u64);
    }

    fn run_finished(
        &self,
        _run: &netherbrain_core::runtime::RunHandle,
        session: Option<&netherbrain_core::store::Session>,
        running: usize,
    ) {
        if let Some(session) = session {
            for (model, usage) in session.usage.iter() {
                self.record_tokens(model, usage.input_tokens, usage.output_tokens);
            }
        }
        self.set_active_sessions(running as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_recorders_are_independent() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.record_request("GET", "/api/health", 200, Duration::from_millis(3));
        assert!(a.render().contains(HTTP_REQUESTS_TOTAL));
        assert!(!b.render().contains("route=\"/api/health\""));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let m = Metrics::new();
        m.record_request("BREW", "unmatched", 404, Duration::from_millis(1));
        m.record_request("PROPFIND", "unmatched", 404, Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("method=\"other\""), "{text}");
        assert!(!text.contains("BREW") && !text.contains("PROPFIND"));
    }

    #[test]
    fn provider_series_render() {
        let m = Metrics::new();
        m.record_provider_latency("openai", Duration::from_millis(250));
        m.record_provider_error("openai", "rate_limited");
        let text = m.render();
        assert!(text.contains(PROVIDER_ERRORS_TOTAL));
        assert!(text.contains(PROVIDER_DURATION));
    }
}
