//! Refusal of YAML anchors (`&name`) and aliases (`*name`) before the text is parsed.
//!
//! An alias repeats the node its anchor names, and nested aliases multiply: a 240 KB
//! document of nine levels of ten aliases each expands to about a billion values, and the
//! parser builds every one of them (gigabytes, seconds of CPU) before any check could run.
//! A config never needs them, so they are refused outright, with the line of the first one.
//!
//! This is a light scanner, not a YAML parser: it walks the text tracking quotes, flow
//! brackets, comments, block scalars (`|`, `>`) and multi-line plain scalars, and reports a
//! `&` or `*` where a YAML node may begin (where the YAML scanner reads an anchor or alias
//! token). Where it cannot tell, it errs towards reading a node start; a value that starts
//! with `*` or `&` must then be quoted, as YAML requires anyway. The parser behind it also
//! counts what it builds (`parse::ExpansionBudget`), so an alias this scanner missed still
//! cannot expand the document beyond a small multiple of its text.

/// Where the first anchor or alias is: 1-based line and column, and which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub line: usize,
    pub column: usize,
    pub alias: bool,
}

impl Found {
    /// The error text, naming the place and what to do instead.
    pub(crate) fn message(self) -> String {
        let (what, example) = if self.alias {
            ("alias", "*name")
        } else {
            ("anchor", "&name")
        };
        format!(
            "line {}, column {}: YAML {what} (`{example}`) not accepted: anchors and aliases \
             are refused in config documents (nested aliases can expand a small document into \
             gigabytes); write the value out in full, and quote a value that starts with `*` or `&`",
            self.line, self.column
        )
    }
}

/// Scanner state carried from one line to the next.
#[derive(Default)]
struct Scanner {
    /// Depth of `[` / `{` (flow collections span lines).
    flow: usize,
    /// Inside a quoted scalar that continues on the next line (`"` or `'`).
    quote: Option<u8>,
    /// Inside a block scalar: lines indented more than this column (or blank) are its text.
    block: Option<isize>,
    /// A plain scalar in block context that the next line may continue when it is indented
    /// more than this column.
    plain: Option<isize>,
    /// In flow context the position state also spans lines.
    at_node: bool,
    in_plain: bool,
}

/// The first anchor or alias of `text`, if any.
pub(crate) fn find(text: &str) -> Option<Found> {
    let mut scanner = Scanner {
        at_node: true,
        ..Scanner::default()
    };
    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some((column, alias)) = scanner.line(line.as_bytes()) {
            return Some(Found {
                line: index + 1,
                column: column + 1,
                alias,
            });
        }
    }
    None
}

fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

