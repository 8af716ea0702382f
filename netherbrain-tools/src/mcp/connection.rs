//! One connection to an MCP server, opened lazily and again after failures.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::time::Duration;

use netherbrain_core::tool::{McpServerConfig, ToolError, ToolOutput};
use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, JsonObject,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;

use super::{CacheKey, ListCache, Listed, listed, output};

/// Seconds to start, list and call when the preset says nothing.
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Variables of the server's environment a stdio server gets.
const PASSED_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

/// The client side of the session: says who we are, and forgets the cached
/// tool list when the server announces a change.
#[derive(Debug)]
struct Handler {
    cache: Weak<ListCache>,
    key: CacheKey,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(cache) = self.cache.upgrade() {
            tracing::info!(server = %self.key.0, "MCP server's tools changed; listing them again for the next runs");
            cache.forget(&self.key);
        }
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("netherbrain", env!("CARGO_PKG_VERSION")),
        )
    }
}

type Service = RunningService<RoleClient, Handler>;

/// Kills a stdio server's process group when dropped: closing the session
/// lets the server itself exit, but not what it started.
#[derive(Debug)]
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// An open session and, for a stdio server, its process group (dropped
/// after the session).
#[derive(Debug)]
struct Live {
    service: Service,
    _group: GroupGuard,
}

/// A server as one run uses it.
#[derive(Debug)]
pub(super) struct Connection {
    server: String,
    config: McpServerConfig,
    cache: Arc<ListCache>,
    key: CacheKey,
    /// The open session, if any; dropping it closes the transport and kills
    /// a stdio server's process group.
    service: Mutex<Option<Live>>,
}

