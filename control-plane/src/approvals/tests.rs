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
        .decide(&principal("sec-bob"), "apr_one", true, "fine".into(), None)
        .await
        .unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.approver.as_deref(), Some("sec-bob"));
    assert!(receiver.has_changed().unwrap());
    let list = grants(&receiver.borrow_and_update(), approvals.public_key());
    assert_eq!(list.grants.len(), 1);
    assert_eq!(list.grants[0].id, "apr_one");
    assert_eq!(list.grants[0].client_id, "agent");
    assert_eq!(list.grants[0].max_uses, 1, "the default");
    assert!(list.grants[0].uses.is_empty());

    let rejected = approvals
        .decide(&principal("sec-bob"), "apr_two", false, String::new(), None)
        .await
        .unwrap();
    assert_eq!(rejected.status, ApprovalStatus::Rejected);
    assert!(
        !receiver.has_changed().unwrap(),
        "a rejection changes no grant"
    );

    let again = approvals
        .decide(&principal("sec-bob"), "apr_two", true, String::new(), None)
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
        .decide(&principal("sec-bob"), "apr_zzz", true, String::new(), None)
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
        .decide(&principal("sec-eve"), "apr_self", true, String::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(refused, DecideError::Forbidden(ref m) if m.contains("allow_self_approval")));
    let refused = approvals
        .decide(&principal("carol"), "apr_self", true, String::new(), None)
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
        .decide(&principal("sec-bob"), "apr_old", true, String::new(), None)
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

#[tokio::test]
async fn reported_uses_are_published_until_the_grant_is_used_up() {
    let temp = tempfile::tempdir().unwrap();
    let approvals = approvals(temp.path()).await;
    let mut receiver = approvals.subscribe();
    approvals
        .record(request("apr_three", "agent"), "dp-1")
        .await;
    let too_many = approvals
        .decide(
            &principal("sec-bob"),
            "apr_three",
            true,
            String::new(),
            Some(1001),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(too_many, DecideError::InvalidArgument(_)),
        "{too_many}"
    );
    let approved = approvals
        .decide(
            &principal("sec-bob"),
            "apr_three",
            true,
            String::new(),
            Some(3),
        )
        .await
        .unwrap();
    assert_eq!((approved.max_uses, approved.uses), (3, 0));
    receiver.borrow_and_update();

    let used = |count: u32| pb::ApprovalUse {
        id: "apr_three".into(),
        count,
    };
    approvals.record_use(used(2), "dp-1").await;
    let list = grants(&receiver.borrow_and_update(), approvals.public_key());
    assert_eq!(list.grants[0].max_uses, 3);
    assert_eq!(
        list.grants[0].uses,
        [pb::GrantUse {
            node_id: "dp-1".into(),
            count: 2
        }]
    );
    // A repeated report publishes nothing new.
    approvals.record_use(used(2), "dp-1").await;
    assert!(!receiver.has_changed().unwrap());
    // The third use, on another data plane: the grant leaves the set.
    approvals.record_use(used(1), "dp-2").await;
    let list = grants(&receiver.borrow_and_update(), approvals.public_key());
    assert!(list.grants.is_empty(), "{list:?}");
    let listed = approvals
        .list(Some(ApprovalStatus::Approved), 0)
        .await
        .unwrap();
    assert_eq!((listed[0].max_uses, listed[0].uses), (3, 3));
}

#[tokio::test]
async fn pending_requests_per_client_follow_the_config() {
    let temp = tempfile::tempdir().unwrap();
    let approvals = approvals(temp.path()).await;
    approvals
        .versions
        .apply(ApplyInput {
            document: format!("{CONFIG}  approvals:\n    max_pending_per_client: 2\n"),
            ..ApplyInput::default()
        })
        .await
        .unwrap();
    for n in 0..4 {
        approvals
            .record(request(&format!("apr_flood{n}"), "agent"), "dp-1")
            .await;
    }
    approvals.record(request("apr_other", "bot"), "dp-1").await;
    let mut ids: Vec<String> = approvals
        .list(None, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.request.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["apr_flood0", "apr_flood1", "apr_other"]);
}
