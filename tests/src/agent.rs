//! `netherbrain agent` as a child process.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use crate::api::Api;
use crate::provider::{FakeProvider, MODEL};

/// Name of the provider profile pointing at the [`FakeProvider`].
pub const PROFILE: &str = "fake";
/// The API key the profile sends (through `OPENAI_API_KEY`).
pub const FAKE_KEY: &str = "sk-e2e-fake-key";

/// A preset for the config file's `[[presets]]` on the fake profile.
#[derive(Debug, Clone)]
pub struct PresetDoc {
    name: String,
    system_prompt: Option<String>,
    context_budget: Option<u64>,
    limits: Vec<String>,
    config: Vec<String>,
}

impl PresetDoc {
    /// A preset named `name` on the fake provider's model.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            system_prompt: None,
            context_budget: None,
            limits: Vec::new(),
            config: Vec::new(),
        }
    }

    /// With a system prompt.
    #[must_use]
    pub fn with_system_prompt(mut self, prompt: &str) -> Self {
        self.system_prompt = Some(prompt.to_owned());
        self
    }

    /// With a context budget (estimated tokens) over which history is
    /// compacted by summarising.
    #[must_use]
    pub fn with_summarizing_budget(mut self, budget: u64) -> Self {
        self.context_budget = Some(budget);
        self
    }

    /// With a limit: `key = value` (TOML) in `[presets.config.limits]`.
    #[must_use]
    pub fn with_limit(mut self, key: &str, value: &str) -> Self {
        self.limits.push(format!("{key} = {value}"));
        self
    }

    /// With a line of TOML in `[presets.config]`, e.g.
    /// `toolsets = ["filesystem"]` or `tool_policy = { shell_run = "ask" }`.
    #[must_use]
    pub fn with_config(mut self, line: &str) -> Self {
        self.config.push(line.to_owned());
        self
    }

    /// The preset as a `[[presets]]` table of a config file (profile
    /// `fake`).
    #[must_use]
    pub fn toml(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "[[presets]]\nname = {}", quote(&self.name));
        let _ = writeln!(
            out,
            "[presets.config]\nprofile = {}\nmodel = {}",
            quote(PROFILE),
            quote(MODEL)
        );
        if let Some(prompt) = &self.system_prompt {
            let _ = writeln!(out, "system_prompt = {}", quote(prompt));
        }
        for line in &self.config {
            let _ = writeln!(out, "{line}");
        }
        if self.context_budget.is_some() || !self.limits.is_empty() {
            let _ = writeln!(out, "[presets.config.limits]");
        }
        if let Some(budget) = self.context_budget {
            let _ = writeln!(out, "context_budget = {budget}\ncompaction = \"summarize\"");
        }
        for line in &self.limits {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Output of every start of the agent, stdout and stderr interleaved.
type Logs = Arc<Mutex<String>>;

/// How to run an agent beyond the defaults: extra environment (e.g.
/// `NETHER_SESSION_LEASE`), another database.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    env: Vec<(String, String)>,
    database_url: Option<String>,
    provider_url: Option<String>,
    config: String,
    auth_token: Option<String>,
}

impl AgentOptions {
    /// Sets an environment variable of the agent (and of [`Agent::command`]).
    #[must_use]
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Points the `fake` profile at this OpenAI-compatible base URL instead
    /// of the [`FakeProvider`]'s (e.g. an [`crate::EndlessProvider`]).
    #[must_use]
    pub fn provider_url(mut self, url: &str) -> Self {
        self.provider_url = Some(url.to_owned());
        self
    }

    /// Appends TOML to the config file (e.g. a `[tasks]` section).
    #[must_use]
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self.config.push('\n');
        self
    }

    /// Uses this operator token instead of a fresh one: replicas of one
    /// deployment share it, so one client reaches them all.
    #[must_use]
    pub fn auth_token(mut self, token: &str) -> Self {
        self.auth_token = Some(token.to_owned());
        self
    }

    /// Uses this database instead of SQLite in the data directory.
    #[must_use]
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }
}

/// A running `netherbrain agent` on its own home and SQLite data
/// directory, authenticated by an operator token. Killed when dropped; its
/// logs are printed then (the test harness shows them for failed tests).
#[derive(Debug)]
pub struct Agent {
    home: TempDir,
    token: String,
    port: u16,
    child: Option<Child>,
    logs: Logs,
    starts: u32,
    options: AgentOptions,
}

