//! Core's `StateStore` conformance suite against the local Postgres server
//! (a database per test; see `tests/support/mod.rs`).

mod support;

netherbrain_core::store_conformance_tests!(support::postgres());
