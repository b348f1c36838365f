//! Text from outside (tool names, client ids, error messages of upstreams) made safe to
//! write on a terminal or into a line-oriented log: control characters and bidirectional
//! overrides become visible escapes, so nothing can move the cursor, recolour or retitle a
//! terminal, reorder what is shown, or start a new (forged) line.
//!
//! [`escape_controls`] is used by conduitctl's tables and text output, and by the text log
//! format of the servers through [`escaped_fields`]. JSON output needs none of this: its
//! encoder already escapes control characters inside strings.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// Whether `ch` is shown escaped: C0 controls (newline and tab included), DEL, C1
/// controls, the bidirectional marks, embeddings, overrides and isolates, and the Unicode
/// line and paragraph separators.
pub fn needs_escape(ch: char) -> bool {
    ch.is_control()
        || matches!(
            ch,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `text` with every character of [`needs_escape`] written as `\n`, `\r`, `\t`, `\xHH`
/// (other ASCII controls) or `\u{HHHH}`; borrowed when there is nothing to escape.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        push_escaped(&mut out, ch);
    }
    Cow::Owned(out)
}

/// [`escape_controls`] for multi-line output: newlines stay (each one ends a line that
/// conduitctl itself wrote), everything else is escaped.
pub fn escape_controls_keep_newlines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|ch| ch != '\n' && needs_escape(ch)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        if ch == '\n' {
            out.push(ch);
        } else {
            push_escaped(&mut out, ch);
        }
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, ch: char) {
    if !needs_escape(ch) {
        out.push(ch);
        return;
    }
    // Writing into a String cannot fail.
    let _ = match ch {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        ch if ch.is_ascii() => write!(out, "\\x{:02x}", ch as u32),
        ch => write!(out, "\\u{{{:x}}}", ch as u32),
    };
}

/// The field formatter of the text log format: `name=value` pairs separated by spaces, the
/// message bare, as tracing-subscriber writes them, but with every value passed through
/// [`escape_controls`]. Without it a `%value` field (a tool name, a client id) is written
/// raw, and a newline in it starts a line that looks like any other log line.
pub fn escaped_fields() -> impl for<'writer> FormatFields<'writer> + Send + Sync + 'static {
    debug_fn(
        |writer: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn fmt::Debug| {
            let text = format!("{value:?}");
            let text = escape_controls(&text);
            match field.name() {
                "message" => write!(writer, "{text}"),
                name => write!(writer, "{}={text}", name.strip_prefix("r#").unwrap_or(name)),
            }
        },
    )
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(escape_controls("plain ünï"), "plain ünï");
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\x1b]0;owned\x07b\nc\r\td\x7f\u{9b}e\u{202e}f"),
            "a\\x1b]0;owned\\x07b\\nc\\r\\td\\x7f\\u{9b}e\\u{202e}f"
        );
        assert_eq!(
            escape_controls_keep_newlines("row 1\x1b[2J\nrow 2\r\n"),
            "row 1\\x1b[2J\nrow 2\\r\n"
        );
    }

    /// A log destination the test reads back.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_fields_are_escaped_and_one_line() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .fmt_fields(escaped_fields())
            .with_writer(move || writer.clone())
            .finish();
        let tool = "x\n2026-01-01T00:00:00Z  INFO forged line\x1b[31m";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", client = %"a\rb");
            let _entered = span.enter();
            tracing::info!(target = %tool, name = tool, count = 3, "audit {}", "\u{202e}");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(
            text,
            " INFO request{client=a\\rb}: audit \\u{202e} \
             target=x\\n2026-01-01T00:00:00Z  INFO forged line\\x1b[31m \
             name=\"x\\n2026-01-01T00:00:00Z  INFO forged line\\u{1b}[31m\" count=3\n"
        );
    }
}
