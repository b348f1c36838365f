use conduit_config::Document;

use super::*;

fn acl(yaml: &str) -> Acl {
    let document = Document::from_text(yaml).unwrap_or_else(|e| panic!("{e}"));
    Acl::try_from(document.acl.as_ref().unwrap()).unwrap()
}

const POLICIES: &str = r#"
acl:
  default_action: deny
  policies:
    - name: support
      clients: ["agent-support-*"]
      allow:
        - server: crm
          tools: ["get_*"]
    - name: agents
      clients: ["agent-*"]
      allow:
        - server: "*"
          tools: ["*"]
      deny:
        - server: crm
          tools: [delete_contact]
    - name: nobody
      clients: [ghost]
"#;

fn tool(name: &str) -> Capability<'_> {
    Capability::Tool(name)
}

#[test]
fn first_matching_policy_decides_alone() {
    let acl = acl(POLICIES);
    // agent-support-1 matches "support" first: only get_* on crm, although "agents" would
    // allow everything.
    let d = acl.decide("agent-support-1", "crm", &tool("get_contact"));
    assert_eq!((d.allowed, d.policy), (true, Some("support")));
    assert_eq!(d.rule, AclReason::AllowRule(0));
    let d = acl.decide("agent-support-1", "crm", &tool("update_contact"));
    assert_eq!(
        (d.allowed, d.policy, d.rule),
        (false, Some("support"), AclReason::NotAllowed)
    );
    assert!(
        !acl.decide("agent-support-1", "files", &tool("get_file"))
            .allowed
    );
    assert!(acl.decide("agent-7", "files", &tool("get_file")).allowed);
}

#[test]
fn deny_beats_allow() {
    let acl = acl(POLICIES);
    let d = acl.decide("agent-7", "crm", &tool("delete_contact"));
    assert_eq!(
        (d.allowed, d.policy, d.rule),
        (false, Some("agents"), AclReason::DenyRule(0))
    );
}

#[test]
fn same_tool_allowed_on_one_server_denied_on_another() {
    let acl = acl(POLICIES);
    assert!(
        acl.decide("agent-7", "files", &tool("delete_contact"))
            .allowed
    );
    assert!(
        !acl.decide("agent-7", "crm", &tool("delete_contact"))
            .allowed
    );
}

#[test]
fn prefix_does_not_match_the_bare_word_and_matching_is_case_sensitive() {
    let acl = acl(POLICIES);
    assert!(!acl.decide("agent-support-1", "crm", &tool("get")).allowed);
    assert!(
        !acl.decide("agent-support-1", "crm", &tool("Get_contact"))
            .allowed
    );
    assert!(
        !acl.decide("agent-support-1", "CRM", &tool("get_contact"))
            .allowed
    );
    assert!(!acl.decide("Agent-7", "files", &tool("x")).allowed);
}

#[test]
fn unmatched_client_gets_the_default_action() {
    let closed = acl(POLICIES);
    let d = closed.decide("stranger", "crm", &tool("get_contact"));
    assert_eq!(
        (d.allowed, d.policy, d.rule),
        (false, None, AclReason::DefaultAction)
    );
    let open = acl(&POLICIES.replace("default_action: deny", "default_action: allow"));
    assert!(open.decide("stranger", "crm", &tool("get_contact")).allowed);
    // A policy without rules is an allow-list of nothing.
    assert!(!open.decide("ghost", "crm", &tool("get_contact")).allowed);
}

#[test]
fn empty_client_list_is_refused_not_matching_everyone() {
    let model = conduit_config::model::Acl {
        enabled: None,
        default_action: conduit_config::model::AclAction::Allow,
        policies: vec![conduit_config::model::AclPolicy {
            name: "p".into(),
            clients: vec![],
            ..Default::default()
        }],
    };
    assert_eq!(Acl::try_from(&model).unwrap_err(), AclError::NoClients(0));
}

