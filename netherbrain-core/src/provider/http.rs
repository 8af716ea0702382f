//! Shared HTTP plumbing for the provider adapters: timeouts, retries with
//! backoff, status-code classification and server-sent-event decoding.
//!
//! Adapters configure it through [`HttpOptions`] and [`RetryPolicy`]:
//!
//! ```
//! use std::time::Duration;
//! use netherbrain_core::provider::http::{HttpOptions, RetryPolicy};
//!
//! let options = HttpOptions::default()
//!     .with_connect_timeout(Duration::from_secs(5))
//!     .with_idle_timeout(Duration::from_secs(30))
//!     .with_retry(RetryPolicy::default().with_max_retries(5));
//! assert_eq!(options.retry.max_retries, 5);
//! ```
//!
//! Behaviour shared by every adapter:
//!
//! - **One retry layer.** [`HttpOptions::default`] does not retry: inside
//!   the runtime the agent loop retries a failed model call, as often as the
//!   preset's `limits.max_provider_retries` says (default 2), so a call is
//!   never retried by two layers that multiply. A program that uses an
//!   adapter on its own opts in with [`HttpOptions::with_retry`]; then
//!   requests are retried on 429, 5xx (including 529), connection errors and
//!   timeouts, and on retryable error events, but only while nothing has been
//!   yielded to the consumer yet: a stream that already produced output is
//!   never restarted. Usage reported before any content (Anthropic's
//!   `message_start`) is held back until content arrives, so an overload
//!   error right after it can still be retried.
//! - `Retry-After` (seconds or an HTTP date, and `retry-after-ms`) is honoured
//!   on 429 and 503; a wait longer than [`RetryPolicy::max_retry_after`]
//!   is not waited for and the error is returned instead.
//! - Dropping the stream drops the HTTP response, which cancels the request.
//! - API keys are sent as sensitive headers and redacted from every `Debug`
//!   output; error messages never include the request URL.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::time::Instant;

use super::{ProviderError, ProviderEvent, ProviderStream};
use crate::message::{ContentPart, Message, Role};

/// When and how often a failed request is retried.
///
/// Delays grow exponentially from [`base_delay`](Self::base_delay) up to
/// [`max_delay`](Self::max_delay), with jitter.
///
/// ```
/// use std::time::Duration;
/// use netherbrain_core::provider::http::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .with_max_retries(2)
///     .with_base_delay(Duration::from_millis(100))
///     .with_max_delay(Duration::from_secs(1));
/// let d = policy.backoff(1); // second retry: 200 ms with jitter
/// assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (default 3; 0 disables retrying).
    pub max_retries: u32,
    /// Delay before the first retry (default 500 ms).
    pub base_delay: Duration,
    /// Upper bound of the exponential delay (default 30 s).
    pub max_delay: Duration,
    /// The longest `Retry-After` that is waited for (default 60 s); longer
    /// waits return the error to the caller instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    ///
    /// ```
    /// assert_eq!(netherbrain_core::provider::http::RetryPolicy::none().max_retries, 0);
    /// ```
    #[must_use]
    pub fn none() -> Self {
        Self::default().with_max_retries(0)
    }

    /// Sets the number of retries.
    ///
    /// ```
    /// let p = netherbrain_core::provider::http::RetryPolicy::default().with_max_retries(1);
    /// assert_eq!(p.max_retries, 1);
    /// ```
    #[must_use]
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets the delay before the first retry.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = netherbrain_core::provider::http::RetryPolicy::default().with_base_delay(Duration::from_millis(10));
    /// assert_eq!(p.base_delay, Duration::from_millis(10));
    /// ```
    #[must_use]
    pub fn with_base_delay(mut self, base_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self
    }

    /// Sets the upper bound of the exponential delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = netherbrain_core::provider::http::RetryPolicy::default().with_max_delay(Duration::from_secs(5));
    /// assert_eq!(p.max_delay, Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Sets the longest `Retry-After` that is waited for.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = netherbrain_core::provider::http::RetryPolicy::default().with_max_retry_after(Duration::from_secs(2));
    /// assert_eq!(p.max_retry_after, Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn with_max_retry_after(mut self, max_retry_after: Duration) -> Self {
        self.max_retry_after = max_retry_after;
        self
    }

    /// The delay before retry number `retry` (0-based) when the server gave
    /// no `Retry-After`: `min(base · 2^retry, max)`, of which the upper half
    /// is random ("equal jitter").
    ///
    /// ```
    /// use std::time::Duration;
    /// use netherbrain_core::provider::http::RetryPolicy;
    /// let p = RetryPolicy::default().with_base_delay(Duration::from_secs(1)).with_max_delay(Duration::from_secs(4));
    /// assert!(p.backoff(10) <= Duration::from_secs(4));
    /// assert!(p.backoff(0) >= Duration::from_millis(500));
    /// ```
    #[must_use]
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        let exp = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let half = exp / 2;
        let half_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        (exp - half) + Duration::from_nanos(fastrand::u64(0..=half_nanos))
    }
}

