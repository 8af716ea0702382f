//! A openai SSE body, split at a byte the input chooses, through the SSE
//! decoder, the openai chunk decoder and the tool-call accumulator.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let size = usize::from(split).max(1);
    let chunks: Vec<&[u8]> = body.chunks(size).collect();
    let _ = netherbrain_core::fuzzing::provider_stream(&chunks, false);
});
