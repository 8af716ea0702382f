//! Model Markdown to what a platform renders, and splitting long replies
//! at the platform's length limit without cutting a code block, a line of
//! Markdown or a UTF-8 character.

use netherbrain_core::channel::MarkupDialect;
use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Renders Markdown in a platform's dialect.
///
/// ```
/// use netherbrain_core::channel::MarkupDialect;
/// use netherbrain_gateway::markup::render;
/// assert_eq!(render("**a** < b", MarkupDialect::TelegramHtml), "<b>a</b> &lt; b");
/// assert_eq!(render("**a**", MarkupDialect::Plain), "**a**");
/// ```
#[must_use]
pub fn render(markdown: &str, dialect: MarkupDialect) -> String {
    match dialect {
        MarkupDialect::TelegramHtml => telegram_html(markdown),
        MarkupDialect::DiscordMarkdown => discord_markdown(markdown),
        _ => markdown.to_owned(),
    }
}

/// Splits Markdown into pieces that each render to at most `max`
/// characters, then renders them. A code block cut in two is closed at the
/// end of one piece and reopened (with its language) in the next.
///
/// ```
/// use netherbrain_core::channel::MarkupDialect;
/// use netherbrain_gateway::markup::render_split;
/// let long = "word ".repeat(30);
/// let parts = render_split(&long, MarkupDialect::Plain, 40);
/// assert!(parts.len() > 1 && parts.iter().all(|p| p.chars().count() <= 40));
/// ```
#[must_use]
pub fn render_split(markdown: &str, dialect: MarkupDialect, max: usize) -> Vec<String> {
    let max = max.max(16);
    let mut budget = max;
    for _ in 0..8 {
        let rendered: Vec<String> = split_markdown(markdown, budget)
            .iter()
            .map(|piece| render(piece, dialect))
            .filter(|piece| !piece.trim().is_empty())
            .collect();
        if rendered.iter().all(|p| p.chars().count() <= max) {
            return rendered;
        }
        budget = (budget * 3 / 4).max(16);
    }
    // Escaping still too long: plain text always fits.
    split_markdown(markdown, max)
}

