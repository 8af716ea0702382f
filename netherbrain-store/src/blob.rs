//! Blob storage (attachments, images, large tool outputs) through the
//! `object_store` crate: a local directory by default, any S3-compatible
//! service (AWS, MinIO, Garage, R2, …) when configured.
//!
//! Local writes are atomic (a temporary file renamed into place), so a
//! reader never sees half a blob, even after a crash. Keys are validated:
//! relative, `/`-separated, no empty, `.` or `..` segments, no control
//! characters or backslashes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netherbrain_store::blob::BlobError> {
//! use netherbrain_store::blob::BlobStore;
//! let dir = tempfile::tempdir().unwrap();
//! let blobs = BlobStore::local(dir.path())?;
//! blobs.put("attachments/a.txt", bytes::Bytes::from_static(b"hello")).await?;
//! assert_eq!(&blobs.get("attachments/a.txt").await?[..], b"hello");
//! assert!(blobs.put("../escape", bytes::Bytes::new()).await.is_err());
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};

/// Default largest blob: 64 MiB.
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 64 * 1024 * 1024;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Environment variables read by [`S3Config::from_env`].
pub mod env {
    /// S3 endpoint URL (omit for AWS).
    pub const ENDPOINT: &str = "NETHER_S3_ENDPOINT";
    /// Bucket name; S3 is used when this is set.
    pub const BUCKET: &str = "NETHER_S3_BUCKET";
    /// Region (default `us-east-1`).
    pub const REGION: &str = "NETHER_S3_REGION";
    /// Access key id.
    pub const ACCESS_KEY_ID: &str = "NETHER_S3_ACCESS_KEY_ID";
    /// Secret access key.
    pub const SECRET_ACCESS_KEY: &str = "NETHER_S3_SECRET_ACCESS_KEY";
    /// `true` for path-style URLs (`endpoint/bucket/key`, MinIO and most
    /// self-hosted services); default: `true` when an endpoint is set.
    pub const PATH_STYLE: &str = "NETHER_S3_PATH_STYLE";
    /// `true` to allow plain HTTP to a non-loopback endpoint.
    pub const ALLOW_HTTP: &str = "NETHER_S3_ALLOW_HTTP";
}

/// What went wrong with a blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The key is not acceptable.
    #[error("invalid blob key: {0}")]
    InvalidKey(String),
    /// The blob is larger than allowed.
    #[error("blob of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// No blob under that key.
    #[error("blob `{0}` not found")]
    NotFound(String),
    /// The storage cannot be reached.
    #[error("blob storage unavailable: {0}")]
    Unavailable(String),
    /// The configuration is incomplete or wrong.
    #[error("blob storage configuration: {0}")]
    Config(String),
    /// Any other storage failure.
    #[error("blob storage error: {0}")]
    Backend(String),
}

/// A stored blob's description.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlobMeta {
    /// Its key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last written.
    pub last_modified: DateTime<Utc>,
    /// Entity tag, when the storage has one.
    pub etag: Option<String>,
}

