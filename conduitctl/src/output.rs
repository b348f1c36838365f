//! Renderers shared by the commands: aligned text tables, pretty JSON, YAML, and the small
//! formatting helpers (short hashes, ages) that keep table cells narrow.
//!
//! Commands build plain values here and decide what goes to stdout; nothing in this module
//! prints.
//!
//! Every table cell is passed through [`escape_controls`]: cells hold text from outside
//! (tool names of unauthenticated requests, client ids, node ids), and a control character
//! in one must neither drive the terminal nor start a line of its own. JSON output is left
//! to its encoder, which escapes control characters itself.

use chrono::{DateTime, Utc};
use clap::ValueEnum;
pub use conduit_process::escape_controls;
use serde::Serialize;

/// `-o` for commands that print a config document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    Yaml,
    Json,
}

/// `-o` for commands that print a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// `-o` for commands that print a report (checks, audits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

/// `-o` for commands that print records (approvals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    Table,
    Json,
    Yaml,
}

/// A table whose columns are padded to their widest cell, kubectl style: upper-case
/// headers, three spaces between columns, no trailing spaces.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing trailing cells render empty, extra cells are a bug. Control
    /// characters in cells are escaped here, before widths are measured.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert!(cells.len() <= self.headers.len(), "more cells than columns");
        self.rows.push(
            cells
                .into_iter()
                .map(|cell| match escape_controls(&cell) {
                    std::borrow::Cow::Borrowed(_) => cell,
                    std::borrow::Cow::Owned(escaped) => escaped,
                })
                .collect(),
        );
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers = self
            .headers
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (index, width) in widths.iter().enumerate() {
                let cell = row.get(index).map(String::as_str).unwrap_or("");
                if index > 0 {
                    line.push_str("   ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Pretty JSON with a trailing newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values always serialize");
    text.push('\n');
    text
}

/// YAML of an arbitrary JSON value (used when a stored document is not readable by this
/// conduitctl's config model, e.g. written by a newer control plane).
pub fn yaml_of_json(value: &serde_json::Value) -> String {
    yaml_serde::to_string(value).expect("JSON values always serialize to YAML")
}

/// The first 8 hex digits of a content hash, as in `git log --oneline`.
pub fn short_hash(hash: &str) -> &str {
    hash.get(..8).unwrap_or(hash)
}

/// How long ago an RFC 3339 time was (`12s`, `5m`, `3h`, `2d`); the raw text when it does
/// not parse, `-` when empty.
pub fn age(rfc3339: &str, now: DateTime<Utc>) -> String {
    if rfc3339.is_empty() {
        return "-".to_string();
    }
    let Ok(then) = DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let seconds = (now - then.with_timezone(&Utc)).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3_600 => format!("{}m ago", seconds / 60),
        3_600..86_400 => format!("{}h ago", seconds / 3_600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

/// `k=v,k2=v2` in key order, `-` when there are none.
pub fn labels<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut pairs: Vec<_> = labels.into_iter().collect();
    pairs.sort();
    if pairs.is_empty() {
        return "-".to_string();
    }
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A cell for a possibly empty string.
pub fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn table_pads_columns_and_trims_line_ends() {
        let mut table = Table::new(&["VERSION", "AUTHOR", "MESSAGE"]);
        table.row(vec!["12".into(), "ci@builder".into(), "".into()]);
        table.row(vec!["3".into(), "ana".into(), "first".into()]);
        assert_eq!(
            table.render(),
            "VERSION   AUTHOR       MESSAGE\n\
             12        ci@builder\n\
             3         ana          first\n"
        );
    }

    #[test]
    fn table_without_rows_is_the_header() {
        assert_eq!(Table::new(&["NODE", "STATE"]).render(), "NODE   STATE\n");
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["ünï".into(), "x".into()]);
        assert_eq!(table.render(), "A     B\nünï   x\n");
    }

    #[test]
    fn table_cells_cannot_drive_the_terminal_or_add_lines() {
        let mut table = Table::new(&["TOOL", "STATUS"]);
        table.row(vec![
            "x\x1b]0;t\x07\nFORGED\u{9b}1m\u{202e}".into(),
            "ok".into(),
        ]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[1], "x\\x1b]0;t\\x07\\nFORGED\\u{9b}1m\\u{202e}   ok");
        assert_eq!(lines[0].find("STATUS"), lines[1].find("ok"), "{text}");
    }

    #[test]
    fn json_is_pretty_with_newline() {
        let value = serde_json::json!({"version": 3, "hash": "ab"});
        assert_eq!(
            json(&value),
            "{\n  \"version\": 3,\n  \"hash\": \"ab\"\n}\n"
        );
    }

    #[test]
    fn yaml_keeps_json_key_order() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{"servers":[{"id":"a","url":"http://x"}],"acl":{}}"#).unwrap();
        assert_eq!(
            yaml_of_json(&value),
            "servers:\n- id: a\n  url: http://x\nacl: {}\n"
        );
    }

    #[test]
    fn short_hash_and_dash() {
        assert_eq!(short_hash("0123456789abcdef"), "01234567");
        assert_eq!(short_hash("abc"), "abc");
        assert_eq!(or_dash(""), "-");
        assert_eq!(or_dash("x"), "x");
    }

    #[test]
    fn ages() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(age("2026-01-02T03:04:00Z", now), "5s ago");
        assert_eq!(age("2026-01-02T02:54:05Z", now), "10m ago");
        assert_eq!(age("2026-01-01T23:04:05+00:00", now), "4h ago");
        assert_eq!(age("2025-12-30T03:04:05Z", now), "3d ago");
        // Clock skew must not print negative ages.
        assert_eq!(age("2026-01-02T03:05:00Z", now), "0s ago");
        assert_eq!(age("", now), "-");
        assert_eq!(age("yesterday", now), "yesterday");
    }

    #[test]
    fn labels_sorted() {
        let map = BTreeMap::from([
            ("zone".to_string(), "b".to_string()),
            ("env".to_string(), "prod".to_string()),
        ]);
        assert_eq!(labels(&map), "env=prod,zone=b");
        assert_eq!(labels(&BTreeMap::new()), "-");
    }
}
