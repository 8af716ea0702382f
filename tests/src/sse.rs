//! Server-sent events as the server writes them: `id: <seq>`,
//! `event: <AG-UI type>`, `data: <event JSON>`.

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

/// One event of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    /// `id:` — the event's sequence number in its session.
    pub id: u64,
    /// `event:` — the AG-UI event type.
    pub event: String,
    /// `data:` — the event as JSON.
    pub data: Value,
}

/// Reads a whole event stream (the server ends it after the run's
/// terminal event), failing after [`crate::PATIENCE`].
///
/// # Errors
///
/// A transport error, a timeout, or a malformed event.
pub async fn read(resp: reqwest::Response) -> Result<Vec<Sse>> {
    let text = tokio::time::timeout(crate::PATIENCE, resp.text())
        .await
        .map_err(|_| anyhow!("the event stream did not end within {:?}", crate::PATIENCE))?
        .context("reading the event stream")?;
    parse(&text)
}

/// Parses an event stream body; comments (`: keep-alive`) are skipped.
///
/// # Errors
///
/// An event without a numeric id or with data that is not JSON.
pub fn parse(body: &str) -> Result<Vec<Sse>> {
    let body = body.replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let (mut id, mut event, mut data) = (None, String::new(), Vec::new());
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_owned()),
                "event" => event = value.to_owned(),
                "data" => data.push(value),
                _ => {}
            }
        }
        if id.is_none() && data.is_empty() {
            continue;
        }
        let id = id
            .as_deref()
            .and_then(|i| i.trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow!("an event without a numeric id: {block:?}"))?;
        let data = serde_json::from_str(&data.join("\n"))
            .with_context(|| format!("event {id}: data is not JSON: {block:?}"))?;
        out.push(Sse { id, event, data });
    }
    Ok(out)
}

/// The `TEXT_MESSAGE_CONTENT` deltas of `events`, concatenated.
pub fn text(events: &[Sse]) -> String {
    events
        .iter()
        .filter(|e| e.event == "TEXT_MESSAGE_CONTENT")
        .filter_map(|e| e.data["delta"].as_str())
        .collect()
}
