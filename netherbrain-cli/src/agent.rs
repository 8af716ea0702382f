//! `netherbrain agent`: the server.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use netherbrain_core::runtime::Runtime;
use netherbrain_http::{AppState, Metrics, ServerConfig, bootstrap_admin};
use tokio::sync::watch;

use crate::config::Settings;
use crate::local::{LocalApi, admin_token_notice, build_catalog, open_store};

/// Extra time open connections (event streams) get after runs are drained,
/// so clients receive the final events.
const STREAM_GRACE: Duration = Duration::from_secs(5);

pub(crate) async fn run(settings: Settings) -> Result<()> {
    let started = Instant::now();
    let (tx, rx) = watch::channel(false);
    let signals = tokio::spawn(wait_for_signals(tx));
    let result = serve(settings, started, rx).await;
    signals.abort();
    result
}

/// Resolves on the first SIGTERM / SIGINT; a second one exits at once.
async fn wait_for_signals(tx: watch::Sender<bool>) {
    if shutdown_signal().await.is_err() {
        return;
    }
    tracing::info!("shutdown signal received; draining runs (a second signal exits at once)");
    tx.send_replace(true);
    if shutdown_signal().await.is_ok() {
        tracing::warn!("second shutdown signal: exiting without waiting");
        std::process::exit(130);
    }
}

#[cfg(unix)]
async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

#[cfg(not(unix))]
async fn shutdown_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}

/// Starts everything, serves until `shutdown` turns true, drains.
pub(crate) async fn serve(
    settings: Settings,
    started: Instant,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let store = open_store(&settings).await?;
    let runtime = Runtime::new(store.clone());
    let recovered = runtime
        .recover()
        .await
        .map_err(|e| anyhow!("recovering interrupted sessions: {e}"))?;
    if !recovered.is_empty() {
        tracing::warn!(
            count = recovered.len(),
            "marked sessions left running by a previous process as interrupted"
        );
    }
    if let Some(token) = bootstrap_admin(store.as_ref(), settings.auth_token.as_deref()).await? {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{}", admin_token_notice(&token));
        let _ = out.flush();
    }
    if !settings.presets.is_empty() {
        crate::presets::check_profiles(&settings.presets, &settings)?;
        let imported = crate::presets::import(&LocalApi::new(store.clone()), &settings.presets)
            .await
            .context("importing the presets of the config file")?;
        tracing::info!(
            count = imported.items.len(),
            "imported presets from the config file"
        );
    }
    let catalog = Arc::new(build_catalog(&settings.providers));
    if catalog.profiles().is_empty() {
        tracing::warn!(
            "no provider profiles are usable: runs will fail until one is configured (see docs/configuration.md)"
        );
    }
    let metrics = Metrics::install_global().unwrap_or_else(|e| {
        tracing::warn!("metrics: {e}; using a private recorder");
        Metrics::new()
    });
    let config = ServerConfig::default()
        .with_bind(settings.bind())
        .with_auth_token(settings.auth_token.clone())
        .with_body_limit(settings.body_limit)
        .with_shutdown_timeout(settings.graceful_shutdown_timeout + STREAM_GRACE);
    let state = AppState::builder(store)
        .config(config)
        .runtime(runtime.clone())
        .catalog(catalog)
        .metrics(metrics)
        .build();
    let listener = netherbrain_http::bind(&state)
        .await
        .with_context(|| format!("cannot listen on {}", settings.bind()))?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    tracing::info!(
        startup_ms = started.elapsed().as_millis() as u64,
        "netherbrain is ready"
    );

    let grace = settings.graceful_shutdown_timeout;
    let mut drain_rx = shutdown.clone();
    let drain = tokio::spawn(async move {
        while !*drain_rx.borrow_and_update() {
            if drain_rx.changed().await.is_err() {
                return None;
            }
        }
        // New runs are refused from here on; running ones get `grace`.
        Some(runtime.drain(grace).await)
    });
    let server = netherbrain_http::serve(listener, state, async move {
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                // The sender is gone: never shut down from here.
                std::future::pending::<()>().await;
            }
        }
    })
    .await;
    if let Err(e) = server {
        drain.abort();
        return Err(e.into());
    }
    // The server stops once runs have ended and streams have closed, or
    // after the shutdown timeout; the drain is bounded by `grace` plus
    // the time interrupted runs need to commit.
    if let Ok(Some(report)) = drain.await {
        tracing::info!(
            finished = report.finished,
            interrupted = report.interrupted.len(),
            "runs drained"
        );
    }
    tracing::info!("stopped");
    Ok(())
}
