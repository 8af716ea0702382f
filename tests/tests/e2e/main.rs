//! End-to-end tests through the `netherbrain` binary: SQLite, the real
//! OpenAI adapter of core, a fake provider on loopback. See
//! `tests/README.md` for what each module proves.

mod cli_chat;
mod compaction;
mod delegate;
mod faults;
mod gateway;
mod mcp;
mod memory;
mod providers;
mod reliability;
mod reload;
mod replicas;
mod resume;
mod security;
mod serve;
mod tasks;
mod tools;
mod websocket;
