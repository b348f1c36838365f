//! Sizes both ends of the config stream agree on, and the caps of the strings of an
//! [`AuditRecord`](crate::v1::AuditRecord).
//!
//! A message larger than the receiver's decode limit does not just fail: it ends the whole
//! stream, and a sender that sends it again first on the next stream never gets anything
//! through again. So each side keeps what it sends well under what the other accepts:
//! the control plane decodes and encodes up to [`MAX_STREAM_MESSAGE_BYTES`], a data plane
//! decodes twice that, and audit records travel in batches of at most
//! [`AUDIT_BATCH_MAX_BYTES`] made of records cut by [`bound_audit_record`].

use crate::v1::AuditRecord;

/// The control plane's decode and encode limit on the config stream (and the Admin API):
/// whole config documents travel in one message.
pub const MAX_STREAM_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// The start of the status message with which the control plane ends a stream when a
/// message of the data plane's could not be decoded (too large, or malformed): the data
/// plane tells it from a failure of the control plane's own (which resending its audit
/// batches one at a time would not cure).
pub const REFUSED_DATA_PLANE_MESSAGE: &str =
    "the control plane refused a message of this data plane";

/// Largest encoded `AuditBatch` a data plane sends: 1/32 of what the control plane
/// decodes, so no batch can come near the limit whatever its records.
pub const AUDIT_BATCH_MAX_BYTES: usize = 1024 * 1024;

/// Largest encoded `AuditRecord` after [`bound_audit_record`] (every field at its cap,
/// with the truncation markers and the protobuf framing).
pub const AUDIT_RECORD_MAX_BYTES: usize = 48 * 1024;

// A batch holds many records of the largest size, and stays far under the stream limit.
const _: () = assert!(AUDIT_BATCH_MAX_BYTES >= 16 * AUDIT_RECORD_MAX_BYTES);
const _: () = assert!(AUDIT_BATCH_MAX_BYTES * 32 <= MAX_STREAM_MESSAGE_BYTES);

/// Bytes kept of identifiers: record id, trace id, node, client, tenant and server ids,
/// status, guardrail rule and action, ACL policy, cache status.
pub const AUDIT_ID_MAX_BYTES: usize = 256;
/// Bytes kept of the JSON-RPC method (a client's own text).
pub const AUDIT_METHOD_MAX_BYTES: usize = 256;
/// Bytes kept of the target: tool name, resource URI or prompt name (a client's own text).
pub const AUDIT_TARGET_MAX_BYTES: usize = 1024;
/// Bytes kept of the JSON-RPC error message of the answer.
pub const AUDIT_ERROR_MAX_BYTES: usize = 1024;
/// Bytes kept of the redacted arguments and of the redacted result (JSON text).
pub const AUDIT_JSON_MAX_BYTES: usize = 16 * 1024;

/// Room kept for the marker: `…[` (4 bytes), up to 20 digits, ` bytes truncated]` (17).
const MARKER_BYTES: usize = 48;

/// Cut `text` to at most `max` bytes, the marker `…[N bytes truncated]` included (the cut
/// is at a character boundary); `true` when it was cut. A cut text is not cut again.
pub fn truncate_text(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut cut = max.saturating_sub(MARKER_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("…[{dropped} bytes truncated]"));
    true
}

/// Cut every string of `record` to its cap (the `AUDIT_*_MAX_BYTES` constants), with a
/// visible marker. Both planes call it: the data plane before a record is queued or
/// logged, the control plane on ingest (a data plane is not trusted to have done so).
/// Returns how many fields were cut.
pub fn bound_audit_record(record: &mut AuditRecord) -> usize {
    let AuditRecord {
        id,
        time_unix_ms: _,
        trace_id,
        node_id,
        config_version: _,
        client_id,
        tenant_id,
        server_id,
        method,
        target,
        arguments_json,
        duration_micros: _,
        status,
        http_status: _,
        error_code: _,
        error_message,
        response_bytes: _,
        guardrail_rule,
        guardrail_action,
        acl_policy,
        cache_status,
        response_json,
    } = record;
    let mut cut = 0;
    for id in [
        id,
        trace_id,
        node_id,
        client_id,
        tenant_id,
        server_id,
        status,
        guardrail_rule,
        guardrail_action,
        acl_policy,
        cache_status,
    ] {
        cut += usize::from(truncate_text(id, AUDIT_ID_MAX_BYTES));
    }
    cut += usize::from(truncate_text(method, AUDIT_METHOD_MAX_BYTES));
    cut += usize::from(truncate_text(target, AUDIT_TARGET_MAX_BYTES));
    cut += usize::from(truncate_text(error_message, AUDIT_ERROR_MAX_BYTES));
    cut += usize::from(truncate_text(arguments_json, AUDIT_JSON_MAX_BYTES));
    cut += usize::from(truncate_text(response_json, AUDIT_JSON_MAX_BYTES));
    cut
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn cuts_at_a_character_boundary_with_a_marker() {
        let mut text = "é".repeat(100); // 200 bytes
        assert!(truncate_text(&mut text, 100));
        // 100 - 48 = 52 bytes: 26 characters.
        assert_eq!(text, format!("{}…[148 bytes truncated]", "é".repeat(26)));
        assert!(text.len() <= 100);
        assert!(!truncate_text(&mut text, 100), "not cut twice");
        let mut odd = "é".repeat(100);
        assert!(truncate_text(&mut odd, 101));
        assert!(
            odd.starts_with(&"é".repeat(26)) && odd.contains("…[148 bytes"),
            "{odd}"
        );
        let mut short = "abc".to_owned();
        assert!(!truncate_text(&mut short, 3));
        assert_eq!(short, "abc");
    }

    #[test]
    fn a_record_of_huge_strings_fits_its_bound() {
        let huge = "éx".repeat(3 * 1024 * 1024);
        let mut record = AuditRecord {
            id: huge.clone(),
            time_unix_ms: i64::MIN,
            trace_id: huge.clone(),
            node_id: huge.clone(),
            config_version: u64::MAX,
            client_id: huge.clone(),
            tenant_id: huge.clone(),
            server_id: huge.clone(),
            method: huge.clone(),
            target: huge.clone(),
            arguments_json: huge.clone(),
            duration_micros: u64::MAX,
            status: huge.clone(),
            http_status: u32::MAX,
            error_code: Some(i64::MIN),
            error_message: huge.clone(),
            response_bytes: u64::MAX,
            guardrail_rule: huge.clone(),
            guardrail_action: huge.clone(),
            acl_policy: huge.clone(),
            cache_status: huge.clone(),
            response_json: huge,
        };
        assert_eq!(bound_audit_record(&mut record), 16);
        assert!(record.target.len() <= AUDIT_TARGET_MAX_BYTES);
        assert!(record.target.starts_with("éx"));
        assert!(
            record.target.ends_with(" bytes truncated]"),
            "{}",
            record.target
        );
        let size = record.encoded_len();
        assert!(size <= AUDIT_RECORD_MAX_BYTES, "{size}");
        // A second pass changes nothing.
        let before = record.clone();
        assert_eq!(bound_audit_record(&mut record), 0);
        assert_eq!(record, before);
    }
}
