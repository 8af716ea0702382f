//! Issuing, listing and revoking API keys: a user manages their own keys,
//! an admin anyone's.

use std::fmt;

use chrono::{DateTime, Utc};

use super::{AuthError, Principal, token};
use crate::ids::{ApiKeyId, UserId};
use crate::store::{ApiKey, NewApiKey, StateStore, StoreError};

/// What key to issue.
///
/// ```
/// use netherbrain_core::auth::IssueKey;
/// let req = IssueKey::new("ci").for_user(netherbrain_core::UserId::new());
/// assert_eq!(req.name, "ci");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssueKey {
    /// The key's name.
    pub name: String,
    /// Whose key; `None` for the acting user. Another user's needs an admin.
    pub user_id: Option<UserId>,
    /// When it stops working; `None` never. Must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

impl IssueKey {
    /// A key for the acting user that never expires.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            user_id: None,
            expires_at: None,
        }
    }

    /// Issues it for another user (admins only).
    #[must_use]
    pub fn for_user(mut self, user_id: UserId) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn expires_at(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.expires_at = at;
        self
    }
}

/// A new key and its secret, which exists only here. `Debug` hides the
/// secret.
///
/// ```
/// # use netherbrain_core::auth::IssuedKey;
/// # fn f(k: IssuedKey) {
/// println!("{} = {}", k.key.name, k.secret());
/// # }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct IssuedKey {
    /// The stored key (hash and prefix only).
    pub key: ApiKey,
    secret: String,
}

impl IssuedKey {
    /// The bearer token: show it once.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The bearer token, consuming the value.
    #[must_use]
    pub fn into_secret(self) -> String {
        self.secret
    }
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The user a key request is about: the principal, or (admins only)
/// another existing user.
pub(crate) async fn target_user(
    store: &dyn StateStore,
    who: &Principal,
    requested: Option<UserId>,
) -> Result<UserId, AuthError> {
    match requested {
        None => Ok(who.user_id()),
        Some(id) if id == who.user_id() => Ok(id),
        Some(id) => {
            who.require_admin()?;
            Ok(store.get_user(id).await?.id)
        }
    }
}

/// Generates a key, stores its hash and returns it with its secret.
/// Retries on the (astronomically rare) prefix collision.
///
/// # Errors
///
/// [`AuthError::Forbidden`] for another user's key without admin rights,
/// [`AuthError::Invalid`] for an expiry in the past, `NotFound` for an
/// unknown user, `Invalid` from the store for a bad name.
///
/// ```
/// use netherbrain_core::auth::{issue_api_key, IssueKey, Principal};
/// use netherbrain_core::store::{MemoryStore, NewUser, UserRole};
/// use netherbrain_core::store::prelude::*;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await.unwrap();
/// let bob = store.create_user(NewUser::new("bob", UserRole::User)).await.unwrap();
/// let who = Principal::of(&ada);
/// assert!(issue_api_key(&store, &who, IssueKey::new("k")).await.is_ok());
/// // Only admins issue keys for others.
/// assert!(issue_api_key(&store, &who, IssueKey::new("k").for_user(bob.id)).await.is_err());
/// # });
/// ```
pub async fn issue_api_key(
    store: &dyn StateStore,
    who: &Principal,
    request: IssueKey,
) -> Result<IssuedKey, AuthError> {
    let user_id = target_user(store, who, request.user_id).await?;
    if request.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(AuthError::Invalid(
            "expires_at must be in the future".into(),
        ));
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let generated = token::generate()?;
        let mut new = NewApiKey::new(
            user_id,
            request.name.clone(),
            generated.prefix(),
            generated.hash(),
        );
        new.expires_at = request.expires_at;
        match store.create_api_key(new).await {
            Ok(key) => {
                return Ok(IssuedKey {
                    key,
                    secret: generated.into_token(),
                });
            }
            Err(StoreError::Conflict(_)) if attempts < 3 => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A user's keys (login tokens, revoked and expired keys too), newest
/// first: the principal's own, or (admins) `user_id`'s.
///
/// # Errors
///
/// [`AuthError::Forbidden`] for another user's keys without admin rights;
/// `NotFound` for an unknown user.
///
/// ```
/// use netherbrain_core::auth::{issue_api_key, list_api_keys, IssueKey, Principal};
/// use netherbrain_core::store::{MemoryStore, NewUser, UserRole};
/// use netherbrain_core::store::prelude::*;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await.unwrap();
/// let who = Principal::of(&ada);
/// issue_api_key(&store, &who, IssueKey::new("k")).await.unwrap();
/// assert_eq!(list_api_keys(&store, &who, None).await.unwrap().len(), 1);
/// # });
/// ```
pub async fn list_api_keys(
    store: &dyn StateStore,
    who: &Principal,
    user_id: Option<UserId>,
) -> Result<Vec<ApiKey>, AuthError> {
    let user_id = target_user(store, who, user_id).await?;
    Ok(store.list_api_keys(user_id).await?)
}

/// Revokes one of the principal's keys (admins: one of `user_id`'s).
///
/// # Errors
///
/// [`AuthError::KeyNotFound`] for a key of another user,
/// [`AuthError::Forbidden`] as for [`list_api_keys`], a store `Conflict`
/// when it is already revoked.
///
/// ```
/// use netherbrain_core::auth::{issue_api_key, revoke_api_key, IssueKey, Principal};
/// use netherbrain_core::store::{MemoryStore, NewUser, UserRole};
/// use netherbrain_core::store::prelude::*;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await.unwrap();
/// let bob = store.create_user(NewUser::new("bob", UserRole::User)).await.unwrap();
/// let key = issue_api_key(&store, &Principal::of(&ada), IssueKey::new("k")).await.unwrap();
/// // Bob cannot revoke Ada's key: to him it does not exist.
/// assert!(revoke_api_key(&store, &Principal::of(&bob), None, key.key.id).await.is_err());
/// let revoked = revoke_api_key(&store, &Principal::of(&ada), None, key.key.id).await.unwrap();
/// assert!(revoked.revoked_at.is_some());
/// # });
/// ```
pub async fn revoke_api_key(
    store: &dyn StateStore,
    who: &Principal,
    user_id: Option<UserId>,
    key_id: ApiKeyId,
) -> Result<ApiKey, AuthError> {
    let user_id = target_user(store, who, user_id).await?;
    let owned = store
        .list_api_keys(user_id)
        .await?
        .into_iter()
        .any(|k| k.id == key_id);
    if !owned {
        return Err(AuthError::KeyNotFound(key_id));
    }
    Ok(store.revoke_api_key(key_id).await?)
}
