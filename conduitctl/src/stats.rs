//! `conduitctl stats`: requests, errors (any status but `ok`), error rate and p50/p95/p99
//! latency over a window, in total and per server, tool or client, from the audit records
//! on the control plane.

use conduit_proto::v1::{AuditStatsRequest, AuditStatsResponse, AuditStatsRow};
use serde::Serialize;

use crate::cli::ConnectionArgs;
use crate::cli_audit::{StatsArgs, StatsBy, since_unix_ms};
use crate::client::{CALL_TIMEOUT, Session};
use crate::exit::{CliError, Exit};
use crate::logs::rfc3339_ms;
use crate::output::{ListFormat, Table, json, or_dash};

/// `conduitctl stats [--server-id S | --tool T | --client C] [--since D] [--by B] [-o F]`.
pub async fn run(connection: &ConnectionArgs, args: &StatsArgs) -> Result<Exit, CliError> {
    let since_ms = since_unix_ms(chrono::Utc::now().timestamp_millis(), args.since);
    let request = request(args, since_ms);
    let session = Session::connect(connection).await?;
    let response = session
        .call(CALL_TIMEOUT, session.admin.clone().audit_stats(request))
        .await?;
    print!("{}", render(&response, since_ms, args.by, args.output));
    Ok(Exit::Ok)
}

pub fn request(args: &StatsArgs, since_ms: i64) -> AuditStatsRequest {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    AuditStatsRequest {
        server_id: text(&args.server_id),
        target: text(&args.tool),
        client_id: text(&args.client),
        since_unix_ms: since_ms,
        group_by: args.by.as_str().to_owned(),
    }
}

/// One row in `-o json`; the keys are part of the CLI contract.
#[derive(Debug, Serialize)]
struct RowJson<'a> {
    key: &'a str,
    requests: u64,
    errors: u64,
    error_rate: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

impl<'a> From<&'a AuditStatsRow> for RowJson<'a> {
    fn from(row: &'a AuditStatsRow) -> Self {
        RowJson {
            key: &row.key,
            requests: row.requests,
            errors: row.errors,
            error_rate: error_rate(row),
            p50_ms: row.p50_ms,
            p95_ms: row.p95_ms,
            p99_ms: row.p99_ms,
        }
    }
}

#[derive(Debug, Serialize)]
struct StatsJson<'a> {
    since: String,
    total: RowJson<'a>,
    groups: Vec<RowJson<'a>>,
}

/// Errors over requests, 0 without requests.
fn error_rate(row: &AuditStatsRow) -> f64 {
    if row.requests == 0 {
        0.0
    } else {
        row.errors as f64 / row.requests as f64
    }
}

pub fn render(
    response: &AuditStatsResponse,
    since_ms: i64,
    by: StatsBy,
    format: ListFormat,
) -> String {
    let empty = AuditStatsRow::default();
    let total = response.total.as_ref().unwrap_or(&empty);
    match format {
        ListFormat::Json => json(&StatsJson {
            since: rfc3339_ms(since_ms),
            total: RowJson::from(total),
            groups: response.groups.iter().map(RowJson::from).collect(),
        }),
        ListFormat::Table => {
            let mut out = format!("since {}\n", rfc3339_ms(since_ms));
            let key = match by {
                StatsBy::Server => "SERVER",
                StatsBy::Tool => "TOOL",
                StatsBy::Client => "CLIENT",
            };
            let mut table = Table::new(&[
                key,
                "REQUESTS",
                "ERRORS",
                "ERROR RATE",
                "P50 MS",
                "P95 MS",
                "P99 MS",
            ]);
            let cells = |label: String, row: &AuditStatsRow| {
                vec![
                    label,
                    row.requests.to_string(),
                    row.errors.to_string(),
                    format!("{:.1}%", error_rate(row) * 100.0),
                    format!("{:.1}", row.p50_ms),
                    format!("{:.1}", row.p95_ms),
                    format!("{:.1}", row.p99_ms),
                ]
            };
            for row in &response.groups {
                table.row(cells(or_dash(&row.key), row));
            }
            table.row(cells("(total)".to_owned(), total));
            out.push_str(&table.render());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn row(key: &str, requests: u64, errors: u64) -> AuditStatsRow {
        AuditStatsRow {
            key: key.into(),
            requests,
            errors,
            p50_ms: 1.5,
            p95_ms: 20.0,
            p99_ms: 42.25,
        }
    }

    fn response() -> AuditStatsResponse {
        AuditStatsResponse {
            total: Some(row("", 4, 1)),
            groups: vec![row("files", 3, 1), row("", 1, 0)],
        }
    }

    #[test]
    fn json_shape() {
        let text = render(
            &response(),
            1_795_000_000_000,
            StatsBy::Tool,
            ListFormat::Json,
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["since", "total", "groups"]);
        assert_eq!(value["since"], "2026-11-18T11:06:40.000Z");
        let total = value["total"].as_object().unwrap();
        let keys: Vec<_> = total.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "key",
                "requests",
                "errors",
                "error_rate",
                "p50_ms",
                "p95_ms",
                "p99_ms"
            ]
        );
        assert_eq!(value["total"]["error_rate"], 0.25);
        assert_eq!(value["groups"][0]["key"], "files");
        assert_eq!(value["groups"][1]["key"], "");
        assert_eq!(value["groups"][1]["error_rate"], 0.0);
        assert_eq!(value["groups"][0]["p99_ms"], 42.25);
    }

    #[test]
    fn table_has_groups_then_total() {
        let text = render(&response(), 0, StatsBy::Client, ListFormat::Table);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "since 1970-01-01T00:00:00.000Z");
        assert!(lines[1].starts_with("CLIENT "), "{text}");
        assert!(lines[2].starts_with("files "), "{text}");
        assert!(lines[2].contains("33.3%"), "{text}");
        assert!(lines[3].starts_with("- "), "{text}");
        assert!(lines[4].starts_with("(total) "), "{text}");
        assert!(
            lines[4].contains("25.0%") && lines[4].contains("42.2"),
            "{text}"
        );
        let empty = render(
            &AuditStatsResponse::default(),
            0,
            StatsBy::Server,
            ListFormat::Table,
        );
        assert!(empty.contains("(total)"), "{empty}");
    }

    #[test]
    fn request_from_flags() {
        let args = StatsArgs {
            server_id: None,
            tool: Some("read".into()),
            client: None,
            since: Duration::from_secs(3600),
            by: StatsBy::Client,
            output: ListFormat::Json,
        };
        let request = request(&args, 123);
        assert_eq!(request.target, "read");
        assert_eq!(request.group_by, "client");
        assert_eq!(request.since_unix_ms, 123);
    }
}
