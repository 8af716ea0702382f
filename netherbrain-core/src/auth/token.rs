//! API key tokens: generation, lookup prefix, hashing.
//!
//! A generated key looks like `nb_<prefix>_<secret>`: an 8-character
//! lowercase alphanumeric prefix (stored in clear, unique, used to find the
//! key) and a 40-character alphanumeric secret (~238 bits) from the OS
//! CSPRNG. Only the SHA-256 of the whole token (hex) is stored; it is
//! compared in constant time. A fast hash is right here: the token is
//! high-entropy, so there is nothing to brute-force.
//!
//! Tokens of any other shape (an operator's `NETHER_AUTH_TOKEN`) get the
//! derived prefix `t-<first 12 hex of SHA-256>`, which a generated prefix
//! can never equal.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Characters of the visible prefix.
pub const PREFIX_LEN: usize = 8;
/// Characters of the secret part.
pub const SECRET_LEN: usize = 40;

const PREFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A freshly generated key: the bearer token (shown once), its lookup
/// prefix and the hash the store keeps. `Debug` shows only the prefix.
///
/// ```
/// let key = netherbrain_core::auth::token::generate().unwrap();
/// assert!(key.token().starts_with(&format!("nb_{}_", key.prefix())));
/// assert!(!format!("{key:?}").contains(key.token()));
/// ```
#[derive(Clone)]
pub struct GeneratedKey {
    token: String,
    prefix: String,
    hash: String,
}

impl GeneratedKey {
    /// The whole bearer token.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The lookup prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// SHA-256 of the token, lowercase hex.
    #[must_use]
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The token, consuming the key.
    #[must_use]
    pub fn into_token(self) -> String {
        self.token
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be generated: the OS random number generator failed.
///
/// ```
/// let e = netherbrain_core::auth::token::RandomError("unavailable".into());
/// assert_eq!(e.to_string(), "random number generator: unavailable");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("random number generator: {0}")]
pub struct RandomError(pub String);

/// Uniformly random characters of `alphabet` from the OS CSPRNG (rejection
/// sampling, so no modulo bias).
fn random_string(alphabet: &[u8], len: usize) -> Result<String, RandomError> {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let n = alphabet.len();
    let limit = 256 - (256 % n); // accept bytes below the largest multiple of n
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
        for &b in &buf {
            if usize::from(b) < limit {
                out.push(char::from(alphabet[usize::from(b) % n]));
                if out.len() == len {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Generates a new key.
///
/// # Errors
///
/// The OS random number generator failed.
///
/// ```
/// use netherbrain_core::auth::token;
/// let key = token::generate().unwrap();
/// assert_eq!(token::prefix_of(key.token()), key.prefix());
/// assert!(token::verify(key.token(), key.hash()));
/// ```
pub fn generate() -> Result<GeneratedKey, RandomError> {
    let prefix = random_string(PREFIX_ALPHABET, PREFIX_LEN)?;
    let secret = random_string(SECRET_ALPHABET, SECRET_LEN)?;
    let token = format!("nb_{prefix}_{secret}");
    let hash = hash(&token);
    Ok(GeneratedKey {
        token,
        prefix,
        hash,
    })
}

/// The lookup prefix of a token (see the module docs).
///
/// ```
/// use netherbrain_core::auth::token::prefix_of;
/// assert!(prefix_of("an-operator-token-of-any-shape").starts_with("t-"));
/// ```
#[must_use]
pub fn prefix_of(token: &str) -> String {
    if let Some(rest) = token.strip_prefix("nb_")
        && let Some((prefix, secret)) = rest.split_once('_')
        && prefix.len() == PREFIX_LEN
        && prefix.bytes().all(|b| PREFIX_ALPHABET.contains(&b))
        && !secret.is_empty()
    {
        return prefix.to_owned();
    }
    let digest = hash(token);
    format!("t-{}", &digest[..12])
}

/// SHA-256 of the token, lowercase hex.
///
/// ```
/// assert_eq!(netherbrain_core::auth::token::hash("x").len(), 64);
/// ```
#[must_use]
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` hashes to `stored_hash`, compared in constant time.
///
/// ```
/// use netherbrain_core::auth::token::{hash, verify};
/// assert!(verify("secret", &hash("secret")));
/// assert!(!verify("guess", &hash("secret")));
/// ```
#[must_use]
pub fn verify(token: &str, stored_hash: &str) -> bool {
    let computed = hash(token);
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// Constant-time equality of two secrets; neither content nor length leaks.
///
/// ```
/// use netherbrain_core::auth::token::secrets_equal;
/// assert!(secrets_equal("abc", "abc"));
/// assert!(!secrets_equal("abc", "abcd"));
/// ```
#[must_use]
pub fn secrets_equal(a: &str, b: &str) -> bool {
    // Compare digests so that the lengths of the secrets do not leak either.
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = generate().unwrap();
        assert_eq!(key.token.len(), 3 + PREFIX_LEN + 1 + SECRET_LEN);
        assert!(key.token.starts_with(&format!("nb_{}_", key.prefix)));
        assert_eq!(prefix_of(&key.token), key.prefix);
        assert!(verify(&key.token, &key.hash));
        assert!(!verify("nb_wrong", &key.hash));
        assert_ne!(generate().unwrap().token, key.token);
    }

    #[test]
    fn foreign_tokens_get_a_derived_prefix() {
        let p = prefix_of("my-operator-token-1234");
        assert!(p.starts_with("t-"));
        assert_eq!(p.len(), 14);
        assert_eq!(p, prefix_of("my-operator-token-1234"));
        assert!(prefix_of("nb_SHORT_x").starts_with("t-"));
    }

    #[test]
    fn secrets_compare() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }

    #[test]
    fn random_strings_use_the_alphabet() {
        let s = random_string(b"ab", 100).unwrap();
        assert_eq!(s.len(), 100);
        assert!(s.chars().all(|c| c == 'a' || c == 'b'));
    }
}
