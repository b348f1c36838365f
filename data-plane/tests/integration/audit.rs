//! Audit records of real requests, shipped to a (fake) control plane on the config stream:
//! one per request or batch entry, with the right status, redacted, and sent again after a
//! reconnect until acked.

use std::collections::BTreeMap;
use std::time::Duration;

use ::http::Method;
use conduit_data_plane::lifecycle::DataPlane;
use conduit_proto::v1::AuditRecord;
use serde_json::json;

use super::support::control_plane::FakeControlPlane;
use super::support::upstream::Upstream;
use super::support::{control_plane_source, eventually, http, settings, start, wait_for_version};

const KEY: &[(&str, &str)] = &[("x-api-key", "key-one")];

fn config(url: &str) -> String {
    format!(
        "servers:\n  - id: alpha\n    url: {url}\n\
         auth:\n  method: api-key\n  api_keys:\n    - key: key-one\n      client_id: agent-1\n      tenant_id: acme\n\
         acl:\n  default_action: deny\n  policies:\n    - name: agents\n      clients: [\"agent-*\"]\n      allow:\n        - server: alpha\n          tools: [\"lookup\"]\n"
    )
}

async fn connected(control_plane: &FakeControlPlane, upstream: &Upstream) -> DataPlane {
    control_plane.push(1, &config(&upstream.url()));
    let data_plane = start(settings(control_plane_source(control_plane.addr, None))).await;
    wait_for_version(&data_plane, 1).await;
    data_plane
}

/// Batches until `count` records came (duplicates by id counted once).
async fn records(control_plane: &FakeControlPlane, count: usize) -> Vec<AuditRecord> {
    let mut by_id = BTreeMap::new();
    while by_id.len() < count {
        let batch = control_plane.next_audit_batch().await;
        for record in batch.records {
            by_id.insert(record.id.clone(), record);
        }
    }
    assert_eq!(by_id.len(), count, "{by_id:#?}");
    by_id.into_values().collect()
}

fn call(id: i64, tool: &str, arguments: serde_json::Value) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}})
}

