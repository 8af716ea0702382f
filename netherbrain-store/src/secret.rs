//! The secret key that seals API keys stored in the database: 32 random
//! bytes in a key file of the data directory (`secret.key`, hex, mode
//! `0600`), created on first need. [`SecretKey`] implements core's
//! [`SecretCipher`] with XChaCha20-Poly1305 (a random 24-byte nonce per
//! value; the profile name is bound as associated data).
//!
//! The key never appears in `Debug` output or logs. Back it up with the
//! database: without it the stored API keys cannot be decrypted.
//!
//! ```
//! use netherbrain_core::conversation::providers::SecretCipher;
//! use netherbrain_store::secret::SecretKey;
//! let dir = tempfile::tempdir().unwrap();
//! let key = SecretKey::load_or_create(dir.path()).unwrap();
//! let sealed = key.seal("openrouter", "sk-or-secret").unwrap();
//! assert!(!String::from_utf8_lossy(&sealed.ciphertext).contains("sk-or-secret"));
//! assert_eq!(key.open("openrouter", &sealed).unwrap(), "sk-or-secret");
//! assert!(key.open("another-row", &sealed).is_err());
//! // The same file gives the same key.
//! let again = SecretKey::load_or_create(dir.path()).unwrap();
//! assert_eq!(again.open("openrouter", &sealed).unwrap(), "sk-or-secret");
//! assert!(!format!("{key:?}").contains(&std::fs::read_to_string(dir.path().join("secret.key")).unwrap().trim()));
//! ```

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use netherbrain_core::conversation::providers::{CipherError, SecretCipher};
use netherbrain_core::store::SealedSecret;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secret.key";

/// Why the key file could not be used.
///
/// ```
/// use netherbrain_store::secret::SecretKeyError;
/// let e = SecretKeyError::Malformed { path: "/data/secret.key".into() };
/// assert!(e.to_string().contains("/data/secret.key"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretKeyError {
    /// Reading or creating the file failed.
    #[error("secret key file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits (32 bytes).
    #[error("secret key file {} must hold 64 hex digits (a 32-byte key); restore it from your backup or, if no API key was stored, remove it", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// A 32-byte key for sealing secrets. `Debug` shows only where it is from.
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    path: PathBuf,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("path", &self.path)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SecretKey {
    /// Reads `secret.key` in `data_dir`, creating it (with mode `0600`, and
    /// the directory) when missing.
    ///
    /// # Errors
    ///
    /// The file cannot be read or created, or does not hold a key.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretKeyError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| SecretKeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, path.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt as _;
                    options.mode(0o600);
                }
                match options.open(&path) {
                    Ok(mut file) => {
                        file.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                            .and_then(|()| file.sync_all())
                            .map_err(io)?;
                        tracing::info!(path = %path.display(), "created the secret key file");
                        Ok(Self {
                            cipher: XChaCha20Poly1305::new(&key),
                            path,
                        })
                    }
                    // Another process created it meanwhile: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(&path).map_err(io)?;
                        Self::parse(&text, path.clone())
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    fn parse(text: &str, path: PathBuf) -> Result<Self, SecretKeyError> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| SecretKeyError::Malformed { path: path.clone() })?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| SecretKeyError::Malformed { path: path.clone() })?;
        Ok(Self { cipher, path })
    }

    /// Reads `secret.key` in `data_dir`; `None` when there is none.
    ///
    /// # Errors
    ///
    /// The file cannot be read or does not hold a key.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, SecretKeyError> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SecretKeyError::Io { path, source }),
        }
    }

    /// Where the key is kept.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The data directory's key file as a [`SecretCipher`], read on first
/// use: sealing creates the file when it is missing; opening never does
/// (a missing file is an error naming it, since a new key could not open
/// what the old one sealed).
///
/// ```
/// use netherbrain_core::conversation::providers::SecretCipher;
/// use netherbrain_store::secret::KeyFile;
/// let dir = tempfile::tempdir().unwrap();
/// let file = KeyFile::new(dir.path());
/// assert!(!dir.path().join("secret.key").exists(), "created on first need");
/// let sealed = file.seal("p", "k").unwrap();
/// assert!(dir.path().join("secret.key").exists());
/// assert_eq!(file.open("p", &sealed).unwrap(), "k");
/// let other = tempfile::tempdir().unwrap();
/// let err = KeyFile::new(other.path()).open("p", &sealed).unwrap_err();
/// assert!(err.to_string().contains("secret.key"));
/// ```
#[derive(Debug)]
pub struct KeyFile {
    dir: PathBuf,
    key: std::sync::OnceLock<SecretKey>,
}

impl KeyFile {
    /// The key file of `data_dir` (not read yet).
    #[must_use]
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.to_owned(),
            key: std::sync::OnceLock::new(),
        }
    }

    fn loaded(&self, create: bool) -> Result<&SecretKey, String> {
        if let Some(key) = self.key.get() {
            return Ok(key);
        }
        let key = if create {
            SecretKey::load_or_create(&self.dir).map_err(|e| e.to_string())?
        } else {
            SecretKey::load(&self.dir)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!(
                        "the key file {} is missing; restore it from the backup, or enter the API key again",
                        self.dir.join(KEY_FILE).display()
                    )
                })?
        };
        Ok(self.key.get_or_init(|| key))
    }
}

impl SecretCipher for KeyFile {
    fn seal(&self, context: &str, plaintext: &str) -> Result<SealedSecret, CipherError> {
        self.loaded(true)
            .map_err(CipherError::Seal)?
            .seal(context, plaintext)
    }

    fn open(&self, context: &str, sealed: &SealedSecret) -> Result<String, CipherError> {
        self.loaded(false)
            .map_err(CipherError::Open)?
            .open(context, sealed)
    }
}

impl SecretCipher for SecretKey {
    fn seal(&self, context: &str, plaintext: &str) -> Result<SealedSecret, CipherError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Seal("encryption failed".into()))?;
        Ok(SealedSecret::new(nonce.to_vec(), ciphertext))
    }

    fn open(&self, context: &str, sealed: &SealedSecret) -> Result<String, CipherError> {
        if sealed.nonce.len() != 24 {
            return Err(CipherError::Open("the stored nonce is malformed".into()));
        }
        let nonce = XNonce::from_slice(&sealed.nonce);
        let plain = self
            .cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed.ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                CipherError::Open(format!(
                    "it was encrypted with another key than {} (restore the key file from the backup, or enter the API key again)",
                    self.path.display()
                ))
            })?;
        String::from_utf8(plain).map_err(|_| CipherError::Open("the stored key is not text".into()))
    }
}
