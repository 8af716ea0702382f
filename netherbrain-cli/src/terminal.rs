//! Text from the model (or the network) made safe for a terminal, and
//! Markdown rendered with terminal styles.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal: C0 controls other than newline
/// and tab (ESC starts every escape sequence, CR overwrites the line), DEL,
/// C1 controls (U+009B is a one-byte CSI), and the bidirectional overrides
/// and isolates that make text display differently from what it is.
fn is_unsafe(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// `text` without control characters and escape sequences' introducers, so
/// model output cannot move the cursor, retitle the window, clear the
/// screen or hide text. The rest of an escape sequence stays as plain
/// text (a sequence may be split across deltas, so its introducer is what
/// is removed).
///
/// ```ignore
/// assert_eq!(printable("a\u{1b}[2Jb"), "a[2Jb");
/// ```
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_unsafe) {
        Cow::Owned(text.chars().filter(|c| !is_unsafe(*c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

const BOLD: &str = "\x1b[1m";
const NOT_BOLD: &str = "\x1b[22m";
const ITALIC: &str = "\x1b[3m";
const NOT_ITALIC: &str = "\x1b[23m";
const UNDERLINE: &str = "\x1b[4m";
const NOT_UNDERLINE: &str = "\x1b[24m";
const CODE: &str = "\x1b[36m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Renders streamed Markdown for a terminal, line by line: a line is
/// styled once it is complete (headings bold and underlined, `**bold**`,
/// `*italic*`, `` `code` `` and fenced code blocks in colour, bullets,
/// quotes, links followed by their address). Model text is made
/// [`printable`] first, so the only escape sequences written are these
/// styles.
#[derive(Debug, Default)]
pub(crate) struct MarkdownLines {
    pending: String,
    in_fence: bool,
}

impl MarkdownLines {
    /// Adds a delta; returns the styled lines it completed (each with its
    /// newline), possibly none.
    pub(crate) fn push(&mut self, delta: &str) -> String {
        self.pending.push_str(&printable(delta));
        let mut out = String::new();
        while let Some(end) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=end).collect();
            out.push_str(&self.line(line.trim_end_matches('\n')));
            out.push('\n');
        }
        out
    }

    /// Styles what is left (a last line without a newline).
    pub(crate) fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        let out = if rest.is_empty() {
            String::new()
        } else {
            self.line(&rest)
        };
        self.in_fence = false;
        out
    }

    fn line(&mut self, line: &str) -> String {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            self.in_fence = !self.in_fence;
            let lang = trimmed.trim_start_matches(['`', '~']).trim();
            return if self.in_fence && !lang.is_empty() {
                format!("{DIM}── {lang} ──{RESET}")
            } else {
                format!("{DIM}────{RESET}")
            };
        }
        if self.in_fence {
            return format!("{CODE}{line}{RESET}");
        }
        inline(line)
    }
}

/// One line of Markdown with terminal styles.
fn inline(line: &str) -> String {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut out = String::new();
    let mut links: Vec<String> = Vec::new();
    let mut lists: Vec<Option<u64>> = Vec::new();
    for event in Parser::new(line) {
        match event {
            Event::Text(t) | Event::Html(t) | Event::InlineHtml(t) => out.push_str(&t),
            Event::Code(c) => {
                out.push_str(CODE);
                out.push_str(&c);
                out.push_str(RESET);
            }
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            Event::Rule => out.push_str(&format!("{DIM}────────{RESET}")),
            Event::Start(Tag::Heading { .. }) => {
                out.push_str(BOLD);
                out.push_str(UNDERLINE);
            }
            Event::End(TagEnd::Heading(_)) => {
                out.push_str(NOT_UNDERLINE);
                out.push_str(NOT_BOLD);
            }
            Event::Start(Tag::Strong) => out.push_str(BOLD),
            Event::End(TagEnd::Strong) => out.push_str(NOT_BOLD),
            Event::Start(Tag::Emphasis) => out.push_str(ITALIC),
            Event::End(TagEnd::Emphasis) => out.push_str(NOT_ITALIC),
            Event::Start(Tag::Link { dest_url, .. }) => {
                out.push_str(UNDERLINE);
                links.push(dest_url.into_string());
            }
            Event::End(TagEnd::Link) => {
                out.push_str(NOT_UNDERLINE);
                if let Some(url) = links.pop() {
                    out.push_str(&format!(" {DIM}({url}){RESET}"));
                }
            }
            Event::Start(Tag::BlockQuote(_)) => out.push_str(&format!("{DIM}│{RESET} ")),
            Event::Start(Tag::List(start)) => lists.push(start),
            Event::End(TagEnd::List(_)) => {
                lists.pop();
            }
            Event::Start(Tag::Item) => match lists.last_mut() {
                Some(Some(n)) => {
                    out.push_str(&format!("{n}. "));
                    *n += 1;
                }
                _ => out.push_str("• "),
            },
            _ => {}
        }
    }
    // Indentation is meaningful in lists and code; keep it.
    let indent = &line[..line.len() - line.trim_start().len()];
    format!("{indent}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_and_controls() {
        assert_eq!(printable("plain\ttext\n"), "plain\ttext\n");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[2Jb"), "a[2Jb");
        assert_eq!(printable("\u{1b}]0;pwned\u{7}title"), "]0;pwnedtitle");
        assert_eq!(printable("x\ry\u{8}z"), "xyz");
        assert_eq!(printable("\u{9b}31m red"), "31m red");
        assert_eq!(printable("abc\u{202e}fed"), "abcfed");
        assert_eq!(printable("héllo ✓"), "héllo ✓");
    }

    /// Escapes shown as `<b>`, `</b>`, … so the snapshot reads.
    fn visible(s: &str) -> String {
        s.replace(BOLD, "<b>")
            .replace(NOT_BOLD, "</b>")
            .replace(ITALIC, "<i>")
            .replace(NOT_ITALIC, "</i>")
            .replace(UNDERLINE, "<u>")
            .replace(NOT_UNDERLINE, "</u>")
            .replace(CODE, "<code>")
            .replace(DIM, "<dim>")
            .replace(RESET, "</>")
    }

    #[test]
    fn markdown_is_styled_line_by_line_as_it_streams() {
        let mut md = MarkdownLines::default();
        let text = "# Plan\nUse **bold**, *care* and `cargo`.\n- one\n2. two\n> quoted [docs](https://x.example/)\n```rust\nfn main() {}\n```\nlast \u{1b}[2Jline";
        let mut out = String::new();
        // Deltas split anywhere, even inside markers.
        for chunk in text.as_bytes().chunks(3) {
            let chunk = std::str::from_utf8(chunk).unwrap();
            out.push_str(&md.push(chunk));
        }
        assert!(!out.contains("last"), "an incomplete line waits");
        out.push_str(&md.finish());
        assert_eq!(
            visible(&out),
            "<b><u>Plan</u></b>\nUse <b>bold</b>, <i>care</i> and <code>cargo</>.\n• one\n2. two\n<dim>│</> quoted <u>docs</u> <dim>(https://x.example/)</>\n<dim>── rust ──</>\n<code>fn main() {}</>\n<dim>────</>\nlast [2Jline"
        );
    }
}
