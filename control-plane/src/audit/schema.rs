//! The schema of `audit.db`: its migrations, applied in order by `crate::store` (`PRAGMA
//! user_version`). Versions 1 and 2 stored a row per record; version 3 stores segments
//! (`super::segment`), and `super::legacy` moves older rows into them when the file opens.

/// Schema migrations of `audit.db`, applied in order (`PRAGMA user_version`).
pub const MIGRATIONS: &[&str] = &[
    // 1: one row per audit record, as the data plane reported it (node id verified).
    "CREATE TABLE audit_records (
        id TEXT PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        trace_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        config_version INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        server_id TEXT NOT NULL,
        method TEXT NOT NULL,
        target TEXT NOT NULL,
        arguments_json TEXT NOT NULL,
        duration_us INTEGER NOT NULL,
        status TEXT NOT NULL,
        http_status INTEGER NOT NULL,
        error_code INTEGER NULL,
        error_message TEXT NOT NULL,
        response_bytes INTEGER NOT NULL,
        guardrail_rule TEXT NOT NULL,
        guardrail_action TEXT NOT NULL,
        acl_policy TEXT NOT NULL,
        cache_status TEXT NOT NULL,
        response_json TEXT NOT NULL
    ) STRICT;
    CREATE INDEX audit_records_by_time ON audit_records (time_ms);
    CREATE INDEX audit_records_by_client ON audit_records (client_id, time_ms);
    CREATE INDEX audit_records_by_server ON audit_records (server_id, time_ms);
    CREATE INDEX audit_records_by_target ON audit_records (target, time_ms);
    CREATE INDEX audit_records_by_trace ON audit_records (trace_id);",
    // 2: rows keyed in arrival order; unique (time_ms, id) instead of a unique id; the
    // trace index on an 8-character prefix (see the module docs).
    "CREATE TABLE audit_records_v2 (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        trace_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        config_version INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        server_id TEXT NOT NULL,
        method TEXT NOT NULL,
        target TEXT NOT NULL,
        arguments_json TEXT NOT NULL,
        duration_us INTEGER NOT NULL,
        status TEXT NOT NULL,
        http_status INTEGER NOT NULL,
        error_code INTEGER NULL,
        error_message TEXT NOT NULL,
        response_bytes INTEGER NOT NULL,
        guardrail_rule TEXT NOT NULL,
        guardrail_action TEXT NOT NULL,
        acl_policy TEXT NOT NULL,
        cache_status TEXT NOT NULL,
        response_json TEXT NOT NULL
    ) STRICT;
    INSERT INTO audit_records_v2 (id, time_ms, trace_id, node_id, config_version, client_id,
        tenant_id, server_id, method, target, arguments_json, duration_us, status,
        http_status, error_code, error_message, response_bytes, guardrail_rule,
        guardrail_action, acl_policy, cache_status, response_json)
    SELECT id, time_ms, trace_id, node_id, config_version, client_id, tenant_id, server_id,
        method, target, arguments_json, duration_us, status, http_status, error_code,
        error_message, response_bytes, guardrail_rule, guardrail_action, acl_policy,
        cache_status, response_json
    FROM audit_records ORDER BY rowid;
    DROP TABLE audit_records;
    ALTER TABLE audit_records_v2 RENAME TO audit_records;
    CREATE UNIQUE INDEX audit_records_by_time ON audit_records (time_ms, id);
    CREATE INDEX audit_records_by_client ON audit_records (client_id, time_ms);
    CREATE INDEX audit_records_by_server ON audit_records (server_id, time_ms);
    CREATE INDEX audit_records_by_target ON audit_records (target, time_ms);
    CREATE INDEX audit_records_by_trace ON audit_records (substr(trace_id, 1, 8));",
    // 3: one row per segment of records (see `segment`); the per-record table is kept under
    // another name until `legacy::convert` has moved its rows into segments.
    "ALTER TABLE audit_records RENAME TO audit_rows_v2;
    CREATE TABLE audit_records (
        seq INTEGER PRIMARY KEY,
        min_time_ms INTEGER NOT NULL,
        max_time_ms INTEGER NOT NULL,
        record_count INTEGER NOT NULL,
        filter BLOB NOT NULL,
        body BLOB NOT NULL
    ) STRICT;
    CREATE INDEX audit_segments_by_time ON audit_records (max_time_ms);",
];
