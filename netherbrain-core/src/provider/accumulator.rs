//! Assembles a streamed response: text, reasoning and tool calls.
//!
//! Every adapter emits [`ProviderEvent`]s and this one piece turns them into
//! a [`ModelResponse`], so the quirks of tool-call streaming are handled once:
//! interleaved parallel calls, ids that arrive after the first fragment, a
//! whole call in one chunk, empty or `null` arguments (read as `{}`) and
//! malformed argument JSON (kept, and reported to the model as an error).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{FinishReason, ProviderEvent};
use crate::message::{ContentPart, Message, Role, ToolCall};
use crate::usage::Usage;

/// A tool call assembled from a stream.
///
/// ```
/// use netherbrain_core::provider::{ProviderEvent, ResponseAccumulator};
/// let mut acc = ResponseAccumulator::new();
/// acc.push(ProviderEvent::ToolCallStart { index: 0, id: Some("c1".into()), name: Some("add".into()) });
/// acc.push(ProviderEvent::ToolCallArgs { index: 0, fragment: "{\"a\":".into() });
/// acc.push(ProviderEvent::ToolCallArgs { index: 0, fragment: "1}".into() });
/// let response = acc.finish();
/// assert_eq!(response.tool_calls[0].call.arguments, serde_json::json!({"a": 1}));
/// assert!(response.tool_calls[0].error.is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AccumulatedToolCall {
    /// The call. For malformed JSON the arguments hold the raw text as a
    /// JSON string.
    pub call: ToolCall,
    /// Why the call cannot be executed (malformed arguments, no tool name);
    /// the loop sends this back to the model as an error result.
    pub error: Option<String>,
}

/// A complete model response.
///
/// ```
/// use netherbrain_core::provider::{ProviderEvent, ResponseAccumulator};
/// let mut acc = ResponseAccumulator::new();
/// acc.push(ProviderEvent::TextDelta("hel".into()));
/// acc.push(ProviderEvent::TextDelta("lo".into()));
/// assert_eq!(acc.finish().message.text(), "hello");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ModelResponse {
    /// The assistant message: reasoning, text and tool calls in order.
    pub message: Message,
    /// The tool calls, in index order, with any parse errors.
    pub tool_calls: Vec<AccumulatedToolCall>,
    /// Usage reported by the provider.
    pub usage: Usage,
    /// Why the model stopped; `None` if the stream ended without saying.
    pub finish_reason: Option<FinishReason>,
}

/// What a pushed event changed, normalised for event emitters: tool calls are
/// announced once their id and name are known, with any arguments that were
/// buffered before.
///
/// ```
/// use netherbrain_core::provider::{AccumulatorUpdate, ProviderEvent, ResponseAccumulator};
/// let mut acc = ResponseAccumulator::new();
/// // the id arrives late: nothing is announced until it does
/// let updates = acc.push(ProviderEvent::ToolCallStart { index: 0, id: None, name: Some("t".into()) });
/// assert!(updates.is_empty());
/// acc.push(ProviderEvent::ToolCallArgs { index: 0, fragment: "{}".into() });
/// let updates = acc.push(ProviderEvent::ToolCallStart { index: 0, id: Some("c".into()), name: None });
/// assert!(matches!(&updates[0], AccumulatorUpdate::ToolCallStarted { id, .. } if id == "c"));
/// assert!(matches!(&updates[1], AccumulatorUpdate::ToolCallArgs { fragment, .. } if fragment == "{}"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccumulatorUpdate {
    /// More answer text.
    TextDelta(String),
    /// More reasoning text.
    ReasoningDelta(String),
    /// A tool call can be announced.
    ToolCallStarted {
        /// Its id (provider-given or generated).
        id: String,
        /// The tool name.
        name: String,
    },
    /// More arguments of an announced call.
    ToolCallArgs {
        /// The call id.
        id: String,
        /// The fragment.
        fragment: String,
    },
    /// An announced call is complete.
    ToolCallEnded {
        /// The call id.
        id: String,
    },
}

