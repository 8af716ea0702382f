//! Server configuration.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

/// How the server is run. Build it from [`ServerConfig::default`] and the
/// `with_*` methods (the struct is `#[non_exhaustive]`).
///
/// ```
/// use std::time::Duration;
/// use netherbrain_http::ServerConfig;
/// let config = ServerConfig::default()
///     .with_bind("127.0.0.1:8080".parse().unwrap())
///     .with_body_limit(64 * 1024)
///     .with_shutdown_timeout(Duration::from_secs(5));
/// assert_eq!(config.bind.port(), 8080);
/// assert!(config.auth_token.is_none());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to listen. Default `127.0.0.1:9001`. A non-loopback address is
    /// refused unless auth is configured (see [`crate::auth_configured`]).
    pub bind: SocketAddr,
    /// Operator token (`NETHER_AUTH_TOKEN`, read by the CLI). When set it
    /// authenticates as the bootstrap admin on every start, whatever the
    /// database holds. Never printed by `Debug`.
    pub auth_token: Option<String>,
    /// Largest request body in bytes; larger bodies get `413`. Default 1 MiB.
    pub body_limit: usize,
    /// Failed-login throttling.
    pub login_rate_limit: LoginRateLimit,
    /// How long a token issued by `POST /api/auth/login` lives. Default 30 days.
    pub login_token_ttl: Duration,
    /// How long [`crate::serve`] waits for open connections after the
    /// shutdown signal before it gives up on them. Default 30 s.
    pub shutdown_timeout: Duration,
    /// Argon2id cost for new password hashes.
    pub password_hash: PasswordHashParams,
    /// Whether `GET /metrics` requires a bearer token. Default `false`
    /// (Prometheus scrapers usually run next to the server).
    pub metrics_require_auth: bool,
    /// Whether `GET /metrics` stays open without a token when the server
    /// listens off loopback. Default `false`: off loopback it needs a token.
    pub metrics_public: bool,
    /// Peers whose `X-Forwarded-For` header is believed (reverse proxies).
    /// Default: none, so the client IP is always the TCP peer.
    pub trusted_proxies: Vec<IpNet>,
    /// How often open SSE and WebSocket streams re-check their token; a
    /// revoked key, deactivated user or changed role closes them. Default 2 s.
    pub revalidate_interval: Duration,
    /// Conversations one WebSocket may follow at once. Default 64.
    pub max_ws_subscriptions: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 9001)),
            auth_token: None,
            body_limit: 1024 * 1024,
            login_rate_limit: LoginRateLimit::default(),
            login_token_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            shutdown_timeout: Duration::from_secs(30),
            password_hash: PasswordHashParams::default(),
            metrics_require_auth: false,
            metrics_public: false,
            trusted_proxies: Vec::new(),
            revalidate_interval: Duration::from_secs(2),
            max_ws_subscriptions: 64,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("body_limit", &self.body_limit)
            .field("login_rate_limit", &self.login_rate_limit)
            .field("login_token_ttl", &self.login_token_ttl)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("password_hash", &self.password_hash)
            .field("metrics_require_auth", &self.metrics_require_auth)
            .field("metrics_public", &self.metrics_public)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("revalidate_interval", &self.revalidate_interval)
            .field("max_ws_subscriptions", &self.max_ws_subscriptions)
            .finish()
    }
}

impl ServerConfig {
    /// Sets the listen address.
    #[must_use]
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Sets (or clears) the operator token.
    #[must_use]
    pub fn with_auth_token(mut self, token: Option<String>) -> Self {
        self.auth_token = token.filter(|t| !t.is_empty());
        self
    }

    /// Sets the request body limit in bytes.
    #[must_use]
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets failed-login throttling.
    #[must_use]
    pub fn with_login_rate_limit(mut self, limit: LoginRateLimit) -> Self {
        self.login_rate_limit = limit;
        self
    }

    /// Sets the lifetime of login tokens.
    #[must_use]
    pub fn with_login_token_ttl(mut self, ttl: Duration) -> Self {
        self.login_token_ttl = ttl;
        self
    }

    /// Sets the graceful shutdown timeout.
    #[must_use]
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets the Argon2id cost for new password hashes.
    #[must_use]
    pub fn with_password_hash(mut self, params: PasswordHashParams) -> Self {
        self.password_hash = params;
        self
    }

