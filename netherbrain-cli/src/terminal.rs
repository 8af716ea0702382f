//! Text from the model (or the network) made safe for a terminal.

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
}