#[derive(Debug, Default)]
struct CallSlot {
    id: Option<String>,
    name: Option<String>,
    arguments: String,
    announced: bool,
    ended: bool,
}

/// Folds [`ProviderEvent`]s into a [`ModelResponse`].
///
/// ```
/// use netherbrain_core::provider::{ProviderEvent, ResponseAccumulator};
/// let mut acc = ResponseAccumulator::new();
/// // two parallel calls, interleaved, one with `null` arguments
/// acc.push(ProviderEvent::ToolCallStart { index: 0, id: Some("a".into()), name: Some("x".into()) });
/// acc.push(ProviderEvent::ToolCallStart { index: 1, id: Some("b".into()), name: Some("y".into()) });
/// acc.push(ProviderEvent::ToolCallArgs { index: 1, fragment: "null".into() });
/// acc.push(ProviderEvent::ToolCallArgs { index: 0, fragment: "{\"q\":1}".into() });
/// let r = acc.finish();
/// assert_eq!(r.tool_calls[0].call.arguments, serde_json::json!({"q": 1}));
/// assert_eq!(r.tool_calls[1].call.arguments, serde_json::json!({}));
/// ```
#[derive(Debug, Default)]
pub struct ResponseAccumulator {
    parts: Vec<ContentPart>,
    calls: BTreeMap<usize, CallSlot>,
    usage: Usage,
    finish_reason: Option<FinishReason>,
}

impl ResponseAccumulator {
    /// An empty accumulator.
    ///
    /// ```
    /// let acc = netherbrain_core::provider::ResponseAccumulator::new();
    /// assert!(acc.finish().message.content.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one event in and says what changed.
    pub fn push(&mut self, event: ProviderEvent) -> Vec<AccumulatorUpdate> {
        let mut updates = Vec::new();
        match event {
            ProviderEvent::TextDelta(delta) => {
                if !delta.is_empty() {
                    match self.parts.last_mut() {
                        Some(ContentPart::Text { text }) => text.push_str(&delta),
                        _ => self.parts.push(ContentPart::text(delta.clone())),
                    }
                    updates.push(AccumulatorUpdate::TextDelta(delta));
                }
            }
            ProviderEvent::ReasoningDelta(delta) => {
                if !delta.is_empty() {
                    match self.parts.last_mut() {
                        Some(ContentPart::Reasoning { text, .. }) => text.push_str(&delta),
                        _ => self.parts.push(ContentPart::Reasoning {
                            text: delta.clone(),
                            signature: None,
                        }),
                    }
                    updates.push(AccumulatorUpdate::ReasoningDelta(delta));
                }
            }
            ProviderEvent::ReasoningSignature(sig) => {
                match self
                    .parts
                    .iter_mut()
                    .rev()
                    .find(|p| matches!(p, ContentPart::Reasoning { .. }))
                {
                    Some(ContentPart::Reasoning { signature, .. }) => {
                        signature.get_or_insert_with(String::new).push_str(&sig);
                    }
                    // A signature with no reasoning text (redacted thinking).
                    _ => self.parts.push(ContentPart::Reasoning {
                        text: String::new(),
                        signature: Some(sig),
                    }),
                }
            }
            ProviderEvent::ToolCallStart { index, id, name } => {
                let slot = self.calls.entry(index).or_default();
                if slot.id.is_none() {
                    slot.id = id.filter(|s| !s.is_empty());
                }
                if slot.name.is_none() {
                    slot.name = name.filter(|s| !s.is_empty());
                }
                Self::announce_if_ready(slot, false, &mut updates);
            }
            ProviderEvent::ToolCallArgs { index, fragment } => {
                let slot = self.calls.entry(index).or_default();
                slot.arguments.push_str(&fragment);
                if slot.announced && !fragment.is_empty() {
                    updates.push(AccumulatorUpdate::ToolCallArgs {
                        id: slot.id.clone().unwrap_or_default(),
                        fragment,
                    });
                }
            }
            ProviderEvent::ToolCallEnd { index } => {
                if let Some(slot) = self.calls.get_mut(&index) {
                    Self::end_slot(slot, &mut updates);
                }
            }
            ProviderEvent::Usage(usage) => self.usage += usage,
            ProviderEvent::Finish(reason) => {
                self.finish_reason = Some(reason);
                for slot in self.calls.values_mut() {
                    Self::end_slot(slot, &mut updates);
                }
            }
        }
        updates
    }

