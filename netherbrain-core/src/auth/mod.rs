//! Who is acting, and the API keys that say so.
//!
//! - [`Principal`] — the acting user (id and whether an admin), taken from
//!   server-owned fields only. Every use-case of the
//!   [conversation service](crate::conversation) takes one.
//! - [`authenticate`] — a bearer token (an API key, or the operator token)
//!   to the active user it belongs to.
//! - [`issue_api_key`], [`list_api_keys`], [`revoke_api_key`] — key
//!   management with the ownership rule in one place: a user manages their
//!   own keys, an admin anyone's.
//! - [`bootstrap_admin`] — the first admin account of an empty store.
//! - [`token`] — the key format, hashing and constant-time comparison.
//!
//! ```
//! use netherbrain_core::auth::{self, IssueKey, Principal};
//! use netherbrain_core::store::{MemoryStore, NewUser, UserRole};
//! use netherbrain_core::store::prelude::*;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let ada = store.create_user(NewUser::new("ada", UserRole::User)).await.unwrap();
//! let who = Principal::of(&ada);
//! let issued = auth::issue_api_key(&store, &who, IssueKey::new("laptop")).await.unwrap();
//! let found = auth::authenticate(&store, issued.secret(), None).await.unwrap();
//! assert_eq!(found.user.id, ada.id);
//! # });
//! ```

pub(crate) mod keys;
pub mod token;

use chrono::Utc;

pub use self::keys::{IssueKey, IssuedKey, issue_api_key, list_api_keys, revoke_api_key};

use crate::ids::{ApiKeyId, UserId};
use crate::store::{NewApiKey, NewUser, StateStore, StoreError, User, UserRole};

/// Username of the admin created by [`bootstrap_admin`].
pub const BOOTSTRAP_ADMIN_USERNAME: &str = "admin";

/// Shortest operator token accepted.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 16;

/// Name of the API keys that password logins issue.
pub const LOGIN_KEY_NAME: &str = "login";

/// The acting user of a request: who they are and whether they are an
/// admin. Build it from the stored [`User`] (never from request data).
///
/// ```
/// use netherbrain_core::auth::Principal;
/// use netherbrain_core::UserId;
/// let owner = UserId::new();
/// assert!(Principal::user(owner).can_access(owner));
/// assert!(!Principal::user(UserId::new()).can_access(owner));
/// assert!(Principal::admin(UserId::new()).can_access(owner));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Principal {
    user_id: UserId,
    admin: bool,
}

impl Principal {
    /// A regular user.
    #[must_use]
    pub fn user(user_id: UserId) -> Self {
        Self {
            user_id,
            admin: false,
        }
    }

    /// An admin.
    #[must_use]
    pub fn admin(user_id: UserId) -> Self {
        Self {
            user_id,
            admin: true,
        }
    }

    /// The principal a stored user acts as.
    #[must_use]
    pub fn of(user: &User) -> Self {
        Self {
            user_id: user.id,
            admin: user.role == UserRole::Admin,
        }
    }

    /// The user's id.
    #[must_use]
    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    /// Whether the user is an admin.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether this principal may act on something `owner` owns: the owner
    /// or an admin.
    #[must_use]
    pub fn can_access(&self, owner: UserId) -> bool {
        self.admin || self.user_id == owner
    }

    /// [`AuthError::Forbidden`] unless an admin.
    ///
    /// # Errors
    ///
    /// Not an admin.
    ///
    /// ```
    /// use netherbrain_core::auth::Principal;
    /// assert!(Principal::user(netherbrain_core::UserId::new()).require_admin().is_err());
    /// ```
    pub fn require_admin(&self) -> Result<(), AuthError> {
        if self.admin {
            Ok(())
        } else {
            Err(AuthError::Forbidden("this action requires an admin".into()))
        }
    }
}

