//! Generated prost/tonic code for `conduit.v1`. Nothing else lives here but the `Debug` of
//! `SessionKey`, which hides the key, the closed set of values of a string field that
//! three crates check, and the size limits both ends of the config stream keep
//! ([`limits`]): other crates convert these wire types into their own domain types at the
//! boundary.
#![forbid(unsafe_code)]

pub mod limits;

#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("conduit.v1");
}

/// Every value `AuditRecord.status` may take (see its comment in the proto): the data
/// plane writes them, the control plane and conduitctl accept them as filters.
pub const AUDIT_STATUSES: [&str; 14] = [
    "ok",
    "error",
    "upstream_error",
    "upstream_timeout",
    "auth_failed",
    "acl_denied",
    "governance_denied",
    "guardrail_blocked",
    "approval_required",
    "rate_limited",
    "invalid_request",
    "not_found",
    "unavailable",
    "client_closed",
];

impl std::fmt::Debug for v1::SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_key_debug_hides_the_key() {
        let key = super::v1::SessionKey {
            id: "k1".into(),
            key: vec![0xab; 32],
            created_at: 1,
            activates_at: 2,
        };
        let shown = format!("{key:?}");
        assert!(
            shown.contains("k1") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("171"), "{shown}");
    }
}
