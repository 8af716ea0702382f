//! Blob storage: local directory behaviour, an unreachable S3 endpoint and,
//! with `NETHER_TEST_S3_ENDPOINT`, a real S3-compatible server.

use std::time::{Duration, Instant};

use bytes::Bytes;
use netherbrain_store::blob::{BlobError, BlobStore, S3Config};

#[tokio::test]
async fn local_put_get_head_delete() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::local(dir.path().join("blobs")).unwrap();
    let meta = blobs
        .put("a/b/hello.txt", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(meta.size, 5);
    assert_eq!(&blobs.get("a/b/hello.txt").await.unwrap()[..], b"hello");
    assert_eq!(blobs.head("a/b/hello.txt").await.unwrap().size, 5);
    assert!(dir.path().join("blobs/a/b/hello.txt").is_file());
    // Replace.
    blobs
        .put("a/b/hello.txt", Bytes::from_static(b"bye"))
        .await
        .unwrap();
    assert_eq!(&blobs.get("a/b/hello.txt").await.unwrap()[..], b"bye");
    blobs.delete("a/b/hello.txt").await.unwrap();
    assert_eq!(
        blobs.get("a/b/hello.txt").await,
        Err(BlobError::NotFound("a/b/hello.txt".into()))
    );
    assert!(matches!(
        blobs.head("a/b/hello.txt").await,
        Err(BlobError::NotFound(_))
    ));
    blobs.delete("a/b/hello.txt").await.unwrap();
    // No temporary files are left behind.
    let leftovers: Vec<_> = walk(&dir.path().join("blobs"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn size_limit_and_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::local(dir.path()).unwrap().with_max_size(4);
    assert_eq!(
        blobs.put("big", Bytes::from_static(b"12345")).await,
        Err(BlobError::TooLarge { size: 5, max: 4 })
    );
    assert!(!dir.path().join("big").exists());
    blobs.put("ok", Bytes::from_static(b"1234")).await.unwrap();
    // A larger blob written by another writer is refused on read.
    let small = BlobStore::local(dir.path()).unwrap().with_max_size(2);
    assert!(matches!(
        small.get("ok").await,
        Err(BlobError::TooLarge { size: 4, max: 2 })
    ));
    for key in ["../escape", "a/../../b", "/etc/passwd", "", "a//b"] {
        assert!(
            matches!(
                blobs.put(key, Bytes::new()).await,
                Err(BlobError::InvalidKey(_))
            ),
            "{key}"
        );
        assert!(
            matches!(blobs.get(key).await, Err(BlobError::InvalidKey(_))),
            "{key}"
        );
    }
    assert!(!dir.path().parent().unwrap().join("escape").exists());
}

#[tokio::test]
async fn concurrent_writers_never_expose_partial_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::local(dir.path()).unwrap();
    let a = Bytes::from(vec![b'a'; 256 * 1024]);
    let b = Bytes::from(vec![b'b'; 256 * 1024]);
    blobs.put("k", a.clone()).await.unwrap();
    let writer = {
        let blobs = blobs.clone();
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..50 {
                blobs
                    .put("k", if i % 2 == 0 { b.clone() } else { a.clone() })
                    .await
                    .unwrap();
            }
        })
    };
    for _ in 0..50 {
        let got = blobs.get("k").await.unwrap();
        assert!(got == a || got == b, "a reader saw a partial blob");
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn unreachable_s3_is_unavailable_quickly() {
    let config = S3Config::new("bucket")
        .with_endpoint("http://127.0.0.1:1")
        .with_credentials("id", "secret");
    let blobs = BlobStore::s3(&config).unwrap();
    let started = Instant::now();
    let err = blobs.put("k", Bytes::from_static(b"x")).await.unwrap_err();
    assert!(matches!(err, BlobError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("secret"));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        blobs.get("k").await,
        Err(BlobError::Unavailable(_))
    ));
}

// ---- a real S3-compatible server -------------------------------------------
//
// `scripts/test` starts `moto_server` on loopback and exports
// `NETHER_TEST_S3_ENDPOINT`. Without it these tests are skipped locally, but
// fail when `CI` is set, so CI cannot skip them silently. Any S3-compatible
// server works (MinIO, Garage, …): `NETHER_TEST_S3_BUCKET` (default: a fresh
// `nb-test-<uuid>` bucket per test, created with a plain PUT), and
// `NETHER_TEST_S3_ACCESS_KEY_ID` / `NETHER_TEST_S3_SECRET_ACCESS_KEY`
// (default `test` / `test`, which moto accepts).

/// Set in the child process of [`s3_from_env_uses_the_configured_bucket`].
const FROM_ENV_CHILD: &str = "NETHER_TEST_S3_FROM_ENV_CHILD";

/// A reachable S3 server and a bucket on it.
struct S3Server {
    endpoint: String,
    bucket: String,
    /// Created by this test run (anonymously listable), not given by
    /// `NETHER_TEST_S3_BUCKET`.
    created: bool,
    id: String,
    secret: String,
}

