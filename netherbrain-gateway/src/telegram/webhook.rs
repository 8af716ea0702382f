//! Webhook mode: Telegram POSTs each update to a public HTTPS URL that a
//! reverse proxy forwards to the gateway's own listener ([`WebhookConfig`]).
//!
//! On start the channel binds the listener and calls `setWebhook` with the
//! URL, the secret token and the update types it handles; every request
//! must carry the secret in `X-Telegram-Bot-Api-Secret-Token` (else `401`,
//! nothing processed), a body that is not an update is a `400`, and a
//! valid update goes the way a polled one goes. On shutdown the channel
//! calls `deleteWebhook`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netherbrain_core::channel::{CancellationToken, ChannelError, InboundMessage};
use subtle::ConstantTimeEq;
use teloxide::payloads::SetWebhookSetters;
use teloxide::prelude::Requester;
use teloxide::types::{AllowedUpdate, Update, UpdateKind};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::TelegramChannel;

/// The header Telegram sends the secret token in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// The shortest secret token accepted.
pub const MIN_SECRET_LEN: usize = 32;

/// The longest secret token Telegram accepts.
pub const MAX_SECRET_LEN: usize = 256;

/// The largest update body accepted by default (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long shutdown waits for `deleteWebhook`.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);

/// A webhook setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookConfigError {
    /// The webhook URL does not parse.
    #[error("the webhook URL is not a URL: {0}")]
    BadUrl(String),
    /// Telegram only posts to `https://` URLs.
    #[error("the webhook URL must be https:// (Telegram posts only to HTTPS)")]
    NotHttps,
    /// The secret token is shorter than [`MIN_SECRET_LEN`] or longer than
    /// [`MAX_SECRET_LEN`].
    #[error(
        "the webhook secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} characters, not {len}"
    )]
    SecretLength {
        /// Its length, in characters.
        len: usize,
    },
    /// The secret token has a character Telegram refuses.
    #[error("the webhook secret may hold only A-Z, a-z, 0-9, `_` and `-`")]
    SecretCharacters,
}

/// Where Telegram delivers updates in webhook mode.
///
/// ```
/// use netherbrain_gateway::telegram::WebhookConfig;
///
/// let hook = WebhookConfig::new(
///     "https://bot.example.com/telegram",
///     "127.0.0.1:8443".parse().unwrap(),
///     "a-long-random-secret-of-32-chars-or-more",
/// )
/// .unwrap();
/// assert_eq!(hook.url().as_str(), "https://bot.example.com/telegram");
/// assert!(WebhookConfig::new("http://bot.example.com", hook.listen(), "x".repeat(40)).is_err());
/// assert!(WebhookConfig::new("https://bot.example.com", hook.listen(), "short").is_err());
/// ```
#[derive(Clone)]
pub struct WebhookConfig {
    url: reqwest::Url,
    listen: SocketAddr,
    secret: String,
    max_body_bytes: usize,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url.as_str())
            .field("listen", &self.listen)
            .field("secret", &"<redacted>")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl WebhookConfig {
    /// The public `https://` URL Telegram posts to, the address the
    /// gateway listens on, and the secret token Telegram sends with every
    /// update ([`MIN_SECRET_LEN`] to [`MAX_SECRET_LEN`] characters of
    /// `A-Z a-z 0-9 _ -`).
    ///
    /// # Errors
    ///
    /// [`WebhookConfigError`] for a URL that is not `https://` or a secret
    /// Telegram would refuse or that is too short to be one.
    pub fn new(
        url: &str,
        listen: SocketAddr,
        secret: impl Into<String>,
    ) -> Result<Self, WebhookConfigError> {
        let url =
            reqwest::Url::parse(url).map_err(|e| WebhookConfigError::BadUrl(e.to_string()))?;
        if url.scheme() != "https" {
            return Err(WebhookConfigError::NotHttps);
        }
        let secret = secret.into();
        let len = secret.chars().count();
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
            return Err(WebhookConfigError::SecretLength { len });
        }
        if !secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(WebhookConfigError::SecretCharacters);
        }
        Ok(Self {
            url,
            listen,
            secret,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        })
    }

    /// Sets the largest update body accepted (larger ones get `413`).
    #[must_use]
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The public URL Telegram posts to.
    #[must_use]
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The address the gateway's listener binds.
    #[must_use]
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The largest update body accepted, in bytes.
    #[must_use]
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
}

