//! Conversation messages and their content parts.
//!
//! A [`Message`] has a [`Role`] and a list of [`ContentPart`]s. Assistant
//! messages carry text, reasoning and [`ToolCall`]s; tool messages carry
//! [`ToolResult`]s. The serialized form is stable: it is what stores persist.
//! Every type here also derives [`JsonSchema`] describing exactly that form
//! (the HTTP API publishes these schemas in its OpenAPI document).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who authored a message.
///
/// ```
/// use netherbrain_core::Role;
/// assert_eq!(serde_json::to_string(&Role::Assistant).unwrap(), "\"assistant\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The human (or a program acting for one).
    User,
    /// The model.
    Assistant,
    /// Results of tool calls, fed back to the model.
    Tool,
}

impl Role {
    /// The lowercase wire name (`"user"`, `"assistant"`, …).
    ///
    /// ```
    /// assert_eq!(netherbrain_core::Role::Tool.as_str(), "tool");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }
}

/// Where the bytes of an image come from.
///
/// ```
/// use netherbrain_core::ImageSource;
/// let img = ImageSource::Url { url: "https://example.com/cat.png".into() };
/// # let _ = img;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImageSource {
    /// An image the provider fetches itself.
    Url {
        /// The image URL (`https:` or a `data:` URL).
        url: String,
    },
    /// Inline base64 data.
    Base64 {
        /// MIME type such as `image/png`.
        media_type: String,
        /// Base64-encoded bytes.
        data: String,
    },
}

/// A tool call requested by the model.
///
/// ```
/// use netherbrain_core::ToolCall;
/// let call = ToolCall::new("call_1", "add", serde_json::json!({"a": 1, "b": 2}));
/// assert_eq!(call.name, "add");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ToolCall {
    /// Provider-assigned id that the result must echo.
    pub id: String,
    /// Name of the tool.
    pub name: String,
    /// Arguments. Always a JSON object when the model sent valid JSON;
    /// a JSON string holding the raw text when it did not.
    pub arguments: Value,
}

impl ToolCall {
    /// Creates a tool call.
    ///
    /// ```
    /// let call = netherbrain_core::ToolCall::new("id", "clock", serde_json::json!({}));
    /// assert_eq!(call.id, "id");
    /// ```
    #[must_use]
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments,
        }
    }
}

/// How a tool call ended.
///
/// ```
/// use netherbrain_core::ToolResultStatus;
/// assert!(ToolResultStatus::Error.is_error());
/// assert!(!ToolResultStatus::Success.is_error());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolResultStatus {
    /// The tool ran and succeeded.
    #[default]
    Success,
    /// Bad arguments, unknown tool, timeout or a tool failure.
    Error,
    /// The run was interrupted before the call finished.
    Cancel,
    /// The user denied the call.
    Denied,
}

impl ToolResultStatus {
    /// Whether the model should read this result as a failure.
    ///
    /// ```
    /// assert!(netherbrain_core::ToolResultStatus::Denied.is_error());
    /// ```
    #[must_use]
    pub const fn is_error(self) -> bool {
        !matches!(self, Self::Success)
    }
}

/// The result of one tool call, as the model sees it.
///
/// ```
/// use netherbrain_core::{ToolResult, ToolResultStatus};
/// let ok = ToolResult::success("call_1", "42");
/// let bad = ToolResult::error("call_2", "unknown tool `nope`");
/// assert_eq!(bad.status, ToolResultStatus::Error);
/// # let _ = ok;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ToolResult {
    /// Id of the [`ToolCall`] this answers.
    pub call_id: String,
    /// Text the model reads.
    pub content: String,
    /// How the call ended.
    #[serde(default)]
    pub status: ToolResultStatus,
}

impl ToolResult {
    /// Creates a result with an explicit status.
    ///
    /// ```
    /// use netherbrain_core::{ToolResult, ToolResultStatus};
    /// let r = ToolResult::new("c", "cancelled", ToolResultStatus::Cancel);
    /// assert!(r.status.is_error());
    /// ```
    #[must_use]
    pub fn new(
        call_id: impl Into<String>,
        content: impl Into<String>,
        status: ToolResultStatus,
    ) -> Self {
        Self {
            call_id: call_id.into(),
            content: content.into(),
            status,
        }
    }

    /// A successful result.
    ///
    /// ```
    /// let r = netherbrain_core::ToolResult::success("c", "ok");
    /// assert!(!r.status.is_error());
    /// ```
    #[must_use]
    pub fn success(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::new(call_id, content, ToolResultStatus::Success)
    }

    /// An error result.
    ///
    /// ```
    /// let r = netherbrain_core::ToolResult::error("c", "boom");
    /// assert!(r.status.is_error());
    /// ```
    #[must_use]
    pub fn error(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::new(call_id, content, ToolResultStatus::Error)
    }
}