    /// Sets whether `GET /metrics` requires a bearer token.
    #[must_use]
    pub fn with_metrics_require_auth(mut self, required: bool) -> Self {
        self.metrics_require_auth = required;
        self
    }

    /// Sets whether `GET /metrics` stays open off loopback.
    #[must_use]
    pub fn with_metrics_public(mut self, public: bool) -> Self {
        self.metrics_public = public;
        self
    }

    /// Sets how many conversations one WebSocket may follow.
    #[must_use]
    pub fn with_max_ws_subscriptions(mut self, n: usize) -> Self {
        self.max_ws_subscriptions = n;
        self
    }

    /// Sets how often open streams re-check their token.
    #[must_use]
    pub fn with_revalidate_interval(mut self, interval: Duration) -> Self {
        self.revalidate_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Sets the reverse proxies whose `X-Forwarded-For` is believed.
    #[must_use]
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted_proxies = proxies;
        self
    }
}

/// Login attempts allowed within a window, counted whether they succeed or
/// not; more get `429 Too Many Requests` with `Retry-After`. Each limit is a
/// burst of that many attempts, refilled evenly over `window`.
///
/// - `max_attempts` per username from one client address,
/// - `per_address` from one client address over all usernames,
/// - `per_username` for one username over all addresses. Keep it above
///   `per_address`, so that one address cannot lock the owner out.
///
/// At most `max_concurrent_verifications` Argon2 verifications run at once;
/// a login that waits longer than `verification_wait` for a slot gets `503`.
///
/// ```
/// use std::time::Duration;
/// let limit = netherbrain_http::LoginRateLimit::new(5, Duration::from_secs(60))
///     .with_per_address(20)
///     .with_per_username(50)
///     .with_max_concurrent_verifications(2);
/// assert_eq!(limit.max_attempts, 5);
/// assert_eq!(netherbrain_http::LoginRateLimit::default().max_concurrent_verifications, 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginRateLimit {
    /// Attempts per username from one address within `window`. Default 5.
    pub max_attempts: u32,
    /// The window over which each limit refills. Default 60 s.
    pub window: Duration,
    /// Attempts from one address within `window`. Default 20.
    pub per_address: u32,
    /// Attempts for one username within `window`. Default 50.
    pub per_username: u32,
    /// Argon2 verifications running at once. Default 4.
    pub max_concurrent_verifications: usize,
    /// How long a login waits for a verification slot. Default 10 s.
    pub verification_wait: Duration,
}

impl Default for LoginRateLimit {
    fn default() -> Self {
        Self::new(5, Duration::from_secs(60))
    }
}

impl LoginRateLimit {
    /// `max_attempts` per username and address per `window`; the other
    /// limits at their defaults.
    #[must_use]
    pub fn new(max_attempts: u32, window: Duration) -> Self {
        Self {
            max_attempts,
            window,
            per_address: 20,
            per_username: 50,
            max_concurrent_verifications: 4,
            verification_wait: Duration::from_secs(10),
        }
    }

    /// Sets the attempts allowed from one address.
    #[must_use]
    pub fn with_per_address(mut self, n: u32) -> Self {
        self.per_address = n;
        self
    }

    /// Sets the attempts allowed for one username over all addresses.
    #[must_use]
    pub fn with_per_username(mut self, n: u32) -> Self {
        self.per_username = n;
        self
    }

    /// Sets how many Argon2 verifications may run at once.
    #[must_use]
    pub fn with_max_concurrent_verifications(mut self, n: usize) -> Self {
        self.max_concurrent_verifications = n;
        self
    }

    /// Sets how long a login waits for a verification slot.
    #[must_use]
    pub fn with_verification_wait(mut self, wait: Duration) -> Self {
        self.verification_wait = wait;
        self
    }
}

/// Argon2id parameters for new password hashes. Existing hashes keep the
/// parameters recorded in their PHC string.
///
/// The default follows the OWASP recommendation (19 MiB, 2 passes, 1 lane).
/// [`PasswordHashParams::insecure_fast`] is for tests only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordHashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordHashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordHashParams {
    /// Custom parameters.
    #[must_use]
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Self {
        Self {
            memory_kib,
            iterations,
            parallelism,
        }
    }

    /// The cheapest parameters Argon2 accepts: fast tests, no protection.
    #[must_use]
    pub fn insecure_fast() -> Self {
        Self::new(8, 1, 1)
    }
}
