//! Netherbrain examples.
