//! Preparing the history a model sees: the summary cut, repair of
//! unanswered calls, token estimates and truncation.

use std::collections::HashSet;

use crate::message::{ContentPart, Message, Role, ToolResult, ToolResultStatus};

/// Content of the synthetic result given to calls left without one.
pub(super) const UNANSWERED_CALL: &str = "the tool call was cancelled before it returned a result";

/// The messages from the last one containing a summary on.
pub(super) fn from_last_summary(messages: &[Message]) -> &[Message] {
    let start = messages
        .iter()
        .rposition(|m| {
            m.content
                .iter()
                .any(|p| matches!(p, ContentPart::Summary { .. }))
        })
        .unwrap_or(0);
    &messages[start..]
}

/// Makes a history acceptable to providers: every tool call gets a result
/// (a synthetic `cancel` one where missing, placed right after the call's
/// message) and results without a call are dropped.
pub(super) fn repair(messages: Vec<Message>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len() + 1);
    let mut known_calls: HashSet<String> = HashSet::new();
    let mut open: Vec<String> = Vec::new();
    for mut message in messages {
        if message.role == Role::Tool {
            message.content.retain(|p| match p {
                ContentPart::ToolResult(r) => known_calls.contains(&r.call_id),
                _ => true,
            });
            let answered: HashSet<&str> =
                message.tool_results().map(|r| r.call_id.as_str()).collect();
            open.retain(|id| !answered.contains(id.as_str()));
            if message.content.is_empty() {
                continue;
            }
        } else if !open.is_empty() {
            close_open(&mut out, &mut open);
        }
        if message.role == Role::Assistant {
            for call in message.tool_calls() {
                known_calls.insert(call.id.clone());
                open.push(call.id.clone());
            }
        }
        out.push(message);
    }
    if !open.is_empty() {
        close_open(&mut out, &mut open);
    }
    out
}

/// Answers the open calls: appended to the tool message just pushed, or as
/// a new tool message.
fn close_open(out: &mut Vec<Message>, open: &mut Vec<String>) {
    let results = open.drain(..).map(|id| {
        ContentPart::ToolResult(ToolResult::new(
            id,
            UNANSWERED_CALL,
            ToolResultStatus::Cancel,
        ))
    });
    match out.last_mut() {
        Some(last) if last.role == Role::Tool => last.content.extend(results),
        _ => out.push(Message::new(Role::Tool, results.collect())),
    }
}

/// Estimated tokens of one message: about four characters of its JSON per
/// token.
pub(super) fn estimate_message(message: &Message) -> u64 {
    let chars = serde_json::to_string(message).map_or(0, |s| s.len());
    (chars as u64).div_ceil(4)
}

/// Estimated tokens of a system prompt plus messages.
pub(super) fn estimate(system: Option<&str>, messages: &[Message]) -> u64 {
    let system = system.map_or(0, |s| (s.len() as u64).div_ceil(4));
    system + messages.iter().map(estimate_message).sum::<u64>()
}

/// Where the latest user turn starts: the last user message (other than a
/// summary) — everything from there on must be kept.
pub(super) fn latest_user_turn(messages: &[Message]) -> usize {
    messages
        .iter()
        .rposition(|m| {
            m.role == Role::User
                && !m
                    .content
                    .iter()
                    .any(|p| matches!(p, ContentPart::Summary { .. }))
        })
        .unwrap_or(0)
}

/// How many leading messages to drop so the rest fits `budget`: cuts only
/// before user messages (so a tool-call message never loses its results)
/// and never past the latest user turn.
pub(super) fn truncation_cut(system: Option<&str>, messages: &[Message], budget: u64) -> usize {
    let limit = latest_user_turn(messages);
    let system = system.map_or(0, |s| (s.len() as u64).div_ceil(4));
    // suffix[i] = estimated tokens of messages[i..]
    let mut suffix = vec![0u64; messages.len() + 1];
    for (i, m) in messages.iter().enumerate().rev() {
        suffix[i] = suffix[i + 1] + estimate_message(m);
    }
    (0..limit)
        .find(|&i| (i == 0 || messages[i].role == Role::User) && system + suffix[i] <= budget)
        .unwrap_or(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ToolCall;

    fn call_msg(ids: &[&str]) -> Message {
        Message::new(
            Role::Assistant,
            ids.iter()
                .map(|id| ContentPart::ToolCall(ToolCall::new(*id, "t", serde_json::json!({}))))
                .collect(),
        )
    }

    #[test]
    fn repair_adds_cancel_results_and_drops_orphans() {
        let history = vec![
            Message::user("a"),
            call_msg(&["c1", "c2"]),
            Message::tool(vec![ToolResult::success("c1", "ok")]),
            Message::user("b"),
            Message::tool(vec![ToolResult::success("zz", "orphan")]),
            call_msg(&["c3"]),
        ];
        let repaired = repair(history);
        let roles: Vec<Role> = repaired.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            vec![
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::User,
                Role::Assistant,
                Role::Tool
            ]
        );
        let statuses: Vec<_> = repaired[2].tool_results().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            vec![ToolResultStatus::Success, ToolResultStatus::Cancel]
        );
        assert_eq!(repaired[5].tool_results().next().unwrap().call_id, "c3");
    }

    #[test]
    fn summary_cut() {
        let msgs = vec![
            Message::user("old"),
            Message::new(
                Role::User,
                vec![ContentPart::Summary { text: "sum".into() }],
            ),
            Message::user("new"),
        ];
        assert_eq!(from_last_summary(&msgs).len(), 2);
    }

    #[test]
    fn truncation_keeps_pairs_and_latest_turn() {
        let big = "x".repeat(400);
        let msgs = vec![
            Message::user(&big),
            call_msg(&["c1"]),
            Message::tool(vec![ToolResult::success("c1", &big)]),
            Message::user(&big),
            Message::assistant(&big),
            Message::user("latest"),
        ];
        let cut = truncation_cut(None, &msgs, 300);
        assert_eq!(cut, 3);
        assert_eq!(truncation_cut(None, &msgs, 1), 5);
        assert_eq!(truncation_cut(None, &msgs, 100_000), 0);
    }
}