/// Settings for an S3-compatible service.
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000`; `None` for AWS.
    pub endpoint: Option<String>,
    /// Bucket.
    pub bucket: String,
    /// Region.
    pub region: String,
    /// Access key id (`None`: the provider chain, e.g. instance roles).
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Path-style (`endpoint/bucket/key`) rather than virtual-hosted-style
    /// (`bucket.endpoint/key`) requests.
    pub path_style: bool,
    /// Allow plain HTTP. Always allowed for loopback endpoints.
    pub allow_http: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print credentials.
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl S3Config {
    /// A configuration for a bucket, region `us-east-1`, AWS endpoint.
    #[must_use]
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            region: "us-east-1".into(),
            ..Self::default()
        }
    }

    /// Sets the endpoint (and path-style requests, which self-hosted
    /// services expect).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self.path_style = true;
        self
    }

    /// Sets static credentials.
    #[must_use]
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.access_key_id = Some(access_key_id.into());
        self.secret_access_key = Some(secret_access_key.into());
        self
    }

    /// Reads `NETHER_S3_*` (see [`env`](mod@env)); `Ok(None)` when
    /// `NETHER_S3_BUCKET` is unset.
    ///
    /// # Errors
    ///
    /// [`BlobError::Config`] for a malformed boolean.
    pub fn from_env() -> Result<Option<Self>, BlobError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, BlobError> {
        let Some(bucket) = get(env::BUCKET) else {
            return Ok(None);
        };
        let flag = |name: &str| -> Result<Option<bool>, BlobError> {
            get(name)
                .map(|v| match v.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => Ok(true),
                    "0" | "false" | "no" | "off" => Ok(false),
                    _ => Err(BlobError::Config(format!("{name} must be true or false"))),
                })
                .transpose()
        };
        let endpoint = get(env::ENDPOINT);
        Ok(Some(Self {
            path_style: flag(env::PATH_STYLE)?.unwrap_or(endpoint.is_some()),
            allow_http: flag(env::ALLOW_HTTP)?.unwrap_or(false),
            endpoint,
            bucket,
            region: get(env::REGION).unwrap_or_else(|| "us-east-1".into()),
            access_key_id: get(env::ACCESS_KEY_ID),
            secret_access_key: get(env::SECRET_ACCESS_KEY),
        }))
    }
}

/// Whether an endpoint URL points at this machine.
fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Blob storage: `put`, `get`, `head`, `delete` by key, with a size limit.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    max_size: u64,
    description: String,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("storage", &self.description)
            .field("max_size", &self.max_size)
            .finish()
    }
}

impl BlobStore {
    /// Blobs as files under `dir` (created if missing).
    ///
    /// # Errors
    ///
    /// [`BlobError::Unavailable`] when the directory cannot be created.
    pub fn local(dir: impl AsRef<Path>) -> Result<Self, BlobError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| BlobError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| BlobError::Unavailable(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(Self {
            inner: Arc::new(fs),
            max_size: DEFAULT_MAX_BLOB_SIZE,
            description: format!("local:{}", dir.display()),
        })
    }

    /// Blobs in an S3-compatible bucket. Requests time out after 30 s and
    /// are retried briefly, so an unreachable service is reported as
    /// [`BlobError::Unavailable`] within seconds.
    ///
    /// # Errors
    ///
    /// [`BlobError::Config`] for an incomplete configuration or plain HTTP
    /// to a non-loopback endpoint without `allow_http`.
    pub fn s3(config: &S3Config) -> Result<Self, BlobError> {
        if config.bucket.is_empty() {
            return Err(BlobError::Config("bucket must be set".into()));
        }
        if config.access_key_id.is_some() != config.secret_access_key.is_some() {
            return Err(BlobError::Config(
                "set both the access key id and the secret access key, or neither".into(),
            ));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(!config.path_style);
        let mut allow_http = config.allow_http;
        if let Some(endpoint) = &config.endpoint {
            if endpoint.starts_with("http://") && !allow_http {
                if is_loopback(endpoint) {
                    allow_http = true;
                } else {
                    return Err(BlobError::Config(format!(
                        "plain HTTP to {endpoint} needs {} = true",
                        env::ALLOW_HTTP
                    )));
                }
            }
            builder = builder.with_endpoint(endpoint);
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        };
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(30))
            .with_allow_http(allow_http);
        let s3 = builder
            .with_allow_http(allow_http)
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|e| BlobError::Config(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(s3),
            max_size: DEFAULT_MAX_BLOB_SIZE,
            description: format!(
                "s3:{}/{}",
                config.endpoint.as_deref().unwrap_or("aws"),
                config.bucket
            ),
        })
    }

    /// S3 when `NETHER_S3_BUCKET` is set (see [`S3Config::from_env`]),
    /// otherwise files under `<data_dir>/blobs`.
    ///
    /// # Errors
    ///
    /// As [`local`](Self::local) and [`s3`](Self::s3).
    pub fn from_env(data_dir: impl AsRef<Path>) -> Result<Self, BlobError> {
        match S3Config::from_env()? {
            Some(config) => Self::s3(&config),
            None => Self::local(default_blob_dir(data_dir.as_ref())),
        }
    }

    /// Sets the largest blob [`put`](Self::put) accepts and
    /// [`get`](Self::get) returns.
    #[must_use]
    pub fn with_max_size(mut self, max: u64) -> Self {
        self.max_size = max;
        self
    }

    /// The size limit.
    #[must_use]
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Stores a blob, replacing any under the same key.
    ///
    /// # Errors
    ///
    /// [`BlobError::InvalidKey`], [`BlobError::TooLarge`],
    /// [`BlobError::Unavailable`], [`BlobError::Backend`].
    pub async fn put(&self, key: &str, data: Bytes) -> Result<BlobMeta, BlobError> {
        let path = object_path(key)?;
        let size = data.len() as u64;
        if size > self.max_size {
            return Err(BlobError::TooLarge {
                size,
                max: self.max_size,
            });
        }
        let result = self
            .inner
            .put(&path, PutPayload::from_bytes(data))
            .await
            .map_err(|e| map_err(key, e))?;
        Ok(BlobMeta {
            key: key.to_owned(),
            size,
            last_modified: Utc::now(),
            etag: result.e_tag,
        })
    }

    /// Reads a whole blob.
    ///
    /// # Errors
    ///
    /// [`BlobError::NotFound`], [`BlobError::TooLarge`] (stored by someone
    /// else with a larger limit), and as [`put`](Self::put).
    pub async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        let path = object_path(key)?;
        let result = self.inner.get(&path).await.map_err(|e| map_err(key, e))?;
        if result.meta.size > self.max_size {
            return Err(BlobError::TooLarge {
                size: result.meta.size,
                max: self.max_size,
            });
        }
        result.bytes().await.map_err(|e| map_err(key, e))
    }

    /// Describes a blob without reading it.
    ///
    /// # Errors
    ///
    /// [`BlobError::NotFound`], and as [`put`](Self::put).
    pub async fn head(&self, key: &str) -> Result<BlobMeta, BlobError> {
        let path = object_path(key)?;
        let meta = self.inner.head(&path).await.map_err(|e| map_err(key, e))?;
        Ok(BlobMeta {
            key: key.to_owned(),
            size: meta.size,
            last_modified: meta.last_modified,
            etag: meta.e_tag,
        })
    }

    /// Deletes a blob; deleting a missing blob succeeds.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = object_path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(key, e)),
        }
    }
}

/// `<data_dir>/blobs`.
#[must_use]
pub fn default_blob_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("blobs")
}

/// Validates a key and converts it to an object path.
fn object_path(key: &str) -> Result<ObjectPath, BlobError> {
    let invalid = |why: &str| Err(BlobError::InvalidKey(why.to_owned()));
    if key.is_empty() {
        return invalid("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return invalid("must be relative");
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return invalid("control characters and backslashes are not allowed");
    }
    for segment in key.split('/') {
        match segment {
            "" => return invalid("empty path segment"),
            "." | ".." => return invalid("`.` and `..` segments are not allowed"),
            // LocalFileSystem's temporary files end in `#<n>`.
            s if s.contains('#') => return invalid("`#` is not allowed"),
            _ => {}
        }
    }
    ObjectPath::parse(key).map_err(|e| BlobError::InvalidKey(e.to_string()))
}