impl S3Server {
    fn config(&self) -> S3Config {
        S3Config::new(&self.bucket)
            .with_endpoint(&self.endpoint)
            .with_credentials(&self.id, &self.secret)
    }

    fn store(&self) -> BlobStore {
        BlobStore::s3(&self.config()).expect("S3 configuration")
    }

    /// An anonymous path-style listing of the bucket under `prefix`.
    fn list_url(&self, prefix: &str) -> String {
        format!(
            "{}/{}?list-type=2&prefix={prefix}",
            self.endpoint.trim_end_matches('/'),
            self.bucket
        )
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The test server, or `None` (skip) when none is configured outside CI.
async fn s3_server(test: &str) -> Option<S3Server> {
    let Some(endpoint) = std::env::var("NETHER_TEST_S3_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        assert!(
            !in_ci(),
            "{test}: NETHER_TEST_S3_ENDPOINT is not set but CI is: the S3 blob tests must run in \
             CI (scripts/test starts moto_server and sets it)"
        );
        eprintln!("{test}: skipped, NETHER_TEST_S3_ENDPOINT is not set");
        return None;
    };
    let given = std::env::var("NETHER_TEST_S3_BUCKET")
        .ok()
        .filter(|v| !v.is_empty());
    let server = S3Server {
        endpoint,
        created: given.is_none(),
        bucket: given.unwrap_or_else(|| format!("nb-test-{}", uuid::Uuid::new_v4().simple())),
        id: std::env::var("NETHER_TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into()),
        secret: std::env::var("NETHER_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into()),
    };
    // Create the bucket (object_store cannot), listable anonymously so tests
    // can look at it without signing. moto accepts unsigned requests; 409
    // means it exists already.
    let bucket_url = format!(
        "{}/{}",
        server.endpoint.trim_end_matches('/'),
        server.bucket
    );
    let response = reqwest::Client::new()
        .put(&bucket_url)
        .header("x-amz-acl", "public-read")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{test}: S3 server at {bucket_url} unreachable: {e}"));
    let status = response.status();
    assert!(
        status.is_success() || status == reqwest::StatusCode::CONFLICT,
        "{test}: creating bucket {bucket_url}: {status} {}",
        response.text().await.unwrap_or_default()
    );
    Some(server)
}

#[tokio::test]
async fn s3_put_get_head_delete() {
    let Some(server) = s3_server("s3_put_get_head_delete").await else {
        return;
    };
    let blobs = server.store();
    let prefix = format!("tests/{}", uuid::Uuid::new_v4());
    for key in [
        format!("{prefix}/hello.txt"),
        format!("{prefix}/deeper/sub dir/ünï cödé.bin"),
    ] {
        let meta = blobs
            .put(&key, Bytes::from_static(b"hello s3"))
            .await
            .unwrap();
        assert_eq!(meta.key, key);
        assert_eq!(meta.size, 8);
        assert_eq!(&blobs.get(&key).await.unwrap()[..], b"hello s3");
        let head = blobs.head(&key).await.unwrap();
        assert_eq!(head.size, 8);
        assert!(head.etag.is_some(), "S3 returns an ETag");
        blobs.delete(&key).await.unwrap();
        assert_eq!(blobs.get(&key).await, Err(BlobError::NotFound(key.clone())));
        assert!(matches!(
            blobs.head(&key).await,
            Err(BlobError::NotFound(_))
        ));
        // Deleting a missing blob succeeds.
        blobs.delete(&key).await.unwrap();
    }
    // An empty blob.
    let empty = format!("{prefix}/empty");
    blobs.put(&empty, Bytes::new()).await.unwrap();
    assert!(blobs.get(&empty).await.unwrap().is_empty());
    assert_eq!(blobs.head(&empty).await.unwrap().size, 0);
    // Bad keys never reach the server.
    for key in ["../escape", "/abs", "a//b", ""] {
        assert!(
            matches!(
                blobs.put(key, Bytes::new()).await,
                Err(BlobError::InvalidKey(_))
            ),
            "{key}"
        );
    }
}

#[tokio::test]
async fn s3_size_limit() {
    let Some(server) = s3_server("s3_size_limit").await else {
        return;
    };
    let blobs = server.store().with_max_size(1024);
    let key = format!("tests/{}/limit", uuid::Uuid::new_v4());
    assert_eq!(
        blobs.put(&key, Bytes::from(vec![0u8; 1025])).await,
        Err(BlobError::TooLarge {
            size: 1025,
            max: 1024
        })
    );
    // Nothing was stored.
    assert!(matches!(
        blobs.head(&key).await,
        Err(BlobError::NotFound(_))
    ));
    blobs.put(&key, Bytes::from(vec![7u8; 1024])).await.unwrap();
    assert_eq!(blobs.get(&key).await.unwrap().len(), 1024);
    // Written under a larger limit, refused by a smaller one on read.
    let small = server.store().with_max_size(100);
    assert_eq!(
        small.get(&key).await,
        Err(BlobError::TooLarge {
            size: 1024,
            max: 100
        })
    );
    assert_eq!(small.head(&key).await.unwrap().size, 1024);
    blobs.delete(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_overwrite_is_atomic_under_concurrent_readers() {
    let Some(server) = s3_server("s3_overwrite_is_atomic_under_concurrent_readers").await else {
        return;
    };
    let blobs = server.store();
    let key = format!("tests/{}/replaced", uuid::Uuid::new_v4());
    let a = Bytes::from(vec![b'a'; 256 * 1024]);
    let b = Bytes::from(vec![b'b'; 300 * 1024]);
    blobs.put(&key, a.clone()).await.unwrap();
    let writer = {
        let (blobs, key, a, b) = (blobs.clone(), key.clone(), a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..20 {
                let data = if i % 2 == 0 { b.clone() } else { a.clone() };
                let meta = blobs.put(&key, data.clone()).await.unwrap();
                assert_eq!(meta.size, data.len() as u64);
            }
        })
    };
    let mut seen = [false, false];
    for _ in 0..20 {
        let got = blobs.get(&key).await.unwrap();
        assert!(got == a || got == b, "a reader saw a partial blob");
        seen[usize::from(got == b)] = true;
    }
    writer.await.unwrap();
    // The last write (i = 19, `a`) wins and head agrees with get.
    assert_eq!(blobs.get(&key).await.unwrap(), a);
    assert_eq!(blobs.head(&key).await.unwrap().size, a.len() as u64);
    assert!(seen[0] || seen[1]);
    blobs.delete(&key).await.unwrap();
}

#[tokio::test]
async fn s3_path_style_requests_address_the_bucket_in_the_path() {
    let Some(server) = s3_server("s3_path_style_requests_address_the_bucket_in_the_path").await
    else {
        return;
    };
    let config = server.config();
    assert!(config.path_style, "with_endpoint selects path-style");
    let blobs = BlobStore::s3(&config).unwrap();
    let key = format!("tests/{}/path-style.txt", uuid::Uuid::new_v4());
    blobs
        .put(&key, Bytes::from_static(b"in the bucket"))
        .await
        .unwrap();
    // The object is at `<endpoint>/<bucket>/<key>`, i.e. in the bucket we
    // created, not in a bucket named after the first key segment.
    if server.created {
        let url = server.list_url(&key);
        let response = reqwest::get(&url).await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        let listing = response.text().await.unwrap();
        assert!(
            listing.contains(&format!("<Key>{key}</Key>")) && listing.contains("<Size>13</Size>"),
            "{listing}"
        );
    }
    blobs.delete(&key).await.unwrap();
    if server.created {
        let listing = reqwest::get(server.list_url(&key))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!listing.contains("<Key>"), "{listing}");
    }
}

/// `BlobStore::from_env`, as the server and CLI build it, reaches the
/// bucket named by `NETHER_S3_*`. Setting variables in this process would
/// race with other tests, so the check runs in a child test process.
#[tokio::test]
async fn s3_from_env_uses_the_configured_bucket() {
    let Some(server) = s3_server("s3_from_env_uses_the_configured_bucket").await else {
        return;
    };
    let key = format!("tests/{}/from-env.txt", uuid::Uuid::new_v4());
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "s3_from_env_child", "--ignored", "--nocapture"])
        .env(FROM_ENV_CHILD, &key)
        .env("NETHER_S3_ENDPOINT", &server.endpoint)
        .env("NETHER_S3_BUCKET", &server.bucket)
        .env("NETHER_S3_REGION", "us-east-1")
        .env("NETHER_S3_ACCESS_KEY_ID", &server.id)
        .env("NETHER_S3_SECRET_ACCESS_KEY", &server.secret)
        .env("NETHER_S3_PATH_STYLE", "true")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // What the child wrote through `from_env` is in our bucket.
    let got = server.store().get(&key).await.unwrap();
    assert_eq!(&got[..], b"from env");
    server.store().delete(&key).await.unwrap();
}

/// Run by [`s3_from_env_uses_the_configured_bucket`] only.
#[tokio::test]
#[ignore = "run as a child process by s3_from_env_uses_the_configured_bucket"]
async fn s3_from_env_child() {
    let Ok(key) = std::env::var(FROM_ENV_CHILD) else {
        return;
    };
    let data_dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::from_env(data_dir.path()).unwrap();
    assert!(format!("{blobs:?}").contains("s3:"), "{blobs:?}");
    assert!(!format!("{blobs:?}").contains("secret"));
    blobs
        .put(&key, Bytes::from_static(b"from env"))
        .await
        .unwrap();
    assert_eq!(&blobs.get(&key).await.unwrap()[..], b"from env");
    // Nothing was written locally.
    assert!(!data_dir.path().join("blobs").exists());
}