#[test]
fn disabled_allows_everything() {
    let acl = acl(&POLICIES.replace(
        "default_action: deny",
        "enabled: false\n  default_action: deny",
    ));
    let d = acl.decide("stranger", "crm", &tool("delete_contact"));
    assert_eq!((d.allowed, d.rule), (true, AclReason::Disabled));
}

#[test]
fn tool_rules_do_not_grant_resources_or_prompts() {
    let acl = acl(r#"
acl:
  default_action: allow
  policies:
    - name: tools-only
      clients: [a]
      allow: [{server: "*", tools: ["*"]}]
    - name: docs
      clients: [b]
      allow:
        - server: kb
          resources: ["file:///docs/*"]
          prompts: [summarize]
"#);
    assert!(acl.decide("a", "kb", &tool("search")).allowed);
    assert!(
        !acl.decide("a", "kb", &Capability::Resource("file:///docs/a"))
            .allowed
    );
    assert!(
        !acl.decide("a", "kb", &Capability::Prompt("summarize"))
            .allowed
    );
    assert!(
        acl.decide("b", "kb", &Capability::Resource("file:///docs/a"))
            .allowed
    );
    assert!(
        !acl.decide("b", "kb", &Capability::Resource("file:///etc/passwd"))
            .allowed
    );
    assert!(acl.visible("b", "kb", &Capability::Resource("file:///docs/{name}")));
    assert!(
        acl.decide("b", "kb", &Capability::Prompt("summarize"))
            .allowed
    );
    assert!(!acl.decide("b", "kb", &tool("summarize")).allowed);
    assert!(
        !acl.decide("b", "other", &Capability::Prompt("summarize"))
            .allowed
    );
}

#[test]
fn a_hundred_policies_evaluate_in_order() {
    let mut yaml = String::from("acl:\n  default_action: deny\n  policies:\n");
    for i in 0..100 {
        yaml.push_str(&format!(
            "    - name: p{i}\n      clients: [c{i}]\n      allow: [{{server: s, tools: [t{i}]}}]\n"
        ));
    }
    let acl = acl(&yaml);
    for i in 0..100 {
        let client = format!("c{i}");
        assert!(acl.decide(&client, "s", &tool(&format!("t{i}"))).allowed);
        assert!(
            !acl.decide(&client, "s", &tool(&format!("t{}", (i + 1) % 100)))
                .allowed
        );
    }
    assert_eq!(acl.policies().len(), 100);
    assert_eq!(acl.policies()[3].allow()[0].server().to_string(), "s");
}

#[test]
fn resource_uris_match_in_normal_form_and_ambiguous_ones_are_denied() {
    let acl = acl(r#"
acl:
  default_action: deny
  policies:
    - name: templates
      clients: [a]
      allow:
        - server: s
          resources: ["TEST://Template/*", "test://exact/%41"]
      deny:
        - server: s
          resources: ["test://template/secret*"]
"#);
    let read = |uri: &str| acl.decide("a", "s", &Capability::Resource(uri));
    for allowed in [
        "test://template/42/data",
        "Test://TEMPLATE/42/data",
        "test://template/%34%32/data",
        "test://exact/A",
        "test://exact/%41",
    ] {
        assert!(read(allowed).allowed, "{allowed}");
    }
    // The attack: dot segments and encoded separators never reach the allow rule.
    for ambiguous in [
        "test://template/../static-text",
        "test://template/%2F..%2Fstatic-text",
        "test://template/%2e%2e/static-text",
        "test://template/..\\static-text",
        "test://template/x%00",
    ] {
        let decision = read(ambiguous);
        assert_eq!(
            (decision.allowed, decision.policy, decision.rule),
            (false, Some("templates"), AclReason::AmbiguousResource),
            "{ambiguous}"
        );
    }
    // A deny rule cannot be dodged by escaping or case.
    for denied in [
        "test://template/secret",
        "test://template/%73ecret",
        "TEST://template/secret-2",
    ] {
        assert_eq!(read(denied).rule, AclReason::DenyRule(0), "{denied}");
    }
    assert!(!read("test://static-text").allowed);
}
