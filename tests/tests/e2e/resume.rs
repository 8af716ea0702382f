//! Typed client streaming and resuming: after event id k a stream yields
//! exactly the events after k — while the run is live and after it ended —
//! and the client's own reconnection survives a cut connection.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use futures::StreamExt as _;
use netherbrain_core::EventEnvelope;
use netherbrain_http::client::EventStream;
use netherbrain_http::dto::{RunConversationRequest, RunInput};
use netherbrain_tests::{
    Agent, CutProxy, FakeProvider, PATIENCE, PresetDoc, Reply, sse, typed_client,
};
use serde_json::Value;
use uuid::Uuid;

/// How long the fake provider holds its answer back: the run is live and
/// waiting for the model meanwhile.
const MODEL_LATENCY: Duration = Duration::from_secs(2);

async fn slow_agent() -> Result<(FakeProvider, Agent, Uuid)> {
    let provider = FakeProvider::start().await;
    provider
        .answer(Reply::text(&["one ", "two ", "three ", "four"]).after(MODEL_LATENCY))
        .await;
    let agent = Agent::start(&provider, &[PresetDoc::new("counter")]).await?;
    let preset = agent.admin().preset_id("counter").await?.parse()?;
    Ok((provider, agent, preset))
}

fn request(preset: Uuid) -> RunConversationRequest {
    RunConversationRequest {
        conversation_id: None,
        preset_id: Some(preset),
        input: RunInput::Text("Count to four".into()),
        stream: false,
    }
}

/// An event as it travels: its id and its JSON.
fn wire(events: &[EventEnvelope]) -> Vec<(u64, Value)> {
    events
        .iter()
        .map(|e| (e.seq, serde_json::to_value(&e.event).unwrap_or_default()))
        .collect()
}

async fn next(stream: &mut EventStream) -> Result<EventEnvelope> {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .map_err(|_| anyhow!("no event within {PATIENCE:?}"))?
        .ok_or_else(|| anyhow!("the stream ended early"))?
        .context("a stream item")
}

async fn collect(stream: EventStream) -> Result<Vec<EventEnvelope>> {
    let items: Vec<_> = tokio::time::timeout(PATIENCE, stream.collect::<Vec<_>>())
        .await
        .map_err(|_| anyhow!("the stream did not end within {PATIENCE:?}"))?;
    items
        .into_iter()
        .map(|i| i.context("a stream item"))
        .collect()
}

/// Ids 1..=n, each once, ending with the terminal event.
fn assert_whole_log(events: &[EventEnvelope]) {
    let ids: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "ids");
    assert!(
        events.last().is_some_and(|e| e.event.is_terminal()),
        "ends with RUN_FINISHED / RUN_ERROR: {:?}",
        events.last()
    );
    assert!(events.len() >= 5, "a whole run: {ids:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resuming_after_an_event_id_yields_exactly_the_rest() -> Result<()> {
    let (_provider, agent, preset) = slow_agent().await?;
    let client = agent.client()?;
    let started = client.run(&request(preset)).await?;
    let sid = started.session_id;

    let mut live = client.stream_session_events(sid, 0);
    let first = next(&mut live).await?;
    let k = first.seq;
    assert_eq!(k, 1, "{first:?}");
    let status = client.session_status(sid).await?;
    assert!(status.running, "the model has not answered yet: {status:?}");

    // Resume after k while the run is live: over raw HTTP (the response
    // starts while the session still runs; the exact events prove the
    // server honours the id) and through the typed client.
    let raw = agent
        .admin()
        .get_request(&format!("/api/sessions/{sid}/events"))
        .header("last-event-id", k.to_string())
        .send()
        .await?
        .error_for_status()?;
    let status = client.session_status(sid).await?;
    assert!(status.running, "resumed while live: {status:?}");
    let typed = tokio::spawn(collect(client.stream_session_events(sid, k)));

    let mut full = vec![first];
    full.extend(collect(live).await?);
    assert_whole_log(&full);
    assert_eq!(
        wire(&typed.await??),
        wire(&full[k as usize..]),
        "the typed client resumed live after {k}"
    );
    let raw = sse::read(raw).await?;
    let expected = wire(&full[k as usize..]);
    assert_eq!(
        raw.iter()
            .map(|e| (e.id, e.data.clone()))
            .collect::<Vec<_>>(),
        expected,
        "Last-Event-ID {k} while live"
    );

    // After the run: every resume point gives exactly what follows it —
    // from the server itself (the typed client would hide a server that
    // ignored the id, since it drops ids it has seen) and through the client.
    let n = full.len();
    let admin = agent.admin();
    for k in 0..=n {
        let raw = admin.session_events(&sid.to_string(), k as u64).await?;
        assert_eq!(
            raw.iter()
                .map(|e| (e.id, e.data.clone()))
                .collect::<Vec<_>>(),
            wire(&full[k..]),
            "Last-Event-ID {k} of {n}, finished"
        );
        let rest = collect(client.stream_session_events(sid, k as u64)).await?;
        assert_eq!(
            wire(&rest),
            wire(&full[k..]),
            "client after {k} of {n}, finished"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_resumes_by_itself_when_the_connection_drops() -> Result<()> {
    let (_provider, agent, preset) = slow_agent().await?;
    let proxy = CutProxy::start(agent.addr()).await?;
    let through_proxy = typed_client(&proxy.base_url(), agent.token())?;

    let mut stream = through_proxy.run_stream(&request(preset));
    let first = next(&mut stream).await?;
    assert_eq!(first.seq, 1, "{first:?}");
    let cut = proxy.cut();
    assert!(cut >= 1, "a live connection was cut");
    let mut seen = vec![first];
    seen.extend(collect(stream).await?);

    assert_whole_log(&seen);
    let direct = collect(
        agent
            .client()?
            .stream_session_events(seen[0].session_id.into(), 0),
    )
    .await?;
    assert_eq!(wire(&seen), wire(&direct), "every event once, in order");
    assert!(
        proxy.accepted() > cut,
        "the client reconnected ({} connections, {cut} cut)",
        proxy.accepted()
    );
    Ok(())
}
