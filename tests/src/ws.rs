//! The `/api/ws` WebSocket, one JSON frame at a time.

use anyhow::{Context, Result, anyhow, bail};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open WebSocket of one user.
#[derive(Debug)]
pub struct Ws {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects to `base` (`http://127.0.0.1:PORT`) with `Authorization:
    /// Bearer <token>`.
    ///
    /// # Errors
    ///
    /// When the upgrade is refused or the connection fails.
    pub async fn connect(base: &str, token: &str) -> Result<Self> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let url = format!("{}/api/ws", base.replacen("http://", "ws://", 1));
        let mut req = url.as_str().into_client_request()?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let (inner, _) =
            tokio::time::timeout(crate::PATIENCE, tokio_tungstenite::connect_async(req))
                .await
                .map_err(|_| {
                    anyhow!(
                        "no WebSocket upgrade from {url} within {:?}",
                        crate::PATIENCE
                    )
                })?
                .with_context(|| format!("connecting to {url}"))?;
        Ok(Self { inner })
    }

    /// Sends one JSON frame.
    ///
    /// # Errors
    ///
    /// When the socket is closed.
    pub async fn send(&mut self, frame: &Value) -> Result<()> {
        self.inner
            .send(Message::Text(frame.to_string().into()))
            .await
            .with_context(|| format!("sending {frame}"))
    }

    /// The next JSON text frame (pings and other control frames skipped),
    /// within [`crate::PATIENCE`].
    ///
    /// # Errors
    ///
    /// On a timeout, a closed socket, or a frame that is not JSON.
    pub async fn recv(&mut self) -> Result<Value> {
        loop {
            let next = tokio::time::timeout(crate::PATIENCE, self.inner.next())
                .await
                .map_err(|_| anyhow!("no frame within {:?}", crate::PATIENCE))?;
            match next {
                None => bail!("the server closed the socket"),
                Some(Err(e)) => bail!("socket error: {e}"),
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text)
                        .with_context(|| format!("a frame that is not JSON: {text}"));
                }
                Some(Ok(Message::Close(frame))) => bail!("the server closed the socket: {frame:?}"),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Sends `frame` and returns every frame up to and including the first
    /// one of type `until`.
    ///
    /// # Errors
    ///
    /// As [`Ws::send`] and [`Ws::recv`].
    pub async fn exchange(&mut self, frame: &Value, until: &str) -> Result<Vec<Value>> {
        self.send(frame).await?;
        self.collect_until(|f| f["type"] == until).await
    }

    /// Frames up to and including the first for which `last` holds.
    ///
    /// # Errors
    ///
    /// As [`Ws::recv`].
    pub async fn collect_until(&mut self, last: impl Fn(&Value) -> bool) -> Result<Vec<Value>> {
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await?;
            let done = last(&frame);
            frames.push(frame);
            if done {
                return Ok(frames);
            }
        }
    }

    /// Sends `ping` and expects `pong` as the next frame: the socket is
    /// open and has nothing else queued for this client.
    ///
    /// # Errors
    ///
    /// When another frame comes first or none comes.
    pub async fn ping(&mut self) -> Result<()> {
        self.send(&serde_json::json!({"type": "ping"})).await?;
        let frame = self.recv().await?;
        if frame["type"] != "pong" {
            bail!("expected pong, got {frame}");
        }
        Ok(())
    }

    /// Closes the socket.
    ///
    /// # Errors
    ///
    /// When it is already broken.
    pub async fn close(mut self) -> Result<()> {
        self.inner.close(None).await?;
        Ok(())
    }
}
