//! Three `netherbrain agent` replicas on one Postgres database and the
//! machine's Redis (`NETHER_REDIS_URL`): a run on one is streamed
//! identically from the others, interrupt and steer sent to another reach
//! it, a replica killed mid-run is recovered by a survivor within the
//! lease, and a rolling restart under client traffic fails no request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use netherbrain_tests::sse::Sse;
use netherbrain_tests::{
    Agent, AgentOptions, Api, FakeProvider, PATIENCE, PresetDoc, Reply, postgres_database, until,
};
use serde_json::{Value, json};

/// The machine's Redis (`NETHER_TEST_REDIS_URL` to use another).
fn redis_url() -> String {
    std::env::var("NETHER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// One deployment's replica options: one database, one Redis, one token.
fn deployment(extra: &[(&str, &str)]) -> Result<AgentOptions> {
    let token = format!("e2e-deployment-{}", uuid::Uuid::new_v4().simple());
    let mut options = AgentOptions::default()
        .database_url(&postgres_database()?)
        .env("NETHER_REDIS_URL", &redis_url())
        .env("NETHER_SESSION_LEASE", "3")
        .auth_token(&token);
    for (name, value) in extra {
        options = options.env(name, value);
    }
    Ok(options)
}

/// `n` replicas, started one after the other (the first prepares the
/// database).
async fn replicas(provider: &FakeProvider, n: usize, options: &AgentOptions) -> Result<Vec<Agent>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Agent::start_with(provider, &[PresetDoc::new("p")], options.clone()).await?);
    }
    Ok(out)
}

/// Events as comparable lines: id, type and the data's exact JSON.
fn lines(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {} {}", e.id, e.event, e.data))
        .collect()
}

/// A session's event stream as the server wrote it, without its
/// keep-alive comments (sent on a timer, so not part of the events).
async fn raw_events(api: &Api, session: &str) -> Result<String> {
    let resp = api
        .get_request(&format!("/api/sessions/{session}/events"))
        .send()
        .await?;
    ensure!(resp.status() == 200, "{}", resp.status());
    let body = tokio::time::timeout(PATIENCE, resp.text())
        .await
        .context("the stream did not end")??;
    Ok(body
        .split_inclusive('\n')
        .filter(|line| !line.starts_with(':'))
        .collect())
}

fn spawn_raw(api: &Api, session: &str) -> tokio::task::JoinHandle<Result<String>> {
    let api = api.clone();
    let session = session.to_owned();
    tokio::spawn(async move { raw_events(&api, &session).await })
}

fn spawn_events(api: &Api, session: &str, after: u64) -> tokio::task::JoinHandle<Result<Vec<Sse>>> {
    let api = api.clone();
    let session = session.to_owned();
    tokio::spawn(async move { api.session_events(&session, after).await })
}

