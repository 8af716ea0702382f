//! Preset files (TOML) as `presets import` and the config file read them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        netherbrain_core::fuzzing::preset_documents(text);
    }
});
