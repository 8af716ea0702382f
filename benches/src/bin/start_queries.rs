//! Counts the SQL statements the server runs to start a run in an existing
//! conversation on SQLite, for conversations with 0, 1, 10 and 100 earlier
//! turns: one `POST /api/conversations/run` with `stream: false`, from the
//! request until its `202` (authentication included).
//!
//! ```text
//! cargo run --release -p netherbrain-benches --bin start_queries
//! ```
//!
//! Statements are counted from sqlx's own statement log (`sqlx::query`
//! events), so transactions count their `BEGIN` and `COMMIT` too. The
//! measured run's model call waits until the count is taken, so nothing the
//! run does afterwards is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use netherbrain_core::PresetConfig;
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::provider::{
    FinishReason, ModelRequest, Provider, ProviderEvent, ProviderStream,
};
use netherbrain_core::store::NewPreset;
use netherbrain_http::{AppState, ServerConfig, bootstrap_admin, serve};
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing_subscriber::layer::SubscriberExt;

/// Operator token of the in-process server (loopback only, temp store).
const TOKEN: &str = "netherbrain-query-count-operator-token";

/// Counts sqlx statement events.
struct StatementCounter(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementCounter {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Answers at once while open; while closed each call waits for it to open.
#[derive(Debug, Clone)]
struct GatedProvider {
    open: Arc<watch::Sender<bool>>,
}

impl Provider for GatedProvider {
    fn name(&self) -> &str {
        "gated"
    }

    fn stream(&self, _request: ModelRequest) -> ProviderStream {
        let mut open = self.open.subscribe();
        futures::stream::once(async move {
            let _ = open.wait_for(|open| *open).await;
            futures::stream::iter(
                [
                    ProviderEvent::TextDelta("ok".to_owned()),
                    ProviderEvent::Finish(FinishReason::Stop),
                ]
                .map(Ok),
            )
        })
        .flatten()
        .boxed()
    }
}

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let count = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(StatementCounter(count.clone()));
    tracing::subscriber::set_global_default(subscriber).map_err(|e| e.to_string())?;

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}", dir.path().join("netherbrain.db").display());
    let store = netherbrain_store::connect(&url)
        .await
        .map_err(|e| e.to_string())?;
    bootstrap_admin(store.as_ref(), Some(TOKEN))
        .await
        .map_err(|e| e.to_string())?;
    let preset = store
        .create_preset(NewPreset::new("gated", PresetConfig::new("gated", "m")))
        .await
        .map_err(|e| e.to_string())?;
    let provider = GatedProvider {
        open: Arc::new(watch::channel(true).0),
    };
    let catalog =
        AgentCatalog::new().with_provider("gated", Arc::new(provider.clone()), vec!["m".into()]);
    let config = ServerConfig::default()
        .with_bind(([127, 0, 0, 1], 0).into())
        .with_auth_token(Some(TOKEN.to_owned()));
    let state = AppState::builder(store)
        .config(config)
        .catalog(Arc::new(catalog))
        .build();
    let listener = netherbrain_http::bind(&state)
        .await
        .map_err(|e| e.to_string())?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(serve(listener, state, std::future::pending::<()>()));

    let http = reqwest::Client::new();
    let post = |path: &str, token: &str, body: Value| {
        let request = http
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let value: Value = response.json().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(value)
            } else {
                Err(format!("{status}: {value}"))
            }
        }
    };
    // A user with an API key, as a real client would be.
    let user = post(
        "/api/users/create",
        TOKEN,
        json!({"username": "bench", "role": "user"}),
    )
    .await?;
    let key = post(
        "/api/keys/create",
        TOKEN,
        json!({"name": "bench", "user_id": user["id"]}),
    )
    .await?;
    let key = key["secret"].as_str().ok_or("no key secret")?.to_owned();
    let wait = |session: Value| {
        let http = http.clone();
        let url = format!(
            "{base}/api/sessions/{}/events",
            session.as_str().unwrap_or_default()
        );
        let key = key.clone();
        async move {
            // The event stream ends with the run.
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())
        }
    };

    println!("| earlier turns | SQL statements to start a run (auth included) |");
    println!("| --- | --- |");
    for turns in [0usize, 1, 10, 100] {
        let conversation = post(
            "/api/conversations/create",
            &key,
            json!({"default_preset": preset.id}),
        )
        .await?;
        let id = conversation["id"].clone();
        for _ in 0..turns {
            let started = post(
                "/api/conversations/run",
                &key,
                json!({"conversation_id": id, "input": "earlier", "stream": false}),
            )
            .await?;
            wait(started["session_id"].clone()).await?;
        }
        provider.open.send_replace(false);
        count.store(0, Ordering::SeqCst);
        let started = post(
            "/api/conversations/run",
            &key,
            json!({"conversation_id": id, "input": "measured", "stream": false}),
        )
        .await?;
        let statements = count.load(Ordering::SeqCst);
        provider.open.send_replace(true);
        wait(started["session_id"].clone()).await?;
        println!("| {turns} | {statements} |");
    }
    Ok(())
}