/// Connection, timeout and retry settings of an HTTP provider.
///
/// ```
/// use std::time::Duration;
/// use netherbrain_core::provider::http::HttpOptions;
/// let o = HttpOptions::default().with_first_byte_timeout(Duration::from_secs(30));
/// assert_eq!(o.first_byte_timeout, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Time to establish the TCP/TLS connection (default 10 s).
    pub connect_timeout: Duration,
    /// Time from sending the request until the response headers and the
    /// first body chunk have arrived (default 180 s; reasoning models can
    /// think a long time before they answer).
    pub first_byte_timeout: Duration,
    /// Longest silence between two body chunks (default 120 s).
    pub idle_timeout: Duration,
    /// When to retry (default: never — the agent loop is the one retry
    /// layer, counted by the preset's `max_provider_retries`; a program
    /// that calls an adapter directly opts in with [`Self::with_retry`]).
    pub retry: RetryPolicy,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(180),
            idle_timeout: Duration::from_secs(120),
            retry: RetryPolicy::none(),
        }
    }
}

impl HttpOptions {
    /// Sets the connect timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = netherbrain_core::provider::http::HttpOptions::default().with_connect_timeout(Duration::from_secs(1));
    /// assert_eq!(o.connect_timeout, Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the time allowed until the first byte of the response.
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = netherbrain_core::provider::http::HttpOptions::default().with_first_byte_timeout(Duration::from_secs(9));
    /// assert_eq!(o.first_byte_timeout, Duration::from_secs(9));
    /// ```
    #[must_use]
    pub fn with_first_byte_timeout(mut self, timeout: Duration) -> Self {
        self.first_byte_timeout = timeout;
        self
    }

    /// Sets the longest allowed silence between body chunks.
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = netherbrain_core::provider::http::HttpOptions::default().with_idle_timeout(Duration::from_secs(7));
    /// assert_eq!(o.idle_timeout, Duration::from_secs(7));
    /// ```
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets the retry policy.
    ///
    /// ```
    /// use netherbrain_core::provider::http::{HttpOptions, RetryPolicy};
    /// let o = HttpOptions::default().with_retry(RetryPolicy::none());
    /// assert_eq!(o.retry.max_retries, 0);
    /// ```
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

// ---------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------

/// A reqwest client built from [`HttpOptions`]; a client that could not be
/// built reports its error on every call instead of panicking.
#[derive(Clone)]
pub(crate) struct Transport {
    client: Result<reqwest::Client, String>,
    options: HttpOptions,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(options: HttpOptions) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .redirect(same_host_redirects())
            .build()
            .map_err(|e| format!("could not build the HTTP client: {e}"));
        Self { client, options }
    }

    /// Lists the model ids at `url` (`GET`, JSON `{"data": [{"id": …}]}`,
    /// the shape OpenAI-compatible servers and Anthropic share), within
    /// the first-byte timeout. An upstream error body is not relayed: the
    /// error names the status only.
    pub(crate) async fn list_models(
        &self,
        url: String,
        headers: reqwest::header::HeaderMap,
    ) -> Result<Vec<String>, ProviderError> {
        let client = self
            .client
            .clone()
            .map_err(|message| ProviderError::Transient { message })?;
        let url = reqwest::Url::parse(&url).map_err(|e| ProviderError::InvalidRequest {
            message: format!("invalid URL: {e}"),
        })?;
        let timeout = self.options.first_byte_timeout;
        let send = client.get(url).headers(headers).send();
        let response = tokio::time::timeout(timeout, send)
            .await
            .map_err(|_| ProviderError::Transient {
                message: "timed out waiting for the models list".to_owned(),
            })?
            .map_err(|e| ProviderError::Transient {
                message: format!("request failed: {}", describe_error(e)),
            })?;
        let status = response.status();
        if !status.is_success() {
            let code = status.as_u16();
            return Err(match code {
                401 | 403 => ProviderError::Auth {
                    message: format!("the endpoint refused the credentials (HTTP {code})"),
                },
                404 => ProviderError::InvalidRequest {
                    message: "the endpoint has no models list here (HTTP 404); check the base URL"
                        .to_owned(),
                },
                429 => ProviderError::RateLimited {
                    retry_after: None,
                    message: format!("the endpoint is rate limiting (HTTP {code})"),
                },
                _ => ProviderError::Transient {
                    message: format!("the endpoint answered HTTP {code}"),
                },
            });
        }
        let body = tokio::time::timeout(timeout, response.bytes())
            .await
            .map_err(|_| ProviderError::Transient {
                message: "timed out reading the models list".to_owned(),
            })?
            .map_err(|e| ProviderError::Transient {
                message: format!("reading the models list failed: {}", describe_error(e)),
            })?;
        model_ids(&body)
    }