/// Splits Markdown source into pieces of at most `max` characters, at
/// line ends where possible, else at spaces, else between characters.
///
/// ```
/// use netherbrain_gateway::markup::split_markdown;
/// let text = "```rust\nlet a = 1;\nlet b = 2;\n```\n";
/// let parts = split_markdown(text, 24);
/// assert!(parts.len() > 1);
/// assert!(parts.iter().all(|p| p.matches("```").count() % 2 == 0), "{parts:?}");
/// ```
#[must_use]
pub fn split_markdown(markdown: &str, max: usize) -> Vec<String> {
    const CLOSE: &str = "```";
    let max = max.max(16);
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut current_len = 0usize;
    let mut fence: Option<String> = None;
    for line in markdown.split_inclusive('\n') {
        let reserve = if fence.is_some() { CLOSE.len() + 1 } else { 0 };
        let line_len = line.chars().count();
        if current_len + line_len + reserve > max && current_len > 0 {
            finish(
                &mut pieces,
                &mut current,
                &mut current_len,
                fence.as_deref(),
            );
        }
        // A line longer than a piece: cut it at spaces or characters.
        let room = max.saturating_sub(reserve + current_len).max(1);
        if line_len > room {
            let mut rest = line;
            while rest.chars().count() > max.saturating_sub(reserve + current_len) {
                let room = max.saturating_sub(reserve + current_len).max(1);
                let cut = cut_point(rest, room);
                current.push_str(&rest[..cut]);
                current_len += rest[..cut].chars().count();
                rest = &rest[cut..];
                finish(
                    &mut pieces,
                    &mut current,
                    &mut current_len,
                    fence.as_deref(),
                );
            }
            current.push_str(rest);
            current_len += rest.chars().count();
        } else {
            current.push_str(line);
            current_len += line_len;
        }
        if line.trim_start().starts_with(CLOSE) {
            fence = match fence {
                Some(_) => None,
                None => Some(line.trim().to_owned()),
            };
        }
    }
    if !current.trim().is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Ends the current piece (closing an open code block) and starts the
/// next (reopening it).
fn finish(pieces: &mut Vec<String>, current: &mut String, len: &mut usize, fence: Option<&str>) {
    let mut piece = std::mem::take(current);
    if let Some(open) = fence {
        if !piece.ends_with('\n') {
            piece.push('\n');
        }
        piece.push_str("```");
        current.push_str(open);
        current.push('\n');
    }
    *len = current.chars().count();
    if !piece.trim().is_empty() {
        pieces.push(piece);
    }
}

/// A byte index at most `room` characters into `text`, after the last
/// space there if there is one (never inside a character).
fn cut_point(text: &str, room: usize) -> usize {
    let end = text.char_indices().nth(room).map_or(text.len(), |(i, _)| i);
    match text[..end].rfind(' ') {
        Some(space) if space > 0 => space + 1,
        _ => end,
    }
}

fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Markdown to Telegram's HTML subset (`b`, `i`, `s`, `code`, `pre`, `a`,
/// `blockquote`); headings become bold lines, lists bullet lines.
fn telegram_html(markdown: &str) -> String {
    let mut out = String::new();
    let mut lists: Vec<Option<u64>> = Vec::new();
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Strong => out.push_str("<b>"),
                Tag::Emphasis => out.push_str("<i>"),
                Tag::Strikethrough => out.push_str("<s>"),
                Tag::Heading { .. } => out.push_str("<b>"),
                Tag::BlockQuote(_) => out.push_str("<blockquote>"),
                Tag::CodeBlock(kind) => match kind {
                    CodeBlockKind::Fenced(lang) if !lang.trim().is_empty() => {
                        out.push_str("<pre><code class=\"language-");
                        escape_html(lang.split_whitespace().next().unwrap_or(""), &mut out);
                        out.push_str("\">");
                    }
                    _ => out.push_str("<pre><code>"),
                },
                Tag::Link { dest_url, .. } => {
                    out.push_str("<a href=\"");
                    escape_html(&dest_url, &mut out);
                    out.push_str("\">");
                }
                Tag::List(start) => {
                    if !lists.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    lists.push(start);
                }
                Tag::Item => {
                    let depth = lists.len().saturating_sub(1);
                    out.push_str(&"  ".repeat(depth));
                    match lists.last_mut() {
                        Some(Some(n)) => {
                            out.push_str(&format!("{n}. "));
                            *n += 1;
                        }
                        _ => out.push_str("• "),
                    }
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Strong => out.push_str("</b>"),
                TagEnd::Emphasis => out.push_str("</i>"),
                TagEnd::Strikethrough => out.push_str("</s>"),
                TagEnd::Heading(level) => {
                    out.push_str("</b>");
                    out.push_str(if level == HeadingLevel::H1 {
                        "\n\n"
                    } else {
                        "\n"
                    });
                }
                TagEnd::BlockQuote(_) => {
                    trim_newlines(&mut out);
                    out.push_str("</blockquote>\n\n");
                }
                TagEnd::CodeBlock => {
                    trim_newlines(&mut out);
                    out.push_str("</code></pre>\n\n");
                }
                TagEnd::Link => out.push_str("</a>"),
                TagEnd::Paragraph => {
                    out.push_str(if lists.is_empty() { "\n\n" } else { "\n" });
                }
                TagEnd::Item if !out.ends_with('\n') => out.push('\n'),
                TagEnd::List(_) => {
                    lists.pop();
                    if lists.is_empty() {
                        out.push('\n');
                    }
                }
                _ => {}
            },
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => {
                escape_html(&text, &mut out);
            }
            Event::Code(code) => {
                out.push_str("<code>");
                escape_html(&code, &mut out);
                out.push_str("</code>");
            }
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            Event::Rule => out.push_str("──────\n\n"),
            _ => {}
        }
    }
    out.trim_end().to_owned()
}

fn trim_newlines(out: &mut String) {
    while out.ends_with('\n') {
        out.pop();
    }
}

/// Discord renders Markdown itself; what it lacks is turned into what it
/// has: deep headings into bold lines, horizontal rules into a line.
fn discord_markdown(markdown: &str) -> String {
    let mut out = String::new();
    let mut in_fence = false;
    for line in markdown.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            out.push_str(line);
            continue;
        }
        if !in_fence {
            let hashes = trimmed.chars().take_while(|c| *c == '#').count();
            if hashes > 3 && trimmed[hashes..].starts_with(' ') {
                out.push_str("**");
                out.push_str(trimmed[hashes..].trim());
                out.push_str("**\n");
                continue;
            }
            if matches!(trimmed.trim_end(), "---" | "***" | "___") {
                out.push_str("──────\n");
                continue;
            }
        }
        out.push_str(line);
    }
    out.trim_end().to_owned()
}

/// Telegram HTML back to plain text (the fallback when formatting is
/// refused): tags dropped, entities decoded.
///
/// ```
/// use netherbrain_gateway::markup::html_to_plain;
/// assert_eq!(html_to_plain("<b>a</b> &lt; b &amp; c"), "a < b & c");
/// ```
#[must_use]
pub fn html_to_plain(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}