/// Maps an `object_store` error.
fn map_err(key: &str, err: object_store::Error) -> BlobError {
    use object_store::Error as E;
    match err {
        E::NotFound { .. } => BlobError::NotFound(key.to_owned()),
        E::InvalidPath { source } => BlobError::InvalidKey(source.to_string()),
        E::Generic { store, source } => {
            let text = error_chain(source.as_ref());
            let lower = text.to_ascii_lowercase();
            let unreachable = [
                "connect",
                "connection refused",
                "timed out",
                "timeout",
                "dns",
                "name or service not known",
                "unreachable",
                "reset by peer",
                "broken pipe",
            ];
            let io_blocked = lower.contains("permission denied") || lower.contains("read-only");
            if io_blocked || unreachable.iter().any(|w| lower.contains(w)) {
                BlobError::Unavailable(format!("{store}: {text}"))
            } else {
                BlobError::Backend(format!("{store}: {text}"))
            }
        }
        other => BlobError::Backend(other.to_string()),
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        for bad in [
            "", "/abs", "a//b", "a/../b", "..", ".", "a/./b", "a\\b", "a\nb", "x#1",
        ] {
            assert!(object_path(bad).is_err(), "{bad:?}");
        }
        assert!(object_path(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        for good in ["a", "a/b/c.txt", "sessions/019/img 1.png", "ünï/cödé"] {
            assert!(object_path(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn s3_config_from_env_lookup() {
        let vars = [
            (env::BUCKET, "nb"),
            (env::ENDPOINT, "http://127.0.0.1:9000"),
            (env::ACCESS_KEY_ID, "id"),
            (env::SECRET_ACCESS_KEY, "very-secret"),
        ];
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let config = S3Config::from_lookup(get).unwrap().unwrap();
        assert!(config.path_style, "path style by default with an endpoint");
        assert_eq!(config.region, "us-east-1");
        assert!(!format!("{config:?}").contains("very-secret"));
        assert!(S3Config::from_lookup(|_| None).unwrap().is_none());
        let bad = S3Config::from_lookup(|n| match n {
            env::BUCKET => Some("b".into()),
            env::PATH_STYLE => Some("maybe".into()),
            _ => None,
        });
        assert!(matches!(bad, Err(BlobError::Config(_))));
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:9000"));
        assert!(is_loopback("http://localhost:9000/"));
        assert!(is_loopback("http://[::1]:9000"));
        assert!(!is_loopback("http://minio.lan:9000"));
        assert!(!is_loopback("http://10.0.0.5"));
    }

    #[test]
    fn plain_http_needs_consent_off_loopback() {
        let remote = S3Config::new("b").with_endpoint("http://minio.lan:9000");
        assert!(matches!(BlobStore::s3(&remote), Err(BlobError::Config(_))));
        let local = S3Config::new("b").with_endpoint("http://127.0.0.1:9000");
        assert!(BlobStore::s3(&local).is_ok());
    }
}
