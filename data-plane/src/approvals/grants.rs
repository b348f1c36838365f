//! The grants this data plane honours: the newest signed set from the control plane,
//! verified with the public key of the applied snapshot before it replaces the old one.
//!
//! A grant matches a retry when the id is known, the caller is the requesting client (and
//! tenant), the call goes to the same server and tool with arguments of the same
//! fingerprint, and `expires_at` has not passed on this data plane's clock (allowing
//! [`CLOCK_SKEW`] for clocks that differ from the control plane's). A grant allows
//! `max_uses` calls; the set says how many each data plane has used as far as the control
//! plane knows, and [`super::usage`] adds what this data plane counted since.

use std::collections::HashMap;

use conduit_proto::v1 as pb;
use conduit_signing::grant_set;

/// Prefix of every signed grant set (the format is the control plane's too).
#[cfg(test)]
pub(crate) use conduit_signing::grant_set::DOMAIN as GRANT_SET_CONTEXT;
/// Seconds a grant stays usable past its `expires_at`, for clock differences.
pub(crate) const CLOCK_SKEW: i64 = 5;

/// Why a grant set was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantSetError {
    #[error("no grant-set key yet (the applied snapshot carried none)")]
    NoKey,
    #[error("the grant set is not signed")]
    Unsigned,
    #[error("the grant set's signature does not verify with the snapshot's key")]
    BadSignature,
    #[error("the grant set does not decode: {0}")]
    Malformed(String),
    #[error("the grant set is older than the one in use")]
    Stale,
}

/// One usable grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub client_id: String,
    pub tenant_id: String,
    pub server_id: String,
    pub tool: String,
    pub fingerprint: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Calls the grant allows in all (at least 1).
    pub max_uses: u32,
    /// Uses the control plane counted, per data plane (node id).
    pub uses: HashMap<String, u32>,
}

impl Grant {
    /// Uses the control plane counted for `node_id`, and for every other data plane.
    pub(crate) fn counted(&self, node_id: &str) -> (u32, u32) {
        let mine = self.uses.get(node_id).copied().unwrap_or(0);
        let others = self
            .uses
            .iter()
            .filter(|(node, _)| *node != node_id)
            .fold(0u32, |sum, (_, count)| sum.saturating_add(*count));
        (mine, others)
    }
}

/// What a retry presents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presented<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub tenant_id: &'a str,
    pub server_id: &'a str,
    pub tool: &'a str,
    pub fingerprint: &'a str,
}

/// The grants of one verified set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GrantTable {
    issued_at_ms: i64,
    grants: HashMap<String, Grant>,
}

impl GrantTable {
    /// Verify `set` with `public_key` and decode it; `current` is the table in use, which a
    /// set issued before it does not replace.
    pub(crate) fn verify(
        set: &pb::GrantSet,
        public_key: Option<&[u8]>,
        current: &GrantTable,
    ) -> Result<GrantTable, GrantSetError> {
        let public_key = public_key.ok_or(GrantSetError::NoKey)?;
        let list = grant_set::verify(set, public_key).map_err(|error| match error {
            grant_set::GrantSetError::Unsigned => GrantSetError::Unsigned,
            grant_set::GrantSetError::BadSignature => GrantSetError::BadSignature,
            grant_set::GrantSetError::Malformed(detail) => GrantSetError::Malformed(detail),
        })?;
        if list.issued_at_ms < current.issued_at_ms {
            return Err(GrantSetError::Stale);
        }
        Ok(GrantTable {
            issued_at_ms: list.issued_at_ms,
            grants: list
                .grants
                .into_iter()
                .map(|grant| {
                    (
                        grant.id,
                        Grant {
                            client_id: grant.client_id,
                            tenant_id: grant.tenant_id,
                            server_id: grant.server_id,
                            tool: grant.tool,
                            fingerprint: grant.fingerprint.to_ascii_lowercase(),
                            expires_at: grant.expires_at,
                            // 0 is what a sender that predates `max_uses` leaves.
                            max_uses: grant.max_uses.max(1),
                            uses: grant
                                .uses
                                .into_iter()
                                .map(|used| (used.node_id, used.count))
                                .collect(),
                        },
                    )
                })
                .collect(),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.grants.len()
    }

    /// Uses of every grant in the set, as the control plane counted them.
    pub(crate) fn counted_uses(&self) -> u64 {
        self.grants
            .values()
            .flat_map(|grant| grant.uses.values())
            .map(|count| u64::from(*count))
            .sum()
    }

    /// Whether this set holds a grant with this id.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.grants.contains_key(id)
    }

    /// The grant that matches `presented` at `now` (unix seconds), uses not yet counted.
    pub(crate) fn matching(&self, presented: &Presented<'_>, now: i64) -> Option<&Grant> {
        self.grants.get(presented.id).filter(|grant| {
            grant.client_id == presented.client_id
                && grant.tenant_id == presented.tenant_id
                && grant.server_id == presented.server_id
                && grant.tool == presented.tool
                && grant.fingerprint == presented.fingerprint
                && now < grant.expires_at + CLOCK_SKEW
        })
    }

    /// Whether a grant matches `presented` at `now` (unix seconds), uses not counted.
    #[cfg(test)]
    pub(crate) fn allows(&self, presented: &Presented<'_>, now: i64) -> bool {
        self.matching(presented, now).is_some()
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use prost::Message;

    use super::*;

    fn signed(key: &Ed25519KeyPair, list: &pb::GrantList) -> pb::GrantSet {
        let grants = list.encode_to_vec();
        let mut message = GRANT_SET_CONTEXT.to_vec();
        message.extend_from_slice(&grants);
        pb::GrantSet {
            signature: key.sign(&message).as_ref().to_vec(),
            grants,
        }
    }

    fn list(issued_at_ms: i64) -> pb::GrantList {
        pb::GrantList {
            issued_at_ms,
            grants: vec![pb::Grant {
                id: "apr_1".into(),
                client_id: "agent".into(),
                tenant_id: "acme".into(),
                server_id: "files".into(),
                tool: "delete".into(),
                fingerprint: "AB".repeat(32),
                expires_at: 1_000,
                max_uses: 0,
                uses: vec![
                    pb::GrantUse {
                        node_id: "dp-1".into(),
                        count: 2,
                    },
                    pb::GrantUse {
                        node_id: "dp-2".into(),
                        count: 3,
                    },
                ],
            }],
        }
    }

    fn presented<'a>(fingerprint: &'a str) -> Presented<'a> {
        Presented {
            id: "apr_1",
            client_id: "agent",
            tenant_id: "acme",
            server_id: "files",
            tool: "delete",
            fingerprint,
        }
    }

