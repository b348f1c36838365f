//! Audit records end to end on the control plane: a data plane sends `AuditBatch`es on its
//! config stream and gets `AuditAck`s after they are stored (a resend is acknowledged again
//! and stored once, a forged node id is replaced), and principals with the viewer role
//! read them back through QueryAudit and AuditStats.

use std::os::unix::fs::PermissionsExt;

use anyhow::bail;
use conduit_proto::v1::{
    AuditBatch, AuditRecord, AuditStatsRequest, QueryAuditRequest, control_plane_message,
    data_plane_message,
};
use sha2::{Digest, Sha256};
use tonic::Code;

use super::common::{DataPlane, Options, TestServer};

fn viewer_tokens_file(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("principals.yaml");
    std::fs::write(
        &path,
        format!(
            "- name: vic\n  role: viewer\n  token_sha256: {}\n",
            hex::encode(Sha256::digest(b"vic-token"))
        ),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

fn record(n: u8, time_unix_ms: i64, node_id: &str, status: &str, ms: u64) -> AuditRecord {
    AuditRecord {
        id: format!("{n:032x}"),
        time_unix_ms,
        trace_id: format!("{:032x}", u128::from(n) + 1000),
        node_id: node_id.to_owned(),
        config_version: 1,
        client_id: "agent".to_owned(),
        tenant_id: "acme".to_owned(),
        server_id: "files".to_owned(),
        method: "tools/call".to_owned(),
        target: if n == 3 { "write" } else { "read" }.to_owned(),
        arguments_json: r#"{"path":"/srv/a","password":"[REDACTED]"}"#.to_owned(),
        duration_micros: ms * 1000,
        status: status.to_owned(),
        http_status: 200,
        error_code: (status == "error").then_some(-32000),
        error_message: if status == "error" { "boom" } else { "" }.to_owned(),
        response_bytes: 64,
        ..AuditRecord::default()
    }
}

/// Skip heartbeats and grant sets until an AuditAck arrives; returns its sequence.
async fn next_audit_ack(dp: &mut DataPlane) -> anyhow::Result<u64> {
    loop {
        match dp.next_any().await? {
            control_plane_message::Kind::AuditAck(ack) => return Ok(ack.sequence),
            control_plane_message::Kind::Snapshot(snapshot) => {
                bail!("unexpected snapshot {}", snapshot.version)
            }
            _ => {}
        }
    }
}

fn metric(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find(|line| line.starts_with(name))
        .map(str::to_owned)
}

#[tokio::test]
async fn batches_are_acked_after_storing_once_and_read_back_by_a_viewer() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(Options {
        tokens: true,
        admin_tokens_file: Some(viewer_tokens_file(dir.path())?),
        ..Options::default()
    })
    .await?;
    let (_, metrics) = server.http_get("/metrics").await?;
    for name in [
        "conduit_cp_audit_records_total 0",
        "conduit_cp_audit_dropped_total 0",
        "conduit_cp_audit_purged_total 0",
    ] {
        assert!(metrics.contains(name), "{name} from the start:\n{metrics}");
    }

    let mut dp = server.data_plane("dp-1", (0, "")).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let batch = AuditBatch {
        sequence: 7,
        records: vec![
            record(1, now - 3000, "dp-1", "ok", 4),
            // A data plane must not write in another node's name.
            record(2, now - 2000, "dp-forged", "ok", 8),
            record(3, now - 1000, "dp-1", "error", 20),
        ],
        dropped: 2,
    };
    dp.send(data_plane_message::Kind::AuditBatch(batch.clone()))
        .await?;
    assert_eq!(next_audit_ack(&mut dp).await?, 7);
    // Sent again (as after a lost ack): acknowledged again, stored once.
    dp.send(data_plane_message::Kind::AuditBatch(batch)).await?;
    assert_eq!(next_audit_ack(&mut dp).await?, 7);

    let mut vic = server.admin_with(Some("vic-token")).await?;
    let records = vic
        .query_audit(QueryAuditRequest::default())
        .await?
        .into_inner()
        .records;
    let ids: Vec<_> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            format!("{:032x}", 3),
            format!("{:032x}", 2),
            format!("{:032x}", 1)
        ],
        "exactly the batch, newest first"
    );
    assert!(records.iter().all(|r| r.node_id == "dp-1"), "{records:?}");
    assert_eq!(records[0].error_code, Some(-32000));
    assert_eq!(records[0].duration_micros, 20_000);

    let errors = vic
        .query_audit(QueryAuditRequest {
            status: "error".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .records;
    assert_eq!(errors.len(), 1);

    let stats = vic
        .audit_stats(AuditStatsRequest {
            since_unix_ms: now - 60_000,
            group_by: "tool".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let total = stats.total.unwrap_or_default();
    assert_eq!((total.requests, total.errors), (3, 1));
    assert_eq!(total.p99_ms, 20.0);
    let groups: Vec<_> = stats
        .groups
        .iter()
        .map(|g| (g.key.as_str(), g.requests, g.errors))
        .collect();
    assert_eq!(groups, [("read", 2, 0), ("write", 1, 1)]);

    let (_, metrics) = server.http_get("/metrics").await?;
    assert_eq!(
        metric(&metrics, "conduit_cp_audit_records_total").as_deref(),
        Some("conduit_cp_audit_records_total 3")
    );
    assert_eq!(
        metric(&metrics, "conduit_cp_audit_dropped_total").as_deref(),
        Some("conduit_cp_audit_dropped_total 2"),
        "the resend's drops are not counted twice"
    );
    assert!(
        metrics
            .contains("conduit_cp_admin_requests_total{method=\"query_audit\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("conduit_cp_admin_requests_total{method=\"audit_stats\",outcome=\"ok\"} 1"),
        "{metrics}"
    );

    let mode = std::fs::metadata(server.data_dir().join("audit.db"))?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    Ok(())
}

#[tokio::test]
async fn audit_reads_need_a_principal_and_valid_arguments() -> anyhow::Result<()> {
    let server = TestServer::start(Options {
        tokens: true,
        ..Options::default()
    })
    .await?;
    let mut anonymous = server.admin_with(None).await?;
    let refused = anonymous
        .query_audit(QueryAuditRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = anonymous
        .audit_stats(AuditStatsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    let mut admin = server.admin().await?;
    for request in [
        QueryAuditRequest {
            limit: 10_001,
            ..Default::default()
        },
        QueryAuditRequest {
            status: "maybe".to_owned(),
            ..Default::default()
        },
    ] {
        let error = admin.query_audit(request).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    }
    let error = admin
        .audit_stats(AuditStatsRequest {
            group_by: "node".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    let empty = admin
        .audit_stats(AuditStatsRequest::default())
        .await?
        .into_inner();
    assert_eq!(empty.total.unwrap_or_default().requests, 0);
    assert!(empty.groups.is_empty());
    Ok(())
}
