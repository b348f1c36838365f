//! The top-level elements of a JSON array, found by scanning its text: a batch is counted
//! and cut into its entries before any of them is parsed, and the scan stops as soon as
//! there are more than the limit.
//!
//! Parsing a batch into a `serde_json::Value` array first would cost about forty bytes per
//! element before the count could be checked: a 10 MiB body `[0,0,0,…]` made five million
//! values (hundreds of MiB) only to be refused. The scan allocates one range per element,
//! at most `limit` of them. It does not validate the elements: every range it returns is
//! parsed afterwards on its own, which rejects whatever the scan let through (an empty
//! element, a misplaced bracket), so a valid array is exactly one whose elements all parse.

use std::ops::Range;

/// Why [`split`] found no elements to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SplitError {
    /// More than the limit of elements (the scan stopped at the first one past it).
    TooMany,
    /// The text is not an array: no `[` first, no closing `]`, or text after it.
    Malformed,
}

/// The byte ranges of the top-level elements of the array in `text` (whitespace around
/// them included), at most `limit`. `[]` (with any whitespace) has none.
pub(crate) fn split(text: &[u8], limit: usize) -> Result<Vec<Range<usize>>, SplitError> {
    let Some(open) = text.iter().position(|byte| !byte.is_ascii_whitespace()) else {
        return Err(SplitError::Malformed);
    };
    if text[open] != b'[' {
        return Err(SplitError::Malformed);
    }
    let mut elements = Vec::new();
    let mut start = open + 1;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (at, &byte) in text.iter().enumerate().skip(open + 1) {
        if in_string {
            // Multi-byte UTF-8 sequences never hold ASCII bytes, so bytes suffice.
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' if depth > 0 => depth -= 1,
            b']' => {
                let last = start..at;
                let empty_array =
                    elements.is_empty() && text[last.clone()].iter().all(u8::is_ascii_whitespace);
                if !empty_array {
                    if elements.len() >= limit {
                        return Err(SplitError::TooMany);
                    }
                    elements.push(last);
                }
                let rest = &text[at + 1..];
                if !rest.iter().all(u8::is_ascii_whitespace) {
                    return Err(SplitError::Malformed);
                }
                return Ok(elements);
            }
            b'}' => return Err(SplitError::Malformed),
            b',' if depth == 0 => {
                // A comma at the top means another element follows this one.
                if elements.len() >= limit {
                    return Err(SplitError::TooMany);
                }
                elements.push(start..at);
                start = at + 1;
            }
            _ => {}
        }
    }
    Err(SplitError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(text: &str, limit: usize) -> Result<Vec<&str>, SplitError> {
        split(text.as_bytes(), limit)
            .map(|ranges| ranges.into_iter().map(|r| text[r].trim()).collect())
    }

    #[test]
    fn splits_at_top_level_commas_only() {
        assert_eq!(
            elements(
                r#" [ {"a":[1,2],"b":{"c":","}} , 7,"x,]\"}", [[]] ,null] "#,
                10
            )
            .unwrap(),
            [
                r#"{"a":[1,2],"b":{"c":","}}"#,
                "7",
                r#""x,]\"}""#,
                "[[]]",
                "null"
            ]
        );
        assert_eq!(elements("[]", 10).unwrap(), Vec::<&str>::new());
        assert_eq!(elements(" [ \n ] \n", 10).unwrap(), Vec::<&str>::new());
        assert_eq!(elements(r#"["\\"]"#, 10).unwrap(), [r#""\\""#]);
        assert_eq!(elements("[é,\"ü\"]", 10).unwrap(), ["é", "\"ü\""]);
    }

    #[test]
    fn empty_elements_are_returned_for_the_parser_to_refuse() {
        assert_eq!(elements("[1,]", 10).unwrap(), ["1", ""]);
        assert_eq!(elements("[,]", 10).unwrap(), ["", ""]);
    }

    #[test]
    fn stops_past_the_limit() {
        assert_eq!(elements("[1,2,3]", 3).unwrap(), ["1", "2", "3"]);
        assert_eq!(elements("[1,2,3,4]", 3), Err(SplitError::TooMany));
        // Unterminated after the limit: still too many, found without reading further.
        assert_eq!(elements("[1,2,3,4,5", 3), Err(SplitError::TooMany));
        // Commas inside elements do not count.
        assert_eq!(
            elements(r#"[[1,2,3,4],{"a":1,"b":2}]"#, 2).unwrap().len(),
            2
        );
    }

    #[test]
    fn a_large_array_is_refused_after_a_few_bytes() {
        let mut text = b"[0".to_vec();
        text.extend(std::iter::repeat_n(b",0".as_slice(), 5_000_000).flatten());
        text.push(b']');
        assert_eq!(split(&text, 100), Err(SplitError::TooMany));
    }

    #[test]
    fn refuses_what_is_not_an_array() {
        for text in [
            "", "  ", "{}", "1", "[1", "[1]x", "[1]]", "[}", r#"["]"#, "[[1]",
        ] {
            assert_eq!(elements(text, 10), Err(SplitError::Malformed), "{text}");
        }
    }
}
