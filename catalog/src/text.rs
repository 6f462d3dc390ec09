//! Guest strings and host paths made safe for a terminal or a log line.
//!
//! An image controls its os-release fields, package names, file names and error texts;
//! a raw `\r`, newline or ANSI escape in one would forge log lines (`run …: finished:
//! FORGED`) or repaint an operator's terminal. [`clean`] writes every control character
//! (C0, DEL, C1) and the bidirectional overrides as visible escapes (`\n`, `\r`, `\t`,
//! `\x1b`, `\u{202e}`), and leaves everything else as it is. Events are cleaned when they
//! are written; the CLI cleans each table cell and error, the workers and the server each
//! log line. Storage keeps the inventory itself exact: only what is shown is cleaned.

use std::borrow::Cow;
use std::fmt::Write;

fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with its control characters escaped; borrowed when there is none.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`clean`] for a string kept as it is when already clean.
pub fn cleaned(s: &str) -> String {
    clean(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn controls_become_visible_and_the_rest_stays() {
        assert_eq!(
            clean("Debian\r\nrun 0000000000000: finished: FORGED\x1b[2J"),
            "Debian\\r\\nrun 0000000000000: finished: FORGED\\x1b[2J"
        );
        assert_eq!(
            clean("a\u{202e}b\u{85}\x7f\t"),
            "a\\u{202e}b\\u{85}\\x7f\\t"
        );
        assert!(matches!(
            clean("/img/débian 12 (bookworm)"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
