//! Netherbrain benches.
