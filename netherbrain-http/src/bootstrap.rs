//! First-start bootstrap: the admin account and its token.

use netherbrain_core::store::{NewApiKey, NewUser, StateStore, StoreError, UserRole};

use crate::auth::token;

/// Username of the admin created by [`bootstrap_admin`].
pub const BOOTSTRAP_ADMIN_USERNAME: &str = "admin";

/// Shortest operator token accepted.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 16;

/// Why bootstrap failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operator token is too short to be a secret.
    #[error("NETHER_AUTH_TOKEN must be at least {MIN_OPERATOR_TOKEN_LEN} characters")]
    WeakToken,
    /// The OS random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
}

/// On a store without users, creates the admin account
/// ([`BOOTSTRAP_ADMIN_USERNAME`], role admin, no password) and an API key
/// for it named `bootstrap`.
///
/// With an operator `token` (`NETHER_AUTH_TOKEN`) that token becomes the
/// key and `Ok(None)` is returned (the operator knows it). Without one a
/// key is generated and returned **once** — the caller prints it; it is
/// stored only as a hash. When users exist nothing changes and `Ok(None)` is
/// returned. Pass the same token to [`crate::ServerConfig::with_auth_token`]
/// so it also works on later starts whatever the database holds.
///
/// # Errors
///
/// [`BootstrapError::WeakToken`] for an operator token shorter than
/// [`MIN_OPERATOR_TOKEN_LEN`]; store and RNG failures.
pub async fn bootstrap_admin(
    store: &dyn StateStore,
    token: Option<&str>,
) -> Result<Option<String>, BootstrapError> {
    if let Some(t) = token
        && t.chars().count() < MIN_OPERATOR_TOKEN_LEN
    {
        return Err(BootstrapError::WeakToken);
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
    let (secret, prefix, hash, generated) = match token {
        Some(t) => (t.to_owned(), token::prefix_of(t), token::hash(t), false),
        None => {
            let key = token::generate().map_err(|e| BootstrapError::Random(e.to_string()))?;
            (key.token, key.prefix, key.hash, true)
        }
    };
    store
        .create_api_key(NewApiKey::new(admin.id, "bootstrap", prefix, hash))
        .await?;
    tracing::info!(
        user = BOOTSTRAP_ADMIN_USERNAME,
        "bootstrapped admin account"
    );
    Ok(generated.then_some(secret))
}
