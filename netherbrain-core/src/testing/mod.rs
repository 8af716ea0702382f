//! Test helpers (feature `testing`): providers that answer from a script
//! or instantly, for tests and benchmarks of code built on the agent loop.
//!
//! ```
//! use std::sync::Arc;
//! use netherbrain_core::agent::{Agent, NullSink, RunControl, RunRequest};
//! use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
//! use netherbrain_core::{ConversationId, SessionId};
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let provider = Arc::new(ScriptedProvider::new([
//!     ScriptedResponse::builder().text("Let me check.").tool_call("c1", "clock", "{}").build(),
//!     ScriptedResponse::text("It is noon."),
//! ]));
//! let agent = Agent::builder(provider.clone(), "m").build();
//! let request = RunRequest::new(ConversationId::new(), SessionId::new()).with_user_text("time?");
//! let outcome = agent.run(request, RunControl::default(), &mut NullSink).await;
//! // `clock` is not registered: the model got an error result and answered anyway
//! assert_eq!(outcome.final_message.as_deref(), Some("It is noon."));
//! assert_eq!(provider.requests().len(), 2);
//! # });
//! ```

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;

use crate::message::Role;
use crate::provider::{
    FinishReason, ModelRequest, Provider, ProviderError, ProviderEvent, ProviderStream,
};
use crate::usage::Usage;

/// One scripted model response: events to stream, then optionally an
/// error or a hang (the stream stays open until it is dropped, as when a
/// run is interrupted).
///
/// ```
/// use netherbrain_core::testing::ScriptedResponse;
/// use netherbrain_core::ProviderError;
/// let ok = ScriptedResponse::text("hi");
/// let fail = ScriptedResponse::error(ProviderError::Transient { message: "502".into() });
/// let hang = ScriptedResponse::builder().text("partial").hang().build();
/// # let _ = (ok, fail, hang);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScriptedResponse {
    /// Events streamed in order.
    pub events: Vec<ProviderEvent>,
    /// What happens after the events.
    pub end: ScriptedEnd,
}

/// How a [`ScriptedResponse`] ends after its events.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ScriptedEnd {
    /// The stream ends.
    Complete,
    /// The stream yields this error.
    Error(ProviderError),
    /// The stream never ends (until dropped).
    Hang,
}

impl ScriptedResponse {
    /// A response streaming exactly these events.
    ///
    /// ```
    /// use netherbrain_core::provider::ProviderEvent;
    /// let r = netherbrain_core::testing::ScriptedResponse::events(vec![ProviderEvent::TextDelta("x".into())]);
    /// assert_eq!(r.events.len(), 1);
    /// ```
    #[must_use]
    pub fn events(events: Vec<ProviderEvent>) -> Self {
        Self {
            events,
            end: ScriptedEnd::Complete,
        }
    }

    /// A plain text answer (two deltas, usage of 10 in / 5 out, `stop`).
    ///
    /// ```
    /// let r = netherbrain_core::testing::ScriptedResponse::text("hello");
    /// assert_eq!(r.events.len(), 4);
    /// ```
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self::builder().text(text).build()
    }

    /// A stream that fails at once.
    ///
    /// ```
    /// use netherbrain_core::{ProviderError, testing::ScriptedResponse};
    /// let r = ScriptedResponse::error(ProviderError::Auth { message: "bad key".into() });
    /// assert!(r.events.is_empty());
    /// ```
    #[must_use]
    pub fn error(error: ProviderError) -> Self {
        Self {
            events: Vec::new(),
            end: ScriptedEnd::Error(error),
        }
    }

    /// Builds a response from parts.
    ///
    /// ```
    /// let r = netherbrain_core::testing::ScriptedResponse::builder()
    ///     .reasoning("The user wants a sum.")
    ///     .text("Adding.")
    ///     .tool_call("c1", "add", r#"{"a": 1, "b": 2}"#)
    ///     .build();
    /// assert!(!r.events.is_empty());
    /// ```
    pub fn builder() -> ResponseBuilder {
        ResponseBuilder::default()
    }
}

