//! Sequential `POST /v1/chat/completions` against a server on SQLite with a
//! provider that answers at once: requests per second and latency, i.e. the
//! server's own cost per request (auth, conversation, session, events,
//! commit) with the model taken out.
//!
//! ```text
//! cargo run --release -p netherbrain-benches --bin completions_rps -- --requests 2000
//! ```
//!
//! The server runs in this process on a fresh SQLite file in a temp dir,
//! bound to loopback; one client sends the requests one after another over
//! a kept-alive connection. Options: `--requests N` (2000), `--warmup N`
//! (100), `--stream` (streamed completions instead of plain ones),
//! `--count-statements` (also report the SQL statements per request, from
//! sqlx's statement log).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tracing_subscriber::layer::SubscriberExt;

use netherbrain_core::PresetConfig;
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::store::NewPreset;
use netherbrain_core::testing::InstantProvider;
use netherbrain_http::{AppState, ServerConfig, bootstrap_admin, serve};

/// Operator token of the in-process server (loopback only, temp store).
const TOKEN: &str = "netherbrain-rps-bench-operator-token";

struct Args {
    requests: usize,
    warmup: usize,
    stream: bool,
    count_statements: bool,
}

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

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        requests: 2000,
        warmup: 100,
        stream: false,
        count_statements: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .parse::<usize>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--requests" => args.requests = number()?,
            "--warmup" => args.warmup = number()?,
            "--stream" => args.stream = true,
            "--count-statements" => args.count_statements = true,
            "--bench" => {}
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
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
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let statements = Arc::new(AtomicUsize::new(0));
    if args.count_statements {
        let subscriber = tracing_subscriber::registry().with(StatementCounter(statements.clone()));
        tracing::subscriber::set_global_default(subscriber).map_err(|e| e.to_string())?;
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}", dir.path().join("netherbrain.db").display());
    let store = netherbrain_store::connect(&url)
        .await
        .map_err(|e| e.to_string())?;
    bootstrap_admin(store.as_ref(), Some(TOKEN))
        .await
        .map_err(|e| e.to_string())?;
    store
        .create_preset(NewPreset::new(
            "instant",
            PresetConfig::new("instant", "instant"),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let catalog = AgentCatalog::new().with_provider(
        "instant",
        Arc::new(InstantProvider::new(0, "noop")),
        vec!["instant".into()],
    );
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
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(serve(listener, state, std::future::pending::<()>()));

    let client = reqwest::Client::new();
    let endpoint = format!("http://{addr}/v1/chat/completions");
    let body = serde_json::json!({
        "model": "instant",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": args.stream,
    });
    let one = || async {
        let response = client
            .post(&endpoint)
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() || !text.contains("done") {
            return Err(format!("unexpected answer {status}: {text}"));
        }
        Ok::<(), String>(())
    };
    for _ in 0..args.warmup {
        one().await?;
    }
    let mut latencies = Vec::with_capacity(args.requests);
    // Let the warm-up's runs finish their writes before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    statements.store(0, Ordering::SeqCst);
    let started = Instant::now();
    for _ in 0..args.requests {
        let t = Instant::now();
        one().await?;
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| -> Duration {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).copied().unwrap_or_default()
    };
    println!(
        "{} sequential {} completions in {:.2} s: {:.0} requests/s; latency p50 {:.2} ms, p99 {:.2} ms",
        args.requests,
        if args.stream { "streamed" } else { "plain" },
        elapsed.as_secs_f64(),
        args.requests as f64 / elapsed.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    if args.count_statements {
        tokio::time::sleep(Duration::from_millis(200)).await;
        println!(
            "{:.1} SQL statements per request",
            statements.load(Ordering::SeqCst) as f64 / args.requests as f64
        );
    }
    Ok(())
}
