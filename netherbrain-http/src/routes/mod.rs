//! Route handlers, one module per resource. Each module exposes `routes()`;
//! [`crate::router`] merges them. The conversation, session and streaming
//! modules slot in the same way.

pub(crate) mod auth;
pub(crate) mod conversations;
pub(crate) mod discovery;
pub(crate) mod gateway;
pub(crate) mod health;
pub(crate) mod keys;
pub(crate) mod memories;
pub(crate) mod meta;
pub(crate) mod openai;
pub(crate) mod presets;
pub(crate) mod providers;
pub(crate) mod sessions;
pub(crate) mod tasks;
pub(crate) mod usage;
pub(crate) mod users;
pub(crate) mod workspaces;
