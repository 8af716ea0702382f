//! Authentication: bearer tokens, the `AuthUser` / `AdminUser` extractors
//! and the middleware that protects every non-public route.

mod limiter;
pub(crate) mod password;
pub(crate) mod token;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use netherbrain_core::UserId;
use netherbrain_core::store::{StoreError, User, UserRole};

pub(crate) use limiter::LoginLimiter;

use crate::bootstrap::BOOTSTRAP_ADMIN_USERNAME;
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
    let user = authenticate(&state, req.headers()).await?;
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

/// The peer IP, when the server runs with connect info (as [`crate::serve`]
/// does); `None` otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

fn invalid_token() -> ApiError {
    ApiError::unauthorized("invalid, expired or revoked token")
}

/// Resolves the bearer token of a request to an active user.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<AuthUser, ApiError> {
    let Some(token) = bearer_token(headers) else {
        return Err(ApiError::unauthorized(
            "missing `Authorization: Bearer <token>` header",
        ));
    };
    if let Some(operator) = &state.config().auth_token
        && token::secrets_equal(token, operator)
    {
        return operator_admin(state).await;
    }
    let store = state.store();
    let key = match store.get_api_key_by_prefix(&token::prefix_of(token)).await {
        Ok(key) => key,
        Err(StoreError::NotFound { .. }) => {
            // Spend the same hashing work as for a found key.
            let _ = token::verify(token, "");
            return Err(invalid_token());
        }
        Err(e) => return Err(e.into()),
    };
    if !token::verify(token, &key.hash) || !key.is_usable(Utc::now()) {
        return Err(invalid_token());
    }
    let user = match store.get_user(key.user_id).await {
        Ok(user) => user,
        Err(StoreError::NotFound { .. }) => return Err(invalid_token()),
        Err(e) => return Err(e.into()),
    };
    if !user.active {
        return Err(ApiError::unauthorized("account is deactivated"));
    }
    Ok(AuthUser {
        user,
        key_id: Some(key.id),
    })
}

/// The user the operator token acts as: the active admin named
/// [`BOOTSTRAP_ADMIN_USERNAME`], else the first active admin by username.
async fn operator_admin(state: &AppState) -> Result<AuthUser, ApiError> {
    let store = state.store();
    let user = match store.get_user_by_username(BOOTSTRAP_ADMIN_USERNAME).await {
        Ok(user) if user.active && user.role == UserRole::Admin => Some(user),
        Ok(_) | Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let user = match user {
        Some(user) => user,
        None => store
            .list_users()
            .await?
            .into_iter()
            .find(|u| u.active && u.role == UserRole::Admin)
            .ok_or_else(|| ApiError::unauthorized("no active admin account exists"))?,
    };
    Ok(AuthUser { user, key_id: None })
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
}
