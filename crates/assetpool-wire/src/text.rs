//! The one rule every text a client or an operator sends must pass: no
//! control characters.
//!
//! NUL cannot be stored in PostgreSQL text, and the other control characters
//! (C0, DEL, C1: terminal escapes, carriage returns, ...) would travel into
//! terminals, logs and webhook receivers that show names, emails and reasons.
//! Every field of every body, form, path and query, and every argument of the
//! command line, is held to it where it is parsed, the same way on every
//! storage backend. What is already stored is shown escaped
//! ([`escape_control`]).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `text` contains a control character (Unicode category Cc: U+0000
/// to U+001F, U+007F to U+009F).
pub fn contains_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// `text` with every control character written as a visible escape
/// (`\u{1b}` for ESC), for showing stored text on a terminal: rows written
/// before the rule above, imported or put into the database by other means
/// must not move the cursor, retitle the window or clear the screen of the
/// operator reading them. Text without control characters is returned as
/// it is.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !contains_control(text) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for character in text.chars() {
        if character.is_control() {
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(character));
        } else {
            escaped.push(character);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_visibly() {
        assert_eq!(
            escape_control("a\u{1b}]0;pwn\u{7}b\u{9b}c\nd"),
            "a\\u{1b}]0;pwn\\u{7}b\\u{9b}c\\u{a}d"
        );
        assert!(matches!(escape_control("Zoë – ключ"), Cow::Borrowed(_)));
        assert!(!contains_control(&escape_control("\0\u{7f}\u{85}")));
    }

    #[test]
    fn control_characters_are_found() {
        for bad in [
            "a\0b",
            "\u{1b}[2J",
            "line\nbreak",
            "tab\there",
            "\u{7f}",
            "\u{85}",
            "\u{9f}",
        ] {
            assert!(contains_control(bad), "{bad:?}");
        }
        for good in ["alice@example.com", "Zoë – ключ", "a b", "\u{a0}", ""] {
            assert!(!contains_control(good), "{good:?}");
        }
    }
}