    /// Ends every call still open (as at the end of a stream) and returns
    /// what that announces. [`finish`](Self::finish) does this implicitly.
    pub fn close(&mut self) -> Vec<AccumulatorUpdate> {
        let mut updates = Vec::new();
        for slot in self.calls.values_mut() {
            Self::end_slot(slot, &mut updates);
        }
        updates
    }

    /// The text received so far.
    ///
    /// ```
    /// let mut acc = netherbrain_core::provider::ResponseAccumulator::new();
    /// acc.push(netherbrain_core::provider::ProviderEvent::TextDelta("partial".into()));
    /// assert_eq!(acc.text(), "partial");
    /// ```
    #[must_use]
    pub fn text(&self) -> String {
        self.parts.iter().filter_map(ContentPart::as_text).collect()
    }

    /// Whether any tool call has started.
    ///
    /// ```
    /// assert!(!netherbrain_core::provider::ResponseAccumulator::new().has_tool_calls());
    /// ```
    #[must_use]
    pub fn has_tool_calls(&self) -> bool {
        !self.calls.is_empty()
    }

    /// Usage received so far.
    ///
    /// ```
    /// assert!(netherbrain_core::provider::ResponseAccumulator::new().usage().is_empty());
    /// ```
    #[must_use]
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Assembles the response. Calls still open are closed first.
    #[must_use]
    pub fn finish(mut self) -> ModelResponse {
        self.close();
        let mut parts = self.parts;
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for slot in self.calls.into_values() {
            let (arguments, mut error) = parse_arguments(&slot.arguments);
            let name = slot.name.unwrap_or_default();
            if name.is_empty() {
                error = Some("the tool call has no tool name".to_owned());
            }
            let call = ToolCall::new(slot.id.unwrap_or_default(), name, arguments);
            parts.push(ContentPart::ToolCall(call.clone()));
            tool_calls.push(AccumulatedToolCall { call, error });
        }
        ModelResponse {
            message: Message::new(Role::Assistant, parts),
            tool_calls,
            usage: self.usage,
            finish_reason: self.finish_reason,
        }
    }

    fn announce_if_ready(slot: &mut CallSlot, force: bool, updates: &mut Vec<AccumulatorUpdate>) {
        if slot.announced || !(force || (slot.id.is_some() && slot.name.is_some())) {
            return;
        }
        let id = slot.id.get_or_insert_with(generate_call_id).clone();
        slot.announced = true;
        updates.push(AccumulatorUpdate::ToolCallStarted {
            id: id.clone(),
            name: slot.name.clone().unwrap_or_default(),
        });
        if !slot.arguments.is_empty() {
            updates.push(AccumulatorUpdate::ToolCallArgs {
                id,
                fragment: slot.arguments.clone(),
            });
        }
    }

    fn end_slot(slot: &mut CallSlot, updates: &mut Vec<AccumulatorUpdate>) {
        if slot.ended {
            return;
        }
        Self::announce_if_ready(slot, true, updates);
        slot.ended = true;
        updates.push(AccumulatorUpdate::ToolCallEnded {
            id: slot.id.clone().unwrap_or_default(),
        });
    }
}

fn generate_call_id() -> String {
    format!("call_{}", uuid::Uuid::new_v4().simple())
}

