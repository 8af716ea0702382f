//! Attachments of chat messages as input parts: each file is fetched from
//! the platform (within the size limit), kept in an [`AttachmentStore`]
//! (the blob store), and given to the model — images inline (for vision
//! models), text files as text, other files as a note naming the stored
//! blob.

use base64::Engine as _;
use netherbrain_core::channel::{AttachmentKind, InboundAttachment};
use netherbrain_core::{ContentPart, ImageSource};

/// Where attachments are kept (the `netherbrain` binary uses the blob
/// store: a local directory or S3).
#[async_trait::async_trait]
pub trait AttachmentStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `key` (relative, `/`-separated, segments of
    /// `[A-Za-z0-9._-]`).
    ///
    /// # Errors
    ///
    /// Why it could not be stored (shown to the admin in the log only).
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), String>;
}

/// Default largest attachment: 5 MiB.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = 5 * 1024 * 1024;

/// Attachments per message at most (more are refused).
pub const MAX_ATTACHMENTS: usize = 10;

/// Image types providers accept inline.
const INLINE_IMAGES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// The file's name, or one that says what it is.
#[must_use]
pub fn display_name(attachment: &InboundAttachment) -> String {
    match (&attachment.file_name, attachment.kind) {
        (Some(name), _) if !name.trim().is_empty() => name.trim().to_owned(),
        (_, AttachmentKind::Image) => "photo.jpg".to_owned(),
        _ => "file".to_owned(),
    }
}

/// One key segment: `[A-Za-z0-9._-]`, never empty, `.` or `..`.
///
/// ```
/// use netherbrain_gateway::attachments::key_segment;
/// assert_eq!(key_segment("-100123:5"), "-100123_5");
/// assert_eq!(key_segment(".."), "_..");
/// assert_eq!(key_segment("résumé.pdf"), "r_sum_.pdf");
/// ```
#[must_use]
pub fn key_segment(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out.insert(0, '_');
    }
    out
}

/// The blob key of a message's `index`-th attachment.
#[must_use]
pub fn blob_key(
    channel: &str,
    chat_id: &str,
    message_id: &str,
    index: usize,
    name: &str,
) -> String {
    format!(
        "gateway/{}/{}/{}/{index}-{}",
        key_segment(channel),
        key_segment(chat_id),
        key_segment(message_id),
        key_segment(name)
    )
}

fn media_type(attachment: &InboundAttachment, name: &str) -> String {
    if let Some(media) = &attachment.media_type {
        return media.to_ascii_lowercase();
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" | "md" | "csv" | "log" => "text/plain",
        "json" => "application/json",
        _ if attachment.kind == AttachmentKind::Image => "image/jpeg",
        _ => "application/octet-stream",
    }
    .to_owned()
}

/// The input part for a stored attachment.
///
/// ```
/// use netherbrain_core::channel::{AttachmentKind, InboundAttachment};
/// use netherbrain_core::ContentPart;
/// use netherbrain_gateway::attachments::input_part;
/// let doc = InboundAttachment::new("f", AttachmentKind::Document).with_file_name("notes.txt");
/// let part = input_part(&doc, b"buy milk".to_vec(), "gateway/k");
/// assert!(part.as_text().unwrap().contains("buy milk"));
/// ```
#[must_use]
pub fn input_part(attachment: &InboundAttachment, bytes: Vec<u8>, key: &str) -> ContentPart {
    let name = display_name(attachment);
    let media = media_type(attachment, &name);
    if INLINE_IMAGES.contains(&media.as_str()) {
        return ContentPart::Image {
            source: ImageSource::Base64 {
                media_type: media,
                data: base64::engine::general_purpose::STANDARD.encode(&bytes),
            },
        };
    }
    let size = bytes.len();
    match String::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => {
            let fence = if text.contains("```") { "````" } else { "```" };
            ContentPart::text(format!(
                "Attached file {name}:\n{fence}\n{}\n{fence}",
                text.trim_end()
            ))
        }
        _ => ContentPart::text(format!(
            "Attached file {name} ({media}, {size} bytes); it is kept as `{key}` and cannot be shown here."
        )),
    }
}

/// The polite reply for a file over the limit.
#[must_use]
pub fn too_large_reply(name: &str, max: u64) -> String {
    let mib = max as f64 / (1024.0 * 1024.0);
    format!(
        "Sorry, {name} is too large for me: files can be at most {mib:.1} MiB. Nothing was sent to the agent."
    )
}