/// Why authentication or key management failed.
///
/// ```
/// use netherbrain_core::auth::AuthError;
/// assert_eq!(AuthError::InvalidToken.to_string(), "invalid, expired or revoked token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token matches no usable key.
    #[error("invalid, expired or revoked token")]
    InvalidToken,
    /// The key's user is deactivated.
    #[error("account is deactivated")]
    Deactivated,
    /// The operator token was used but no active admin exists.
    #[error("no active admin account exists")]
    NoActiveAdmin,
    /// The principal may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request is well-formed but unusable.
    #[error("{0}")]
    Invalid(String),
    /// No such key (of this user).
    #[error("api key `{0}` not found")]
    KeyNotFound(ApiKeyId),
    /// The operator token is too short to be a secret.
    #[error("NETHER_AUTH_TOKEN must be at least {MIN_OPERATOR_TOKEN_LEN} characters")]
    WeakOperatorToken,
    /// The OS random number generator failed.
    #[error(transparent)]
    Random(#[from] token::RandomError),
    /// A store call failed (unknown user → `NotFound`, revoked twice →
    /// `Conflict`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An authenticated caller.
///
/// ```
/// # use netherbrain_core::auth::Authenticated;
/// # fn f(a: Authenticated) {
/// let who = a.principal();
/// # let _ = who; }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Authenticated {
    /// Who.
    pub user: User,
    /// The API key used; `None` for the operator token.
    pub key_id: Option<ApiKeyId>,
    /// The user's password is temporary ([`User::must_change_password`])
    /// and the token is a login token ([`LOGIN_KEY_NAME`]): until the user
    /// chooses a new password it may only read who it is, change the
    /// password and log out. Other API keys and the operator token are
    /// never held back.
    pub password_change_required: bool,
}

impl Authenticated {
    /// The principal this caller acts as.
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal::of(&self.user)
    }
}

/// Resolves a bearer token to an active user: the operator token (when
/// configured) acts as the bootstrap admin; anything else must be a usable
/// API key of an active user. Unknown tokens cost the same hashing work as
/// known ones.
///
/// # Errors
///
/// [`AuthError::InvalidToken`], [`AuthError::Deactivated`],
/// [`AuthError::NoActiveAdmin`] or a store failure.
///
/// ```
/// use netherbrain_core::auth::{authenticate, AuthError};
/// use netherbrain_core::store::MemoryStore;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let e = authenticate(&store, "nb_unknown1_x", None).await.unwrap_err();
/// assert_eq!(e, AuthError::InvalidToken);
/// # });
/// ```
///
/// A login token of a user whose password is temporary is held back until
/// the password changes; the user's other keys are not:
///
/// ```
/// use netherbrain_core::auth::{self, IssueKey, Principal, LOGIN_KEY_NAME};
/// use netherbrain_core::store::prelude::*;
/// use netherbrain_core::store::{MemoryStore, NewUser, UserRole};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let new = NewUser::new("ada", UserRole::User)
///     .with_password_hash("$argon2id$…")
///     .with_temporary_password();
/// let ada = store.create_user(new).await.unwrap();
/// let who = Principal::of(&ada);
/// let login = auth::issue_api_key(&store, &who, IssueKey::new(LOGIN_KEY_NAME)).await.unwrap();
/// let laptop = auth::issue_api_key(&store, &who, IssueKey::new("laptop")).await.unwrap();
/// let found = auth::authenticate(&store, login.secret(), None).await.unwrap();
/// assert!(found.password_change_required);
/// let found = auth::authenticate(&store, laptop.secret(), None).await.unwrap();
/// assert!(!found.password_change_required);
/// # });
/// ```
pub async fn authenticate(
    store: &dyn StateStore,
    bearer: &str,
    operator_token: Option<&str>,
) -> Result<Authenticated, AuthError> {
    if let Some(operator) = operator_token
        && token::secrets_equal(bearer, operator)
    {
        return Ok(Authenticated {
            user: operator_admin(store).await?,
            key_id: None,
            password_change_required: false,
        });
    }
    let key = match store.get_api_key_by_prefix(&token::prefix_of(bearer)).await {
        Ok(key) => key,
        Err(StoreError::NotFound { .. }) => {
            // Spend the same hashing work as for a found key.
            let _ = token::verify(bearer, "");
            return Err(AuthError::InvalidToken);
        }
        Err(e) => return Err(e.into()),
    };
    if !token::verify(bearer, &key.hash) || !key.is_usable(Utc::now()) {
        return Err(AuthError::InvalidToken);
    }
    let user = match store.get_user(key.user_id).await {
        Ok(user) => user,
        Err(StoreError::NotFound { .. }) => return Err(AuthError::InvalidToken),
        Err(e) => return Err(e.into()),
    };
    if !user.active {
        return Err(AuthError::Deactivated);
    }
    Ok(Authenticated {
        password_change_required: user.must_change_password && key.name == LOGIN_KEY_NAME,
        user,
        key_id: Some(key.id),
    })
}