impl Agent {
    /// Writes a config file (the fake provider as profile `fake`, then
    /// `presets`), starts the agent and waits until `GET /api/health`
    /// answers `200`.
    ///
    /// # Errors
    ///
    /// When the agent exits or is not healthy within [`crate::PATIENCE`]
    /// (the error carries its logs).
    pub async fn start(provider: &FakeProvider, presets: &[PresetDoc]) -> Result<Self> {
        Self::start_with(provider, presets, AgentOptions::default()).await
    }

    /// As [`Agent::start`], with options.
    ///
    /// # Errors
    ///
    /// As [`Agent::start`].
    pub async fn start_with(
        provider: &FakeProvider,
        presets: &[PresetDoc],
        options: AgentOptions,
    ) -> Result<Self> {
        let mut agent = Self::unstarted(provider, presets, options)?;
        agent.spawn().await?;
        Ok(agent)
    }

    /// The agent's home (config file, empty data directory) as
    /// [`Agent::start_with`] writes it, without starting the agent: for
    /// commands a newcomer runs first. [`Agent::start_again`] starts it.
    ///
    /// # Errors
    ///
    /// When the home cannot be written.
    pub fn unstarted(
        provider: &FakeProvider,
        presets: &[PresetDoc],
        options: AgentOptions,
    ) -> Result<Self> {
        let home = TempDir::new().context("temp dir")?;
        let mut config = String::new();
        let _ = writeln!(
            config,
            "[[providers]]\nname = {}\nkind = \"openai\"\nbase_url = {}\napi_key_env = \"OPENAI_API_KEY\"\nmodels = [{}]\n",
            quote(PROFILE),
            quote(
                &options
                    .provider_url
                    .clone()
                    .unwrap_or_else(|| provider.base_url())
            ),
            quote(MODEL)
        );
        for preset in presets {
            let _ = writeln!(config, "{}", preset.toml());
        }
        config.push_str(&options.config);
        std::fs::write(home.path().join("config.toml"), config).context("writing config")?;
        Ok(Self {
            home,
            token: options
                .auth_token
                .clone()
                .unwrap_or_else(|| format!("e2e-operator-{}", uuid::Uuid::new_v4().simple())),
            port: 0,
            child: None,
            logs: Arc::default(),
            starts: 0,
            options,
        })
    }

