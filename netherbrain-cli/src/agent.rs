//! `netherbrain agent`: the server.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use netherbrain_http::{AppState, Metrics, ServerConfig};
use tokio::sync::watch;

use netherbrain_core::tasks::Scheduler;

use crate::config::Settings;
use crate::local::{admin_token_notice, open_store};

/// Extra time open connections (event streams) get after runs are drained,
/// so clients receive the final events.
const STREAM_GRACE: Duration = Duration::from_secs(5);

/// Runs the server until a shutdown signal; on `SIGHUP` the configuration
/// is read again with `reload` (see [`crate::reload`]).
pub(crate) async fn run(
    settings: Settings,
    reload: impl Fn() -> Result<Settings> + Send + 'static,
) -> Result<()> {
    let started = Instant::now();
    let (tx, rx) = watch::channel(false);
    let signals = tokio::spawn(wait_for_signals(tx));
    let result = async {
        let server = Server::start(&settings, started).await?;
        #[cfg(unix)]
        let reloads = server.state.providers().cloned().map(|providers| {
            tokio::spawn(crate::reload::on_sighup(
                settings.clone(),
                reload,
                providers,
            ))
        });
        #[cfg(not(unix))]
        let _ = reload;
        let served = server.run(rx).await;
        #[cfg(unix)]
        if let Some(reloads) = reloads {
            reloads.abort();
        }
        served
    }
    .await;
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

/// A started server: store open, admin bootstrapped, socket bound.
#[derive(Debug)]
pub(crate) struct Server {
    state: AppState,
    listener: tokio::net::TcpListener,
    grace: Duration,
    /// Not-ready time before the drain (see `Settings::drain_delay`).
    drain_delay: Duration,
    /// The in-process gateway, if channels are configured.
    gateway: Option<(
        tokio::task::JoinHandle<()>,
        netherbrain_core::channel::CancellationToken,
    )>,
    /// The scheduler of due tasks, unless `[tasks] scheduler = false`.
    scheduler: Option<(
        tokio::task::JoinHandle<()>,
        netherbrain_core::channel::CancellationToken,
    )>,
}

impl Server {
    /// Opens the store, recovers, bootstraps the admin, imports configured
    /// presets, builds the catalog and binds.
    pub(crate) async fn start(settings: &Settings, started: Instant) -> Result<Self> {
        let store = open_store(settings).await?;
        // Installed first, so the cluster's gauges are recorded from the start.
        let metrics = Metrics::install_global().unwrap_or_else(|e| {
            tracing::warn!("metrics: {e}; using a private recorder");
            Metrics::new()
        });
        let runtime = crate::local::runtime(store.clone(), settings).await?;
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
        // Refuse an unprotected public bind before creating anything.
        let addr = settings.bind();
        if !addr.ip().is_loopback()
            && !netherbrain_http::auth_configured_in(store.as_ref(), settings.auth_token.as_deref())
                .await?
        {
            return Err(
                anyhow::Error::new(netherbrain_http::ServeError::InsecureBind { addr })
                    .context(format!("cannot listen on {addr}")),
            );
        }
        let generated = crate::local::prepare_store(&store, settings).await?;
        if let Some(token) = &generated {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", admin_token_notice(token));
            let _ = out.flush();
        }
        let config = ServerConfig::default()
            .with_bind(settings.bind())
            .with_auth_token(settings.auth_token.clone())
            .with_body_limit(settings.body_limit)
            .with_metrics_public(settings.metrics_public)
            .with_trusted_proxies(settings.trusted_proxies.clone())
            .with_max_ws_subscriptions(settings.max_ws_subscriptions)
            .with_shutdown_timeout(settings.graceful_shutdown_timeout + STREAM_GRACE);
        let (service, providers) = crate::local::service(store.clone(), settings, runtime).await?;
        if service.catalog().profiles().is_empty() {
            tracing::warn!(
                "no provider profiles are usable: runs will fail until one is added in Settings or the config file (see docs/configuration.md)"
            );
        }
        let scheduler_cancel = netherbrain_core::channel::CancellationToken::new();
        let scheduler = settings
            .tasks
            .scheduler
            .unwrap_or(true)
            .then(|| Scheduler::new(service.clone()).spawn(scheduler_cancel.clone()))
            .map(|task| (task, scheduler_cancel));
        let gateway_cancel = netherbrain_core::channel::CancellationToken::new();
        let gateway = crate::gateway::spawn_in_process(settings, &service, gateway_cancel.clone())
            .await
            .context("starting the gateway channels")?
            .map(|task| (task, gateway_cancel));
        let state = AppState::builder(store)
            .config(config)
            .service(service)
            .providers(providers)
            .metrics(metrics)
            .build();
        let listener = netherbrain_http::bind(&state)
            .await
            .with_context(|| format!("cannot listen on {}", settings.bind()))?;
        let addr = listener.local_addr()?;
        tracing::info!("listening on http://{addr}");
        {
            let mut out = std::io::stdout().lock();
            let _ = write!(
                out,
                "{}",
                crate::first_run::ui_notice(addr, generated.as_deref())
            );
            let _ = out.flush();
        }
        tracing::info!(
            startup_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "netherbrain is ready"
        );
        Ok(Self {
            state,
            listener,
            grace: settings.graceful_shutdown_timeout,
            drain_delay: settings.drain_delay,
            gateway,
            scheduler,
        })
    }

    /// The state (store, runtime, catalog).
    #[cfg(test)]
    pub(crate) fn state(&self) -> &AppState {
        &self.state
    }

    /// The bound address.
    #[cfg(test)]
    pub(crate) fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` turns true, then drains runs: they get the
    /// graceful timeout to finish, then are interrupted (and committed).
    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let Self {
            state,
            listener,
            grace,
            drain_delay,
            gateway,
            scheduler,
        } = self;
        let runtime = state.runtime().clone();
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let drain = tokio::spawn(async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    // The sender is gone: never shut down from here.
                    std::future::pending::<()>().await;
                }
            }
            // First not ready but still taking runs, so a load balancer
            // moves new work to other replicas without failing a request.
            runtime.announce_shutdown();
            if !drain_delay.is_zero() {
                tracing::info!(
                    delay_s = drain_delay.as_secs(),
                    "reporting not ready before draining"
                );
                tokio::time::sleep(drain_delay).await;
            }
            // The server keeps answering while runs drain: a new run gets
            // `503` with a JSON error, running ones get `grace` to finish
            // (then they are interrupted) and their streams their final
            // events. Only then does it stop accepting connections.
            let report = runtime.drain(grace).await;
            let _ = drained_tx.send(());
            report
        });
        let server = netherbrain_http::serve(listener, state, async move {
            let _ = drained_rx.await;
        })
        .await;
        if let Err(e) = server {
            drain.abort();
            return Err(e.into());
        }
        // The server stops once runs have ended and streams have closed, or
        // after the shutdown timeout; the drain is bounded by `grace` plus
        // the time interrupted runs need to commit.
        if let Ok(report) = drain.await {
            tracing::info!(
                finished = report.finished,
                interrupted = report.interrupted.len(),
                "runs drained"
            );
        }
        for (task, cancel) in [gateway, scheduler].into_iter().flatten() {
            cancel.cancel();
            let _ = task.await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use netherbrain_core::auth::Principal;
    use netherbrain_core::conversation::{SendMessage, ServiceError};
    use netherbrain_core::runtime::RuntimeError;
    use netherbrain_core::store::NewConversation;
    use netherbrain_core::{Message, SessionStatus};
    use tokio::sync::watch;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::Server;
    use crate::config::{Env, Overrides, load, parse_presets};
    use crate::local::admin_user;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_drains_a_run_in_flight() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let provider = MockServer::start().await;
        let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n";
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(body, "text/event-stream")
                    .set_delay(Duration::from_secs(60)),
            )
            .mount(&provider)
            .await;
        let base_url = format!("{}/v1", provider.uri());
        let env = Env::from_pairs(&[("OPENAI_BASE_URL", base_url.as_str())]);
        let overrides = Overrides {
            data_dir: Some(dir.path().to_owned()),
            port: Some(0),
            graceful_shutdown_timeout: Some(1),
            ..Overrides::default()
        };
        let mut settings = load(&overrides, &env)?;
        settings.presets =
            parse_presets("name = \"slow\"\n[config]\nprofile = \"openai\"\nmodel = \"m\"\n")?;

        let server = Server::start(&settings, Instant::now()).await?;
        assert_ne!(server.local_addr()?.port(), 0);
        let state = server.state().clone();
        let store = state.store().clone();
        let admin = admin_user(store.as_ref()).await?;
        let preset = store.get_preset_by_name("slow").await?;
        let mut new = NewConversation::new(admin.id);
        new.default_preset = Some(preset.id);
        let conversation = store.create_conversation(new).await?;

        let (tx, rx) = watch::channel(false);
        let serving = tokio::spawn(server.run(rx));
        let who = Principal::of(&admin);
        let run = state
            .service()
            .send(
                &who,
                SendMessage::to(conversation.id, vec![Message::user("hi")]),
            )
            .await?
            .handle()
            .clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while provider
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            assert!(Instant::now() < deadline, "the provider was never called");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let stopping = Instant::now();
        tx.send_replace(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = state
            .service()
            .send(
                &who,
                SendMessage::to(conversation.id, vec![Message::user("again")]),
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(ServiceError::Runtime(
                    RuntimeError::Draining | RuntimeError::Busy { .. }
                ))
            ),
            "{refused:?}"
        );
        tokio::time::timeout(Duration::from_secs(15), serving).await???;
        assert!(stopping.elapsed() < Duration::from_secs(10));
        let session = store.get_session(run.session_id).await?;
        assert_eq!(session.status, SessionStatus::Interrupted);
        Ok(())
    }
}