/// Revokes every usable login token (API keys named [`LOGIN_KEY_NAME`]) of
/// `user_id` except `keep` — what a password change or reset does, so that
/// whoever logged in with the old password is logged out. Other API keys
/// stay. Returns how many were revoked.
///
/// # Errors
///
/// Store failures.
///
/// ```
/// use netherbrain_core::auth::{self, IssueKey, Principal, LOGIN_KEY_NAME};
/// use netherbrain_core::store::{MemoryStore, NewUser, UserRole};
/// use netherbrain_core::store::prelude::*;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await.unwrap();
/// let who = Principal::of(&ada);
/// let login = auth::issue_api_key(&store, &who, IssueKey::new(LOGIN_KEY_NAME)).await.unwrap();
/// let laptop = auth::issue_api_key(&store, &who, IssueKey::new("laptop")).await.unwrap();
/// assert_eq!(auth::revoke_login_keys(&store, ada.id, None).await.unwrap(), 1);
/// assert!(auth::authenticate(&store, login.secret(), None).await.is_err());
/// assert!(auth::authenticate(&store, laptop.secret(), None).await.is_ok());
/// # });
/// ```
pub async fn revoke_login_keys(
    store: &dyn StateStore,
    user_id: UserId,
    keep: Option<ApiKeyId>,
) -> Result<usize, AuthError> {
    let now = Utc::now();
    let mut revoked = 0;
    for key in store.list_api_keys(user_id).await? {
        if key.name == LOGIN_KEY_NAME && key.is_usable(now) && Some(key.id) != keep {
            match store.revoke_api_key(key.id).await {
                Ok(_) => revoked += 1,
                // Revoked concurrently.
                Err(StoreError::Conflict(_) | StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(revoked)
}

/// The user the operator token and local commands act as: the active admin
/// named [`BOOTSTRAP_ADMIN_USERNAME`], else the first active admin by
/// username.
///
/// # Errors
///
/// [`AuthError::NoActiveAdmin`] or a store failure.
///
/// ```
/// use netherbrain_core::auth::{bootstrap_admin, operator_admin};
/// use netherbrain_core::store::MemoryStore;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// assert!(operator_admin(&store).await.is_err());
/// bootstrap_admin(&store, None).await.unwrap();
/// assert_eq!(operator_admin(&store).await.unwrap().username, "admin");
/// # });
/// ```
pub async fn operator_admin(store: &dyn StateStore) -> Result<User, AuthError> {
    match store.get_user_by_username(BOOTSTRAP_ADMIN_USERNAME).await {
        Ok(user) if user.active && user.role == UserRole::Admin => return Ok(user),
        Ok(_) | Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.active && u.role == UserRole::Admin)
        .ok_or(AuthError::NoActiveAdmin)
}

/// On a store without users, creates the admin account
/// ([`BOOTSTRAP_ADMIN_USERNAME`], role admin, no password) and, without an
/// operator token, an API key for it named `bootstrap`.
///
/// With an operator `token` (`NETHER_AUTH_TOKEN`) no key is created and
/// `Ok(None)` is returned: the operator token authenticates as the admin
/// while it is configured, and nothing derived from it is stored. Without
/// one a key is generated and returned **once** — the caller prints it; it
/// is stored only as a hash. When users exist nothing changes and `Ok(None)`
/// is returned.
///
/// # Errors
///
/// [`AuthError::WeakOperatorToken`] for an operator token shorter than
/// [`MIN_OPERATOR_TOKEN_LEN`]; store and RNG failures.
///
/// ```
/// use netherbrain_core::auth::bootstrap_admin;
/// use netherbrain_core::store::MemoryStore;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let token = bootstrap_admin(&store, None).await.unwrap();
/// assert!(token.is_some());
/// assert!(bootstrap_admin(&store, None).await.unwrap().is_none());
/// # });
/// ```
pub async fn bootstrap_admin(
    store: &dyn StateStore,
    operator_token: Option<&str>,
) -> Result<Option<String>, AuthError> {
    if let Some(t) = operator_token
        && t.chars().count() < MIN_OPERATOR_TOKEN_LEN
    {
        return Err(AuthError::WeakOperatorToken);
    }
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let admin = match store
        .create_user(NewUser::new(BOOTSTRAP_ADMIN_USERNAME, UserRole::Admin))
        .await
    {
        Ok(user) => user,
        // Another process bootstrapped at the same moment.
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // The operator token is never stored: it authenticates by comparison
    // with the configured value, so neither its hash nor a prefix derived
    // from it sits in the database or shows in `keys/list`.
    let generated = match operator_token {
        Some(_) => None,
        None => {
            let key = token::generate()?;
            store
                .create_api_key(NewApiKey::new(
                    admin.id,
                    "bootstrap",
                    key.prefix().to_owned(),
                    key.hash().to_owned(),
                ))
                .await?;
            Some(key)
        }
    };
    tracing::info!(
        user = BOOTSTRAP_ADMIN_USERNAME,
        "bootstrapped admin account"
    );
    Ok(generated.map(token::GeneratedKey::into_token))
}