    /// A `netherbrain` command with a clean environment: no `NETHER_*` or
    /// provider variables from the test's environment, `HOME` and the XDG
    /// directories inside the agent's home, which is also the working
    /// directory (so no stray `.env` is read).
    pub fn command(&self) -> Command {
        let home = self.home.path();
        let mut c = Command::new(crate::binary::path());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("xdg-config"))
            .env("XDG_DATA_HOME", home.join("xdg-data"))
            .current_dir(home)
            .stdin(Stdio::null())
            .env("OPENAI_API_KEY", FAKE_KEY)
            .arg("--config")
            .arg(home.join("config.toml"))
            .arg("--data-dir")
            .arg(self.data_dir());
        for (name, value) in &self.options.env {
            c.env(name, value);
        }
        if let Some(url) = &self.options.database_url {
            c.env("NETHER_DATABASE_URL", url);
        }
        c
    }

    async fn spawn(&mut self) -> Result<()> {
        let mut last = None;
        // A free port can be taken between probing and binding: retry.
        for _ in 0..3 {
            match self.try_spawn().await {
                Ok(()) => return Ok(()),
                Err(e) if format!("{e:#}").contains("Address already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("could not start the agent")))
    }

    async fn try_spawn(&mut self) -> Result<()> {
        self.port = free_port()?;
        self.starts += 1;
        let mut child = self
            .command()
            .env("NETHER_AUTH_TOKEN", &self.token)
            .env("NETHER_LOG", "info")
            .args(["agent", "--port", &self.port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", crate::binary::path().display()))?;
        let start = self.starts;
        if let Some(out) = child.stdout.take() {
            pump(out, self.logs.clone(), format!("[start {start} stdout] "));
        }
        if let Some(err) = child.stderr.take() {
            pump(err, self.logs.clone(), format!("[start {start} stderr] "));
        }
        self.child = Some(child);
        self.wait_healthy().await
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + crate::PATIENCE;
        let url = self.url("/api/health");
        loop {
            if let Ok(resp) = http.get(&url).send().await
                && resp.status() == 200
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                // Let the log pumps drain what the process wrote.
                tokio::time::sleep(Duration::from_millis(50)).await;
                bail!(
                    "the agent exited with {status} before it was healthy; logs:\n{}",
                    self.logs()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "the agent was not healthy on {url} within {:?}; logs:\n{}",
                    crate::PATIENCE,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the agent with SIGTERM (a graceful drain) and waits for it.
    ///
    /// # Errors
    ///
    /// When it is not running or does not exit within [`crate::PATIENCE`].
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("the agent is not running"))?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !sent.success() {
            bail!("kill -TERM failed: {sent}");
        }
        let deadline = Instant::now() + crate::PATIENCE;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the agent did not exit after SIGTERM; logs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the agent with SIGKILL (a crash) and waits for it.
    ///
    /// # Errors
    ///
    /// When it is not running.
    pub fn kill(&mut self) -> Result<()> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("the agent is not running"))?;
        child.kill().context("SIGKILL")?;
        child.wait().context("waiting for the killed agent")?;
        Ok(())
    }

    /// Sends the agent `SIGHUP` (reload the configuration file).
    ///
    /// # Errors
    ///
    /// When it is not running or `kill` fails.
    pub fn signal_hup(&self) -> Result<()> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("the agent is not running"))?;
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .context("running kill -HUP")?;
        if !sent.success() {
            bail!("kill -HUP failed: {sent}");
        }
        Ok(())
    }

    /// Sends SIGTERM without waiting.
    ///
    /// # Errors
    ///
    /// When it is not running or `kill` fails.
    pub fn signal_term(&self) -> Result<()> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("the agent is not running"))?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !sent.success() {
            bail!("kill -TERM failed: {sent}");
        }
        Ok(())
    }

    /// Waits for the agent to exit on its own (after a signal).
    ///
    /// # Errors
    ///
    /// When it is not running or does not exit within [`crate::PATIENCE`].
    pub async fn wait_exit(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("the agent is not running"))?;
        let deadline = Instant::now() + crate::PATIENCE;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the agent did not exit; logs:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the agent again after it stopped or was killed, on the same
    /// data and configuration (on a new port).
    ///
    /// # Errors
    ///
    /// As [`Agent::start`].
    pub async fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("the agent is still running");
        }
        self.spawn().await
    }

    /// Stops the agent gracefully and starts it again on the same data
    /// directory and configuration (on a new port).
    ///
    /// # Errors
    ///
    /// As [`Agent::stop`] and [`Agent::start`]; a non-zero exit is an error.
    pub async fn restart(&mut self) -> Result<()> {
        let status = self.stop().await?;
        if !status.success() {
            bail!(
                "the agent exited with {status} on SIGTERM; logs:\n{}",
                self.logs()
            );
        }
        self.spawn().await
    }

    /// The agent process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The agent process's resident memory in KiB (`VmRSS`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// The agent process's peak resident memory so far, in KiB (Linux).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The agent's home (config file, data directory).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The data directory (holds `netherbrain.db`).
    pub fn data_dir(&self) -> PathBuf {
        self.home.path().join("data")
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The loopback address the agent listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `base_url() + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The operator token (authenticates as the admin).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A JSON client authenticated as the admin.
    pub fn admin(&self) -> Api {
        Api::new(self.base_url(), &self.token)
    }

    /// The typed client authenticated as the admin.
    ///
    /// # Errors
    ///
    /// Never for the loopback URL; kept fallible like the client.
    pub fn client(&self) -> Result<netherbrain_http::client::Client> {
        crate::typed_client(&self.base_url(), &self.token)
    }

    /// Everything the agent printed so far, over all its starts.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Captured by the test harness: shown only when the test fails.
        eprintln!("---- netherbrain agent logs ----\n{}", self.logs());
    }
}

/// Copies a child's output into `logs`, line by line, on a thread.
fn pump(out: impl Read + Send + 'static, logs: Logs, prefix: String) {
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(mut logs) = logs.lock() {
                logs.push_str(&prefix);
                logs.push_str(&line);
                logs.push('\n');
            }
        }
    });
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
