//! An OpenAI-compatible provider on loopback that streams a chat completion
//! that never ends: the same text delta over and over, optionally paced,
//! until the client hangs up. For the server's caps (output limit, run
//! deadline) and memory bounds.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The endless provider; stops listening when dropped.
#[derive(Debug)]
pub struct EndlessProvider {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EndlessProvider {
    /// Starts it: every request gets an endless stream of `delta`, one
    /// chunk every `pace` (zero: as fast as the client reads).
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(delta: &str, pace: Duration) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the endless provider")?;
        let addr = listener.local_addr()?;
        let chunk = chunk(delta);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, chunk.clone(), pace));
            }
        });
        Ok(Self { addr, task })
    }

    /// The base URL to configure as the profile's `base_url`
    /// (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for EndlessProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One SSE event carrying `delta`, as an HTTP/1.1 chunk.
fn chunk(delta: &str) -> Vec<u8> {
    let event = format!(
        "data: {}\n\n",
        serde_json::json!({"choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]})
    );
    format!("{:x}\r\n{event}\r\n", event.len()).into_bytes()
}

async fn serve(mut socket: TcpStream, chunk: Vec<u8>, pace: Duration) {
    // Read the request head and its body (by content-length).
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        match socket.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match socket.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    loop {
        if socket.write_all(&chunk).await.is_err() {
            return;
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
}
