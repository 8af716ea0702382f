//! Graceful shutdown gives up on stuck requests after the timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use netherbrain_core::store::MemoryStore;
use netherbrain_http::{AppState, PasswordHashParams, ServerConfig, serve};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn shutdown_waits_at_most_the_timeout() {
    let config = ServerConfig::default()
        .with_password_hash(PasswordHashParams::insecure_fast())
        .with_shutdown_timeout(Duration::from_millis(300));
    let state = AppState::new(Arc::new(MemoryStore::new()), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));

    // A request whose body never finishes: the handler waits on it.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"user",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    tx.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returned after the shutdown timeout")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "waited {waited:?}");
    drop(stream);
}
