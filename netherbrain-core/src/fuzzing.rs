//! Entry points for property tests and fuzz targets (feature `fuzzing`):
//! each feeds outside input — bytes from a provider, a client or a file —
//! to one parser and must return, never panic. The proptests below run
//! them in CI; `fuzz/` runs them under `cargo fuzz` (see `fuzz/README.md`).

use crate::provider::{ProviderEvent, ResponseAccumulator};

/// A provider SSE body, split into `chunks` as the network would, through
/// the SSE decoder and the OpenAI (`anthropic == false`) or Anthropic chunk
/// decoder, then through the tool-call accumulator. Returns how many
/// events the decoder produced.
#[cfg(all(feature = "openai", feature = "anthropic"))]
pub fn provider_stream(chunks: &[&[u8]], anthropic: bool) -> usize {
    use std::time::Duration;

    use futures::StreamExt as _;

    use crate::provider::http::decode_sse;

    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return 0;
    };
    let bytes: Vec<_> = chunks
        .iter()
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    rt.block_on(async move {
        let stream = futures::stream::iter(bytes);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let idle = Duration::from_secs(60);
        let items: Vec<_> = if anthropic {
            decode_sse(
                stream,
                crate::provider::anthropic::MessagesDecoder::default(),
                deadline,
                idle,
            )
            .collect()
            .await
        } else {
            decode_sse(
                stream,
                crate::provider::openai::ChatDecoder::default(),
                deadline,
                idle,
            )
            .collect()
            .await
        };
        let events: Vec<ProviderEvent> = items.into_iter().filter_map(Result::ok).collect();
        accumulate(events.clone());
        events.len()
    })
}

/// Arbitrary provider events through the tool-call accumulator; returns the
/// number of tool calls of the assembled response.
pub fn accumulate(events: Vec<ProviderEvent>) -> usize {
    let mut acc = ResponseAccumulator::new();
    for event in events {
        let _ = acc.push(event);
    }
    let _ = acc.close();
    let _ = acc.text();
    acc.finish().message.tool_calls().count()
}

/// A page cursor and the typed ids, as a client sends them.
pub fn cursor_and_ids(text: &str) {
    let _ = crate::store::ConversationCursor::decode(text);
    let _ = text.parse::<crate::ConversationId>();
    let _ = text.parse::<crate::SessionId>();
    let _ = text.parse::<crate::UserId>();
    let _ = text.parse::<crate::ApiKeyId>();
}

/// A preset file (TOML), as `presets import` and the config file read it.
pub fn preset_documents(text: &str) {
    let _ = crate::conversation::parse_preset_documents(text);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{FinishReason, Usage};

    fn any_event() -> impl Strategy<Value = ProviderEvent> {
        let text = ".{0,12}";
        prop_oneof![
            text.prop_map(ProviderEvent::TextDelta),
            text.prop_map(ProviderEvent::ReasoningDelta),
            (
                0usize..6,
                proptest::option::of(text),
                proptest::option::of(text)
            )
                .prop_map(|(index, id, name)| ProviderEvent::ToolCallStart {
                    index,
                    id,
                    name
                }),
            (0usize..6, text)
                .prop_map(|(index, fragment)| ProviderEvent::ToolCallArgs { index, fragment }),
            (0usize..6).prop_map(|index| ProviderEvent::ToolCallEnd { index }),
            (any::<u64>(), any::<u64>()).prop_map(|(i, o)| ProviderEvent::Usage(Usage {
                input_tokens: i,
                output_tokens: o,
                ..Usage::default()
            })),
            Just(ProviderEvent::Finish(FinishReason::ToolCalls)),
            Just(ProviderEvent::Finish(FinishReason::Stop)),
        ]
    }

    /// SSE-ish bytes: mostly well-formed `data:` lines of JSON fragments
    /// that look like chunks, mixed with arbitrary bytes.
    fn sse_body() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            Just("data: [DONE]\n\n".to_owned()),
            Just("data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":18446744073709551615,\"id\":\"x\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}}]}\n\n".to_owned()),
            Just("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":-1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\"}}\n\n".to_owned()),
            Just("data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":1e300}}\n\n".to_owned()),
            Just("data: {\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":\"x\"}}\n\n".to_owned()),
            "[ -~]{0,40}".prop_map(|s| format!("data: {s}\n\n")),
            "[ -~]{0,40}".prop_map(|s| format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{s:?}}}}}]}}\n\n")),
        ];
        (
            proptest::collection::vec(line, 0..8),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(lines, noise)| {
                let mut body = lines.concat().into_bytes();
                let at = body.len() / 2;
                body.splice(at..at, noise);
                body
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn provider_streams_never_panic(body in sse_body(), split in 1usize..17, anthropic in any::<bool>()) {
            let chunks: Vec<&[u8]> = body.chunks(split).collect();
            let _ = provider_stream(&chunks, anthropic);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoders(body in proptest::collection::vec(any::<u8>(), 0..512), anthropic in any::<bool>()) {
            let _ = provider_stream(&[&body], anthropic);
        }

        #[test]
        fn the_accumulator_never_panics(events in proptest::collection::vec(any_event(), 0..40)) {
            let _ = accumulate(events);
        }

        #[test]
        fn cursors_and_ids_never_panic(text in "\\PC{0,64}", digits in "-?[0-9]{0,25}_[0-9a-f-]{0,40}") {
            cursor_and_ids(&text);
            cursor_and_ids(&digits);
        }

        #[test]
        fn preset_documents_never_panic(text in "\\PC{0,200}", name in "[a-z\\[\\]=\"]{0,30}") {
            preset_documents(&text);
            preset_documents(&format!("name = \"{name}\"\n[config]\nprofile = \"p\"\nmodel = {name}\n[config.limits]\nmax_rounds = 99999999999999999999\n"));
        }
    }
}