    #[test]
    fn only_sets_signed_by_the_snapshot_key_are_used() {
        let key = Ed25519KeyPair::generate().unwrap();
        let other = Ed25519KeyPair::generate().unwrap();
        let public = key.public_key().as_ref();
        let empty = GrantTable::default();
        let set = signed(&key, &list(10));
        let table = GrantTable::verify(&set, Some(public), &empty).unwrap();
        assert_eq!(table.len(), 1);

        assert_eq!(
            GrantTable::verify(&set, None, &empty),
            Err(GrantSetError::NoKey)
        );
        let forged = signed(&other, &list(10));
        assert_eq!(
            GrantTable::verify(&forged, Some(public), &empty),
            Err(GrantSetError::BadSignature)
        );
        let mut unsigned = set.clone();
        unsigned.signature.clear();
        assert_eq!(
            GrantTable::verify(&unsigned, Some(public), &empty),
            Err(GrantSetError::Unsigned)
        );
        let mut tampered = set.clone();
        let last = tampered.grants.len() - 1;
        tampered.grants[last] ^= 1;
        assert_eq!(
            GrantTable::verify(&tampered, Some(public), &empty),
            Err(GrantSetError::BadSignature)
        );
        // Without the context prefix the same bytes do not verify.
        let mut bare = set.clone();
        bare.signature = key.sign(&set.grants).as_ref().to_vec();
        assert_eq!(
            GrantTable::verify(&bare, Some(public), &empty),
            Err(GrantSetError::BadSignature)
        );
        let older = signed(&key, &list(9));
        assert_eq!(
            GrantTable::verify(&older, Some(public), &table),
            Err(GrantSetError::Stale)
        );
    }

    #[test]
    fn grants_bind_client_server_tool_fingerprint_and_time() {
        let key = Ed25519KeyPair::generate().unwrap();
        let table = GrantTable::verify(
            &signed(&key, &list(1)),
            Some(key.public_key().as_ref()),
            &GrantTable::default(),
        )
        .unwrap();
        let fingerprint = "ab".repeat(32);
        let good = presented(&fingerprint);
        assert!(table.allows(&good, 999));
        let grant = table.matching(&good, 999).unwrap();
        assert_eq!(grant.max_uses, 1, "an unset max_uses means one use");
        assert_eq!(grant.counted("dp-1"), (2, 3));
        assert_eq!(grant.counted("dp-3"), (0, 5));
        assert!(
            table.allows(&good, 1_000 + CLOCK_SKEW - 1),
            "skew allowance"
        );
        assert!(!table.allows(&good, 1_000 + CLOCK_SKEW), "expired");
        let other_args = "cd".repeat(32);
        assert!(
            !table.allows(&presented(&other_args), 10),
            "other arguments"
        );
        for changed in [
            Presented {
                id: "apr_2",
                ..good
            },
            Presented {
                client_id: "mallory",
                ..good
            },
            Presented {
                tenant_id: "other",
                ..good
            },
            Presented {
                server_id: "db",
                ..good
            },
            Presented {
                tool: "read",
                ..good
            },
        ] {
            assert!(!table.allows(&changed, 10), "{changed:?}");
        }
    }
}