    /// Sends `request` (retrying as configured) and decodes the SSE body
    /// with decoders made by `new_decoder`, one per attempt.
    pub(crate) fn stream<D: SseDecoder>(
        &self,
        provider: &'static str,
        request: Result<reqwest::Request, ProviderError>,
        new_decoder: fn() -> D,
    ) -> ProviderStream {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(message) => {
                return single_error(ProviderError::Transient {
                    message: message.clone(),
                });
            }
        };
        let request = match request {
            Ok(request) => request,
            Err(error) => return single_error(error),
        };
        let state = RunState {
            client,
            request,
            options: self.options.clone(),
            new_decoder,
            provider,
            attempt: 0,
            phase: Phase::Connect,
            held: Vec::new(),
            yielded: false,
            queue: VecDeque::new(),
        };
        futures::stream::unfold(state, RunState::step).boxed()
    }
}

/// Follows up to five redirects on the same scheme, host and port; a
/// redirect elsewhere is not followed (the 3xx becomes the answer), so the
/// API key headers never reach another host.
fn same_host_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| {
            let next = attempt.url();
            first.scheme() == next.scheme()
                && first.host_str() == next.host_str()
                && first.port_or_known_default() == next.port_or_known_default()
        });
        if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else if same_origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// `host:port` of a URL, for error messages (never the path or query,
/// which may hold a key).
fn host_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => "the provider".to_owned(),
    }
}

/// A transport error and its causes, without the URL.
fn describe_error(error: reqwest::Error) -> String {
    let top = error.without_url();
    let mut text = top.to_string();
    let mut cause = std::error::Error::source(&top);
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}

fn single_error(error: ProviderError) -> ProviderStream {
    futures::stream::once(async move { Err(error) }).boxed()
}

/// The model ids of a models-list body: `{"data": [{"id": "…"}, …]}`.
pub(crate) fn model_ids(body: &[u8]) -> Result<Vec<String>, ProviderError> {
    let not_a_list = || ProviderError::Decode {
        message: "the endpoint's answer is not a models list".to_owned(),
    };
    let value: Value = serde_json::from_slice(body).map_err(|_| not_a_list())?;
    let items = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(not_a_list)?;
    Ok(items
        .iter()
        .filter_map(|item| item.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect())
}

/// Builds the header map shared by adapters: `extra` headers override the
/// defaults; `secret` headers are marked sensitive so reqwest never prints
/// them.
pub(crate) fn build_headers(
    defaults: &[(&str, &str)],
    secret: &[(&str, &str)],
    extra: &[(String, String)],
) -> Result<reqwest::header::HeaderMap, ProviderError> {
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    let mut map = HeaderMap::new();
    let mut insert = |name: &str, value: &str, sensitive: bool| -> Result<(), ProviderError> {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| ProviderError::InvalidRequest {
                message: format!("invalid header name `{name}`"),
            })?;
        let mut value =
            HeaderValue::from_str(value).map_err(|_| ProviderError::InvalidRequest {
                message: format!("invalid value for header `{name}`"),
            })?;
        value.set_sensitive(sensitive);
        map.insert(name, value);
        Ok(())
    };
    for (name, value) in defaults {
        insert(name, value, false)?;
    }
    for (name, value) in secret {
        insert(name, value, true)?;
    }
    for (name, value) in extra {
        // Extra headers may carry credentials too (proxies, gateways).
        insert(name, value, true)?;
    }
    Ok(map)
}

