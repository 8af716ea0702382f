//! Load program: N concurrent streaming chat completions against a server
//! child process, reporting the latency the server adds per event, the
//! server's memory at idle and under load, and its time to ready.
//!
//! ```text
//! cargo run --release -p netherbrain-benches --bin load -- --streams 1000
//! ```
//!
//! The same binary runs the server when given `--serve`: a MemoryStore, a
//! preset `load` whose provider emits `--deltas` text deltas `--delay-ms`
//! apart, each delta stamped with its emit time (wall-clock nanoseconds),
//! bound to `127.0.0.1:--port` only. The client opens `--streams`
//! `POST /v1/chat/completions` streams at once and, for every content
//! delta, records `receive time - emit time`. Both processes read the same
//! system clock. Everything is bounded: the child exits when its stdin
//! closes or after `--max-secs`, and the client gives up after
//! `--timeout-secs`.
//!
//! Options: `--streams N` (100), `--deltas N` (20), `--delay-ms N` (50),
//! `--timeout-secs N` (120), `--ramp-ms N` (0: every stream starts at once;
//! otherwise starts are spread evenly over N ms).

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use netherbrain_benches::{ms, percentile};
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::provider::{
    FinishReason, ModelRequest, Provider, ProviderEvent, ProviderStream,
};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewPreset};
use netherbrain_core::{PresetConfig, Usage};
use netherbrain_http::{AppState, ServerConfig, bootstrap_admin, serve};

/// Operator token of the child server (loopback only, throwaway store).
const TOKEN: &str = "netherbrain-load-test-operator-token";
/// Width of the stamp each delta carries: `{nanos:020};`.
const STAMP_LEN: usize = 21;

#[derive(Debug, Clone)]
struct Args {
    serve: bool,
    port: u16,
    streams: usize,
    deltas: usize,
    delay: Duration,
    timeout: Duration,
    max_secs: u64,
    ramp: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        serve: false,
        port: 0,
        streams: 100,
        deltas: 20,
        delay: Duration::from_millis(50),
        timeout: Duration::from_secs(120),
        max_secs: 600,
        ramp: Duration::ZERO,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .parse::<u64>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--serve" => args.serve = true,
            "--port" => {
                args.port = u16::try_from(value()?).map_err(|e| format!("--port: {e}"))?;
            }
            "--streams" => args.streams = usize::try_from(value()?).map_err(|e| e.to_string())?,
            "--deltas" => args.deltas = usize::try_from(value()?).map_err(|e| e.to_string())?,
            "--delay-ms" => args.delay = Duration::from_millis(value()?),
            "--timeout-secs" => args.timeout = Duration::from_secs(value()?),
            "--max-secs" => args.max_secs = value()?,
            "--ramp-ms" => args.ramp = Duration::from_millis(value()?),
            "--bench" => {} // passed by `cargo bench`; ignored
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.streams == 0 || args.streams > 10_000 {
        return Err("--streams must be in 1..=10000".into());
    }
    if args.deltas == 0 || args.deltas > 10_000 {
        return Err("--deltas must be in 1..=10000".into());
    }
    Ok(args)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

// ----- the server side -----

/// Emits `deltas` text deltas `delay` apart, each `{emit nanos:020};`.
#[derive(Debug)]
struct StampingProvider {
    deltas: usize,
    delay: Duration,
}

impl Provider for StampingProvider {
    fn name(&self) -> &str {
        "stamping"
    }

    fn stream(&self, _request: ModelRequest) -> ProviderStream {
        let delay = self.delay;
        let deltas = futures::stream::iter(0..self.deltas).then(move |_| async move {
            tokio::time::sleep(delay).await;
            Ok(ProviderEvent::TextDelta(format!("{:020};", now_nanos())))
        });
        let tail = futures::stream::iter([
            Ok(ProviderEvent::Usage(Usage {
                input_tokens: 1,
                output_tokens: self.deltas as u64,
                ..Usage::default()
            })),
            Ok(ProviderEvent::Finish(FinishReason::Stop)),
        ]);
        deltas.chain(tail).boxed()
    }
}

fn run_server(args: &Args) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let store = Arc::new(MemoryStore::new());
        bootstrap_admin(store.as_ref(), Some(TOKEN))
            .await
            .map_err(|e| e.to_string())?;
        store
            .create_preset(NewPreset::new(
                "load",
                PresetConfig::new("fake", "fake-model"),
            ))
            .await
            .map_err(|e| e.to_string())?;
        let provider = Arc::new(StampingProvider {
            deltas: args.deltas,
            delay: args.delay,
        });
        let catalog = AgentCatalog::new().with_provider("fake", provider, Vec::new());
        let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
        let config = ServerConfig::default()
            .with_bind(addr)
            .with_auth_token(Some(TOKEN.to_owned()));
        let state = AppState::builder(store)
            .config(config)
            .catalog(Arc::new(catalog))
            .build();
        let listener = netherbrain_http::bind(&state)
            .await
            .map_err(|e| e.to_string())?;
        // Stop when the parent closes our stdin (or dies), or at the
        // deadline.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = [0_u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
        let max = Duration::from_secs(args.max_secs);
        serve(listener, state, async move {
            tokio::select! {
                _ = rx => {}
                () = tokio::time::sleep(max) => {}
            }
        })
        .await
        .map_err(|e| e.to_string())
    })
}

