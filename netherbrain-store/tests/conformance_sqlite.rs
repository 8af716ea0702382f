//! Core's `StateStore` conformance suite against SQLite (a temporary file
//! per test).

mod support;

netherbrain_core::store_conformance_tests!(support::sqlite());
