//! The Netherbrain chat gateway: the [`Bridge`] between chat platforms
//! ([`Channel`](netherbrain_core::channel::Channel)s) and the runtime, over
//! one small trait ([`RuntimeApi`]) that the in-process
//! [`ConversationService`](netherbrain_core::conversation::ConversationService)
//! ([`LocalRuntime`]) and the remote HTTP client (`RemoteRuntime`,
//! feature `remote`) implement; the Telegram channel (feature `telegram`)
//! and the Discord channel (feature `discord`). Chat attachments become
//! input parts through [`attachments`], kept in an [`AttachmentStore`].

pub mod api;
pub mod attachments;
pub mod bridge;
#[cfg(feature = "discord")]
pub mod discord;
pub mod markup;
#[cfg(feature = "remote")]
pub mod remote;
#[cfg(feature = "telegram")]
pub mod telegram;

pub use api::{
    ApiError, EventFeed, LocalRuntime, PresetInfo, RuntimeApi, SendOutcome, SessionInfo,
};
pub use attachments::AttachmentStore;
pub use bridge::{AllowEntry, Bridge, BridgeConfig, BridgeError, MIN_EDIT_INTERVAL};
