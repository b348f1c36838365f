use std::sync::Arc;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use prost::Message;

use super::*;
use crate::metrics::Metrics;
use crate::principals::AdminRole;
use crate::versions::ApplyInput;

const CONFIG: &str = "servers:\n  - id: files\n    url: http://127.0.0.1:9/mcp\n\
    governance:\n  role_bindings:\n    - workspace_id: acme\n      role: approver\n      \
    clients: [sec-*]\n";

async fn approvals(dir: &std::path::Path) -> Approvals {
    let store = Arc::new(Store::open(dir).unwrap());
    let versions = Arc::new(Versions::load(store.clone(), None, Arc::new(Metrics::new())).unwrap());
    versions
        .apply(ApplyInput {
            document: CONFIG.into(),
            ..ApplyInput::default()
        })
        .await
        .unwrap();
    Approvals::load(store, versions).unwrap()
}

fn request(id: &str, client: &str) -> pb::ApprovalRequest {
    let now = unix_now();
    pb::ApprovalRequest {
        id: id.into(),
        client_id: client.into(),
        tenant_id: "acme".into(),
        server_id: "files".into(),
        tool: "delete".into(),
        fingerprint: "AB".repeat(32),
        arguments_json: "{}".into(),
        rule: "approve-deletes".into(),
        source: "guardrail".into(),
        reason: "needs approval".into(),
        trace_id: "t".into(),
        created_at: now,
        expires_at: now + 3600,
    }
}

fn principal(name: &str) -> Principal {
    Principal {
        name: Arc::from(name),
        role: AdminRole::Operator,
    }
}

fn grants(set: &pb::GrantSet, public_key: &[u8]) -> pb::GrantList {
    let mut message = signing::GRANT_SET_CONTEXT.to_vec();
    message.extend_from_slice(&set.grants);
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&message, &set.signature)
        .expect("signed by the control plane's key");
    pb::GrantList::decode(set.grants.as_slice()).unwrap()
}

#[tokio::test]
async fn recorded_requests_are_decided_and_approvals_published_signed() {
    let temp = tempfile::tempdir().unwrap();
    let approvals = approvals(temp.path()).await;
    let mut receiver = approvals.subscribe();
    assert!(
        grants(&receiver.borrow_and_update(), approvals.public_key())
            .grants
            .is_empty()
    );

    approvals.record(request("apr_one", "agent"), "dp-1").await;
    approvals.record(request("apr_two", "agent"), "dp-2").await;
    // Refused: not an id this protocol makes.
    approvals.record(request("nope", "agent"), "dp-1").await;
    let listed = approvals.list(None, 0).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].request.fingerprint, "ab".repeat(32));

    let approved = approvals
        .decide(&principal("sec-bob"), "apr_one", true, "fine".into())
        .await
        .unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.approver.as_deref(), Some("sec-bob"));
    assert!(receiver.has_changed().unwrap());
    let list = grants(&receiver.borrow_and_update(), approvals.public_key());
    assert_eq!(list.grants.len(), 1);
    assert_eq!(list.grants[0].id, "apr_one");
    assert_eq!(list.grants[0].client_id, "agent");

    let rejected = approvals
        .decide(&principal("sec-bob"), "apr_two", false, String::new())
        .await
        .unwrap();
    assert_eq!(rejected.status, ApprovalStatus::Rejected);
    assert!(
        !receiver.has_changed().unwrap(),
        "a rejection changes no grant"
    );

    let again = approvals
        .decide(&principal("sec-bob"), "apr_two", true, String::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            DecideError::NotPending {
                status: "rejected",
                ..
            }
        ),
        "{again}"
    );
    let missing = approvals
        .decide(&principal("sec-bob"), "apr_zzz", true, String::new())
        .await
        .unwrap_err();
    assert!(matches!(missing, DecideError::NotFound(_)));
    let pending = approvals
        .list(Some(ApprovalStatus::Pending), 0)
        .await
        .unwrap();
    assert!(pending.is_empty());
}

#[tokio::test]
async fn governance_refusals() {
    let temp = tempfile::tempdir().unwrap();
    let approvals = approvals(temp.path()).await;
    approvals
        .record(request("apr_self", "sec-eve"), "dp-1")
        .await;
    let refused = approvals
        .decide(&principal("sec-eve"), "apr_self", true, String::new())
        .await
        .unwrap_err();
    assert!(matches!(refused, DecideError::Forbidden(ref m) if m.contains("allow_self_approval")));
    let refused = approvals
        .decide(&principal("carol"), "apr_self", true, String::new())
        .await
        .unwrap_err();
    assert!(matches!(refused, DecideError::Forbidden(ref m) if m.contains("workspace \"acme\"")));
    let row = approvals.list(None, 0).await.unwrap().remove(0);
    assert_eq!(
        row.status,
        ApprovalStatus::Pending,
        "refusals change nothing"
    );
}

#[tokio::test]
async fn expired_requests_cannot_be_approved() {
    let temp = tempfile::tempdir().unwrap();
    let approvals = approvals(temp.path()).await;
    let mut old = request("apr_old", "agent");
    old.created_at -= 7200;
    old.expires_at -= 7200;
    approvals.record(old, "dp-1").await;
    let error = approvals
        .decide(&principal("sec-bob"), "apr_old", true, String::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DecideError::NotPending {
                status: "expired",
                ..
            }
        ),
        "{error}"
    );
}