/// One part of a message's content.
///
/// ```
/// use netherbrain_core::ContentPart;
/// let part = ContentPart::text("hello");
/// assert_eq!(part.as_text(), Some("hello"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// Where the image comes from.
        source: ImageSource,
    },
    /// The model's reasoning ("thinking").
    Reasoning {
        /// The reasoning text.
        text: String,
        /// Opaque signature some providers require to send reasoning back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// A tool call made by the model.
    ToolCall(ToolCall),
    /// The result of a tool call.
    ToolResult(ToolResult),
    /// A summary that replaces all earlier history (written by context
    /// compaction). Adapters send it as text; history before the last
    /// summary is not sent to the model again.
    Summary {
        /// The summary text.
        text: String,
    },
}

impl ContentPart {
    /// A text part.
    ///
    /// ```
    /// let p = netherbrain_core::ContentPart::text("hi");
    /// # let _ = p;
    /// ```
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }

    /// The text of a [`ContentPart::Text`], else `None`.
    ///
    /// ```
    /// let p = netherbrain_core::ContentPart::text("hi");
    /// assert_eq!(p.as_text(), Some("hi"));
    /// ```
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text { text } => Some(text),
            _ => None,
        }
    }
}

/// A message in a conversation.
///
/// ```
/// use netherbrain_core::{Message, Role};
/// let m = Message::user("What is 2 + 2?");
/// assert_eq!(m.role, Role::User);
/// assert_eq!(m.text(), "What is 2 + 2?");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its parts, in order.
    pub content: Vec<ContentPart>,
}

impl Message {
    /// A message with the given role and parts.
    ///
    /// ```
    /// use netherbrain_core::{ContentPart, Message, Role};
    /// let m = Message::new(Role::Assistant, vec![ContentPart::text("hi")]);
    /// assert_eq!(m.text(), "hi");
    /// ```
    #[must_use]
    pub fn new(role: Role, content: Vec<ContentPart>) -> Self {
        Self { role, content }
    }

    /// A system message with one text part.
    ///
    /// ```
    /// let m = netherbrain_core::Message::system("Be brief.");
    /// assert_eq!(m.role, netherbrain_core::Role::System);
    /// ```
    #[must_use]
    pub fn system(text: impl Into<String>) -> Self {
        Self::new(Role::System, vec![ContentPart::text(text)])
    }

    /// A user message with one text part.
    ///
    /// ```
    /// let m = netherbrain_core::Message::user("hi");
    /// assert_eq!(m.role, netherbrain_core::Role::User);
    /// ```
    #[must_use]
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, vec![ContentPart::text(text)])
    }

    /// An assistant message with one text part.
    ///
    /// ```
    /// let m = netherbrain_core::Message::assistant("hello");
    /// assert_eq!(m.role, netherbrain_core::Role::Assistant);
    /// ```
    #[must_use]
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new(Role::Assistant, vec![ContentPart::text(text)])
    }

    /// A tool message carrying results.
    ///
    /// ```
    /// use netherbrain_core::{Message, ToolResult};
    /// let m = Message::tool(vec![ToolResult::success("c1", "4")]);
    /// assert_eq!(m.tool_results().count(), 1);
    /// ```
    #[must_use]
    pub fn tool(results: Vec<ToolResult>) -> Self {
        Self::new(
            Role::Tool,
            results.into_iter().map(ContentPart::ToolResult).collect(),
        )
    }

    /// All text parts joined together.
    ///
    /// ```
    /// use netherbrain_core::{ContentPart, Message, Role};
    /// let m = Message::new(Role::Assistant, vec![ContentPart::text("a"), ContentPart::text("b")]);
    /// assert_eq!(m.text(), "ab");
    /// ```
    #[must_use]
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(ContentPart::as_text)
            .collect()
    }

    /// The tool calls in this message.
    ///
    /// ```
    /// use netherbrain_core::{ContentPart, Message, Role, ToolCall};
    /// let m = Message::new(Role::Assistant, vec![ContentPart::ToolCall(ToolCall::new("c", "t", serde_json::json!({})))]);
    /// assert_eq!(m.tool_calls().count(), 1);
    /// ```
    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.content.iter().filter_map(|p| match p {
            ContentPart::ToolCall(call) => Some(call),
            _ => None,
        })
    }

    /// The tool results in this message.
    ///
    /// ```
    /// let m = netherbrain_core::Message::user("hi");
    /// assert_eq!(m.tool_results().count(), 0);
    /// ```
    pub fn tool_results(&self) -> impl Iterator<Item = &ToolResult> {
        self.content.iter().filter_map(|p| match p {
            ContentPart::ToolResult(result) => Some(result),
            _ => None,
        })
    }
}
