//! Netherbrain tests.
