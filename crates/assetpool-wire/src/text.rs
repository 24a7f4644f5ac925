//! The one rule every text a client or an operator sends must pass: no
//! control characters.
//!
//! NUL cannot be stored in PostgreSQL text, and the other control characters
//! (C0, DEL, C1: terminal escapes, carriage returns, ...) would travel into
//! terminals, logs and webhook receivers that show names, emails and reasons.
//! Every field of every body, form, path and query, and every argument of the
//! command line, is held to it where it is parsed, the same way on every
//! storage backend.

/// Whether `text` contains a control character (Unicode category Cc: U+0000
/// to U+001F, U+007F to U+009F).
pub fn contains_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

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
