//! Password hashing (Argon2id, PHC strings), off the async executor.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use crate::config::PasswordHashParams;
use crate::error::ApiError;

/// Shortest accepted password.
pub(crate) const MIN_PASSWORD_LEN: usize = 8;
/// Longest accepted password (bounds hashing work per request).
pub(crate) const MAX_PASSWORD_LEN: usize = 1024;

/// Checks the password policy.
pub(crate) fn check_policy(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(ApiError::invalid(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid(format!(
            "password must be at most {MAX_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

/// Checks the size of login credentials before any hashing: a valid
/// username (1–64 characters) and a password of 1 to
/// [`MAX_PASSWORD_LEN`] characters.
pub(crate) fn check_login_lengths(username: &str, password: &str) -> Result<(), ApiError> {
    netherbrain_core::store::validate::username(username)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN * 4 {
        return Err(ApiError::invalid(format!(
            "password must be 1-{MAX_PASSWORD_LEN} characters"
        )));
    }
    if password.chars().count() > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid(format!(
            "password must be 1-{MAX_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

fn hash_blocking(params: PasswordHashParams, password: &str) -> Result<String, String> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| format!("argon2 params: {e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("random salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("salt: {e}"))?;
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2: {e}"))
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        // Verification uses the algorithm and parameters in the PHC string;
        // the comparison inside argon2 is constant time.
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes a password into a PHC string.
pub(crate) async fn hash(params: PasswordHashParams, password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_blocking(params, &password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Verifies a password. With no stored hash (unknown user, token-only
/// account) a dummy hash is verified instead, so the answer takes as long
/// as for a real account and usernames cannot be probed by timing.
pub(crate) async fn verify(
    params: PasswordHashParams,
    password: String,
    phc: Option<String>,
) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_blocking(&password, &phc),
        None => {
            static DUMMY: OnceLock<Option<String>> = OnceLock::new();
            if let Some(dummy) = DUMMY.get_or_init(|| hash_blocking(params, "dummy-password").ok())
            {
                let _ = verify_blocking(&password, dummy);
            }
            false
        }
    })
    .await
    .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let p = PasswordHashParams::insecure_fast();
        let h = hash(p, "correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify(p, "correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify(p, "wrong".into(), Some(h)).await.unwrap());
        assert!(!verify(p, "x".into(), None).await.unwrap());
        assert!(
            !verify(p, "x".into(), Some("not a phc".into()))
                .await
                .unwrap()
        );
    }

    #[test]
    fn policy() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("long enough").is_ok());
    }
}