/// An `f32` setting as JSON, without the noise of widening it to `f64`
/// (`0.2` rather than `0.20000000298023224`).
pub(crate) fn float(value: f32) -> Value {
    value
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// A JSON `POST` request.
pub(crate) fn post_json(
    url: &str,
    mut headers: reqwest::header::HeaderMap,
    body: &Value,
) -> Result<reqwest::Request, ProviderError> {
    let url = reqwest::Url::parse(url).map_err(|e| ProviderError::InvalidRequest {
        message: format!("invalid base URL: {e}"),
    })?;
    let body = serde_json::to_vec(body).map_err(|e| ProviderError::InvalidRequest {
        message: format!("could not encode the request: {e}"),
    })?;
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    let mut request = reqwest::Request::new(reqwest::Method::POST, url);
    *request.headers_mut() = headers;
    *request.body_mut() = Some(body.into());
    Ok(request)
}

/// Formats extra headers for `Debug` with their values redacted.
pub(crate) fn redacted_headers(headers: &[(String, String)]) -> Vec<(&str, &'static str)> {
    headers
        .iter()
        .map(|(name, _)| (name.as_str(), "<redacted>"))
        .collect()
}

/// A failed attempt, with the wait the server asked for.
struct Failure {
    error: ProviderError,
    retry_after: Option<Duration>,
}

impl From<ProviderError> for Failure {
    fn from(error: ProviderError) -> Self {
        let retry_after = match &error {
            ProviderError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        };
        Self { error, retry_after }
    }
}

enum Phase {
    Connect,
    Stream(BoxStream<'static, Result<ProviderEvent, ProviderError>>),
    Done,
}

struct RunState<D> {
    client: reqwest::Client,
    request: reqwest::Request,
    options: HttpOptions,
    new_decoder: fn() -> D,
    provider: &'static str,
    attempt: u32,
    phase: Phase,
    /// Usage events received before any other event, held back so the
    /// attempt can still be retried.
    held: Vec<ProviderEvent>,
    yielded: bool,
    queue: VecDeque<Result<ProviderEvent, ProviderError>>,
}

impl<D: SseDecoder> RunState<D> {
    async fn step(mut self) -> Option<(Result<ProviderEvent, ProviderError>, Self)> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some((item, self));
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Connect => {
                    let deadline = Instant::now() + self.options.first_byte_timeout;
                    match connect(&self.client, &self.request, deadline).await {
                        Ok(response) => {
                            let bytes = response.bytes_stream().map(|chunk| {
                                chunk.map_err(|e| ProviderError::Transient {
                                    message: format!(
                                        "connection error while streaming: {}",
                                        e.without_url()
                                    ),
                                })
                            });
                            self.phase = Phase::Stream(
                                decode_sse(
                                    bytes,
                                    (self.new_decoder)(),
                                    deadline,
                                    self.options.idle_timeout,
                                )
                                .boxed(),
                            );
                        }
                        Err(failure) => self.retry_or_fail(failure).await,
                    }
                }
                Phase::Stream(mut stream) => match stream.next().await {
                    Some(Ok(event)) => {
                        if !self.yielded && matches!(event, ProviderEvent::Usage(_)) {
                            self.held.push(event);
                        } else {
                            self.yielded = true;
                            self.queue.extend(self.held.drain(..).map(Ok));
                            self.queue.push_back(Ok(event));
                        }
                        self.phase = Phase::Stream(stream);
                    }
                    Some(Err(error)) => {
                        drop(stream);
                        if self.yielded {
                            self.queue.push_back(Err(error));
                        } else {
                            self.retry_or_fail(error.into()).await;
                        }
                    }
                    None => self.queue.extend(self.held.drain(..).map(Ok)),
                },
            }
        }
    }

    /// Waits and schedules another attempt if the policy allows, else
    /// queues the error.
    async fn retry_or_fail(&mut self, failure: Failure) {
        let policy = self.options.retry;
        let delay = if self.attempt >= policy.max_retries || !failure.error.is_retryable() {
            None
        } else {
            match failure.retry_after {
                Some(wait) if wait > policy.max_retry_after => None,
                Some(wait) => Some(wait),
                None => Some(policy.backoff(self.attempt)),
            }
        };
        match delay {
            Some(delay) => {
                tracing::warn!(
                    provider = self.provider,
                    attempt = self.attempt + 1,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %failure.error,
                    "model request failed; retrying"
                );
                self.held.clear();
                tokio::time::sleep(delay).await;
                self.attempt += 1;
                self.phase = Phase::Connect;
            }
            None => {
                self.queue.extend(self.held.drain(..).map(Ok));
                self.queue.push_back(Err(failure.error));
            }
        }
    }
}

