//! `logs` and `stats` against a real control plane holding records a scripted data plane
//! sent over its config stream: filters, newest-first order, the JSON shapes scripts rely
//! on, and usage errors.

use conduit_proto::v1::{AuditBatch, AuditRecord};

use super::harness::ControlPlane;
use super::*;

fn record(n: u8, age_ms: i64, server: &str, tool: &str, status: &str, ms: u64) -> AuditRecord {
    AuditRecord {
        id: format!("{n:032x}"),
        time_unix_ms: chrono::Utc::now().timestamp_millis() - age_ms,
        trace_id: format!("{:032x}", u128::from(n) + 500),
        node_id: "ignored".to_string(),
        config_version: 2,
        client_id: "agent".to_string(),
        server_id: server.to_string(),
        method: "tools/call".to_string(),
        target: tool.to_string(),
        arguments_json: r#"{"q":"x"}"#.to_string(),
        duration_micros: ms * 1000,
        status: status.to_string(),
        http_status: 200,
        error_code: (status == "error").then_some(-32000),
        ..AuditRecord::default()
    }
}

fn ok_json(output: &Output) -> serde_json::Value {
    assert_eq!(code(output), 0, "{}", stderr(output));
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[test]
fn logs_and_stats_read_what_data_planes_sent() {
    let cp = ControlPlane::start();
    assert_eq!(stdout(&cp.ctl(&["logs"])), "no audit records\n");
    cp.send_audit(
        "dp-1",
        AuditBatch {
            sequence: 1,
            records: vec![
                record(1, 3 * 3_600_000, "files", "read", "ok", 9),
                record(2, 30_000, "files", "read", "ok", 2),
                record(3, 20_000, "files", "write", "error", 4),
                record(4, 10_000, "crm", "lookup", "acl_denied", 1),
            ],
            dropped: 0,
        },
    );

    let all = ok_json(&cp.ctl(&["logs", "-o", "json"]));
    let ids: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["id"]
                .as_str()
                .unwrap()
                .trim_start_matches('0')
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["4", "3", "2", "1"], "newest first");
    assert_eq!(
        all[0]["node_id"], "dp-1",
        "the stream's node, not the record's"
    );
    assert_eq!(all[1]["error_code"], -32000);
    assert_eq!(all[1]["arguments"]["q"], "x");
    assert_eq!(all[1]["duration_ms"], 4.0);
    assert_eq!(all[1]["config_version"], 2);

    let recent = ok_json(&cp.ctl(&[
        "logs",
        "--since",
        "1h",
        "--server-id",
        "files",
        "-o",
        "json",
    ]));
    assert_eq!(recent.as_array().unwrap().len(), 2);
    let denied = ok_json(&cp.ctl(&["logs", "--status", "acl_denied", "-o", "json"]));
    assert_eq!(denied.as_array().unwrap().len(), 1);
    assert_eq!(denied[0]["target"], "lookup");
    let limited = ok_json(&cp.ctl(&["logs", "--tool", "read", "--limit", "1", "-o", "json"]));
    assert_eq!(limited.as_array().unwrap().len(), 1);
    let table = stdout(&cp.ctl(&["logs", "--client", "agent"]));
    assert!(table.starts_with("TIME "), "{table}");
    assert_eq!(table.lines().count(), 5, "{table}");

    let stats = ok_json(&cp.ctl(&["stats", "-o", "json"]));
    assert_eq!(
        stats["total"]["requests"], 3,
        "the default window is 1h: {stats}"
    );
    assert_eq!(stats["total"]["errors"], 2);
    assert_eq!(stats["groups"][0]["key"], "files");
    assert_eq!(stats["groups"][0]["requests"], 2);
    assert_eq!(stats["groups"][0]["error_rate"], 0.5);
    assert_eq!(stats["groups"][0]["p99_ms"], 4.0);
    assert!(stats["since"].as_str().unwrap().ends_with('Z'), "{stats}");
    let by_tool = ok_json(&cp.ctl(&[
        "stats",
        "--server-id",
        "files",
        "--since",
        "1d",
        "--by",
        "tool",
        "-o",
        "json",
    ]));
    assert_eq!(by_tool["total"]["requests"], 3);
    let tools: Vec<_> = by_tool["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_string(),
                g["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tools, [("read".to_string(), 2), ("write".to_string(), 1)]);
    let table = stdout(&cp.ctl(&["stats", "--by", "client"]));
    assert!(table.contains("CLIENT "), "{table}");
    assert!(table.lines().any(|l| l.starts_with("agent ")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("(total) ")), "{table}");

    let out = cp.ctl(&["logs", "--status", "weird"]);
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    let out = cp.ctl(&["stats", "--tool", "a", "--client", "b"]);
    assert_eq!(code(&out), 64, "{}", stderr(&out));
}
