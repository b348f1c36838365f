//! The audit store and service against a real SQLite file in a temp dir.

use std::os::unix::fs::PermissionsExt;

use super::*;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

fn open() -> (tempfile::TempDir, Audit, Arc<Metrics>) {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let audit = Audit::open(&dir.path().join("data"), metrics.clone()).unwrap();
    (dir, audit, metrics)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Record number `n`: id derived from `n`, the given fields, everything else plausible.
fn record(
    n: u32,
    time_ms: i64,
    server: &str,
    tool: &str,
    status: &str,
    ms: u64,
) -> pb::AuditRecord {
    pb::AuditRecord {
        id: format!("{n:032x}"),
        time_unix_ms: time_ms,
        trace_id: format!("{:032x}", u128::from(n) << 64),
        node_id: "dp-1".into(),
        config_version: 3,
        client_id: if n.is_multiple_of(2) { "alice" } else { "bob" }.into(),
        tenant_id: "acme".into(),
        server_id: server.into(),
        method: "tools/call".into(),
        target: tool.into(),
        arguments_json: r#"{"q":"x","password":"[REDACTED]"}"#.into(),
        duration_micros: ms * 1000,
        status: status.into(),
        http_status: 200,
        error_code: (status == "error").then_some(-32601),
        error_message: if status == "error" {
            "no such tool"
        } else {
            ""
        }
        .into(),
        response_bytes: 120,
        ..pb::AuditRecord::default()
    }
}

fn batch(sequence: u64, records: Vec<pb::AuditRecord>, dropped: u64) -> pb::AuditBatch {
    pb::AuditBatch {
        sequence,
        records,
        dropped,
    }
}

fn query(filter: impl FnOnce(&mut pb::QueryAuditRequest)) -> pb::QueryAuditRequest {
    let mut request = pb::QueryAuditRequest::default();
    filter(&mut request);
    request
}

#[tokio::test]
async fn insert_is_idempotent_and_counts_only_new_records() {
    let (_dir, audit, metrics) = open();
    let now = now_ms();
    let records = vec![
        record(1, now, "files", "read", "ok", 5),
        record(2, now, "files", "write", "error", 7),
    ];
    let first = audit
        .ingest("dp-1", batch(1, records.clone(), 3))
        .await
        .unwrap();
    assert_eq!(first.new, 2);
    // The same batch again (its ack was lost): nothing new, drops not counted twice.
    let again = audit
        .ingest("dp-1", batch(1, records.clone(), 3))
        .await
        .unwrap();
    assert_eq!(again.new, 0);
    let mut more = records;
    more.push(record(3, now, "files", "read", "ok", 1));
    assert_eq!(
        audit.ingest("dp-1", batch(2, more, 0)).await.unwrap().new,
        1
    );
    assert_eq!(metrics.audit_records.get(), 3);
    assert_eq!(metrics.audit_dropped.get(), 3);
    assert_eq!(audit.query(query(|_| {})).await.unwrap().len(), 3);
    // A batch of drops only is counted.
    audit.ingest("dp-1", batch(3, vec![], 2)).await.unwrap();
    assert_eq!(metrics.audit_dropped.get(), 5);
}

#[tokio::test]
async fn node_id_is_the_streams_and_bad_ids_are_refused() {
    let (_dir, audit, _) = open();
    let now = now_ms();
    let mut forged = record(1, now, "files", "read", "ok", 5);
    forged.node_id = "dp-victim".into();
    let mut unnamed = record(2, now, "files", "read", "ok", 5);
    unnamed.node_id.clear();
    let mut bad = record(3, now, "files", "read", "ok", 5);
    bad.id = "ABC".into();
    let mut upper = record(4, now, "files", "read", "ok", 5);
    upper.id = upper.id.to_uppercase().replace('0', "F");
    let ingested = audit
        .ingest("dp-real", batch(1, vec![forged, unnamed, bad, upper], 0))
        .await
        .unwrap();
    assert_eq!(
        ingested,
        Ingested {
            new: 2,
            invalid: 2,
            relabelled: 1
        }
    );
    for n in [1u32, 2] {
        let stored = audit.db().get(&format!("{n:032x}")).unwrap().unwrap();
        assert_eq!(stored.node_id, "dp-real");
    }
}

#[tokio::test]
async fn every_field_round_trips() {
    let (_dir, audit, _) = open();
    let mut full = record(7, now_ms(), "files", "write", "error", 12);
    full.node_id = "dp-1".into();
    full.guardrail_rule = "no-deletes".into();
    full.guardrail_action = "shadow:block".into();
    full.acl_policy = "readers".into();
    full.cache_status = "miss".into();
    full.response_json = r#"{"content":[]}"#.into();
    full.config_version = u64::MAX;
    audit
        .ingest("dp-1", batch(1, vec![full.clone()], 0))
        .await
        .unwrap();
    let mut stored = audit.db().get(&full.id).unwrap().unwrap();
    // Values past i64::MAX cannot be stored and are pinned there.
    assert_eq!(stored.config_version, i64::MAX as u64);
    stored.config_version = u64::MAX;
    assert_eq!(stored, full);
}

#[tokio::test]
async fn filters_since_limit_and_newest_first() {
    let (_dir, audit, _) = open();
    let now = now_ms();
    let records = vec![
        record(1, now - 30 * MINUTE_MS, "files", "read", "ok", 1),
        record(2, now - 20 * MINUTE_MS, "files", "write", "error", 2),
        record(3, now - 5 * MINUTE_MS, "crm", "read", "ok", 3),
        record(4, now - MINUTE_MS, "crm", "lookup", "acl_denied", 4),
    ];
    audit
        .ingest("dp-1", batch(1, records.clone(), 0))
        .await
        .unwrap();
    let ids = |records: Vec<pb::AuditRecord>| {
        records
            .iter()
            .map(|r| u32::from_str_radix(&r.id, 16).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(audit.query(query(|_| {})).await.unwrap()), [4, 3, 2, 1]);
    let check = |request: pb::QueryAuditRequest, expected: &'static [u32]| {
        let audit = &audit;
        async move {
            assert_eq!(
                ids(audit.query(request.clone()).await.unwrap()),
                expected,
                "{request:?}"
            );
        }
    };
    check(query(|q| q.server_id = "files".into()), &[2, 1]).await;
    check(query(|q| q.target = "read".into()), &[3, 1]).await;
    check(query(|q| q.client_id = "alice".into()), &[4, 2]).await;
    check(query(|q| q.status = "acl_denied".into()), &[4]).await;
    check(query(|q| q.trace_id = records[2].trace_id.clone()), &[3]).await;
    check(query(|q| q.since_unix_ms = now - 10 * MINUTE_MS), &[4, 3]).await;
    check(query(|q| q.limit = 2), &[4, 3]).await;
    check(
        query(|q| {
            q.server_id = "crm".into();
            q.target = "read".into();
        }),
        &[3],
    )
    .await;
    check(query(|q| q.server_id = "nope".into()), &[]).await;
}

#[tokio::test]
async fn bad_arguments_are_invalid() {
    let (_dir, audit, _) = open();
    for request in [
        query(|q| q.limit = MAX_LIMIT + 1),
        query(|q| q.status = "weird".into()),
    ] {
        let error = audit.query(request).await.unwrap_err();
        assert!(matches!(error, AuditError::Invalid(_)), "{error}");
    }
    assert!(audit.query(query(|q| q.limit = MAX_LIMIT)).await.is_ok());
    let error = audit
        .stats(pb::AuditStatsRequest {
            group_by: "node".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("group_by"), "{error}");
}

#[tokio::test]
async fn default_limit_is_100() {
    let (_dir, audit, _) = open();
    let now = now_ms();
    let records: Vec<_> = (0..150)
        .map(|n| record(n, now - i64::from(n), "files", "read", "ok", 1))
        .collect();
    audit.ingest("dp-1", batch(1, records, 0)).await.unwrap();
    assert_eq!(audit.query(query(|_| {})).await.unwrap().len(), 100);
}

#[tokio::test]
async fn stats_group_count_errors_and_percentiles() {
    let (_dir, audit, _) = open();
    let now = now_ms();
    let mut records = Vec::new();
    // files: durations 1..=100 ms, every 10th an error.
    for n in 1..=100u32 {
        let status = if n.is_multiple_of(10) {
            "upstream_error"
        } else {
            "ok"
        };
        records.push(record(n, now - 1000, "files", "read", status, u64::from(n)));
    }
    // crm: two slow calls; one old one outside the window.
    records.push(record(101, now - 1000, "crm", "lookup", "ok", 500));
    records.push(record(102, now - 1000, "crm", "lookup", "error", 700));
    records.push(record(103, now - 2 * DAY_MS, "crm", "lookup", "ok", 9000));
    audit.ingest("dp-1", batch(1, records, 0)).await.unwrap();

    let stats = audit
        .stats(pb::AuditStatsRequest {
            since_unix_ms: now - DAY_MS,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((stats.total.requests, stats.total.errors), (102, 11));
    assert_eq!(stats.total.key, "");
    let keys: Vec<_> = stats.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["files", "crm"], "most requests first");
    let files = &stats.groups[0];
    assert_eq!((files.requests, files.errors), (100, 10));
    assert_eq!(
        (files.p50_ms, files.p95_ms, files.p99_ms),
        (50.0, 95.0, 99.0)
    );
    let crm = &stats.groups[1];
    assert_eq!((crm.requests, crm.errors), (2, 1));
    assert_eq!((crm.p50_ms, crm.p99_ms), (500.0, 700.0));

    let by_client = audit
        .stats(pb::AuditStatsRequest {
            server_id: "crm".into(),
            group_by: "client".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_client.total.requests, 3, "no since: every record");
    let keys: Vec<_> = by_client
        .groups
        .iter()
        .map(|g| (g.key.as_str(), g.requests))
        .collect();
    assert_eq!(keys, [("bob", 2), ("alice", 1)]);
    let by_tool = audit
        .stats(pb::AuditStatsRequest {
            target: "lookup".into(),
            group_by: "tool".into(),
            since_unix_ms: now - DAY_MS,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_tool.groups.len(), 1);
    assert_eq!(by_tool.groups[0].key, "lookup");
}

#[tokio::test]
async fn purge_deletes_only_records_past_retention() {
    let (_dir, audit, metrics) = open();
    let now = now_ms();
    let records = vec![
        record(1, now - 31 * DAY_MS, "files", "read", "ok", 1),
        record(2, now - 29 * DAY_MS, "files", "read", "ok", 1),
        record(3, now - 8 * DAY_MS, "files", "read", "ok", 1),
    ];
    audit.ingest("dp-1", batch(1, records, 0)).await.unwrap();
    assert_eq!(audit.purge(30, now).await.unwrap(), 1);
    assert_eq!(audit.purge(7, now).await.unwrap(), 2);
    assert_eq!(metrics.audit_purged.get(), 3);
    assert!(audit.query(query(|_| {})).await.unwrap().is_empty());
}

#[test]
fn retention_comes_from_the_config_or_defaults_to_30_days() {
    assert_eq!(retention_days(None), 30);
    let base = "servers:\n  - id: a\n    url: http://127.0.0.1:9/mcp\n";
    assert_eq!(retention_days(Some(base)), 30);
    let with = format!("{base}observability:\n  retention_days: 7\n");
    assert_eq!(retention_days(Some(&with)), 7);
    assert_eq!(retention_days(Some("not: [valid")), 30);
}

#[tokio::test(start_paused = true)]
async fn retention_runs_at_start_and_every_hour() {
    let (_dir, audit, metrics) = open();
    let audit = Arc::new(audit);
    let store = Arc::new(crate::store::Store::open(&_dir.path().join("data")).unwrap());
    let versions = Arc::new(Versions::load(store, None, metrics.clone()).unwrap());
    let old = || now_ms() - 31 * DAY_MS;
    audit
        .ingest(
            "dp-1",
            batch(1, vec![record(1, old(), "a", "t", "ok", 1)], 0),
        )
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(audit.clone().run_retention(versions, shutdown.clone()));
    let purged = |expected: u64| {
        let metrics = metrics.clone();
        async move {
            for _ in 0..100 {
                if metrics.audit_purged.get() == expected {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!(
                "purged {} records, expected {expected}",
                metrics.audit_purged.get()
            );
        }
    };
    purged(1).await;
    audit
        .ingest(
            "dp-1",
            batch(2, vec![record(2, old(), "a", "t", "ok", 1)], 0),
        )
        .await
        .unwrap();
    tokio::time::sleep(PURGE_INTERVAL - Duration::from_secs(5)).await;
    assert_eq!(metrics.audit_purged.get(), 1, "not before the hour");
    tokio::time::sleep(Duration::from_secs(10)).await;
    purged(2).await;
    shutdown.cancel();
    task.await.unwrap();
}

#[test]
fn database_file_and_wal_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = AuditDb::open(&dir.path().join("data")).unwrap();
    db.insert(&[record(1, now_ms(), "a", "t", "ok", 1)])
        .unwrap();
    assert_eq!(db.path().file_name().unwrap(), AUDIT_DB_FILE);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(db.path()), 0o600);
    let wal = dir.path().join("data").join(format!("{AUDIT_DB_FILE}-wal"));
    assert!(wal.exists(), "WAL mode");
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    // Reopening keeps the rows and the schema.
    drop(db);
    let db = AuditDb::open(&dir.path().join("data")).unwrap();
    assert!(db.get(&format!("{:032x}", 1)).unwrap().is_some());
}

#[test]
fn a_checkpoint_copies_and_empties_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = AuditDb::open(&dir.path().join("data")).unwrap();
    let wal = db.path().with_file_name(format!("{AUDIT_DB_FILE}-wal"));
    let wal_bytes = || std::fs::metadata(&wal).unwrap().len();
    let now = now_ms();
    let many: Vec<_> = (1..=1000)
        .map(|n| record(n, now, "a", "t", "ok", 1))
        .collect();
    db.insert(&many).unwrap();
    assert!(wal_bytes() > 0, "the writer does not checkpoint by itself");
    db.checkpoint().unwrap();
    assert_eq!(wal_bytes(), 0);
    db.insert(&[record(1001, now, "a", "t", "ok", 1)]).unwrap();
    assert!(wal_bytes() > 0);
    db.checkpoint().unwrap();
    assert_eq!(wal_bytes(), 0);
    assert_eq!(db.count(&Filter::default()).unwrap().requests, 1001);
}

#[test]
fn trace_queries_read_only_segments_that_can_hold_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let db = AuditDb::open(&dir.path().join("data")).unwrap();
    let now = now_ms();
    // 50 commits of 20 records: 50 segments.
    for commit in 0..50u32 {
        let records: Vec<_> = (0..20)
            .map(|n| record(commit * 20 + n, now, "a", "t", "ok", 1))
            .collect();
        assert_eq!(db.insert(&records).unwrap(), 20);
    }
    let filter = Filter {
        trace_id: format!("{:032x}", 7u128 << 64),
        ..Filter::default()
    };
    let before = db.segments_decoded();
    let found = db.query(&filter, 10).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, format!("{:032x}", 7));
    let decoded = db.segments_decoded() - before;
    assert!(decoded <= 3, "{decoded} of 50 segments decoded");
}

#[test]
fn a_version_1_database_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    {
        let conn = rusqlite::Connection::open(data.join(AUDIT_DB_FILE)).unwrap();
        conn.execute_batch(db::MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO audit_records VALUES ('00000000000000000000000000000001', 5, \
             'trace-1', 'dp-1', 3, 'alice', 'acme', 'files', 'tools/call', 'read', '{}', 9, \
             'ok', 200, NULL, '', 120, '', '', '', '', ''); \
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let db = AuditDb::open(&data).unwrap();
    let stored = db.get(&format!("{:032x}", 1)).unwrap().unwrap();
    assert_eq!(
        (stored.time_unix_ms, stored.trace_id.as_str()),
        (5, "trace-1")
    );
    // The same record again is still a duplicate.
    assert_eq!(db.insert(std::slice::from_ref(&stored)).unwrap(), 0);
    let by_trace = Filter {
        trace_id: "trace-1".into(),
        ..Filter::default()
    };
    assert_eq!(db.query(&by_trace, 10).unwrap(), vec![stored]);
}

#[tokio::test]
async fn batches_stored_together_are_counted_each() {
    let (_dir, audit, metrics) = open();
    let now = now_ms();
    let records = vec![
        record(1, now, "files", "read", "ok", 5),
        record(2, now, "files", "write", "ok", 7),
    ];
    // The second batch is a resend of the first within the same commit.
    let stored = audit
        .ingest_all(
            "dp-1",
            vec![batch(1, records.clone(), 4), batch(1, records, 4)],
        )
        .await
        .unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|ingested| ingested.new)
            .collect::<Vec<_>>(),
        [2, 0]
    );
    assert_eq!(metrics.audit_records.get(), 2);
    assert_eq!(
        metrics.audit_dropped.get(),
        4,
        "a resend's drops are not counted"
    );
}

#[test]
fn a_version_2_database_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    {
        let conn = rusqlite::Connection::open(data.join(AUDIT_DB_FILE)).unwrap();
        conn.execute_batch(db::MIGRATIONS[0]).unwrap();
        conn.execute_batch(db::MIGRATIONS[1]).unwrap();
        // Rows 1 and 2 have the same time: 2 arrived later, so it comes first.
        for (n, time, trace, status) in [
            (1, 5, "trace-1", "ok"),
            (2, 5, "trace-2", "error"),
            (3, 4, "trace-3", "ok"),
        ] {
            conn.execute(
                "INSERT INTO audit_records (id, time_ms, trace_id, node_id, config_version, \
                 client_id, tenant_id, server_id, method, target, arguments_json, duration_us, \
                 status, http_status, error_code, error_message, response_bytes, \
                 guardrail_rule, guardrail_action, acl_policy, cache_status, response_json) \
                 VALUES (?, ?, ?, 'dp-1', 3, 'alice', 'acme', 'files', 'tools/call', 'read', \
                 '{}', 9, ?, 200, NULL, '', 120, '', '', '', '', '')",
                rusqlite::params![format!("{n:032x}"), time, trace, status],
            )
            .unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 2;").unwrap();
    }
    let db = AuditDb::open(&data).unwrap();
    let ids = |records: Vec<pb::AuditRecord>| {
        records
            .iter()
            .map(|r| u32::from_str_radix(&r.id, 16).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(db.query(&Filter::default(), 10).unwrap()), [2, 1, 3]);
    let stored = db.get(&format!("{:032x}", 2)).unwrap().unwrap();
    assert_eq!(
        (
            stored.time_unix_ms,
            stored.trace_id.as_str(),
            stored.status.as_str()
        ),
        (5, "trace-2", "error")
    );
    assert_eq!(stored.config_version, 3);
    // The same records again are still duplicates; a new one is not.
    let mut again = db.query(&Filter::default(), 10).unwrap();
    again.push(record(4, 5, "files", "read", "ok", 1));
    assert_eq!(db.insert(&again).unwrap(), 1);
    let by_trace = Filter {
        trace_id: "trace-3".into(),
        ..Filter::default()
    };
    assert_eq!(ids(db.query(&by_trace, 10).unwrap()), [3]);
    let total = db.count(&Filter::default()).unwrap();
    assert_eq!((total.requests, total.errors), (4, 1));
    // The per-record table is gone.
    let conn = rusqlite::Connection::open(data.join(AUDIT_DB_FILE)).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'audit_rows_v2'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

#[test]
fn a_resend_after_a_restart_is_not_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = now_ms();
    let records: Vec<_> = (1..=300)
        .map(|n| record(n, now - i64::from(n) * 1000, "files", "read", "ok", 1))
        .collect();
    // From a data plane whose clock runs an hour ahead.
    let ahead = record(400, now + 60 * MINUTE_MS, "files", "read", "ok", 1);
    {
        let db = AuditDb::open(&data).unwrap();
        assert_eq!(db.insert(&records).unwrap(), 300);
        assert_eq!(db.insert(std::slice::from_ref(&ahead)).unwrap(), 1);
    }
    // Memory starts empty: these are found on disk, through the segments of their times.
    let db = AuditDb::open(&data).unwrap();
    assert_eq!(db.insert(&records[100..200]).unwrap(), 0);
    assert_eq!(db.insert(std::slice::from_ref(&ahead)).unwrap(), 0);
    // An older record with a new id, and a stored id at another time, are new.
    let mut moved = records[0].clone();
    moved.time_unix_ms -= 1;
    let older = record(301, now - 10 * MINUTE_MS, "files", "read", "ok", 1);
    assert_eq!(db.insert(&[moved, older, records[5].clone()]).unwrap(), 2);
    assert_eq!(db.count(&Filter::default()).unwrap().requests, 303);
}

#[test]
fn a_purge_keeps_the_newer_records_of_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let db = AuditDb::open(&dir.path().join("data")).unwrap();
    let now = now_ms();
    // One segment whose records lie on both sides of the cutoff, and an older one.
    let records: Vec<_> = (1..=10)
        .map(|n| record(n, now - i64::from(n) * 100, "files", "read", "ok", 1))
        .collect();
    db.insert(&records).unwrap();
    db.insert(&[record(11, now - DAY_MS, "files", "read", "ok", 1)])
        .unwrap();
    assert_eq!(db.purge_before(now - 550).unwrap(), 6);
    let left: Vec<_> = db
        .query(&Filter::default(), 100)
        .unwrap()
        .iter()
        .map(|r| u32::from_str_radix(&r.id, 16).unwrap())
        .collect();
    assert_eq!(left, [1, 2, 3, 4, 5]);
    // A purged record sent again is stored again (as before segments).
    assert_eq!(db.insert(&records[9..]).unwrap(), 1);
    assert_eq!(db.purge_before(now - 550).unwrap(), 1);
    assert_eq!(db.count(&Filter::default()).unwrap().requests, 5);
}