async fn connect(
    client: &reqwest::Client,
    request: &reqwest::Request,
    deadline: Instant,
) -> Result<reqwest::Response, Failure> {
    let request = request.try_clone().ok_or_else(|| {
        Failure::from(ProviderError::InvalidRequest {
            message: "the request body cannot be sent".to_owned(),
        })
    })?;
    let host = host_of(request.url());
    let response = match tokio::time::timeout_at(deadline, client.execute(request)).await {
        Err(_) => {
            return Err(ProviderError::Transient {
                message: format!("timed out waiting for the response of {host}"),
            }
            .into());
        }
        Ok(Err(e)) if e.is_builder() => {
            return Err(ProviderError::InvalidRequest {
                message: format!("could not build the request: {}", describe_error(e)),
            }
            .into());
        }
        Ok(Err(e)) => {
            return Err(ProviderError::Transient {
                message: format!("request to {host} failed: {}", describe_error(e)),
            }
            .into());
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if status.is_success() && !is_json {
        return Ok(response);
    }
    let retry_after = parse_retry_after(response.headers(), std::time::SystemTime::now());
    let body = match tokio::time::timeout_at(deadline, response.text()).await {
        Ok(Ok(body)) => body,
        _ => String::new(),
    };
    if status.is_success() {
        // A server that ignored `stream: true`, or put an error in a 200.
        return Err(match error_payload(&body) {
            Some(error) => error.into(),
            None => ProviderError::Decode {
                message: "expected an event stream, got a JSON body".to_owned(),
            }
            .into(),
        });
    }
    let error = classify_status(status.as_u16(), retry_after, &body);
    Err(Failure { error, retry_after })
}

// ---------------------------------------------------------------------------
// Error classification
// ---------------------------------------------------------------------------

/// Sends one request and reads its whole body as text, each step within
/// `timeout`; a non-success status becomes the classified error (see
/// [`classify_status`]). `what` names the awaited answer in the timeout
/// error ("the response", "the embeddings").
pub(crate) async fn fetch_text(
    client: &reqwest::Client,
    request: reqwest::Request,
    timeout: std::time::Duration,
    what: &str,
) -> Result<String, ProviderError> {
    let timed_out = || ProviderError::Transient {
        message: format!("timed out waiting for {what}"),
    };
    let response = tokio::time::timeout(timeout, client.execute(request))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| ProviderError::Transient {
            message: format!("request failed: {}", e.without_url()),
        })?;
    let status = response.status();
    let retry_after = parse_retry_after(response.headers(), std::time::SystemTime::now());
    let body = tokio::time::timeout(timeout, response.text())
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| ProviderError::Transient {
            message: format!("reading the response: {}", e.without_url()),
        })?;
    if !status.is_success() {
        return Err(classify_status(status.as_u16(), retry_after, &body));
    }
    Ok(body)
}