impl Scanner {
    /// Scan one line; `Some((column, is_alias))` at the first anchor or alias.
    fn line(&mut self, line: &[u8]) -> Option<(usize, bool)> {
        let indent = line.iter().take_while(|b| **b == b' ').count();
        let blank = line[indent..].iter().all(|b| is_blank(*b));
        if let Some(parent) = self.block {
            if blank || indent as isize > parent {
                return None;
            }
            self.block = None;
        }
        let at = |i: usize| line.get(i).copied();
        let ends_token = |i: usize| at(i).is_none_or(is_blank);
        let mut i = 0;
        // The column of the innermost block entry on this line (`-`, `?` or a key): a block
        // scalar or plain scalar started after it continues on lines indented more.
        let mut parent = indent as isize - 1;
        // Where the current scalar started (a key, if `:` follows it).
        let mut start = indent as isize;
        let mut plain_parent = parent;
        if self.quote.is_none() && self.flow == 0 {
            self.at_node = true;
            self.in_plain = false;
            if let Some(continues) = self.plain.take() {
                if blank {
                    self.plain = Some(continues);
                    return None;
                }
                if indent as isize > continues && at(indent) != Some(b'#') {
                    i = indent;
                    self.at_node = false;
                    self.in_plain = true;
                    plain_parent = continues;
                }
            }
            if i == 0 && (line.starts_with(b"---") || line.starts_with(b"...")) && ends_token(3) {
                i = 3;
            } else if i == 0 && at(0) == Some(b'%') {
                return None;
            }
        }
        while i < line.len() {
            let byte = line[i];
            if let Some(quote) = self.quote {
                match byte {
                    b'\\' if quote == b'"' => i += 2,
                    b'\'' if quote == b'\'' && at(i + 1) == Some(b'\'') => i += 2,
                    _ if byte == quote => {
                        self.quote = None;
                        self.at_node = false;
                        self.in_plain = false;
                        i += 1;
                    }
                    _ => i += 1,
                }
                continue;
            }
            if is_blank(byte) {
                i += 1;
                continue;
            }
            if self.at_node {
                match byte {
                    b'&' | b'*' => return Some((i, byte == b'*')),
                    b'#' => return self.end_of_line(plain_parent),
                    // A tag (`!name`, `!!str`) may precede the node.
                    b'!' => {
                        while i < line.len() && !is_blank(line[i]) {
                            i += 1;
                        }
                    }
                    b'-' | b'?' | b':' if ends_token(i + 1) => {
                        if self.flow == 0 && byte != b':' {
                            parent = i as isize;
                        }
                        i += 1;
                    }
                    b'[' | b'{' => {
                        self.flow += 1;
                        i += 1;
                    }
                    b']' | b'}' => {
                        self.flow = self.flow.saturating_sub(1);
                        self.at_node = false;
                        i += 1;
                    }
                    b',' if self.flow > 0 => i += 1,
                    b'"' | b'\'' => {
                        start = i as isize;
                        self.quote = Some(byte);
                        i += 1;
                    }
                    b'|' | b'>' if self.flow == 0 => {
                        self.block = Some(parent);
                        return None;
                    }
                    _ => {
                        start = i as isize;
                        plain_parent = parent;
                        self.at_node = false;
                        self.in_plain = true;
                        i += 1;
                    }
                }
                continue;
            }
            let in_flow = self.flow > 0;
            let flow_end =
                |i: usize| ends_token(i) || (in_flow && matches!(at(i), Some(b',' | b']' | b'}')));
            match byte {
                b':' if flow_end(i + 1) => {
                    if self.flow == 0 {
                        parent = start;
                    }
                    self.in_plain = false;
                    self.at_node = true;
                }
                b'#' if i > 0 && is_blank(line[i - 1]) => {
                    self.in_plain = false;
                    return self.end_of_line(plain_parent);
                }
                b',' if self.flow > 0 => {
                    self.in_plain = false;
                    self.at_node = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    self.in_plain = false;
                }
                b'[' | b'{' if self.flow > 0 => {
                    self.flow += 1;
                    self.in_plain = false;
                    self.at_node = true;
                }
                _ => {}
            }
            i += 1;
        }
        self.end_of_line(plain_parent)
    }

    fn end_of_line(&mut self, plain_parent: isize) -> Option<(usize, bool)> {
        if self.flow == 0 && self.quote.is_none() && self.in_plain {
            self.plain = Some(plain_parent);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Option<(usize, usize, bool)> {
        find(text).map(|found| (found.line, found.column, found.alias))
    }

    #[test]
    fn anchors_and_aliases_where_nodes_start() {
        assert_eq!(found("a: &x 1\nb: *x\n"), Some((1, 4, false)));
        assert_eq!(found("a: 1\nb: *x\n"), Some((2, 4, true)));
        assert_eq!(found("a:\n- *x\n"), Some((2, 3, true)));
        assert_eq!(found("a: [1, *x]\n"), Some((1, 8, true)));
        assert_eq!(found("a: {k: *x}\n"), Some((1, 8, true)));
        assert_eq!(found("a: !!str &x v\n"), Some((1, 10, false)));
        assert_eq!(found("\"a\": *x\n"), Some((1, 6, true)));
        assert_eq!(found("a: [1,\n  *x]\n"), Some((2, 3, true)));
        assert_eq!(found("&x a: 1\n"), Some((1, 1, false)));
        assert_eq!(found("- - &x 1\n"), Some((1, 5, false)));
        assert_eq!(
            found("- key: |\n    text\n  other: *x\n"),
            Some((3, 10, true))
        );
        assert_eq!(found("a: b\n*x: 1\n"), Some((2, 1, true)));
        assert_eq!(found("--- &x\n"), Some((1, 5, false)));
    }

    #[test]
    fn stars_and_ampersands_inside_values_are_text() {
        for text in [
            "tools: [\"*\", 'a&b', get_*]\n",
            "url: http://h/a?x=1&y=*\n",
            "a: \"*x\"\nb: '&y'\n",
            "a: \"multi\n  *line\"\n",
            "a: 'it''s *x'\n",
            "text: |\n  *not an alias\n  &nor an anchor\nb: 1\n",
            "- text: >-\n    *folded\n  k: v\n",
            "a: some words\n  *continued plain text\n",
            "- item\n  &continued\n",
            "a: 1 # *comment\n# &comment\n",
            "a: b*c &d\n",
            "pattern: x-*\n",
        ] {
            assert_eq!(found(text), None, "{text}");
        }
    }

    #[test]
    fn message_names_line_and_column() {
        let message = find("a: 1\nb: *x\n").unwrap().message();
        assert!(
            message.starts_with("line 2, column 4: YAML alias"),
            "{message}"
        );
    }
}
