use conduit_config::Document;

use super::*;

fn governance(yaml: &str) -> Governance {
    let document = Document::from_text(yaml).unwrap_or_else(|e| panic!("{e}"));
    Governance::try_from(document.governance.as_ref().unwrap()).unwrap()
}

const GOVERNANCE: &str = r#"
governance:
  role_bindings:
    - {workspace_id: acme, role: approver, clients: [alice]}
    - {workspace_id: acme, role: developer, clients: ["dev-*", alice]}
    - {workspace_id: platform, role: admin, clients: ["ops-*"]}
  tool_policies:
    - name: no-deletes-for-developers
      roles: [developer]
      tools: ["delete_*"]
      effect: deny
      reason: Deletions need an operator
    - name: deploys
      workspace_ids: [acme]
      servers: [github]
      tools: [deploy]
      effect: require_approval
    - name: ops-may-delete
      clients: ["ops-*"]
      effect: allow
    - name: nobody-deletes
      tools: ["delete_*"]
      effect: deny
"#;

#[test]
fn roles_are_per_workspace() {
    let g = governance(GOVERNANCE);
    let roles: Vec<Role> = g.roles_of("alice", "acme").iter().collect();
    assert_eq!(roles, [Role::Approver, Role::Developer]);
    assert!(g.roles_of("alice", "platform").is_empty());
    assert!(g.roles_of("ops-1", "platform").contains(Role::Admin));
}

#[test]
fn first_matching_policy_decides() {
    let g = governance(GOVERNANCE);
    assert_eq!(
        g.decide("dev-1", "acme", "files", "delete_file"),
        GovernanceDecision::Deny {
            policy: "no-deletes-for-developers",
            reason: "Deletions need an operator"
        }
    );
    assert!(!g.may_view("dev-1", "acme", "files", "delete_file"));
    assert_eq!(
        g.decide("dev-1", "acme", "github", "deploy"),
        GovernanceDecision::RequireApproval {
            policy: "deploys",
            reason: "approval required by governance policy \"deploys\""
        }
    );
    assert!(g.may_view("dev-1", "acme", "github", "deploy"));
    assert_eq!(
        g.decide("dev-1", "other", "github", "deploy"),
        GovernanceDecision::Allow
    );
    // ops-1 holds no developer role: "ops-may-delete" allows before "nobody-deletes".
    assert_eq!(
        g.decide("ops-1", "platform", "files", "delete_file"),
        GovernanceDecision::Allow
    );
    assert!(matches!(
        g.decide("guest", "platform", "files", "delete_file"),
        GovernanceDecision::Deny {
            policy: "nobody-deletes",
            ..
        }
    ));
    assert_eq!(
        g.decide("guest", "acme", "files", "read"),
        GovernanceDecision::Allow
    );
}

#[test]
fn disabled_allows() {
    let document = Document::from_text(GOVERNANCE).unwrap();
    let mut model = document.governance.unwrap();
    model.enabled = Some(false);
    let g = Governance::try_from(&model).unwrap();
    assert_eq!(
        g.decide("dev-1", "acme", "files", "delete_file"),
        GovernanceDecision::Allow
    );
}

#[test]
fn approvers_and_settings() {
    let g = governance(GOVERNANCE);
    assert!(g.may_approve("alice", "acme"));
    assert!(!g.may_approve("dev-1", "acme"));
    assert!(g.may_approve("ops-9", "platform"));
    assert!(!g.may_approve("alice", "platform"));
    let settings = g.approval_settings();
    assert_eq!(
        (
            settings.ttl_seconds,
            settings.allow_self_approval,
            settings.max_uses
        ),
        (3600, false, 1)
    );
    let custom = governance(&format!(
        "{GOVERNANCE}  approvals: {{ttl_seconds: 60, required_roles: [developer], allow_self_approval: true, max_uses: 3}}\n"
    ));
    assert_eq!(custom.approval_settings().max_uses, 3);
    assert!(custom.may_approve("dev-1", "acme") && !custom.may_approve("ops-9", "platform"));
    assert_eq!(custom.approval_settings().ttl_seconds, 60);
    assert!(custom.approval_settings().allow_self_approval);
}