/// What the listener's handler holds.
struct Hook {
    channel: TelegramChannel,
    secret: String,
    max_body_bytes: usize,
    inbound: mpsc::Sender<InboundMessage>,
}

impl TelegramChannel {
    /// Webhook mode: binds the listener, registers the webhook, serves
    /// until `cancel`, then removes the webhook.
    pub(super) async fn run_webhook(
        &self,
        hook: &WebhookConfig,
        inbound: mpsc::Sender<InboundMessage>,
        cancel: CancellationToken,
    ) -> Result<(), ChannelError> {
        let listener = tokio::net::TcpListener::bind(hook.listen)
            .await
            .map_err(|e| {
                ChannelError::Transport(format!("webhook listener on {}: {e}", hook.listen))
            })?;
        if !self.register_webhook(hook, &cancel).await? {
            return Ok(());
        }
        info!(listen = %hook.listen, url = %hook.url, "Telegram webhook registered");
        let state = Arc::new(Hook {
            channel: self.clone(),
            secret: hook.secret.clone(),
            max_body_bytes: hook.max_body_bytes,
            inbound,
        });
        let app = Router::new().fallback(receive).with_state(state);
        let server = std::future::IntoFuture::into_future(
            axum::serve(listener, app).with_graceful_shutdown(cancel.clone().cancelled_owned()),
        );
        // Requests in flight may finish; a connection that lingers past
        // the drain time does not keep the webhook from being removed.
        let drained = async {
            cancel.cancelled().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        };
        let served = tokio::select! {
            served = server => served,
            () = drained => Ok(()),
        };
        match tokio::time::timeout(DELETE_TIMEOUT, self.bot.delete_webhook()).await {
            Ok(Ok(_)) => debug!("Telegram webhook removed"),
            Ok(Err(e)) => warn!(error = %e, "could not remove the Telegram webhook"),
            Err(_) => warn!("removing the Telegram webhook timed out"),
        }
        served.map_err(|e| ChannelError::Transport(format!("webhook listener: {e}")))
    }

    /// `setWebhook`, retried with backoff while the Bot API is unreachable.
    /// `false` when cancelled first; an error for a refusal.
    async fn register_webhook(
        &self,
        hook: &WebhookConfig,
        cancel: &CancellationToken,
    ) -> Result<bool, ChannelError> {
        let mut wait = Duration::from_millis(500);
        loop {
            let request = self
                .bot
                .set_webhook(hook.url.clone())
                .secret_token(hook.secret.clone())
                .allowed_updates([AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
            let result = tokio::select! {
                () = cancel.cancelled() => return Ok(false),
                result = std::future::IntoFuture::into_future(request) => result,
            };
            let pause = match result {
                Ok(_) => return Ok(true),
                Err(teloxide::RequestError::Api(e)) => {
                    return Err(ChannelError::Transport(format!(
                        "Telegram refused the webhook: {e}"
                    )));
                }
                Err(teloxide::RequestError::RetryAfter(s)) => s.duration(),
                Err(e) => {
                    warn!(error = %e, retry_in = ?wait, "setWebhook failed");
                    wait
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return Ok(false),
                () = tokio::time::sleep(pause) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }
}

/// One POSTed update (any path: a proxy may rewrite it; the secret is
/// what authenticates).
async fn receive(
    State(hook): State<Arc<Hook>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "only POST is accepted");
    }
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(given.ct_eq(hook.secret.as_bytes())) {
        debug!("a webhook request without the right secret token");
        return refuse(StatusCode::UNAUTHORIZED, "wrong or missing secret token");
    }
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body exceeds the update size limit",
        )
    };
    // A declared length over the limit is refused before reading a byte.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > u64::try_from(hook.max_body_bytes).unwrap_or(u64::MAX)) {
        return too_large();
    }
    let Ok(body) = axum::body::to_bytes(body, hook.max_body_bytes).await else {
        return too_large();
    };
    let update: Update = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(e) => {
            debug!(error = %e, "a webhook body that is not an update");
            return refuse(StatusCode::BAD_REQUEST, "the body is not a Telegram update");
        }
    };
    if matches!(update.kind, UpdateKind::Error(_)) {
        debug!(
            update = update.id.0,
            "a webhook update of an unreadable kind"
        );
        return refuse(StatusCode::BAD_REQUEST, "the update could not be read");
    }
    match hook.channel.deliver(update, &hook.inbound).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, "the gateway is stopping"),
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}
