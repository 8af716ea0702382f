//! A loopback TCP proxy whose open connections a test can cut, to show
//! that a client survives a dropped connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// Forwards every connection on its own port to `target`. Stops when
/// dropped.
#[derive(Debug)]
pub struct CutProxy {
    addr: SocketAddr,
    open: Arc<Mutex<Vec<AbortHandle>>>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl CutProxy {
    /// Listens on a free loopback port and forwards to `target`.
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let open: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let open = open.clone();
            let accepted = accepted.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let conn = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    if let Ok(mut open) = open.lock() {
                        open.retain(|c| !c.is_finished());
                        open.push(conn.abort_handle());
                    }
                }
            }
        });
        Ok(Self {
            addr,
            open,
            accepted,
            task,
        })
    }

    /// `http://<proxy address>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every open connection (both sides); new ones are still
    /// accepted. Returns how many were cut.
    pub fn cut(&self) -> usize {
        let Ok(mut open) = self.open.lock() else {
            return 0;
        };
        let live: Vec<_> = open.drain(..).filter(|c| !c.is_finished()).collect();
        for conn in &live {
            conn.abort();
        }
        live.len()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(mut open) = self.open.lock() {
            for conn in open.drain(..) {
                conn.abort();
            }
        }
    }
}