async fn status_of(api: &Api, session: &str) -> Result<String> {
    let status = api.get(&format!("/api/sessions/{session}/status")).await?;
    status["status"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no status in {status}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_on_one_replica_streams_identically_from_the_others() -> Result<()> {
    let provider = FakeProvider::start().await;
    let words: Vec<String> = (0..40).map(|i| format!("word{i} ")).collect();
    let deltas: Vec<&str> = words.iter().map(String::as_str).collect();
    provider
        .answer(Reply::text(&deltas).after(Duration::from_millis(1500)))
        .await;
    let options = deployment(&[])?;
    let nodes = replicas(&provider, 3, &options).await?;
    let (a, b, c) = (nodes[0].admin(), nodes[1].admin(), nodes[2].admin());
    let preset = a.preset_id("p").await?;
    let (_, session) = a
        .run_detached(json!({"preset_id": preset, "input": "tell me"}))
        .await?;
    // Attached while the model is still thinking: the run is on A.
    let on_a = spawn_raw(&a, &session);
    let on_b = spawn_raw(&b, &session);
    let on_c = spawn_raw(&c, &session);
    let (raw_a, raw_b, raw_c) = (on_a.await??, on_b.await??, on_c.await??);
    ensure!(raw_a == raw_b, "B wrote the bytes A did");
    ensure!(raw_a == raw_c, "C wrote the bytes A did");
    let on_a = netherbrain_tests::sse::parse(&raw_a)?;
    ensure!(on_a.len() > 40, "{} events", on_a.len());
    ensure!(
        on_a.last().is_some_and(|e| e.event == "RUN_FINISHED"),
        "{:?}",
        on_a.last()
    );
    // A resume on C after event 5 gets exactly the rest.
    let resumed = c.session_events(&session, 5).await?;
    ensure!(lines(&on_a[5..]) == lines(&resumed), "a resume on C");
    // Each replica reports both engines.
    let health = nodes[1].admin().get("/api/health").await?;
    ensure!(
        health["redis"] == "ok" && health["store"] == "ok" && health["ready"] == true,
        "{health}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupt_and_steer_sent_to_another_replica_reach_the_run() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer_when("STEER-XYZ", Reply::text(&["steered ", "answer"]))
        .await;
    provider
        .answer_when(
            "forever",
            Reply::text(&["never"]).after(Duration::from_secs(60)),
        )
        .await;
    provider
        .answer_when(
            "slow",
            Reply::text(&["first"]).after(Duration::from_secs(2)),
        )
        .await;
    let options = deployment(&[])?;
    let nodes = replicas(&provider, 3, &options).await?;
    let (a, b, c) = (nodes[0].admin(), nodes[1].admin(), nodes[2].admin());
    let preset = a.preset_id("p").await?;

    // Steer through C while the run on A waits for the model.
    let (_, session) = a
        .run_detached(json!({"preset_id": preset, "input": "slow question"}))
        .await?;
    let watched = spawn_events(&b, &session, 0);
    provider.wait_for(1).await?;
    let steered = c
        .post(
            &format!("/api/sessions/{session}/steer"),
            &json!({"text": "STEER-XYZ"}),
        )
        .await?;
    ensure!(steered["session_id"] == session.as_str(), "{steered}");
    let events = watched.await??;
    ensure!(
        events
            .iter()
            .any(|e| e.data.to_string().contains("STEER-XYZ")),
        "the steering shows in the stream read through B: {events:?}"
    );
    ensure!(
        netherbrain_tests::sse::text(&events).ends_with("steered answer"),
        "{}",
        netherbrain_tests::sse::text(&events)
    );
    let requests = provider.requests().await;
    ensure!(
        requests.iter().any(|r| r.mentions("STEER-XYZ")),
        "the model saw the steering"
    );

    // Interrupt through C.
    let (_, session) = a
        .run_detached(json!({"preset_id": preset, "input": "forever"}))
        .await?;
    let watched = spawn_events(&b, &session, 0);
    until("the model is asked", || async {
        ensure!(
            provider
                .requests()
                .await
                .iter()
                .any(|r| r.mentions("forever"))
        );
        Ok(())
    })
    .await?;
    let interrupted = c
        .post(&format!("/api/sessions/{session}/interrupt"), &json!({}))
        .await?;
    ensure!(
        interrupted["session_id"] == session.as_str(),
        "{interrupted}"
    );
    let events = tokio::time::timeout(Duration::from_secs(10), watched)
        .await
        .context("the interrupted run's stream through B did not end")???;
    let last = events.last().ok_or_else(|| anyhow!("no events"))?;
    ensure!(
        last.event == "RUN_FINISHED" && last.data["result"]["status"] == "interrupted",
        "{last:?}"
    );
    ensure!(status_of(&c, &session).await? == "interrupted");
    // The run has ended: another interrupt is a clear 409.
    let again = c
        .post_request(&format!("/api/sessions/{session}/interrupt"), &json!({}))
        .send()
        .await?;
    ensure!(again.status() == 409, "{}", again.status());
    let body: Value = again.json().await?;
    ensure!(body["error"]["code"] == "not_running", "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_run_is_recovered_by_a_survivor_within_the_lease() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider.answer_when("again", Reply::text(&["fine"])).await;
    provider
        .answer_when(
            "forever",
            Reply::text(&["never"]).after(Duration::from_secs(60)),
        )
        .await;
    let options = deployment(&[])?;
    let mut nodes = replicas(&provider, 3, &options).await?;
    let (a, b) = (nodes[0].admin(), nodes[1].admin());
    let preset = a.preset_id("p").await?;
    let (conversation, session) = a
        .run_detached(json!({"preset_id": preset, "input": "forever"}))
        .await?;
    let watched = spawn_events(&b, &session, 0);
    provider.wait_for(1).await?;
    let killed = std::time::Instant::now();
    nodes[0].kill()?;
    // The lease is 3 s: a survivor recovers the run soon after.
    until("a survivor marks the run interrupted", || async {
        ensure!(status_of(&b, &session).await? == "interrupted");
        Ok(())
    })
    .await?;
    let recovered_after = killed.elapsed();
    ensure!(
        recovered_after < Duration::from_secs(10),
        "recovered after {recovered_after:?}"
    );
    // The stream attached through B ends with the run.
    let events = tokio::time::timeout(Duration::from_secs(10), watched)
        .await
        .context("the stream through B did not end")???;
    let last = events.last().ok_or_else(|| anyhow!("no events"))?;
    ensure!(
        last.event == "RUN_FINISHED" && last.data["result"]["status"] == "interrupted",
        "{last:?}"
    );
    // What B showed is what the log keeps: the events A had published but
    // not written were kept by the survivor before the terminal event.
    let stored = nodes[2].admin().session_events(&session, 0).await?;
    ensure!(
        lines(&events) == lines(&stored),
        "through B: {:?}\nstored: {:?}",
        lines(&events),
        lines(&stored)
    );
    // The conversation takes a new run, on any survivor.
    let next = nodes[2]
        .admin()
        .run_streamed(json!({"conversation_id": conversation, "input": "again"}))
        .await?;
    ensure!(next.status().as_deref() == Some("committed"), "{next:?}");
    Ok(())
}

/// A load balancer for the test: sends work to the replicas whose health
/// check last said ready, round robin.
#[derive(Clone, Default)]
struct Balancer {
    /// Base URL of each replica and whether it is ready.
    backends: Arc<Mutex<Vec<(String, bool)>>>,
    next: Arc<AtomicUsize>,
}

impl Balancer {
    fn set(&self, i: usize, url: String) {
        let mut backends = self
            .backends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if backends.len() <= i {
            backends.resize(i + 1, (String::new(), false));
        }
        backends[i] = (url, false);
    }

    fn pick(&self) -> Option<String> {
        let backends = self
            .backends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ready: Vec<&String> = backends.iter().filter(|b| b.1).map(|b| &b.0).collect();
        if ready.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Some(ready[n % ready.len()].clone())
    }

    /// Checks every replica's health every 100 ms.
    fn probe(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_millis(500))
                .build()
                .unwrap_or_default();
            loop {
                let urls: Vec<String> = this
                    .backends
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .map(|b| b.0.clone())
                    .collect();
                for (i, url) in urls.iter().enumerate() {
                    let ready = match http.get(format!("{url}/api/health")).send().await {
                        Ok(resp) => resp.status() == 200,
                        Err(_) => false,
                    };
                    let mut backends = this
                        .backends
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if backends.get(i).is_some_and(|b| &b.0 == url) {
                        backends[i].1 = ready;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_under_traffic_fails_no_request() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer_when(
            "long",
            Reply::text(&["long ", "answer"]).after(Duration::from_secs(3)),
        )
        .await;
    provider.answer(Reply::text(&["quick"])).await;
    let options = deployment(&[
        ("NETHER_DRAIN_DELAY", "1"),
        ("NETHER_GRACEFUL_SHUTDOWN_TIMEOUT", "10"),
    ])?;
    let mut nodes = replicas(&provider, 3, &options).await?;
    let token = nodes[0].token().to_owned();
    let preset = nodes[0].admin().preset_id("p").await?;
    let balancer = Balancer::default();
    for (i, node) in nodes.iter().enumerate() {
        balancer.set(i, node.base_url());
    }
    let probe = balancer.probe();
    until("every replica is seen ready", || async {
        let ready = balancer
            .backends
            .lock()
            .map(|b| b.iter().filter(|b| b.1).count())
            .unwrap_or(0);
        ensure!(ready == 3, "{ready} ready");
        Ok(())
    })
    .await?;

    // A long run on replica 0, read through replica 1, outlives 0's restart.
    let (_, long_session) = Api::new(nodes[0].base_url(), &token)
        .run_detached(json!({"preset_id": preset, "input": "long question"}))
        .await?;
    let long_read = spawn_events(&Api::new(nodes[1].base_url(), &token), &long_session, 0);

    // Clients: streamed runs through the balancer, one after another.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (balancer, stop, failures, done) = (
            balancer.clone(),
            stop.clone(),
            failures.clone(),
            done.clone(),
        );
        let (token, preset) = (token.clone(), preset.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Some(url) = balancer.pick() else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let api = Api::new(url.clone(), &token);
                match api
                    .run_streamed(json!({"preset_id": preset, "input": "hello"}))
                    .await
                {
                    Ok(run) if run.status().as_deref() == Some("committed") => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(run) => failures
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(format!("{url}: {:?}", run.events.last())),
                    Err(e) => failures
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(format!("{url}: {e:#}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, node) in nodes.iter_mut().enumerate() {
        node.restart().await?;
        balancer.set(i, node.base_url());
        let url = node.base_url();
        until("the restarted replica is seen ready", || async {
            let ready = balancer
                .backends
                .lock()
                .map(|b| b.iter().any(|b| b.0 == url && b.1))
                .unwrap_or(false);
            ensure!(ready);
            Ok(())
        })
        .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    probe.abort();
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    let done = done.load(Ordering::Relaxed);
    ensure!(
        failures.is_empty(),
        "{} failed of {}: {failures:#?}",
        failures.len(),
        done + failures.len()
    );
    ensure!(done >= 10, "only {done} runs went through");
    let long = long_read.await??;
    ensure!(
        long.last().is_some_and(|e| e.event == "RUN_FINISHED" && e.data["result"]["status"] == "committed"),
        "the long run read through replica 1 finished on the draining replica 0: {:?}",
        long.last()
    );
    Ok(())
}

/// A private `redis-server` on a free loopback port; killed when dropped.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start() -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut redis = Self { port, child: None };
        redis.resume()?;
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port and waits until it answers.
    fn resume(&mut self) -> Result<()> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("running redis-server")?;
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("redis-server did not listen on {}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_outage_degrades_to_the_database_and_recovers() -> Result<()> {
    let mut redis = PrivateRedis::start()?;
    let provider = FakeProvider::start().await;
    provider
        .answer_when(
            "slow",
            Reply::text(&["late ", "answer"]).after(Duration::from_secs(3)),
        )
        .await;
    provider
        .answer_when(
            "forever",
            Reply::text(&["never"]).after(Duration::from_secs(60)),
        )
        .await;
    let token = format!("e2e-deployment-{}", uuid::Uuid::new_v4().simple());
    let options = AgentOptions::default()
        .database_url(&postgres_database()?)
        .env("NETHER_REDIS_URL", &redis.url())
        .auth_token(&token);
    let nodes = replicas(&provider, 2, &options).await?;
    let (a, b) = (nodes[0].admin(), nodes[1].admin());
    let preset = a.preset_id("p").await?;
    redis.kill();
    let health = until("B reports Redis unavailable", || async {
        let health = b.get("/api/health").await?;
        ensure!(health["redis"] == "unavailable", "{health}");
        Ok(health)
    })
    .await?;
    ensure!(
        health["status"] == "degraded" && health["ready"] == true,
        "still serving: {health}"
    );
    let metrics = b.get_request("/metrics").send().await?.text().await?;
    ensure!(
        metrics.contains("netherbrain_redis_up 0")
            && metrics.contains("netherbrain_redis_errors_total"),
        "the outage shows in the metrics"
    );
    // A run on A is still read whole through B, from the database.
    let (_, session) = a
        .run_detached(json!({"preset_id": preset, "input": "slow question"}))
        .await?;
    let through_b = b.session_events(&session, 0).await?;
    let on_a = a.session_events(&session, 0).await?;
    ensure!(
        lines(&through_b) == lines(&on_a),
        "B read the run from the database"
    );
    ensure!(netherbrain_tests::sse::text(&through_b) == "late answer");
    // A command for A's run cannot reach it: a clear 409.
    let (_, forever) = a
        .run_detached(json!({"preset_id": preset, "input": "forever"}))
        .await?;
    let refused = b
        .post_request(&format!("/api/sessions/{forever}/interrupt"), &json!({}))
        .send()
        .await?;
    ensure!(refused.status() == 409, "{}", refused.status());
    let body: Value = refused.json().await?;
    ensure!(body["error"]["code"] == "running_elsewhere", "{body}");
    // Redis returns: the replicas use it again by themselves.
    redis.resume()?;
    until("B reports Redis reachable", || async {
        let health = b.get("/api/health").await?;
        ensure!(
            health["redis"] == "ok" && health["status"] == "ok",
            "{health}"
        );
        Ok(())
    })
    .await?;
    let metrics = b.get_request("/metrics").send().await?.text().await?;
    ensure!(
        metrics.contains("netherbrain_redis_up 1"),
        "Redis is up again in the metrics"
    );
    let interrupted = until("B's interrupt reaches A again", || async {
        b.post(&format!("/api/sessions/{forever}/interrupt"), &json!({}))
            .await
    })
    .await?;
    ensure!(
        interrupted["session_id"] == forever.as_str(),
        "{interrupted}"
    );
    until("the run on A is interrupted", || async {
        ensure!(status_of(&a, &forever).await? == "interrupted");
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_followed_on_one_replica_streams_runs_started_on_another() -> Result<()> {
    let provider = FakeProvider::start().await;
    provider
        .answer_when("second", Reply::text(&["second ", "answer"]))
        .await;
    provider.answer(Reply::text(&["first"])).await;
    let options = deployment(&[])?;
    let nodes = replicas(&provider, 2, &options).await?;
    let (a, b) = (nodes[0].admin(), nodes[1].admin());
    let preset = a.preset_id("p").await?;
    let first = a
        .run_streamed(json!({"preset_id": preset, "input": "first"}))
        .await?;
    let mut ws = netherbrain_tests::ws::Ws::connect(&nodes[1].base_url(), b.token()).await?;
    ws.exchange(
        &json!({"type": "subscribe", "conversation_id": first.conversation_id}),
        "subscribed",
    )
    .await?;
    let second = a
        .run_streamed(json!({"conversation_id": first.conversation_id, "input": "second"}))
        .await?;
    let frames = ws
        .collect_until(|f| {
            f["type"] == "event"
                && f["event"]["type"] == "RUN_FINISHED"
                && f["session_id"] == second.session_id.as_str()
        })
        .await?;
    let text: String = frames
        .iter()
        .filter(|f| f["event"]["type"] == "TEXT_MESSAGE_CONTENT")
        .filter_map(|f| f["event"]["delta"].as_str())
        .collect();
    ensure!(
        text.ends_with("second answer"),
        "B's socket streamed A's run: {frames:?}"
    );
    ws.close().await?;
    Ok(())
}
