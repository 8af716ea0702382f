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

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Characters of the visible prefix.
pub(crate) const PREFIX_LEN: usize = 8;
/// Characters of the secret part.
pub(crate) const SECRET_LEN: usize = 40;

const PREFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A freshly generated key.
#[derive(Clone)]
pub(crate) struct GeneratedKey {
    /// The whole bearer token (shown once).
    pub(crate) token: String,
    /// The lookup prefix.
    pub(crate) prefix: String,
    /// SHA-256 of the token, hex.
    pub(crate) hash: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Uniformly random characters of `alphabet` from the OS CSPRNG (rejection
/// sampling, so no modulo bias).
pub(crate) fn random_string(alphabet: &[u8], len: usize) -> Result<String, getrandom::Error> {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let n = alphabet.len();
    let limit = 256 - (256 % n); // accept bytes below the largest multiple of n
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)?;
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
pub(crate) fn generate() -> Result<GeneratedKey, getrandom::Error> {
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
pub(crate) fn prefix_of(token: &str) -> String {
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
pub(crate) fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` hashes to `stored_hash`, compared in constant time.
pub(crate) fn verify(token: &str, stored_hash: &str) -> bool {
    let computed = hash(token);
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// Constant-time equality of two secrets (length may leak, content not).
pub(crate) fn secrets_equal(a: &str, b: &str) -> bool {
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
