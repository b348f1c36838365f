//! `conduitctl logs`: the audit records the data planes sent to the control plane, newest
//! first, as a table or as one JSON array whose field set is part of the CLI contract.

use chrono::{DateTime, SecondsFormat};
use conduit_proto::v1::{AuditRecord, QueryAuditRequest};
use serde::Serialize;

use crate::cli::ConnectionArgs;
use crate::cli_audit::{LogsArgs, since_unix_ms};
use crate::client::{CALL_TIMEOUT, Session};
use crate::exit::{CliError, Exit};
use crate::output::{ListFormat, Table, json, or_dash};

/// `conduitctl logs [filters] [--since D] [--limit N] [-o table|json]`.
pub async fn run(connection: &ConnectionArgs, args: &LogsArgs) -> Result<Exit, CliError> {
    let request = request(args, chrono::Utc::now().timestamp_millis());
    let session = Session::connect(connection).await?;
    let response = session
        .call(CALL_TIMEOUT, session.admin.clone().query_audit(request))
        .await?;
    print!("{}", render(&response.records, args.output));
    Ok(Exit::Ok)
}

/// The QueryAudit request of `args` at `now_ms`.
pub fn request(args: &LogsArgs, now_ms: i64) -> QueryAuditRequest {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    QueryAuditRequest {
        server_id: text(&args.server_id),
        target: text(&args.tool),
        client_id: text(&args.client),
        status: text(&args.status),
        trace_id: text(&args.trace),
        since_unix_ms: args.since.map_or(0, |since| since_unix_ms(now_ms, since)),
        limit: args.limit.unwrap_or(0),
    }
}

/// Unix ms as RFC 3339 UTC with milliseconds (`2026-11-24T10:00:00.123Z`).
pub fn rfc3339_ms(unix_ms: i64) -> String {
    DateTime::from_timestamp_millis(unix_ms)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A stored JSON document as a value: `null` when empty, the text itself when it does not
/// parse (never expected; it is shown rather than lost).
fn parsed(text: &str) -> serde_json::Value {
    if text.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// One record in `-o json`; the keys and their order are part of the CLI contract.
#[derive(Debug, Serialize)]
struct RecordJson<'a> {
    id: &'a str,
    time: String,
    trace_id: &'a str,
    node_id: &'a str,
    config_version: u64,
    client_id: &'a str,
    tenant_id: &'a str,
    server_id: &'a str,
    method: &'a str,
    target: &'a str,
    arguments: serde_json::Value,
    duration_ms: f64,
    status: &'a str,
    http_status: u32,
    error_code: Option<i64>,
    error_message: &'a str,
    response_bytes: u64,
    guardrail_rule: &'a str,
    guardrail_action: &'a str,
    acl_policy: &'a str,
    cache_status: &'a str,
    response: serde_json::Value,
}

impl<'a> From<&'a AuditRecord> for RecordJson<'a> {
    fn from(record: &'a AuditRecord) -> Self {
        RecordJson {
            id: &record.id,
            time: rfc3339_ms(record.time_unix_ms),
            trace_id: &record.trace_id,
            node_id: &record.node_id,
            config_version: record.config_version,
            client_id: &record.client_id,
            tenant_id: &record.tenant_id,
            server_id: &record.server_id,
            method: &record.method,
            target: &record.target,
            arguments: parsed(&record.arguments_json),
            duration_ms: duration_ms(record),
            status: &record.status,
            http_status: record.http_status,
            error_code: record.error_code,
            error_message: &record.error_message,
            response_bytes: record.response_bytes,
            guardrail_rule: &record.guardrail_rule,
            guardrail_action: &record.guardrail_action,
            acl_policy: &record.acl_policy,
            cache_status: &record.cache_status,
            response: parsed(&record.response_json),
        }
    }
}

fn duration_ms(record: &AuditRecord) -> f64 {
    record.duration_micros as f64 / 1000.0
}

