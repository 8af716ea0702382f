//! Blob storage: local directory behaviour and an unreachable S3 endpoint.

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

/// Runs against a real S3-compatible server when `NETHER_TEST_S3_ENDPOINT`
/// names one (e.g. MinIO or `moto_server`) with an existing bucket
/// `NETHER_TEST_S3_BUCKET` (default `nb-test`); skipped otherwise.
#[tokio::test]
async fn s3_put_get_head_delete_when_configured() {
    let Ok(endpoint) = std::env::var("NETHER_TEST_S3_ENDPOINT") else {
        eprintln!("skipped: NETHER_TEST_S3_ENDPOINT is not set");
        return;
    };
    let bucket = std::env::var("NETHER_TEST_S3_BUCKET").unwrap_or_else(|_| "nb-test".into());
    let id = std::env::var("NETHER_TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into());
    let secret =
        std::env::var("NETHER_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into());
    let config = S3Config::new(bucket)
        .with_endpoint(endpoint)
        .with_credentials(id, secret);
    let blobs = BlobStore::s3(&config).unwrap().with_max_size(1024);
    let key = format!("tests/{}/hello.txt", uuid::Uuid::new_v4());
    let meta = blobs
        .put(&key, Bytes::from_static(b"hello s3"))
        .await
        .unwrap();
    assert_eq!(meta.size, 8);
    assert_eq!(&blobs.get(&key).await.unwrap()[..], b"hello s3");
    assert_eq!(blobs.head(&key).await.unwrap().size, 8);
    assert!(matches!(
        blobs.put(&key, Bytes::from(vec![0u8; 2048])).await,
        Err(BlobError::TooLarge { .. })
    ));
    blobs.delete(&key).await.unwrap();
    assert!(matches!(blobs.get(&key).await, Err(BlobError::NotFound(_))));
    blobs.delete(&key).await.unwrap();
}