#[tokio::test]
async fn every_request_of_every_outcome_leaves_one_redacted_record() {
    let upstream = Upstream::start().await;
    let control_plane = FakeControlPlane::start(None).await;
    let data_plane = connected(&control_plane, &upstream).await;
    let addr = data_plane.proxy_addr();
    let secrets = json!({
        "query": "acme",
        "password": "hunter2-password",
        "api_key": "sk-live-api-key",
        "accessToken": "eyJ-access-token",
        "nested": {"auth": {"token": "nested-token-value"}},
    });

    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(
        http::post_mcp(addr, "alpha", KEY, ping.clone())
            .await
            .status,
        200
    );
    let ok = http::post_mcp(addr, "alpha", KEY, call(2, "lookup", secrets.clone())).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let denied = http::post_mcp(addr, "alpha", KEY, call(3, "delete", json!({}))).await;
    assert_eq!(denied.json()["error"]["code"], -32003);
    // A method MCP defines (with a policy section on, others are refused), failed upstream.
    let failing =
        json!({"jsonrpc": "2.0", "id": 4, "method": "ping", "params": {"_meta": {"fail": true}}});
    assert_eq!(
        http::post_mcp(addr, "alpha", KEY, failing).await.json()["error"]["code"],
        -32042
    );
    let anonymous = http::post_mcp(addr, "alpha", &[], call(5, "lookup", secrets.clone())).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        http::post_mcp(addr, "nope", KEY, ping.clone()).await.status,
        404
    );
    let batch = json!([
        ping,
        call(7, "delete", json!({"password": "batch-password"}))
    ]);
    assert_eq!(http::post_mcp(addr, "alpha", KEY, batch).await.status, 200);
    let lost = http::send(addr, Method::GET, "/elsewhere", &[], bytes::Bytes::new()).await;
    assert_eq!(lost.status, 404);

    let records = records(&control_plane, 9).await;
    let mut seen: Vec<(&str, &str, &str, &str)> = records
        .iter()
        .map(|r| {
            let who = r.client_id.as_str();
            (r.status.as_str(), r.method.as_str(), r.target.as_str(), who)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("acl_denied", "tools/call", "delete", "agent-1"),
            ("acl_denied", "tools/call", "delete", "agent-1"),
            // Refused on the headers: the body (method, target) is never read.
            ("auth_failed", "", "", ""),
            ("error", "ping", "", "agent-1"),
            ("not_found", "", "", ""),
            ("not_found", "ping", "", "agent-1"),
            ("ok", "ping", "", "agent-1"),
            ("ok", "ping", "", "agent-1"),
            ("ok", "tools/call", "lookup", "agent-1"),
        ]
    );
    for record in &records {
        assert_eq!(record.node_id, "dp-test");
        assert_eq!(record.config_version, 1);
        assert_eq!(record.trace_id.len(), 32);
        if !record.client_id.is_empty() {
            assert_eq!(record.tenant_id, "acme");
        }
    }
    let ok = records
        .iter()
        .find(|r| r.target == "lookup" && r.status == "ok")
        .unwrap();
    assert_eq!(
        (ok.server_id.as_str(), ok.acl_policy.as_str()),
        ("alpha", "agents")
    );
    assert!(
        ok.arguments_json.contains("\"query\":\"acme\""),
        "{}",
        ok.arguments_json
    );
    let failed = records.iter().find(|r| r.status == "error").unwrap();
    assert_eq!(failed.error_code, Some(-32042));
    assert_eq!(failed.error_message, "the upstream says no");
    let everything = format!("{records:?}");
    for secret in [
        "hunter2",
        "sk-live",
        "eyJ-access",
        "nested-token",
        "batch-password",
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }

    // Nothing more comes: exactly one record per request or batch entry.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = http::get(data_plane.admin_addr(), "/metrics").await.text();
    for line in [
        "conduit_dp_audit_records_total 9",
        "conduit_audit_dropped_total 0",
        "conduit_dp_audit_queue_depth 0",
        "conduit_dp_config_stale_seconds 0",
        "conduit_dp_requests_total{method=\"tools/call\",server=\"alpha\",status_class=\"2xx\"} 2",
        "conduit_dp_requests_total{method=\"batch\",server=\"alpha\",status_class=\"2xx\"} 1",
        "conduit_dp_requests_total{method=\"ping\",server=\"alpha\",status_class=\"2xx\"} 2",
        "conduit_dp_snapshot_apply_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    data_plane.shutdown().await;
}

#[tokio::test]
async fn unacked_records_are_sent_again_after_a_reconnect() {
    let upstream = Upstream::start().await;
    let control_plane = FakeControlPlane::start(None).await;
    let data_plane = connected(&control_plane, &upstream).await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});

    control_plane.ack_audits(false);
    let reply = http::post_mcp(data_plane.proxy_addr(), "alpha", KEY, ping).await;
    assert_eq!(reply.status, 200);
    let unacked = control_plane.next_audit_batch().await;
    assert_eq!(unacked.records.len(), 1);
    let depth = || async {
        let metrics = http::get(data_plane.admin_addr(), "/metrics").await.text();
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("conduit_dp_audit_queue_depth "))
            .map(str::to_owned)
    };
    assert_eq!(depth().await.as_deref(), Some("1"));

    // The control plane restarts; the batch comes again, is acked, and is forgotten.
    control_plane.ack_audits(true);
    control_plane.disconnect_all();
    let again = control_plane.next_audit_batch().await;
    assert_eq!(again.records[0].id, unacked.records[0].id);
    eventually("the queue to empty", || async {
        (depth().await.as_deref() == Some("0")).then_some(())
    })
    .await;
    data_plane.shutdown().await;
}
