//! The `shell` tool set: `shell_run` runs a command with `bash -c` in the
//! first project directory.
//!
//! - **Timeout and interrupt**: the command runs in its own process group;
//!   on timeout, on interrupt and when the call is dropped the whole group
//!   is killed (`SIGKILL`).
//! - **Output**: stdout and stderr are each capped; the rest is counted
//!   and dropped.
//! - **Environment**: cleared, then only `PATH`, `LANG`, `HOME` (the
//!   project directory) and `TERM=dumb` are set — no `NETHER_*` variable,
//!   no provider key, nothing else of the server's.
//! - **Sandbox** (`sandbox = "auto"`, the default, or `"bwrap"`): where
//!   bubblewrap is installed, the command runs with the system directories
//!   read-only, the project directories writable, a private `/tmp`, new
//!   namespaces and **no network** unless the preset sets
//!   `allow_network`. With `sandbox = "none"` (or `auto` without bwrap) the
//!   command runs as the server's user: it can read anything that user can
//!   read, write outside the project directory, and reach the network. The
//!   working directory is the only confinement then.
//!
//! Preset options (`tool_options.shell`): `timeout_secs` (default 60,
//! at most 600), `sandbox` (`auto` | `bwrap` | `none`), `allow_network`.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use netherbrain_core::schemars::{self, JsonSchema};
use netherbrain_core::tool::{
    DynTool, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSet,
};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use crate::confine::Workspace;

/// Most bytes kept of each of stdout and stderr.
pub const MAX_STREAM_BYTES: usize = 64 * 1024;
/// The longest timeout a preset may set.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// Where `bwrap` is looked for.
const BWRAP: &str = "/usr/bin/bwrap";

/// How commands are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SandboxMode {
    /// bubblewrap when installed, else none.
    #[default]
    Auto,
    /// bubblewrap; fail when it is missing.
    Bwrap,
    /// No sandbox: only the working directory and the environment are set.
    None,
}

/// The preset's `shell` options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ShellOptions {
    /// Seconds before the process group is killed (default 60).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Sandbox mode.
    #[serde(default)]
    pub sandbox: SandboxMode,
    /// Whether a sandboxed command may use the network.
    #[serde(default)]
    pub allow_network: bool,
}

/// The `shell` tool set.
#[derive(Debug, Clone, Default)]
pub struct Shell;

impl Shell {
    /// The set.
    #[must_use]
    pub fn new() -> Self {
        Self
    }

    /// The tools as a registry.
    ///
    /// # Errors
    ///
    /// Never in practice.
    pub fn registry(&self) -> Result<ToolRegistry, netherbrain_core::tool::RegistryError> {
        ToolRegistry::new().with(Run)
    }
}

#[async_trait]
impl ToolSet for Shell {
    fn name(&self) -> &str {
        "shell"
    }
    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        let r = self
            .registry()
            .map_err(|e| ToolError::failed(e.to_string()))?;
        Ok(r.get("shell_run").cloned().into_iter().collect())
    }
}

/// Arguments of `shell_run`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunArgs {
    /// The command line, run with `bash -c` in the project directory.
    pub command: String,
    /// Seconds to allow (capped by the preset's timeout).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug)]
struct Run;

