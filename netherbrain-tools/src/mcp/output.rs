//! An MCP tool result as text for the model.

use netherbrain_core::tool::{ToolError, ToolOutput};
use rmcp::model::CallToolResult;
use serde_json::Value;

/// The longest answer passed to the model; the rest is cut with a note.
const MAX_OUTPUT: usize = 256 * 1024;

/// Text blocks as they are, embedded text resources by their text, other
/// blocks (images, audio, binary resources, links) described in one line;
/// structured content when there is no text. `isError` results become
/// errors the model reads.
pub(super) fn to_output(result: CallToolResult) -> Result<ToolOutput, ToolError> {
    let mut parts: Vec<String> = result.content.iter().map(describe).collect();
    if parts.iter().all(String::is_empty) {
        parts.clear();
        if let Some(structured) = &result.structured_content {
            parts.push(structured.to_string());
        }
    }
    let mut text = parts.join("\n");
    if text.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = text.len() - cut;
        text.truncate(cut);
        text.push_str(&format!("\n[{dropped} more bytes dropped]"));
    }
    if result.is_error == Some(true) {
        Err(ToolError::failed(if text.is_empty() {
            "the MCP tool reported an error".to_owned()
        } else {
            text
        }))
    } else {
        Ok(ToolOutput::text(text))
    }
}

fn describe(block: &rmcp::model::ContentBlock) -> String {
    if let Some(text) = block.as_text() {
        return text.text.clone();
    }
    let value = serde_json::to_value(block).unwrap_or(Value::Null);
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let kind = field(&value, "type").unwrap_or_else(|| "content".into());
    if let Some(resource) = value.get("resource") {
        if let Some(text) = field(resource, "text") {
            return text;
        }
        let uri = field(resource, "uri").unwrap_or_default();
        return format!("[binary resource {uri}]");
    }
    let mime = field(&value, "mimeType").unwrap_or_default();
    let size = field(&value, "data").map_or(0, |d| d.len() / 4 * 3);
    match field(&value, "uri") {
        Some(uri) => format!("[{kind} {uri}]"),
        None => format!("[{kind} {mime}, about {size} bytes, not shown]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock;

    #[test]
    fn text_and_errors() {
        let ok = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
        assert_eq!(to_output(ok).unwrap().content, "a\nb");
        let err = CallToolResult::error(vec![ContentBlock::text("boom")]);
        assert_eq!(to_output(err), Err(ToolError::failed("boom")));
    }
}
