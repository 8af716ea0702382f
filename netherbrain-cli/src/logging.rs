//! Log output.

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::config::{Env, LogFormat, Settings, env};

/// Installs the global subscriber: to stderr, filtered by `NETHER_LOG` (or
/// the file's `log`), as text or JSON. Commands other than the server log
/// only warnings unless a filter is configured, so their output stays clean.
pub(crate) fn init(settings: &Settings, env: &Env, server: bool) -> Result<()> {
    let configured = settings.sources.contains_key("log") || env.get(env::LOG).is_some();
    let filter = if server || configured {
        settings.log.as_str()
    } else {
        "warn"
    };
    let filter = EnvFilter::try_new(filter)
        .with_context(|| format!("invalid log filter `{}`", settings.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // Already installed (tests): keep the existing one.
    let _ = result;
    Ok(())
}