impl Connection {
    pub(super) fn new(
        server: &str,
        config: McpServerConfig,
        cache: Arc<ListCache>,
        key: CacheKey,
    ) -> Self {
        Self {
            server: server.to_owned(),
            config,
            cache,
            key,
            service: Mutex::new(None),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(
            self.config
                .timeout_secs
                .unwrap_or(DEFAULT_TIMEOUT_SECS)
                .max(1),
        )
    }

    /// The session's peer, connecting first when there is no live session.
    async fn peer(&self) -> Result<rmcp::Peer<RoleClient>, ToolError> {
        let mut guard = self.service.lock().await;
        if let Some(live) = guard.as_ref() {
            if !live.service.is_closed() {
                return Ok(live.service.peer().clone());
            }
            tracing::info!(server = %self.server, "MCP connection closed; reconnecting");
            *guard = None;
        }
        let live = tokio::time::timeout(self.timeout(), self.connect())
            .await
            .map_err(|_| {
                ToolError::failed(format!(
                    "MCP server `{}` did not start within {:?}",
                    self.server,
                    self.timeout()
                ))
            })??;
        let peer = live.service.peer().clone();
        *guard = Some(live);
        Ok(peer)
    }

    /// Drops the session so the next use connects again.
    async fn reset(&self) {
        self.service.lock().await.take();
    }

    async fn connect(&self) -> Result<Live, ToolError> {
        let handler = Handler {
            cache: Arc::downgrade(&self.cache),
            key: self.key.clone(),
        };
        let failed = |e: &dyn std::fmt::Display| {
            ToolError::failed(format!("MCP server `{}` failed to start: {e}", self.server))
        };
        if let Some(command) = &self.config.command {
            let transport = self.spawn(command)?;
            // The program leads its own process group: its id is the group's.
            let group = GroupGuard(transport.id().and_then(|id| i32::try_from(id).ok()));
            let service = handler.serve(transport).await.map_err(|e| failed(&e))?;
            Ok(Live {
                service,
                _group: group,
            })
        } else if let Some(url) = &self.config.url {
            // reqwest 0.13 as rmcp uses it brings no crypto provider: use
            // ring, as the rest of the server does (a no-op once installed).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(self.headers()?);
            let transport = StreamableHttpClientTransport::from_config(config);
            let service = handler.serve(transport).await.map_err(|e| failed(&e))?;
            Ok(Live {
                service,
                _group: GroupGuard(None),
            })
        } else {
            Err(ToolError::failed(format!(
                "MCP server `{}` has neither `command` nor `url`",
                self.server
            )))
        }
    }

    /// Starts a stdio server in its own process group with a scrubbed
    /// environment; its stderr goes to the log.
    fn spawn(&self, command: &str) -> Result<TokioChildProcess, ToolError> {
        let mut env: Vec<(String, String)> = PASSED_ENV
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
            .collect();
        env.extend(self.config.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (name, var) in &self.config.env_from {
            let value = std::env::var(var).map_err(|_| {
                ToolError::failed(format!(
                    "MCP server `{}`: the variable `{var}` (for `{name}`) is not set",
                    self.server
                ))
            })?;
            env.push((name.clone(), value));
        }
        let mut wrap = CommandWrap::with_new(command, |cmd| {
            cmd.args(&self.config.args)
                .env_clear()
                .envs(env)
                .kill_on_drop(true);
            if let Some(dir) = &self.config.cwd {
                cmd.current_dir(dir);
            }
        });
        wrap.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
        let (transport, stderr) = TokioChildProcess::builder(wrap)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                ToolError::failed(format!(
                    "MCP server `{}`: cannot start `{command}`: {e}",
                    self.server
                ))
            })?;
        if let Some(stderr) = stderr {
            let server = self.server.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line: String = line.chars().take(2000).collect();
                    tracing::info!(server = %server, "MCP server stderr: {line}");
                }
            });
        }
        Ok(transport)
    }

    /// The headers of an HTTP server, secrets read from the environment.
    fn headers(&self) -> Result<HashMap<http::HeaderName, http::HeaderValue>, ToolError> {
        let bad = |name: &str, what: &str| {
            ToolError::failed(format!(
                "MCP server `{}`: header `{name}`: {what}",
                self.server
            ))
        };
        let mut headers = HashMap::new();
        let from_env = self.config.headers_from_env.iter().map(|(name, var)| {
            std::env::var(var)
                .map(|v| (name, v))
                .map_err(|_| bad(name, &format!("the variable `{var}` is not set")))
        });
        let literal = self
            .config
            .headers
            .iter()
            .map(|(name, value)| Ok((name, value.clone())));
        for pair in literal.chain(from_env) {
            let (name, value) = pair?;
            let header = http::HeaderName::try_from(name.as_str())
                .map_err(|_| bad(name, "not a valid header name"))?;
            let mut value = http::HeaderValue::try_from(value)
                .map_err(|_| bad(name, "not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        Ok(headers)
    }

    /// Lists the server's tools (connecting first).
    pub(super) async fn list_tools(&self) -> Result<Vec<Listed>, ToolError> {
        let peer = self.peer().await?;
        match tokio::time::timeout(self.timeout(), peer.list_all_tools()).await {
            Ok(Ok(tools)) => Ok(tools.into_iter().map(listed).collect()),
            Ok(Err(e)) => {
                self.reset().await;
                Err(ToolError::failed(format!(
                    "MCP server `{}`: listing tools failed: {e}",
                    self.server
                )))
            }
            Err(_) => {
                self.reset().await;
                Err(ToolError::failed(format!(
                    "MCP server `{}` did not list its tools within {:?}",
                    self.server,
                    self.timeout()
                )))
            }
        }
    }

    /// Calls a tool. A call that fails because the connection broke closes
    /// it (so the next call reconnects) and is tried once more on a new
    /// connection when it never reached the server.
    pub(super) async fn call(
        &self,
        tool: &str,
        arguments: JsonObject,
    ) -> Result<ToolOutput, ToolError> {
        let mut retried = false;
        loop {
            let peer = self.peer().await?;
            let params =
                CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments.clone());
            let result = tokio::time::timeout(self.timeout(), peer.call_tool(params)).await;
            match result {
                Ok(Ok(result)) => return output::to_output(result),
                Ok(Err(rmcp::ServiceError::McpError(e))) => {
                    return Err(ToolError::failed(format!(
                        "MCP server `{}`: {}",
                        self.server, e.message
                    )));
                }
                Ok(Err(
                    e
                    @ (rmcp::ServiceError::TransportSend(_) | rmcp::ServiceError::TransportClosed),
                )) => {
                    self.reset().await;
                    let unsent = matches!(e, rmcp::ServiceError::TransportSend(_));
                    if unsent && !retried {
                        retried = true;
                        tracing::info!(server = %self.server, "MCP call could not be sent ({e}); reconnecting");
                        continue;
                    }
                    return Err(ToolError::failed(format!(
                        "MCP server `{}`: the connection failed ({e}); it reconnects on the next call",
                        self.server
                    )));
                }
                Ok(Err(e)) => {
                    return Err(ToolError::failed(format!(
                        "MCP server `{}`: {e}",
                        self.server
                    )));
                }
                Err(_) => {
                    return Err(ToolError::failed(format!(
                        "MCP server `{}`: the call took longer than {:?}",
                        self.server,
                        self.timeout()
                    )));
                }
            }
        }
    }
}
