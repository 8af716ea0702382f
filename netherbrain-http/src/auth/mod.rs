//! Authentication: bearer tokens, the `AuthUser` / `AdminUser` extractors
//! and the middleware that protects every non-public route.

pub(crate) mod limiter;
pub(crate) mod password;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use netherbrain_core::UserId;
use netherbrain_core::auth::Principal;
use netherbrain_core::store::{User, UserRole};

pub(crate) use limiter::LoginLimiter;

use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated caller.
///
/// As an extractor it answers `401` when the request carries no usable
/// bearer token or the user is deactivated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthUser {
    /// Who.
    pub user: User,
    /// The API key used; `None` for the operator token.
    pub key_id: Option<netherbrain_core::ApiKeyId>,
    /// The bearer token, to re-check open streams with.
    pub(crate) credential: Credential,
    /// A login token of a user whose password is temporary: only the
    /// routes in [`PASSWORD_CHANGE_ROUTES`] answer it.
    pub(crate) password_change_required: bool,
}

/// What a login token may call while its user's password is temporary
/// (`must_change_password`): everything else answers `403` with the code
/// `password_change_required`.
pub(crate) const PASSWORD_CHANGE_ROUTES: [&str; 3] =
    ["/api/auth/me", "/api/auth/password", "/api/auth/logout"];

/// The bearer token a request authenticated with. `Debug` prints no secret.
#[derive(Clone)]
pub(crate) struct Credential(std::sync::Arc<str>);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// Resolves once `user`'s token no longer authenticates as the same
/// principal — the key was revoked or expired, the user deactivated, an
/// admin demoted (or a user promoted) — checking every
/// `ServerConfig::revalidate_interval`. Open streams end on it. A store
/// failure keeps the stream (it is checked again next time).
pub(crate) async fn revoked(state: AppState, user: AuthUser) {
    use netherbrain_core::auth::AuthError;
    let interval = state.config().revalidate_interval;
    let principal = user.principal();
    loop {
        tokio::time::sleep(interval).await;
        match netherbrain_core::auth::authenticate(
            state.store().as_ref(),
            &user.credential.0,
            state.config().auth_token.as_deref(),
        )
        .await
        {
            Ok(found) if found.principal() == principal => {}
            Ok(_) => {
                tracing::info!(user = %principal.user_id(), "role changed: closing its streams");
                return;
            }
            Err(AuthError::Store(e)) => {
                tracing::warn!(error = %e, "could not re-check a stream's token");
            }
            Err(e) => {
                tracing::info!(user = %principal.user_id(), reason = %e, "closing revoked streams");
                return;
            }
        }
    }
}

impl AuthUser {
    /// The user's id.
    #[must_use]
    pub fn id(&self) -> UserId {
        self.user.id
    }

    /// Whether the user is an admin.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.user.role == UserRole::Admin
    }

    /// The principal the conversation service checks: from the stored user.
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal::of(&self.user)
    }

    /// `403` unless admin.
    ///
    /// # Errors
    ///
    /// [`ApiError`] `forbidden`.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this action requires an admin"))
        }
    }
}

/// An authenticated admin; `403` for other users.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<Self>() {
            return Ok(user.clone());
        }
        let user = authenticate(state, &parts.headers).await?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        user.require_admin()?;
        Ok(Self(user))
    }
}

/// Middleware: authenticates the request (401 otherwise) and leaves the
/// [`AuthUser`] in the request extensions for the handler.
pub(crate) async fn require_auth(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let user = if PASSWORD_CHANGE_ROUTES.contains(&req.uri().path()) {
        authenticate_any(&state, req.headers()).await?
    } else {
        authenticate(&state, req.headers()).await?
    };
    req.extensions_mut().insert(user);
    Ok(next.run(req).await)
}

/// The bearer token of a request, if any.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The client IP: the TCP peer (when the server runs with connect info, as
/// [`crate::serve`] does), or, when that peer is one of
/// `ServerConfig::trusted_proxies`, the nearest address in
/// `X-Forwarded-For` that is not a trusted proxy. `None` without connect
/// info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(Self(peer.map(|peer| {
            client_ip(peer, &parts.headers, &state.config().trusted_proxies)
        })))
    }
}

/// The client address of a request from `peer`; see [`ClientIp`].
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    // Right to left: each hop appended the address it saw; the first one
    // not added by a trusted proxy is the client.
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // A garbled entry: nothing to the left of it can be believed.
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// Resolves the bearer token of a request to an active user; `403`
/// `password_change_required` for a login token whose user must first
/// change a temporary password (see [`PASSWORD_CHANGE_ROUTES`]).
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<AuthUser, ApiError> {
    let user = authenticate_any(state, headers).await?;
    if user.password_change_required {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "password_change_required",
            "this account's password is temporary: choose a new one with POST /api/auth/password",
        ));
    }
    Ok(user)
}

/// Resolves the bearer token of a request to an active user, holding back
/// nothing: for the routes a temporary password leaves open.
async fn authenticate_any(state: &AppState, headers: &HeaderMap) -> Result<AuthUser, ApiError> {
    let Some(token) = bearer_token(headers) else {
        return Err(ApiError::unauthorized(
            "missing `Authorization: Bearer <token>` header",
        ));
    };
    let found = netherbrain_core::auth::authenticate(
        state.store().as_ref(),
        token,
        state.config().auth_token.as_deref(),
    )
    .await?;
    Ok(AuthUser {
        user: found.user,
        key_id: found.key_id,
        credential: Credential(token.into()),
        password_change_required: found.password_change_required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn parses_bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&h), None);
    }

    proptest::proptest! {
        /// Any `X-Forwarded-For` and `Authorization` value: an address and
        /// maybe a token, never a panic; an untrusted peer is kept.
        #[test]
        fn header_parsing_never_panics(xff in "[ -~]{0,80}", auth in "[ -~]{0,40}", peer in proptest::prelude::any::<[u8; 4]>()) {
            let peer = IpAddr::from(peer);
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&xff) {
                h.insert("x-forwarded-for", v);
            }
            if let Ok(v) = HeaderValue::from_str(&auth) {
                h.insert(header::AUTHORIZATION, v);
            }
            let _ = bearer_token(&h);
            let all = vec!["0.0.0.0/0".parse::<ipnet::IpNet>().unwrap()];
            let _ = client_ip(peer, &h, &all);
            proptest::prop_assert_eq!(client_ip(peer, &h, &[]), peer);
        }
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = vec!["10.0.0.0/24".parse::<ipnet::IpNet>().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.4, 10.0.0.3"),
        );
        // From the trusted proxy: the nearest untrusted hop.
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
        // From anyone else the header is ignored.
        let direct: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_ip(direct, &h, &trusted), direct);
        assert_eq!(client_ip(proxy, &h, &[]), proxy);
        // Garbage stops the walk.
        h.insert("x-forwarded-for", HeaderValue::from_static("nonsense"));
        assert_eq!(client_ip(proxy, &h, &trusted), proxy);
        h.remove("x-forwarded-for");
        assert_eq!(client_ip(proxy, &h, &trusted), proxy);
    }
}
