//! Rendered Markdown for both platforms, as snapshots: code blocks, links,
//! lists, nested formatting, characters that need escaping, and a split
//! across the length limit.

use netherbrain_core::channel::MarkupDialect;
use netherbrain_gateway::markup::{render, render_split};

const SAMPLE: &str = r#"# Plan

Some **bold with *nested italic* inside**, ~~gone~~ and `inline <code> & co`.

A [link](https://example.com/?a=1&b="2") and 5 < 6 > 4 & "quotes".

1. first
2. second
   - nested *one*
   - nested two
3. third

> quoted **text**

```rust
fn main() {
    println!("<hello> & {}", 1 < 2);
}
```

#### Deep heading

---
done"#;

#[test]
fn telegram_html() {
    insta::assert_snapshot!(render(SAMPLE, MarkupDialect::TelegramHtml));
}

#[test]
fn discord_markdown() {
    insta::assert_snapshot!(render(SAMPLE, MarkupDialect::DiscordMarkdown));
}

fn long_code_reply() -> String {
    let mut text = String::from("Here is the file:\n\n```python\n");
    for i in 0..40 {
        text.push_str(&format!("print(\"line {i} <ok> & é\")\n"));
    }
    text.push_str("```\n\nThat is all — ünïcödé 🎉 included.\n");
    text
}

#[test]
fn telegram_split_across_the_limit() {
    let parts = render_split(&long_code_reply(), MarkupDialect::TelegramHtml, 600);
    assert!(parts.iter().all(|p| p.chars().count() <= 600));
    for part in &parts {
        assert_eq!(
            part.matches("<pre>").count(),
            part.matches("</pre>").count()
        );
    }
    insta::assert_snapshot!(parts.join("\n=====\n"));
}

#[test]
fn discord_split_across_the_limit() {
    let parts = render_split(&long_code_reply(), MarkupDialect::DiscordMarkdown, 500);
    assert!(parts.iter().all(|p| p.chars().count() <= 500));
    for part in &parts {
        assert_eq!(part.matches("```").count() % 2, 0, "{part}");
    }
    insta::assert_snapshot!(parts.join("\n=====\n"));
}