pub fn render(records: &[AuditRecord], format: ListFormat) -> String {
    match format {
        ListFormat::Json => json(&records.iter().map(RecordJson::from).collect::<Vec<_>>()),
        ListFormat::Table => {
            if records.is_empty() {
                return "no audit records\n".to_owned();
            }
            let mut table = Table::new(&[
                "TIME", "NODE", "CLIENT", "SERVER", "METHOD", "TARGET", "STATUS", "HTTP", "CODE",
                "MS",
            ]);
            for record in records {
                table.row(vec![
                    rfc3339_ms(record.time_unix_ms),
                    or_dash(&record.node_id),
                    or_dash(&record.client_id),
                    or_dash(&record.server_id),
                    or_dash(&record.method),
                    or_dash(&record.target),
                    or_dash(&record.status),
                    match record.http_status {
                        0 => "-".to_owned(),
                        status => status.to_string(),
                    },
                    record
                        .error_code
                        .map_or_else(|| "-".to_owned(), |code| code.to_string()),
                    format!("{:.1}", duration_ms(record)),
                ]);
            }
            table.render()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::output::ListFormat;

    fn record() -> AuditRecord {
        AuditRecord {
            id: "0123456789abcdef0123456789abcdef".into(),
            time_unix_ms: 1_795_000_000_123,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            node_id: "dp-1".into(),
            config_version: 4,
            client_id: "agent".into(),
            tenant_id: "".into(),
            server_id: "files".into(),
            method: "tools/call".into(),
            target: "read".into(),
            arguments_json: r#"{"path":"/a","password":"[REDACTED]"}"#.into(),
            duration_micros: 12_345,
            status: "error".into(),
            http_status: 200,
            error_code: Some(-32601),
            error_message: "no such tool".into(),
            response_bytes: 77,
            ..AuditRecord::default()
        }
    }

    #[test]
    fn json_has_every_contract_key_in_order() {
        let text = render(&[record()], ListFormat::Json);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let object = value[0].as_object().unwrap();
        let keys: Vec<_> = object.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "time",
                "trace_id",
                "node_id",
                "config_version",
                "client_id",
                "tenant_id",
                "server_id",
                "method",
                "target",
                "arguments",
                "duration_ms",
                "status",
                "http_status",
                "error_code",
                "error_message",
                "response_bytes",
                "guardrail_rule",
                "guardrail_action",
                "acl_policy",
                "cache_status",
                "response",
            ]
        );
        assert_eq!(value[0]["time"], "2026-11-18T11:06:40.123Z");
        assert_eq!(value[0]["config_version"], 4);
        assert_eq!(value[0]["tenant_id"], "", "empty strings stay strings");
        assert_eq!(value[0]["arguments"]["password"], "[REDACTED]");
        assert_eq!(value[0]["duration_ms"], 12.345);
        assert_eq!(value[0]["error_code"], -32601);
        assert_eq!(value[0]["response"], serde_json::Value::Null);
        let mut ok = record();
        ok.error_code = None;
        ok.arguments_json.clear();
        let value: serde_json::Value =
            serde_json::from_str(&render(&[ok], ListFormat::Json)).unwrap();
        assert_eq!(value[0]["error_code"], serde_json::Value::Null);
        assert_eq!(value[0]["arguments"], serde_json::Value::Null);
        assert_eq!(render(&[], ListFormat::Json), "[]\n");
    }

    #[test]
    fn table_rows() {
        let table = render(&[record()], ListFormat::Table);
        let mut lines = table.lines();
        assert!(lines.next().unwrap().starts_with("TIME "), "{table}");
        let row = lines.next().unwrap();
        for cell in [
            "2026-11-18T11:06:40.123Z",
            "dp-1",
            "agent",
            "files",
            "tools/call",
            "read",
            "error",
            "200",
            "-32601",
            "12.3",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        assert_eq!(render(&[], ListFormat::Table), "no audit records\n");
    }

    #[test]
    fn request_from_flags() {
        let args = LogsArgs {
            server_id: Some("files".into()),
            tool: Some("read".into()),
            client: None,
            status: Some("ok".into()),
            trace: None,
            since: Some(Duration::from_secs(600)),
            limit: Some(5),
            output: ListFormat::Table,
        };
        let request = request(&args, 1_000_000);
        assert_eq!(request.server_id, "files");
        assert_eq!(request.target, "read");
        assert_eq!(request.client_id, "");
        assert_eq!(request.status, "ok");
        assert_eq!(request.since_unix_ms, 400_000);
        assert_eq!(request.limit, 5);
    }
}
