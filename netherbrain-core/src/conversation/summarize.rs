//! Titles and summaries of conversations: one non-streaming call of the
//! conversation's preset model over its history.

use super::{ConversationService, ServiceError};
use crate::auth::Principal;
use crate::ids::ConversationId;
use crate::message::{Message, Role};
use crate::provider::{ModelRequest, ProviderExt};
use crate::store::{Conversation, ConversationPatch};

/// Most characters of history text sent to the model (the tail is kept).
const MAX_TRANSCRIPT_CHARS: usize = 24_000;
/// Longest title kept.
const MAX_TITLE_CHARS: usize = 120;

const INSTRUCTIONS: &str = "You name and summarise conversations. Read the transcript and answer \
with a JSON object only: {\"title\": \"<at most 8 words>\", \"summary\": \"<2-4 sentences>\"}.";

/// A title and a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TitleSummary {
    title: String,
    summary: String,
}

/// The history as plain text, `role: text` per message, tail-truncated.
fn transcript(history: &[Message]) -> String {
    let mut lines: Vec<String> = history
        .iter()
        .filter(|m| matches!(m.role, Role::User | Role::Assistant))
        .map(|m| (m.role.as_str(), m.text()))
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(role, text)| format!("{role}: {}", text.trim()))
        .collect();
    let mut total: usize = lines.iter().map(|l| l.len() + 1).sum();
    while total > MAX_TRANSCRIPT_CHARS && lines.len() > 1 {
        total -= lines.remove(0).len() + 1;
    }
    lines.join("\n")
}

/// Reads the model's answer: the JSON object asked for (also inside a code
/// fence or surrounded by text), else the first line as title and the rest
/// as summary.
fn parse_answer(answer: &str) -> Option<TitleSummary> {
    let answer = answer.trim();
    if answer.is_empty() {
        return None;
    }
    let json = match (answer.find('{'), answer.rfind('}')) {
        (Some(start), Some(end)) if start < end => {
            serde_json::from_str::<serde_json::Value>(&answer[start..=end]).ok()
        }
        _ => None,
    };
    let (title, summary) = match json {
        Some(v) => (
            v.get("title")?.as_str()?.to_owned(),
            v.get("summary")
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .to_owned(),
        ),
        None => {
            let (first, rest) = answer.split_once('\n').unwrap_or((answer, ""));
            (first.to_owned(), rest.trim().to_owned())
        }
    };
    let title = title
        .trim()
        .trim_matches(|c| c == '"' || c == '#' || c == '*')
        .trim();
    if title.is_empty() {
        return None;
    }
    Some(TitleSummary {
        title: title.chars().take(MAX_TITLE_CHARS).collect(),
        summary: summary.trim().to_owned(),
    })
}

impl ConversationService {
    /// Names and summarises a conversation with its preset's model (one
    /// non-streaming call over its history) and stores the title and
    /// summary.
    ///
    /// # Errors
    ///
    /// `NotFound` for a conversation `who` may not see;
    /// [`ServiceError::Conflict`] without a preset, without messages, or
    /// for a preset whose profile the catalog lacks;
    /// [`ServiceError::Unavailable`] when the model call fails or its
    /// answer cannot be read.
    pub async fn summarize(
        &self,
        who: &Principal,
        id: ConversationId,
    ) -> Result<Conversation, ServiceError> {
        let conversation = self.conversation(who, id).await?;
        let store = &self.inner.store;
        let latest = store.latest_session(id).await?;
        let preset_id = conversation
            .default_preset
            .or_else(|| latest.as_ref().and_then(|s| s.preset_id))
            .ok_or_else(|| {
                ServiceError::Conflict("the conversation has no preset to summarize with".into())
            })?;
        let preset = store.get_preset(preset_id).await?.config;
        let history = match &latest {
            Some(latest) => store.session_history(latest.id).await?,
            None => Vec::new(),
        };
        let text = transcript(&history);
        if text.is_empty() {
            return Err(ServiceError::Conflict(
                "the conversation has no messages yet".into(),
            ));
        }
        let provider = self
            .catalog()
            .provider(&preset.profile)
            .cloned()
            .ok_or_else(|| {
                ServiceError::Conflict(format!("unknown provider profile `{}`", preset.profile))
            })?;
        let request = ModelRequest::new(
            preset.model.clone(),
            vec![Message::user(format!("Transcript:\n{text}"))],
        )
        .with_system(INSTRUCTIONS);
        let response = provider.complete(request).await.map_err(|e| {
            tracing::warn!(error = %e, "summarize call failed");
            ServiceError::Unavailable(format!("the model call failed: {e}"))
        })?;
        let named = parse_answer(&response.message.text())
            .ok_or_else(|| ServiceError::Unavailable("the model gave no usable title".into()))?;
        let patch = ConversationPatch {
            title: Some(Some(named.title)),
            summary: Some(Some(named.summary)),
            ..ConversationPatch::default()
        };
        self.update(who, id, patch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_fenced_and_plain_answers() {
        let a = parse_answer(r#"{"title": "Rust traits", "summary": "About traits."}"#).unwrap();
        assert_eq!(a.title, "Rust traits");
        assert_eq!(a.summary, "About traits.");
        let b = parse_answer("```json\n{\"title\": \"X\"}\n```").unwrap();
        assert_eq!(b.title, "X");
        assert_eq!(b.summary, "");
        let c = parse_answer("\"Trip plan\"\nPlanning a trip.").unwrap();
        assert_eq!(c.title, "Trip plan");
        assert_eq!(c.summary, "Planning a trip.");
        assert!(parse_answer("  ").is_none());
    }

    #[test]
    fn transcript_keeps_the_tail() {
        let long = "x".repeat(MAX_TRANSCRIPT_CHARS);
        let t = transcript(&[Message::user(long), Message::assistant("last")]);
        assert_eq!(t, "assistant: last");
    }
}
