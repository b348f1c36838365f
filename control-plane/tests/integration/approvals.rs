//! Approvals through the real RPCs: a data plane reports a held call on its config stream,
//! principals from `--admin-tokens-file` list and decide it (roles and governance checked),
//! and every connected data plane receives the new grant set, signed with the key its
//! snapshot carries.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::Context as _;
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use conduit_proto::v1::{
    ApprovalRequest, DecideApprovalRequest, GrantList, GrantSet, ListApprovalsRequest, approval,
    data_plane_message,
};
use prost::Message;
use sha2::{Digest, Sha256};

use super::common::{Options, TestServer, WAIT, init};

const CONFIG: &str = "servers:\n  - id: files\n    url: http://127.0.0.1:9/mcp\n\
    guardrails:\n  default_action: allow\n  rules:\n    - name: approve-deletes\n      \
    tools: [delete]\n      action: require_approval\n\
    governance:\n  role_bindings:\n    - workspace_id: acme\n      role: approver\n      \
    clients: [sec-bob, agent]\n";

fn tokens_file(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let sha = |token: &str| hex::encode(Sha256::digest(token.as_bytes()));
    let path = dir.join("principals.yaml");
    std::fs::write(
        &path,
        format!(
            "- name: sec-bob\n  role: operator\n  token_sha256: {}\n\
             - name: agent\n  role: operator\n  token_sha256: {}\n\
             - name: vic\n  role: viewer\n  token_sha256: {}\n",
            sha("bob-token"),
            sha("agent-token"),
            sha("vic-token")
        ),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

fn request(id: &str) -> ApprovalRequest {
    let now = chrono_now();
    ApprovalRequest {
        id: id.into(),
        client_id: "agent".into(),
        tenant_id: "acme".into(),
        server_id: "files".into(),
        tool: "delete".into(),
        fingerprint: "0f".repeat(32),
        arguments_json: r#"{"path":"/srv/x"}"#.into(),
        rule: "approve-deletes".into(),
        source: "guardrail".into(),
        reason: "deletes need approval".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        created_at: now,
        expires_at: now + 600,
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn verified(set: &GrantSet, public_key: &[u8]) -> anyhow::Result<GrantList> {
    let mut message = b"conduit.v1.GrantSet\n".to_vec();
    message.extend_from_slice(&set.grants);
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&message, &set.signature)
        .map_err(|_| anyhow::anyhow!("grant set signature does not verify"))?;
    Ok(GrantList::decode(set.grants.as_slice())?)
}

#[tokio::test]
async fn requests_are_recorded_decided_by_role_and_granted_to_every_data_plane()
-> anyhow::Result<()> {
    init();
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(Options {
        tokens: true,
        admin_tokens_file: Some(tokens_file(dir.path())?),
        ..Options::default()
    })
    .await?;
    server.apply(CONFIG).await?;

    let mut dp1 = server.data_plane("dp-1", (0, "")).await?;
    let snapshot = dp1.expect_snapshot().await?;
    let key = snapshot
        .approval_key
        .clone()
        .context("approval key in the snapshot")?;
    assert_eq!(key.public_key.len(), 32);
    assert!(
        !key.signature.is_empty(),
        "bound to the snapshot with the DP token"
    );
    dp1.ack(&snapshot).await?;
    let initial = verified(&dp1.next_grant_set().await?, &key.public_key)?;
    assert!(initial.grants.is_empty());
    let mut dp2 = server.data_plane("dp-2", (0, "")).await?;
    let snapshot = dp2.expect_snapshot().await?;
    dp2.ack(&snapshot).await?;
    dp2.next_grant_set().await?;

    dp1.send(data_plane_message::Kind::ApprovalRequest(request(
        "apr_one",
    )))
    .await?;
    dp1.send(data_plane_message::Kind::ApprovalRequest(request(
        "apr_two",
    )))
    .await?;
    // A duplicate (a data plane re-sending after a reconnect) is ignored.
    dp2.send(data_plane_message::Kind::ApprovalRequest(request(
        "apr_one",
    )))
    .await?;

    let mut vic = server.admin_with(Some("vic-token")).await?;
    let pending = tokio::time::timeout(WAIT, async {
        loop {
            let listed = vic
                .list_approvals(ListApprovalsRequest {
                    status: approval::Status::Pending.into(),
                    limit: 0,
                })
                .await?
                .into_inner();
            if listed.approvals.len() == 2 {
                return anyhow::Ok(listed.approvals);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .context("the requests were never listed")??;
    let one = pending
        .iter()
        .find(|a| a.id == "apr_one")
        .context("apr_one")?;
    assert_eq!(
        (one.client_id.as_str(), one.tenant_id.as_str()),
        ("agent", "acme")
    );
    assert_eq!(one.rule, "approve-deletes");
    assert!(one.approver.is_empty() && one.decided_at.is_empty());

    let decide = |id: &str, approve: bool| DecideApprovalRequest {
        id: id.into(),
        approve,
        note: "checked the path".into(),
        ..DecideApprovalRequest::default()
    };
    // A viewer may list but not decide.
    let refused = vic
        .decide_approval(decide("apr_one", true))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("viewer"), "{refused:?}");
    // The requester may not approve its own call.
    let mut agent = server.admin_with(Some("agent-token")).await?;
    let refused = agent
        .decide_approval(decide("apr_one", true))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("allow_self_approval"),
        "{refused:?}"
    );
    // The admin principal holds no approver role in workspace acme.
    let mut admin = server.admin().await?;
    let refused = admin
        .decide_approval(decide("apr_one", true))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    let mut bob = server.admin_with(Some("bob-token")).await?;
    let approved = bob
        .decide_approval(decide("apr_one", true))
        .await?
        .into_inner();
    assert_eq!(approved.status, i32::from(approval::Status::Approved));
    assert_eq!(approved.approver, "sec-bob");
    assert_eq!(approved.note, "checked the path");
    for dp in [&mut dp1, &mut dp2] {
        let grants = verified(&dp.next_grant_set().await?, &key.public_key)?;
        assert_eq!(grants.grants.len(), 1);
        let grant = &grants.grants[0];
        assert_eq!(grant.id, "apr_one");
        assert_eq!(
            (grant.client_id.as_str(), grant.server_id.as_str()),
            ("agent", "files")
        );
        assert_eq!(grant.fingerprint, "0f".repeat(32));
        assert!(grant.expires_at > chrono_now());
    }

    let rejected = bob
        .decide_approval(decide("apr_two", false))
        .await?
        .into_inner();
    assert_eq!(rejected.status, i32::from(approval::Status::Rejected));
    let again = bob
        .decide_approval(decide("apr_two", true))
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition, "{again:?}");

    // A data plane connecting later gets the grants right after its snapshot.
    let mut dp3 = server.data_plane("dp-3", (0, "")).await?;
    dp3.expect_snapshot().await?;
    let grants = verified(&dp3.next_grant_set().await?, &key.public_key)?;
    assert_eq!(grants.grants.len(), 1);
    Ok(())
}
