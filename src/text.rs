//! Untrusted text (claims, headers, room names, answers from other servers)
//! on its way into a log line or a SASL failure text (docs/design.md, "Trust rules").
//!
//! [`Untrusted`] holds such a value already made safe: quoted, every byte
//! that is not printable ASCII escaped as `\xNN`, and cut to
//! [`MAX_SHOWN_BYTES`]. It is the only way untrusted text gets into an
//! [`crate::error::Error`], so a newline, a NUL or invalid UTF-8 can never
//! forge a log line or break the stanza that carries a SASL failure.

use std::fmt;

/// At most this many bytes of an untrusted value are shown.
pub const MAX_SHOWN_BYTES: usize = 64;

/// An untrusted value, escaped and bounded; `Display` prints it quoted:
/// `'ab\x00cd'`, or `'abc...'...` when it was cut.
#[derive(Clone, PartialEq, Eq)]
pub struct Untrusted(String);

impl Untrusted {
    /// Escape any bytes: printable ASCII stays (but `'` and `\` get a
    /// backslash), everything else becomes `\xNN`.
    pub fn new(bytes: impl AsRef<[u8]>) -> Self {
        let bytes = bytes.as_ref();
        let shown = &bytes[..bytes.len().min(MAX_SHOWN_BYTES)];
        let mut out = String::with_capacity(shown.len() + 8);
        out.push('\'');
        for &b in shown {
            match b {
                b'\'' => out.push_str("\\'"),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
        }
        out.push('\'');
        if bytes.len() > shown.len() {
            out.push_str("...");
        }
        Untrusted(out)
    }

    /// The escaped, quoted form (what `Display` prints).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Untrusted {
    fn from(s: &str) -> Self {
        Untrusted::new(s)
    }
}

impl From<&String> for Untrusted {
    fn from(s: &String) -> Self {
        Untrusted::new(s)
    }
}

/// Most bytes of [`escape_line`]'s input kept.
pub const MAX_LINE_BYTES: usize = 400;

/// Escape text that is ours but may carry pieces of someone else's (a
/// transport error naming a host, a user id from another server): no
/// quotes added, control and non-ASCII bytes as `\xNN`, at most
/// [`MAX_LINE_BYTES`] bytes kept, `...` when cut.
pub fn escape_line(text: &str) -> String {
    let bytes = text.as_bytes();
    let shown = &bytes[..bytes.len().min(MAX_LINE_BYTES)];
    let mut out = String::with_capacity(shown.len() + 3);
    for &b in shown {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > shown.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_escapes_control_non_ascii_and_quotes() {
        let cases: [(&[u8], &str); 8] = [
            (b"abc", "'abc'"),
            (b"ab\0cd", "'ab\\x00cd'"),
            (b"x\nREQUEST_COMPLETE reason:ok", "'x\\x0aREQUEST_COMPLETE reason:ok'"),
            (b"\xff\xfe", "'\\xff\\xfe'"),
            ("é".as_bytes(), "'\\xc3\\xa9'"),
            (b"it's", "'it\\'s'"),
            (b"a\\b", "'a\\\\b'"),
            (b"\x7f\r\t", "'\\x7f\\x0d\\x09'"),
        ];
        for (input, want) in cases {
            assert_eq!(Untrusted::new(input).to_string(), want, "{input:?}");
        }
    }

    #[test]
    fn untrusted_is_cut_to_a_bounded_length() {
        let long = "a".repeat(10_000);
        let shown = Untrusted::new(&long).to_string();
        assert_eq!(shown, format!("'{}'...", "a".repeat(MAX_SHOWN_BYTES)));
        let exact = "b".repeat(MAX_SHOWN_BYTES);
        assert_eq!(Untrusted::new(&exact).to_string(), format!("'{exact}'"));
        // The worst case (every byte escaped) stays bounded too.
        assert!(Untrusted::new(vec![0u8; 1 << 20]).to_string().len() <= 4 * MAX_SHOWN_BYTES + 5);
    }

    #[test]
    fn escape_line_keeps_plain_text_and_escapes_the_rest() {
        let long = "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)";
        assert_eq!(escape_line(long), long, "a real transport error is kept whole");
        assert_eq!(escape_line("a\nb'c\\"), "a\\x0ab'c\\\\");
        assert_eq!(escape_line(&"z".repeat(5000)), format!("{}...", "z".repeat(MAX_LINE_BYTES)));
    }
}
