//! Server-sent events of a session.
//!
//! Each event is `id: <seq>`, `event: <AG-UI type>`, `data: <AgentEvent
//! JSON>`. A client resumes with `Last-Event-ID` (or `?after=`): the stream
//! continues exactly after that id from the session's log, then follows the
//! live tail. The stream is [`Runtime::subscribe`] itself — backed by the
//! unbounded per-run log and the store, with no lossy queue in between — so
//! a slow client never loses events; it ends after the run's terminal event
//! (or at once for a finished session when nothing follows the id). While
//! idle a `: keep-alive` comment goes out every 15 s; there is no idle
//! cutoff.
//!
//! [`Runtime::subscribe`]: netherbrain_core::runtime::Runtime::subscribe

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use netherbrain_core::{ConversationId, EventEnvelope, EventSeq, SessionId};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// How often an idle stream sends a comment to keep proxies from closing it.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Response header naming the conversation of a streamed run.
pub(crate) const CONVERSATION_HEADER: HeaderName = HeaderName::from_static("x-conversation-id");
/// Response header naming the session of a streamed run.
pub(crate) const SESSION_HEADER: HeaderName = HeaderName::from_static("x-session-id");

/// Where to resume: the `Last-Event-ID` header wins over `?after=`
/// (a reconnecting browser sends the header and repeats the old URL).
///
/// # Errors
///
/// `400` when either is not a non-negative integer.
pub(crate) fn resume_position(
    headers: &HeaderMap,
    after: Option<&str>,
) -> Result<EventSeq, ApiError> {
    if let Some(value) = headers.get("last-event-id") {
        let text = value
            .to_str()
            .map_err(|_| ApiError::bad_request("`Last-Event-ID` must be an event id"))?;
        return parse_seq(text.trim(), "`Last-Event-ID`");
    }
    match after {
        Some(text) if !text.trim().is_empty() => parse_seq(text.trim(), "`after`"),
        _ => Ok(0),
    }
}

fn parse_seq(text: &str, what: &str) -> Result<EventSeq, ApiError> {
    if text.is_empty() {
        return Ok(0);
    }
    text.parse::<EventSeq>().map_err(|_| {
        ApiError::bad_request(format!(
            "{what} must be a non-negative integer event id, got `{}`",
            text.chars().take(32).collect::<String>()
        ))
    })
}

/// One SSE event for an envelope.
pub(crate) fn sse_event(envelope: &EventEnvelope) -> Event {
    let event = Event::default()
        .id(envelope.seq.to_string())
        .event(envelope.event.type_name());
    match serde_json::to_string(&envelope.event) {
        Ok(json) => event.data(json),
        Err(e) => {
            tracing::error!(error = %e, "could not serialize an event");
            event.data("{}")
        }
    }
}

/// The SSE response streaming a session's events to `user`, its ids in the
/// `x-conversation-id` / `x-session-id` headers. The stream ends early when
/// `user`'s token stops authenticating them (see [`crate::auth::revoked`]).
pub(crate) fn response(
    state: &AppState,
    user: &AuthUser,
    conversation_id: ConversationId,
    session_id: SessionId,
    events: BoxStream<'static, EventEnvelope>,
) -> Response {
    let revoked = Box::pin(crate::auth::revoked(state.clone(), user.clone()));
    let stream = events
        .take_until(revoked)
        .map(|envelope| Ok::<_, Infallible>(sse_event(&envelope)));
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    let headers = response.headers_mut();
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(v) = HeaderValue::from_str(&conversation_id.to_string()) {
        headers.insert(CONVERSATION_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&session_id.to_string()) {
        headers.insert(SESSION_HEADER, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wins_over_query() {
        let mut h = HeaderMap::new();
        assert_eq!(resume_position(&h, None).unwrap(), 0);
        assert_eq!(resume_position(&h, Some("7")).unwrap(), 7);
        h.insert("last-event-id", HeaderValue::from_static("3"));
        assert_eq!(resume_position(&h, Some("7")).unwrap(), 3);
        h.insert("last-event-id", HeaderValue::from_static("x"));
        assert_eq!(resume_position(&h, None).unwrap_err().status(), 400);
        assert_eq!(
            resume_position(&HeaderMap::new(), Some("-1"))
                .unwrap_err()
                .status(),
            400
        );
    }
}
