//! The [`Provider`] trait: one streaming call to a language model.
//!
//! Adapters translate a wire format into [`ProviderEvent`]s and nothing more;
//! the [`ResponseAccumulator`] in this module assembles text, reasoning and
//! tool calls from those events for every adapter alike.
//!
//! ```
//! use futures::StreamExt;
//! use netherbrain_core::provider::{ModelRequest, Provider, ProviderEvent, ProviderExt, ProviderStream};
//! use netherbrain_core::{FinishReason, Message};
//!
//! /// A provider that always answers "pong".
//! #[derive(Debug)]
//! struct Pong;
//!
//! impl Provider for Pong {
//!     fn name(&self) -> &str {
//!         "pong"
//!     }
//!     fn stream(&self, _request: ModelRequest) -> ProviderStream {
//!         futures::stream::iter([
//!             Ok(ProviderEvent::TextDelta("pong".into())),
//!             Ok(ProviderEvent::Finish(FinishReason::Stop)),
//!         ])
//!         .boxed()
//!     }
//! }
//!
//! # tokio_test_block(async {
//! let response = Pong.complete(ModelRequest::new("any", vec![Message::user("ping")])).await.unwrap();
//! assert_eq!(response.message.text(), "pong");
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod accumulator;
#[cfg(feature = "anthropic")]
pub mod anthropic;
mod error;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "openai")]
pub mod openai;
mod profile;
mod request;

use std::fmt;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

pub use accumulator::{AccumulatedToolCall, AccumulatorUpdate, ModelResponse, ResponseAccumulator};
pub use error::ProviderError;
pub use profile::{ProfileError, ProviderKind, ProviderProfile};
pub use request::{ModelRequest, ModelSettings, ReasoningEffort, ToolChoice, ToolDefinition};

use crate::usage::Usage;

/// The stream a [`Provider`] returns.
pub type ProviderStream = BoxStream<'static, Result<ProviderEvent, ProviderError>>;

/// A language-model backend.
///
/// Object-safe: the runtime holds providers as `Arc<dyn Provider>`. The one
/// required call streams; [`ProviderExt::complete`] collects a stream into a
/// [`ModelResponse`]. Errors, including connection errors, arrive as items of
/// the stream, so callers have one place to handle them.
pub trait Provider: Send + Sync + fmt::Debug {
    /// A short name for logs and metrics (`"openai"`, `"anthropic"`).
    fn name(&self) -> &str;

    /// Starts one model call. The stream ends after a
    /// [`ProviderEvent::Finish`] or an error; dropping it cancels the call.
    fn stream(&self, request: ModelRequest) -> ProviderStream;

    /// The ids of the models the endpoint offers (`GET …/models`), to check
    /// a profile's URL and key. The default answers that the provider
    /// cannot list its models.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use netherbrain_core::provider::Provider;
    /// use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
    /// let scripted = ScriptedProvider::new([ScriptedResponse::text("hi")]);
    /// assert!(scripted.list_models().await.is_err());
    /// # }
    /// ```
    fn list_models(
        &self,
    ) -> futures::future::BoxFuture<'static, Result<Vec<String>, ProviderError>> {
        Box::pin(async {
            Err(ProviderError::InvalidRequest {
                message: "this provider cannot list its models".to_owned(),
            })
        })
    }
}

/// Convenience methods for every [`Provider`].
#[async_trait]
pub trait ProviderExt: Provider {
    /// Runs a request to completion and returns the assembled response.
    ///
    /// Malformed tool-call arguments do not fail the call: the affected
    /// [`AccumulatedToolCall`] carries the parse error.
    async fn complete(&self, request: ModelRequest) -> Result<ModelResponse, ProviderError> {
        let mut stream = self.stream(request);
        let mut acc = ResponseAccumulator::new();
        while let Some(event) = stream.next().await {
            acc.push(event?);
        }
        Ok(acc.finish())
    }
}

impl<P: Provider + ?Sized> ProviderExt for P {}

/// A wire-neutral streaming event from a provider.
///
/// Tool calls are addressed by `index` (their position in the response), as
/// the id may arrive after the first fragment or not at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderEvent {
    /// A piece of the answer text.
    TextDelta(String),
    /// A piece of the model's reasoning.
    ReasoningDelta(String),
    /// The opaque signature of the current reasoning block.
    ReasoningSignature(String),
    /// A tool call begins, or more of its identity arrived. Sending this
    /// again for a known index fills in a missing id or name.
    ToolCallStart {
        /// Position of the call in the response.
        index: usize,
        /// Call id, when known.
        id: Option<String>,
        /// Tool name, when known.
        name: Option<String>,
    },
    /// A fragment of a tool call's JSON arguments.
    ToolCallArgs {
        /// Position of the call in the response.
        index: usize,
        /// The fragment, to append to earlier ones.
        fragment: String,
    },
    /// A tool call's arguments are complete.
    ToolCallEnd {
        /// Position of the call in the response.
        index: usize,
    },
    /// Token usage (may arrive several times; later values add up).
    Usage(Usage),
    /// The response is complete.
    Finish(FinishReason),
}

/// Why the model stopped.
///
/// Unknown values from a provider decode as [`FinishReason::Other`].
///
/// ```
/// use netherbrain_core::FinishReason;
/// let r: FinishReason = serde_json::from_str("\"something_new\"").unwrap();
/// assert_eq!(r, FinishReason::Other);
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// A natural end of the answer.
    #[default]
    Stop,
    /// The output token limit was reached.
    Length,
    /// The model wants tool results.
    ToolCalls,
    /// The provider filtered the output.
    ContentFilter,
    /// Anything else.
    #[serde(other)]
    Other,
}