/// Empty or `null` arguments mean "no arguments"; malformed JSON is kept as
/// a string so the model can see what it sent.
fn parse_arguments(raw: &str) -> (Value, Option<String>) {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return (Value::Object(Map::new()), None);
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Null) => (Value::Object(Map::new()), None),
        Ok(value) => (value, None),
        Err(err) => (
            Value::String(raw.to_owned()),
            Some(format!(
                "the tool arguments are not valid JSON ({err}); send a JSON object"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn start(index: usize, id: Option<&str>, name: Option<&str>) -> ProviderEvent {
        ProviderEvent::ToolCallStart {
            index,
            id: id.map(Into::into),
            name: name.map(Into::into),
        }
    }

    fn args(index: usize, fragment: &str) -> ProviderEvent {
        ProviderEvent::ToolCallArgs {
            index,
            fragment: fragment.into(),
        }
    }

    fn check(events: Vec<ProviderEvent>, expect: Vec<(&str, &str, Value, bool)>) {
        let mut acc = ResponseAccumulator::new();
        for e in events {
            acc.push(e);
        }
        let r = acc.finish();
        let got: Vec<_> = r
            .tool_calls
            .iter()
            .map(|c| {
                (
                    c.call.id.as_str(),
                    c.call.name.as_str(),
                    c.call.arguments.clone(),
                    c.error.is_some(),
                )
            })
            .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn whole_call_in_one_chunk() {
        check(
            vec![
                start(0, Some("c"), Some("t")),
                args(0, r#"{"x":1}"#),
                ProviderEvent::ToolCallEnd { index: 0 },
            ],
            vec![("c", "t", json!({"x": 1}), false)],
        );
    }

    #[test]
    fn interleaved_parallel_calls() {
        check(
            vec![
                start(0, Some("a"), Some("t")),
                start(1, Some("b"), Some("u")),
                args(0, r#"{"x":"#),
                args(1, r#"{"y":"#),
                args(1, "2}"),
                args(0, "1}"),
            ],
            vec![
                ("a", "t", json!({"x": 1}), false),
                ("b", "u", json!({"y": 2}), false),
            ],
        );
    }

    #[test]
    fn late_id_and_missing_id() {
        check(
            vec![
                start(0, None, Some("t")),
                args(0, "{}"),
                start(0, Some("late"), None),
            ],
            vec![("late", "t", json!({}), false)],
        );
        let mut acc = ResponseAccumulator::new();
        acc.push(start(0, None, Some("u")));
        let r = acc.finish();
        assert!(r.tool_calls[0].call.id.starts_with("call_"));
    }

    #[test]
    fn empty_null_and_malformed_arguments() {
        check(
            vec![
                start(0, Some("a"), Some("t")),
                start(1, Some("b"), Some("t")),
                args(1, "null"),
                start(2, Some("c"), Some("t")),
                args(2, "{\"x\": "),
            ],
            vec![
                ("a", "t", json!({}), false),
                ("b", "t", json!({}), false),
                ("c", "t", json!("{\"x\": "), true),
            ],
        );
    }

    #[test]
    fn missing_name_is_an_error() {
        check(
            vec![start(0, Some("a"), None)],
            vec![("a", "", json!({}), true)],
        );
    }

    #[test]
    fn text_and_reasoning_keep_order() {
        let mut acc = ResponseAccumulator::new();
        acc.push(ProviderEvent::ReasoningDelta("think".into()));
        acc.push(ProviderEvent::ReasoningSignature("sig".into()));
        acc.push(ProviderEvent::TextDelta("an".into()));
        acc.push(ProviderEvent::TextDelta("swer".into()));
        acc.push(ProviderEvent::Usage(Usage {
            input_tokens: 1,
            ..Usage::default()
        }));
        acc.push(ProviderEvent::Usage(Usage {
            output_tokens: 2,
            ..Usage::default()
        }));
        acc.push(ProviderEvent::Finish(FinishReason::Stop));
        let r = acc.finish();
        assert_eq!(
            r.message.content,
            vec![
                ContentPart::Reasoning {
                    text: "think".into(),
                    signature: Some("sig".into())
                },
                ContentPart::text("answer"),
            ]
        );
        assert_eq!(r.usage.total_tokens(), 3);
        assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    }
}
