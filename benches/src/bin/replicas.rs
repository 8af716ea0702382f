//! Three `netherbrain agent` replicas on one Postgres database and one
//! Redis, driven by one client: throughput of streamed runs spread over the
//! replicas, the latency a reader on another replica adds over one on the
//! replica running the run (p50 / p99 per event), and Redis memory per
//! 1,000 live runs. See `docs/performance.md`.
//!
//! ```sh
//! cargo build --release -p netherbrain-cli -p netherbrain-benches
//! target/release/replicas --runs 300 --live 1000
//! ```
//!
//! Needs `psql` and the machine's Postgres (`--postgres`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and Redis (`--redis`,
//! default `redis://127.0.0.1:6379`). The model is a stamping fake on
//! loopback: each text delta carries the wall-clock time it was sent.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use netherbrain_benches::{ms, percentile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "netherbrain-replicas-bench-operator-token";
const REPLICAS: usize = 3;

struct Args {
    bin: String,
    postgres: String,
    redis: String,
    runs: usize,
    concurrency: usize,
    deltas: usize,
    delay_ms: u64,
    live: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bin: "target/release/netherbrain".into(),
        postgres: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        redis: "redis://127.0.0.1:6379".into(),
        runs: 300,
        concurrency: 30,
        deltas: 20,
        delay_ms: 20,
        live: 1000,
    };
    let mut it = std::env::args().skip(1);
    let absolute = |bin: &str| {
        std::fs::canonicalize(bin)
            .map(|p| p.display().to_string())
            .map_err(|e| format!("--bin {bin}: {e}"))
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--bin" => args.bin = value()?,
            "--postgres" => args.postgres = value()?,
            "--redis" => args.redis = value()?,
            "--runs" => args.runs = number(value()?)?,
            "--concurrency" => args.concurrency = number(value()?)?.max(1),
            "--deltas" => args.deltas = number(value()?)?.max(1),
            "--delay-ms" => args.delay_ms = number(value()?)? as u64,
            "--live" => args.live = number(value()?)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    args.bin = absolute(&args.bin)?;
    Ok(args)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

// ----- the fake model -----

/// Streams `deltas` chunks `delay` apart, each carrying its send time, then
/// ends; while `hold` is set it keeps the stream open after the deltas.
async fn serve_model(mut socket: TcpStream, deltas: usize, delay: Duration, hold: Arc<AtomicBool>) {
    let _ = socket.set_nodelay(true);
    // Read the request head and body (Content-Length).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                break;
            }
        }
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let send = |data: String| {
        let event = format!("data: {data}\n\n");
        format!("{:x}\r\n{event}\r\n", event.len())
    };
    for _ in 0..deltas {
        tokio::time::sleep(delay).await;
        let delta = serde_json::json!({"choices": [{"index": 0, "delta": {"content": format!("{:020};", now_nanos())}, "finish_reason": null}]});
        if socket
            .write_all(send(delta.to_string()).as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
    while hold.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": deltas}});
    let _ = socket.write_all(send(end.to_string()).as_bytes()).await;
    let _ = socket.write_all(send("[DONE]".into()).as_bytes()).await;
    let _ = socket.write_all(b"0\r\n\r\n").await;
}

// ----- the replicas -----

struct Replica {
    child: Child,
    base: String,
    _home: tempfile::TempDir,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn create_database(admin: &str) -> Result<String, String> {
    let name = format!("nb_bench_{}", uuid::Uuid::new_v4().simple());
    let status = Command::new("psql")
        .args([admin, "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .map_err(|e| format!("psql: {e}"))?;
    if !status.success() {
        return Err(format!("psql could not create {name}"));
    }
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

async fn start_replica(args: &Args, database: &str, model: &str) -> Result<Replica, String> {
    let home = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = format!(
        "[[providers]]\nname = \"fake\"\nkind = \"openai\"\nbase_url = \"{model}\"\napi_key = \"sk-bench\"\nmodels = [\"m\"]\n\n[[presets]]\nname = \"bench\"\n[presets.config]\nprofile = \"fake\"\nmodel = \"m\"\n"
    );
    let path = home.path().join("config.toml");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(config.as_bytes()))
        .map_err(|e| e.to_string())?;
    let port = free_port()?;
    let child = Command::new(&args.bin)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("NETHER_DATABASE_URL", database)
        .env("NETHER_REDIS_URL", &args.redis)
        .env("NETHER_AUTH_TOKEN", TOKEN)
        .env("NETHER_MAX_RUNS_PER_USER", "100000")
        .env("NETHER_LOG", "warn")
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(home.path().join("data"))
        .args(["agent", "--port", &port.to_string()])
        .current_dir(home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", args.bin))?;
    let replica = Replica {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _home: home,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http
            .get(format!("{}/api/health", replica.base))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok(replica);
        }
        if Instant::now() > deadline {
            return Err(format!("replica {} not healthy", replica.base));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ----- the client -----

async fn start_run(http: &reqwest::Client, base: &str, preset: &str) -> Result<String, String> {
    let body = serde_json::json!({"preset_id": preset, "input": "go", "stream": false});
    let resp = http
        .post(format!("{base}/api/conversations/run"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("run: {}", resp.status()));
    }
    let value: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    value["session_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no session id in {value}"))
}

/// Reads a session's events; latencies (µs) of the stamped deltas.
async fn attach(http: reqwest::Client, base: String, session: String) -> Result<Vec<u64>, String> {
    let resp = http
        .get(format!("{base}/api/sessions/{session}/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("events: {}", resp.status()));
    }
    let mut latencies = Vec::new();
    let mut bytes = resp.bytes_stream();
    let mut buf = String::new();
    let mut finished = false;
    while let Some(chunk) = bytes.next().await {
        let received = now_nanos();
        let chunk = chunk.map_err(|e| e.to_string())?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(data) else {
                    continue;
                };
                match value["type"].as_str() {
                    Some("TEXT_MESSAGE_CONTENT") => {
                        let delta = value["delta"].as_str().unwrap_or_default();
                        if let Some(sent) =
                            delta.strip_suffix(';').and_then(|s| s.parse::<u128>().ok())
                        {
                            let us = received.saturating_sub(sent) / 1_000;
                            latencies.push(u64::try_from(us).unwrap_or(u64::MAX));
                        }
                    }
                    Some("RUN_FINISHED" | "RUN_ERROR") => finished = true,
                    _ => {}
                }
            }
        }
    }
    if finished {
        Ok(latencies)
    } else {
        Err("stream ended without a terminal event".into())
    }
}

/// Per-event latencies (µs) of one run read on its replica and on another.
type Latencies = (Vec<u64>, Vec<u64>);

async fn redis_used_memory(url: &str) -> Result<u64, String> {
    let addr = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let mut socket = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
    socket
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = socket.read(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no used_memory in INFO".into())
}

async fn run(args: Args) -> Result<(), String> {
    let hold = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let model = format!(
        "http://{}/v1",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let (deltas, delay) = (args.deltas, Duration::from_millis(args.delay_ms));
    {
        let hold = hold.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_model(socket, deltas, delay, hold.clone()));
            }
        });
    }
    let database = create_database(&args.postgres)?;
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        replicas.push(start_replica(&args, &database, &model).await?);
    }
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| e.to_string())?;
    let presets: serde_json::Value = http
        .get(format!("{}/api/presets/list", bases[0]))
        .bearer_auth(TOKEN)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let preset = presets["items"][0]["id"]
        .as_str()
        .ok_or_else(|| format!("no preset in {presets}"))?
        .to_owned();

    // Phase 1: runs spread over the replicas, each read on its own replica
    // and on the next one.
    println!(
        "phase 1: {} runs over {REPLICAS} replicas, {} at once, {deltas} deltas {}ms apart",
        args.runs, args.concurrency, args.delay_ms
    );
    let started = Instant::now();
    let results: Vec<Result<Latencies, String>> = futures::stream::iter(0..args.runs)
        .map(|i| {
            let (http, bases, preset) = (http.clone(), bases.clone(), preset.clone());
            async move {
                let owner = &bases[i % REPLICAS];
                let other = &bases[(i + 1) % REPLICAS];
                let session = start_run(&http, owner, &preset).await?;
                let (same, cross) = tokio::join!(
                    attach(http.clone(), owner.clone(), session.clone()),
                    attach(http.clone(), other.clone(), session)
                );
                Ok((same?, cross?))
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let (mut same, mut cross, mut failed) = (Vec::new(), Vec::new(), 0usize);
    for result in results {
        match result {
            Ok((s, c)) => {
                same.extend(s);
                cross.extend(c);
            }
            Err(e) => {
                failed += 1;
                eprintln!("run failed: {e}");
            }
        }
    }
    same.sort_unstable();
    cross.sort_unstable();
    #[allow(clippy::cast_precision_loss)]
    let throughput = (args.runs - failed) as f64 / elapsed.as_secs_f64();
    println!(
        "  {} runs in {:.2} s: {throughput:.1} runs/s ({failed} failed)",
        args.runs - failed,
        elapsed.as_secs_f64()
    );
    println!(
        "  same-replica attach  per event: p50 {:.2} ms  p99 {:.2} ms  ({} events)",
        ms(percentile(&same, 50.0)),
        ms(percentile(&same, 99.0)),
        same.len()
    );
    println!(
        "  cross-replica attach per event: p50 {:.2} ms  p99 {:.2} ms  ({} events)",
        ms(percentile(&cross, 50.0)),
        ms(percentile(&cross, 99.0)),
        cross.len()
    );
    println!(
        "  added by crossing replicas: p50 {:.2} ms  p99 {:.2} ms",
        ms(percentile(&cross, 50.0).saturating_sub(percentile(&same, 50.0))),
        ms(percentile(&cross, 99.0).saturating_sub(percentile(&same, 99.0)))
    );

    // Phase 2: Redis memory with `live` runs going.
    if args.live > 0 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = redis_used_memory(&args.redis).await?;
        hold.store(true, Ordering::Release);
        println!(
            "phase 2: {} live runs (each holding after {deltas} deltas)",
            args.live
        );
        let started: Vec<Result<String, String>> = futures::stream::iter(0..args.live)
            .map(|i| {
                let (http, base, preset) =
                    (http.clone(), bases[i % REPLICAS].clone(), preset.clone());
                async move { start_run(&http, &base, &preset).await }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        let ok = started.iter().filter(|r| r.is_ok()).count();
        // Let every run stream its deltas.
        tokio::time::sleep(
            delay * u32::try_from(deltas).unwrap_or(u32::MAX) + Duration::from_secs(3),
        )
        .await;
        let during = redis_used_memory(&args.redis).await?;
        hold.store(false, Ordering::Release);
        let per_thousand = during.saturating_sub(before) as f64 / ok.max(1) as f64 * 1000.0;
        println!(
            "  {ok} runs live: Redis used_memory {:.1} MiB -> {:.1} MiB: {:.2} MiB per 1,000 live runs ({deltas} events each)",
            before as f64 / 1_048_576.0,
            during as f64 / 1_048_576.0,
            per_thousand / 1_048_576.0
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    drop(replicas);
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("replicas: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("replicas: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("replicas: {e}");
        std::process::exit(1);
    }
}