/// Reads `retry-after-ms`, then `retry-after` (delta-seconds, possibly
/// fractional, or an HTTP date relative to `now`).
pub(crate) fn parse_retry_after(
    headers: &reqwest::header::HeaderMap,
    now: std::time::SystemTime,
) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    // `try_from_secs_f64` refuses negative, NaN and out-of-range values
    // (`1e20` seconds); such a header counts as absent.
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && let Ok(wait) = Duration::try_from_secs_f64(ms / 1000.0)
    {
        return Some(wait);
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let now: chrono::DateTime<chrono::Utc> = now.into();
    Some(
        (date.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Whether an error text says the prompt does not fit the context window.
pub(crate) fn mentions_context_length(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "context length",
        "context_length",
        "context window",
        "maximum context",
        "too many tokens",
        "prompt is too long",
        "prompt too long",
        "input is too long",
        "reduce the length",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// The message, and the type/code, of a JSON error body such as
/// `{"error": {"message": "...", "type": "...", "code": "..."}}`.
fn error_fields(value: &Value) -> Option<(String, String)> {
    let error = value.get("error")?;
    let text = |v: Option<&Value>| -> String {
        match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    };
    if let Value::String(message) = error {
        return Some((message.clone(), String::new()));
    }
    let message = text(error.get("message"));
    let kind = [error.get("type"), error.get("code"), value.get("type")]
        .into_iter()
        .map(text)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Some((message, kind))
}

/// A classified error from a JSON error body, if the body is one.
pub(crate) fn error_payload(body: &str) -> Option<ProviderError> {
    error_from_value(&serde_json::from_str(body).ok()?)
}

/// A classified error from a JSON value with an `error` member (`null`
/// means no error).
pub(crate) fn error_from_value(value: &Value) -> Option<ProviderError> {
    if value.get("error").is_none_or(Value::is_null) {
        return None;
    }
    let (message, kind) = error_fields(value)?;
    Some(classify_error(&kind, &message))
}

/// Classifies an error by its type/code and message (mid-stream error
/// events, error bodies of 200 responses).
pub(crate) fn classify_error(kind: &str, message: &str) -> ProviderError {
    let kind_lc = kind.to_ascii_lowercase();
    let message = if message.is_empty() {
        if kind.is_empty() {
            "unknown error".to_owned()
        } else {
            kind.to_owned()
        }
    } else {
        message.to_owned()
    };
    let has = |needle: &str| kind_lc.contains(needle);
    if has("context_length") || mentions_context_length(&message) {
        ProviderError::ContextTooLong { message }
    } else if has("rate_limit") || has("too_many_requests") {
        ProviderError::RateLimited {
            retry_after: None,
            message,
        }
    } else if has("auth") || has("permission") || has("invalid_api_key") || has("billing") {
        ProviderError::Auth { message }
    } else if has("invalid") || has("not_found") || has("too_large") {
        ProviderError::InvalidRequest { message }
    } else {
        // overloaded, server_error, api_error, timeouts and anything unknown:
        // the server failed while answering.
        ProviderError::Transient { message }
    }
}

/// Classifies a non-success HTTP response.
pub(crate) fn classify_status(
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> ProviderError {
    let fields = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| error_fields(&v));
    // Only the message of a JSON error body is passed on (shortened); any
    // other body — an HTML page, a Python traceback with file paths — stays
    // out of what API clients see.
    let detail = match &fields {
        Some((message, _)) if !message.is_empty() => truncate(message.trim(), 500),
        Some((_, kind)) if !kind.is_empty() => truncate(kind.trim(), 200),
        _ if body.trim().is_empty() => String::new(),
        _ => {
            tracing::debug!(
                status,
                bytes = body.len(),
                "provider error body withheld (not JSON)"
            );
            format!("non-JSON error body of {} bytes withheld", body.len())
        }
    };
    let message = if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    };
    let kind = fields.map(|(_, kind)| kind).unwrap_or_default();
    match status {
        401 | 403 => ProviderError::Auth { message },
        429 => ProviderError::RateLimited {
            retry_after,
            message,
        },
        408 | 500..=599 => ProviderError::Transient { message },
        _ if kind.contains("context_length")
            || mentions_context_length(&message)
            || mentions_context_length(&truncate(body, 4096)) =>
        {
            ProviderError::ContextTooLong { message }
        }
        _ => ProviderError::InvalidRequest { message },
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

// ---------------------------------------------------------------------------
// SSE decoding
// ---------------------------------------------------------------------------

/// Whether the decoder wants more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Done,
}

/// Translates one provider's SSE events into [`ProviderEvent`]s.
pub(crate) trait SseDecoder: Send + 'static {
    /// Handles one event, pushing what it produces to `out`.
    fn on_event(
        &mut self,
        event: &Event,
        out: &mut Vec<ProviderEvent>,
    ) -> Result<Flow, ProviderError>;

    /// The body ended without [`Flow::Done`].
    fn on_eof(&mut self, out: &mut Vec<ProviderEvent>) -> Result<(), ProviderError>;
}

/// Applies the first-byte deadline to the first chunk and the idle timeout
/// to every later one.
fn with_timeouts<S>(
    bytes: S,
    first_deadline: Instant,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, ProviderError>> + Send + 'static,
{
    let bytes = bytes.boxed();
    futures::stream::unfold(
        (bytes, false, false),
        move |(mut bytes, started, failed)| async move {
            if failed {
                return None;
            }
            let deadline = if started {
                Instant::now() + idle
            } else {
                first_deadline
            };
            match tokio::time::timeout_at(deadline, bytes.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), (bytes, true, false))),
                Ok(Some(Err(e))) => Some((Err(e), (bytes, started, true))),
                Ok(None) => None,
                Err(_) => {
                    let message = if started {
                        format!("no data from the provider for {} s", idle.as_secs_f32())
                    } else {
                        "timed out waiting for the first byte of the response".to_owned()
                    };
                    Some((
                        Err(ProviderError::Transient { message }),
                        (bytes, started, true),
                    ))
                }
            }
        },
    )
}

struct DecodeState<D> {
    events: BoxStream<'static, Result<Event, EventStreamError<ProviderError>>>,
    decoder: D,
    queue: VecDeque<Result<ProviderEvent, ProviderError>>,
    finished: bool,
}

/// Decodes an SSE byte stream with `decoder`. Robust to events and UTF-8
/// sequences split across chunks; ends after [`Flow::Done`], an error or
/// the end of the body.
pub(crate) fn decode_sse<S, D>(
    bytes: S,
    decoder: D,
    first_deadline: Instant,
    idle: Duration,
) -> impl Stream<Item = Result<ProviderEvent, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, ProviderError>> + Send + 'static,
    D: SseDecoder,
{
    let events = with_timeouts(bytes, first_deadline, idle)
        .eventsource()
        .boxed();
    let state = DecodeState {
        events,
        decoder,
        queue: VecDeque::new(),
        finished: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.queue.pop_front() {
                return Some((item, state));
            }
            if state.finished {
                return None;
            }
            let mut out = Vec::new();
            let result = match state.events.next().await {
                Some(Ok(event)) => state
                    .decoder
                    .on_event(&event, &mut out)
                    .map(|flow| flow == Flow::Done),
                Some(Err(EventStreamError::Transport(error))) => Err(error),
                Some(Err(EventStreamError::Utf8(e))) => Err(ProviderError::Decode {
                    message: format!("the event stream is not valid UTF-8: {e}"),
                }),
                Some(Err(EventStreamError::Parser(e))) => Err(ProviderError::Decode {
                    message: format!("malformed event stream: {e}"),
                }),
                None => state.decoder.on_eof(&mut out).map(|()| true),
            };
            state.queue.extend(out.into_iter().map(Ok));
            match result {
                Ok(false) => {}
                Ok(true) => state.finished = true,
                Err(error) => {
                    state.queue.push_back(Err(error));
                    state.finished = true;
                }
            }
        }
    })
}

