//! The policy sections of the shipped full example compile into the engines and decide as
//! its comments say.

use conduit_config::Document;
use conduit_policy::{
    Acl, CallContext, Capability, Decision, Governance, Guardrails, ToolAnnotations,
};
use serde_json::json;

#[test]
fn full_example_compiles_and_decides() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/full.yaml");
    let document = Document::from_text(&std::fs::read_to_string(path).unwrap()).unwrap();

    let acl = Acl::try_from(document.acl.as_ref().unwrap()).unwrap();
    let ci = acl.decide("ci", "everything", &Capability::Tool("get_env"));
    assert_eq!((ci.allowed, ci.policy), (true, Some("ci-read-only")));
    assert!(!acl.visible("ci", "everything", &Capability::Tool("delete")));
    assert!(acl.visible(
        "ci",
        "everything",
        &Capability::Resource("file:///docs/a.md")
    ));
    assert!(!acl.visible("ci", "everything", &Capability::Prompt("other")));
    assert!(!acl.visible("bob", "files", &Capability::Tool("delete_file")));
    assert!(acl.visible("bob", "files", &Capability::Prompt("any")));

    let guardrails = Guardrails::try_from(document.guardrails.as_ref().unwrap()).unwrap();
    let args = json!({"sql": "DROP TABLE users"});
    let call = CallContext {
        client_id: "bob",
        server_id: "db",
        tool: "query",
        annotations: &ToolAnnotations::UNKNOWN,
        args: &args,
    };
    let verdict = guardrails.evaluate(&call);
    assert!(matches!(verdict.decision, Decision::Block { rule } if rule.name() == "no-drop-table"));
    let ci_call = CallContext {
        client_id: "ci",
        ..call
    };
    assert!(matches!(
        guardrails.evaluate(&ci_call).decision,
        Decision::Bypass { .. }
    ));

    let governance = Governance::try_from(document.governance.as_ref().unwrap()).unwrap();
    assert!(governance.may_approve("alice", "acme"));
}