/// Builds a [`ScriptedResponse`]. Text and reasoning are streamed in two
/// deltas, tool-call arguments in two fragments, so the accumulator and
/// event emission see real streaming. [`build`](Self::build) appends usage
/// (10 in / 5 out unless set) and the finish reason (`tool_calls` when there
/// are calls, else `stop`) unless the response hangs or fails.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ResponseBuilder {
    events: Vec<ProviderEvent>,
    calls: usize,
    usage: Option<Usage>,
    end: Option<ScriptedEnd>,
}

fn split_half(s: &str) -> (&str, &str) {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid += 1;
    }
    s.split_at(mid)
}

impl ResponseBuilder {
    /// Streams text.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        let (a, b) = split_half(&text);
        for part in [a, b] {
            if !part.is_empty() {
                self.events.push(ProviderEvent::TextDelta(part.to_owned()));
            }
        }
        self
    }

    /// Streams reasoning.
    pub fn reasoning(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        let (a, b) = split_half(&text);
        for part in [a, b] {
            if !part.is_empty() {
                self.events
                    .push(ProviderEvent::ReasoningDelta(part.to_owned()));
            }
        }
        self
    }

    /// Streams a complete tool call whose arguments are `arguments` (raw
    /// JSON text, which may be malformed on purpose).
    pub fn tool_call(mut self, id: &str, name: &str, arguments: &str) -> Self {
        let index = self.calls;
        self.calls += 1;
        self.events.push(ProviderEvent::ToolCallStart {
            index,
            id: Some(id.to_owned()),
            name: Some(name.to_owned()),
        });
        let (a, b) = split_half(arguments);
        for part in [a, b] {
            if !part.is_empty() {
                self.events.push(ProviderEvent::ToolCallArgs {
                    index,
                    fragment: part.to_owned(),
                });
            }
        }
        self.events.push(ProviderEvent::ToolCallEnd { index });
        self
    }

    /// Adds a raw event.
    pub fn event(mut self, event: ProviderEvent) -> Self {
        self.events.push(event);
        self
    }

    /// Sets the usage reported at the end.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Some(Usage {
            input_tokens,
            output_tokens,
            ..Usage::default()
        });
        self
    }

    /// After the events, fail with `error`.
    pub fn then_error(mut self, error: ProviderError) -> Self {
        self.end = Some(ScriptedEnd::Error(error));
        self
    }

    /// After the events, keep the stream open until it is dropped.
    pub fn hang(mut self) -> Self {
        self.end = Some(ScriptedEnd::Hang);
        self
    }

    /// The response.
    #[must_use]
    pub fn build(mut self) -> ScriptedResponse {
        let end = self.end.unwrap_or(ScriptedEnd::Complete);
        if end == ScriptedEnd::Complete {
            self.events
                .push(ProviderEvent::Usage(self.usage.unwrap_or(Usage {
                    input_tokens: 10,
                    output_tokens: 5,
                    ..Usage::default()
                })));
            self.events.push(ProviderEvent::Finish(if self.calls > 0 {
                FinishReason::ToolCalls
            } else {
                FinishReason::Stop
            }));
        }
        ScriptedResponse {
            events: self.events,
            end,
        }
    }
}

/// A [`Provider`] that replays scripted responses in order and records the
/// requests it received. When the script runs out, calls fail with
/// [`ProviderError::InvalidRequest`].
///
/// ```
/// use netherbrain_core::provider::{ModelRequest, ProviderExt};
/// use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
/// use netherbrain_core::Message;
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let provider = ScriptedProvider::new([ScriptedResponse::text("pong")]);
/// let r = provider.complete(ModelRequest::new("m", vec![Message::user("ping")])).await.unwrap();
/// assert_eq!(r.message.text(), "pong");
/// assert_eq!(provider.requests()[0].messages[0].text(), "ping");
/// assert!(provider.complete(ModelRequest::new("m", vec![])).await.is_err());
/// # });
/// ```
#[derive(Debug, Default)]
pub struct ScriptedProvider {
    script: Mutex<VecDeque<ScriptedResponse>>,
    requests: Mutex<Vec<ModelRequest>>,
    event_delay: Option<Duration>,
}

impl ScriptedProvider {
    /// A provider replaying `responses`.
    #[must_use]
    pub fn new(responses: impl IntoIterator<Item = ScriptedResponse>) -> Self {
        Self {
            script: Mutex::new(responses.into_iter().collect()),
            requests: Mutex::new(Vec::new()),
            event_delay: None,
        }
    }