/// Parses an event's data as JSON.
pub(crate) fn parse_json(data: &str) -> Result<Value, ProviderError> {
    serde_json::from_str(data).map_err(|e| ProviderError::Decode {
        message: format!(
            "invalid JSON in event stream ({e}): {}",
            truncate(data, 200)
        ),
    })
}

// ---------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------

/// The part of the history the model sees: everything from the last
/// [`ContentPart::Summary`] on (earlier history is replaced by it), with
/// the summary turned into user text. A summary inside a non-user message
/// becomes its own user message before the rest of that message.
pub(crate) fn visible_history(messages: &[Message]) -> Vec<Message> {
    let last = messages.iter().enumerate().rev().find_map(|(i, m)| {
        m.content
            .iter()
            .rposition(|p| matches!(p, ContentPart::Summary { .. }))
            .map(|j| (i, j))
    });
    let Some((i, j)) = last else {
        return messages.to_vec();
    };
    let message = &messages[i];
    let summary = match &message.content[j] {
        ContentPart::Summary { text } => ContentPart::text(text.clone()),
        other => other.clone(),
    };
    let rest = message.content[j + 1..].to_vec();
    let mut out = Vec::with_capacity(messages.len() - i + 1);
    if message.role == Role::User {
        let mut content = vec![summary];
        content.extend(rest);
        out.push(Message::new(Role::User, content));
    } else {
        out.push(Message::new(Role::User, vec![summary]));
        if !rest.is_empty() {
            out.push(Message::new(message.role, rest));
        }
    }
    out.extend(messages[i + 1..].iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn retry_after_forms() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("0.5"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_millis(500)));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:47 GMT"),
        );
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(10)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h, now), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h, now), None);
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_millis(250)));
    }

    #[test]
    fn status_classification() {
        assert!(matches!(
            classify_status(401, None, "{}"),
            ProviderError::Auth { .. }
        ));
        assert!(matches!(
            classify_status(403, None, ""),
            ProviderError::Auth { .. }
        ));
        assert_eq!(
            classify_status(429, Some(Duration::from_secs(3)), "slow"),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(3)),
                message: "HTTP 429: non-JSON error body of 4 bytes withheld".into()
            }
        );
        assert!(matches!(
            classify_status(404, None, r#"{"error":{"message":"no such model"}}"#),
            ProviderError::InvalidRequest { message } if message == "HTTP 404: no such model"
        ));
        assert!(matches!(
            classify_status(
                400,
                None,
                r#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#
            ),
            ProviderError::ContextTooLong { .. }
        ));
        assert!(matches!(
            classify_status(
                400,
                None,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#
            ),
            ProviderError::ContextTooLong { .. }
        ));
        assert!(matches!(
            classify_status(422, None, "bad"),
            ProviderError::InvalidRequest { .. }
        ));
        for s in [500, 502, 503, 529] {
            assert!(classify_status(s, None, "").is_retryable(), "{s}");
        }
    }

    #[test]
    fn payload_classification() {
        assert!(matches!(
            classify_error("overloaded_error", "Overloaded"),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(
            classify_error("rate_limit_error", "x"),
            ProviderError::RateLimited { .. }
        ));
        assert!(matches!(
            classify_error("invalid_request_error", "x"),
            ProviderError::InvalidRequest { .. }
        ));
        assert!(matches!(
            classify_error("authentication_error", "x"),
            ProviderError::Auth { .. }
        ));
        assert!(matches!(
            classify_error("invalid_request_error context_length_exceeded", "x"),
            ProviderError::ContextTooLong { .. }
        ));
        assert!(matches!(
            classify_error("", ""),
            ProviderError::Transient { message } if message == "unknown error"
        ));
    }

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy::default()
            .with_base_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_millis(400));
        for retry in 0..40 {
            let d = p.backoff(retry);
            assert!(d <= Duration::from_millis(400), "{d:?}");
            assert!(d >= Duration::from_millis(50), "{d:?}");
        }
    }

    #[test]
    fn summary_cuts_history() {
        let msgs = vec![
            Message::user("old"),
            Message::assistant("old answer"),
            Message::new(
                Role::User,
                vec![
                    ContentPart::text("dropped"),
                    ContentPart::Summary { text: "sum".into() },
                    ContentPart::text("kept"),
                ],
            ),
            Message::assistant("new"),
        ];
        let v = visible_history(&msgs);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].text(), "sumkept");
        assert_eq!(v[1].text(), "new");
        let none = vec![Message::user("a")];
        assert_eq!(visible_history(&none), none);
    }

    #[test]
    fn headers_are_sensitive_and_overridable() {
        let h = build_headers(
            &[("anthropic-version", "2023-06-01")],
            &[("x-api-key", "sk-secret")],
            &[("anthropic-version".into(), "2099-01-01".into())],
        )
        .unwrap();
        assert_eq!(h["anthropic-version"], "2099-01-01");
        assert!(h["x-api-key"].is_sensitive());
        assert!(!format!("{h:?}").contains("sk-secret"));
        assert!(build_headers(&[], &[], &[("bad name".into(), "v".into())]).is_err());
    }

    struct Lines;
    impl SseDecoder for Lines {
        fn on_event(
            &mut self,
            event: &Event,
            out: &mut Vec<ProviderEvent>,
        ) -> Result<Flow, ProviderError> {
            out.push(ProviderEvent::TextDelta(event.data.clone()));
            Ok(Flow::Continue)
        }
        fn on_eof(&mut self, _out: &mut Vec<ProviderEvent>) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_is_transient() {
        let bytes = futures::stream::iter([Ok(Bytes::from_static(b"data: a\n\n"))])
            .chain(futures::stream::pending());
        let items: Vec<_> = decode_sse(
            bytes,
            Lines,
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(1),
        )
        .collect()
        .await;
        assert_eq!(items[0], Ok(ProviderEvent::TextDelta("a".into())));
        assert!(
            matches!(&items[1], Err(ProviderError::Transient { message }) if message.contains("no data"))
        );
        assert_eq!(items.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn first_byte_timeout_is_transient() {
        let bytes = futures::stream::pending::<Result<Bytes, ProviderError>>();
        let items: Vec<_> = decode_sse(
            bytes,
            Lines,
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(100),
        )
        .collect()
        .await;
        assert!(
            matches!(&items[..], [Err(ProviderError::Transient { message })] if message.contains("first byte"))
        );
    }
}