#[async_trait]
impl Tool for Run {
    type Args = RunArgs;
    fn name(&self) -> &str {
        "shell_run"
    }
    fn description(&self) -> &str {
        "Runs a shell command (bash -c) in the project directory and returns its exit status, stdout and stderr (each capped at 64 KiB). The process group is killed at the timeout."
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: RunArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let options: ShellOptions = ctx.option("shell")?;
        let ws = Workspace::open(&ctx)?;
        let limit = Duration::from_secs(options.timeout_secs.unwrap_or(60)).min(MAX_TIMEOUT);
        let timeout = args
            .timeout_secs
            .map_or(limit, |s| Duration::from_secs(s).min(limit));
        let dirs: Vec<&Path> = ws.dirs().collect();
        let sandboxed = match options.sandbox {
            SandboxMode::None => false,
            SandboxMode::Auto => Path::new(BWRAP).exists(),
            SandboxMode::Bwrap => {
                if !Path::new(BWRAP).exists() {
                    return Err(ToolError::failed(
                        "the preset requires the bwrap sandbox but bubblewrap is not installed",
                    ));
                }
                true
            }
        };
        let mut cmd = if sandboxed {
            bwrap_command(&dirs, options.allow_network, &args.command)
        } else {
            let mut c = tokio::process::Command::new("bash");
            c.arg("-c").arg(&args.command);
            c
        };
        cmd.current_dir(ws.primary())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("HOME", ws.primary())
            .env("TERM", "dumb")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let run = run_capped(cmd, timeout, &ctx).await?;
        let mut out = String::new();
        match run.status {
            Ended::Exited(code) => out.push_str(&format!("exit status: {code}\n")),
            Ended::Signal => out.push_str("exit status: killed by a signal\n"),
            Ended::TimedOut => out.push_str(&format!(
                "timed out after {} s: the process group was killed\n",
                timeout.as_secs()
            )),
        }
        if sandboxed {
            out.push_str(if options.allow_network {
                "sandbox: bwrap (network allowed)\n"
            } else {
                "sandbox: bwrap (no network)\n"
            });
        }
        out.push_str(&format!("--- stdout ---\n{}", run.stdout));
        if run.stdout_dropped > 0 {
            out.push_str(&format!(
                "\n[{} more bytes of stdout dropped]",
                run.stdout_dropped
            ));
        }
        out.push_str(&format!("\n--- stderr ---\n{}", run.stderr));
        if run.stderr_dropped > 0 {
            out.push_str(&format!(
                "\n[{} more bytes of stderr dropped]",
                run.stderr_dropped
            ));
        }
        Ok(ToolOutput::text(out))
    }
}

fn bwrap_command(dirs: &[&Path], network: bool, command: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BWRAP);
    for sys in ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"] {
        if Path::new(sys).exists() {
            c.arg("--ro-bind").arg(sys).arg(sys);
        }
    }
    c.args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]);
    for dir in dirs {
        c.arg("--bind").arg(dir).arg(dir);
    }
    c.args(["--unshare-all", "--die-with-parent", "--new-session"]);
    if network {
        c.arg("--share-net");
    }
    if let Some(first) = dirs.first() {
        c.arg("--chdir").arg(first);
    }
    c.args(["bash", "-c", command]);
    c
}

enum Ended {
    Exited(i32),
    Signal,
    TimedOut,
}

struct Finished {
    status: Ended,
    stdout: String,
    stdout_dropped: usize,
    stderr: String,
    stderr_dropped: usize,
}

/// Kills a process group when dropped (timeout, interrupt, a dropped
/// call), so no grandchild outlives the call.
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

async fn read_capped<R: tokio::io::AsyncRead + Unpin>(mut r: R) -> (Vec<u8>, usize) {
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_STREAM_BYTES.saturating_sub(kept.len());
                let take = n.min(room);
                kept.extend_from_slice(&buf[..take]);
                dropped += n - take;
            }
        }
    }
    (kept, dropped)
}

async fn run_capped(
    mut cmd: tokio::process::Command,
    timeout: Duration,
    ctx: &ToolContext,
) -> Result<Finished, ToolError> {
    let mut child = cmd
        .spawn()
        .map_err(|e| ToolError::failed(format!("cannot start the command: {e}")))?;
    let mut guard = GroupGuard(child.id().and_then(|id| i32::try_from(id).ok()));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_task = tokio::spawn(async move {
        match stdout {
            Some(s) => read_capped(s).await,
            None => (Vec::new(), 0),
        }
    });
    let err_task = tokio::spawn(async move {
        match stderr {
            Some(s) => read_capped(s).await,
            None => (Vec::new(), 0),
        }
    });
    let status = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => {
            drop(guard);
            let _ = child.wait().await;
            return Err(ToolError::Cancelled);
        }
        waited = tokio::time::timeout(timeout, child.wait()) => match waited {
            Ok(Ok(status)) => match status.code() {
                Some(code) => Ended::Exited(code),
                None => Ended::Signal,
            },
            Ok(Err(e)) => return Err(ToolError::failed(format!("waiting for the command: {e}"))),
            Err(_) => Ended::TimedOut,
        },
    };
    // the group goes now: background children holding the pipes open
    // would otherwise keep the readers waiting
    drop(std::mem::replace(&mut guard, GroupGuard(None)));
    let (out, out_dropped) = out_task.await.unwrap_or_default();
    let (err, err_dropped) = err_task.await.unwrap_or_default();
    Ok(Finished {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stdout_dropped: out_dropped,
        stderr: String::from_utf8_lossy(&err).into_owned(),
        stderr_dropped: err_dropped,
    })
}