    /// Waits this long before each event (for interrupt and steering
    /// tests; use Tokio's paused time to keep tests fast).
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = netherbrain_core::testing::ScriptedProvider::new([]).with_event_delay(Duration::from_millis(10));
    /// # let _ = p;
    /// ```
    #[must_use]
    pub fn with_event_delay(mut self, delay: Duration) -> Self {
        self.event_delay = Some(delay);
        self
    }

    /// Appends a response to the script.
    ///
    /// ```
    /// use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
    /// let p = ScriptedProvider::new([]);
    /// p.push(ScriptedResponse::text("later"));
    /// assert_eq!(p.remaining(), 1);
    /// ```
    pub fn push(&self, response: ScriptedResponse) {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(response);
    }

    /// Responses not yet replayed.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The requests received so far, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Provider for ScriptedProvider {
    fn name(&self) -> &str {
        "scripted"
    }

    fn stream(&self, request: ModelRequest) -> ProviderStream {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        let next = self
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        let Some(response) = next else {
            return futures::stream::iter([Err(ProviderError::InvalidRequest {
                message: "the script has no more responses".to_owned(),
            })])
            .boxed();
        };
        let tail = match response.end {
            ScriptedEnd::Complete => futures::stream::empty().boxed(),
            ScriptedEnd::Error(e) => futures::stream::iter([Err(e)]).boxed(),
            ScriptedEnd::Hang => futures::stream::pending().boxed(),
        };
        let events = futures::stream::iter(response.events.into_iter().map(Ok));
        match self.event_delay {
            None => events.chain(tail).boxed(),
            Some(delay) => events
                .then(move |e| async move {
                    tokio::time::sleep(delay).await;
                    e
                })
                .chain(tail)
                .boxed(),
        }
    }
}

/// A [`Provider`] that answers at once without any script, for benchmarks:
/// while the request holds fewer than `tool_rounds` tool messages it calls
/// `tool` (with `{}` arguments), then it answers `"done"`.
///
/// ```
/// use netherbrain_core::provider::{ModelRequest, ProviderExt};
/// use netherbrain_core::testing::InstantProvider;
/// use netherbrain_core::Message;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let provider = InstantProvider::new(1, "noop");
/// let first = provider.complete(ModelRequest::new("m", vec![Message::user("go")])).await.unwrap();
/// assert_eq!(first.tool_calls[0].call.name, "noop");
/// let done = provider.complete(ModelRequest::new("m", vec![Message::tool(vec![])])).await.unwrap();
/// assert_eq!(done.message.text(), "done");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct InstantProvider {
    tool_rounds: usize,
    tool: String,
}

impl InstantProvider {
    /// A provider calling `tool` for `tool_rounds` rounds, then answering.
    #[must_use]
    pub fn new(tool_rounds: usize, tool: impl Into<String>) -> Self {
        Self {
            tool_rounds,
            tool: tool.into(),
        }
    }
}

impl Provider for InstantProvider {
    fn name(&self) -> &str {
        "instant"
    }

    fn stream(&self, request: ModelRequest) -> ProviderStream {
        let done = request
            .messages
            .iter()
            .filter(|m| m.role == Role::Tool)
            .count();
        let usage = ProviderEvent::Usage(Usage {
            input_tokens: 1,
            output_tokens: 1,
            ..Usage::default()
        });
        let events = if done < self.tool_rounds {
            vec![
                ProviderEvent::ToolCallStart {
                    index: 0,
                    id: Some(format!("call_{done}")),
                    name: Some(self.tool.clone()),
                },
                ProviderEvent::ToolCallArgs {
                    index: 0,
                    fragment: "{}".to_owned(),
                },
                ProviderEvent::ToolCallEnd { index: 0 },
                usage,
                ProviderEvent::Finish(FinishReason::ToolCalls),
            ]
        } else {
            vec![
                ProviderEvent::TextDelta("done".to_owned()),
                usage,
                ProviderEvent::Finish(FinishReason::Stop),
            ]
        };
        futures::stream::iter(events.into_iter().map(Ok)).boxed()
    }
}