// ----- the client side -----

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU time of a process, in seconds (clock ticks at the
/// usual 100 Hz).
fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the `(comm)`; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    #[allow(clippy::cast_precision_loss)]
    let secs = ticks as f64 / 100.0;
    secs
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Kills the child (the one this program spawned) when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        if !matches!(self.0.try_wait(), Ok(Some(_))) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

#[derive(Debug, Default)]
struct StreamResult {
    latencies_us: Vec<u64>,
    error: Option<String>,
}

/// One streaming completion; latencies of every stamped delta.
async fn one_stream(http: reqwest::Client, url: String, expected: usize) -> StreamResult {
    let mut result = StreamResult::default();
    let body = serde_json::json!({
        "model": "load",
        "messages": [{"role": "user", "content": "go"}],
        "stream": true,
    });
    let resp = match http.post(&url).bearer_auth(TOKEN).json(&body).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            result.error = Some(format!("status {}", r.status()));
            return result;
        }
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    let mut bytes = resp.bytes_stream();
    let mut buf = String::new();
    let mut done = false;
    while let Some(chunk) = bytes.next().await {
        let received = now_nanos();
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                result.error = Some(e.to_string());
                return result;
            }
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
                if data == "[DONE]" {
                    done = true;
                    continue;
                }
                let Ok(value) = serde_json::from_str::<serde_json::Value>(data) else {
                    continue;
                };
                if value.get("error").is_some() {
                    result.error = Some(data.to_owned());
                }
                let content = value["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or_default();
                for stamp in content.as_bytes().chunks(STAMP_LEN) {
                    let Some(sent) = std::str::from_utf8(&stamp[..stamp.len().saturating_sub(1)])
                        .ok()
                        .and_then(|s| s.parse::<u128>().ok())
                    else {
                        continue;
                    };
                    let us = received.saturating_sub(sent) / 1_000;
                    result
                        .latencies_us
                        .push(u64::try_from(us).unwrap_or(u64::MAX));
                }
            }
        }
    }
    if !done && result.error.is_none() {
        result.error = Some("stream ended without [DONE]".into());
    } else if result.latencies_us.len() != expected && result.error.is_none() {
        result.error = Some(format!(
            "{} of {expected} deltas",
            result.latencies_us.len()
        ));
    }
    result
}

#[allow(clippy::cast_precision_loss)]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn run_client(args: Args) -> Result<(), String> {
    let port = free_port()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let spawned = Instant::now();
    let child = Command::new(exe)
        .args(["--serve", "--port", &port.to_string()])
        .args(["--deltas", &args.deltas.to_string()])
        .args(["--delay-ms", &args.delay.as_millis().to_string()])
        .args(["--max-secs", &(args.timeout.as_secs() + 30).to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn the server: {e}"))?;
    let mut child = ChildGuard(child);
    let pid = child.0.id();
    let base = format!("http://127.0.0.1:{port}");

    // Ready: spawn -> GET /api/health answers 200.
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let ready = loop {
        if let Ok(r) = probe.get(format!("{base}/api/health")).send().await
            && r.status().is_success()
        {
            break spawned.elapsed();
        }
        if spawned.elapsed() > Duration::from_secs(10) {
            return Err("the server was not ready within 10 s".into());
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(format!("the server exited: {status}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_kib(pid).unwrap_or(0);

    // Load: every stream at once.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.streams)
        .timeout(args.timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{base}/v1/chat/completions");
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let server_cpu_before = cpu_secs(&pid.to_string());
    let client_cpu_before = cpu_secs("self");
    let started = Instant::now();
    let step = args.ramp / u32::try_from(args.streams).unwrap_or(u32::MAX);
    let mut tasks = Vec::with_capacity(args.streams);
    for i in 0..args.streams {
        if !step.is_zero() && i > 0 {
            tokio::time::sleep(step).await;
        }
        tasks.push(tokio::spawn(one_stream(
            http.clone(),
            url.clone(),
            args.deltas,
        )));
    }
    let all = tokio::time::timeout(args.timeout, futures::future::join_all(tasks))
        .await
        .map_err(|_| format!("the load did not finish within {:?}", args.timeout))?;
    let wall = started.elapsed();
    let server_cpu = cpu_secs(&pid.to_string()) - server_cpu_before;
    let client_cpu = cpu_secs("self") - client_cpu_before;
    sampling.store(false, Ordering::Relaxed);
    let peak_rss = sampler.await.unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_rss = rss_kib(pid).unwrap_or(0);

    let mut latencies = Vec::with_capacity(args.streams * args.deltas);
    let mut errors = Vec::new();
    for result in all {
        match result {
            Ok(r) => {
                latencies.extend(r.latencies_us);
                if let Some(e) = r.error {
                    errors.push(e);
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    latencies.sort_unstable();
    drop(child);

    println!(
        "netherbrain load: {} streams x {} deltas, {:?} apart, starts spread over {:?} (server: child process, MemoryStore, /v1/chat/completions)",
        args.streams, args.deltas, args.delay, args.ramp
    );
    println!(
        "  ready (spawn -> /api/health 200): {:.1} ms",
        ready.as_secs_f64() * 1000.0
    );
    println!(
        "  server RSS idle:                 {:.1} MiB",
        mib(idle_rss)
    );
    println!(
        "  server RSS peak under load:      {:.1} MiB",
        mib(peak_rss)
    );
    println!(
        "  server RSS after load:           {:.1} MiB",
        mib(after_rss)
    );
    println!(
        "  events: {} received of {} expected in {:.2} s; streams failed: {}",
        latencies.len(),
        args.streams * args.deltas,
        wall.as_secs_f64(),
        errors.len()
    );
    println!(
        "  added latency per event (provider emit -> client receive): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or(0)),
    );
    println!(
        "  CPU during load: server {server_cpu:.2} s, load client {client_cpu:.2} s ({:.2} s wall, {} cores)",
        wall.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    if let Some(first) = errors.first() {
        println!("  first error: {first}");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} streams failed", errors.len()))
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    let result = if args.serve {
        run_server(&args)
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(run_client(args)))
    };
    if let Err(e) = result {
        eprintln!("load: {e}");
        std::process::exit(1);
    }
}
