use conduit_config::Document;
use serde_json::{Value, json};

use super::*;

fn guardrails(yaml: &str) -> Guardrails {
    let document = Document::from_text(yaml).unwrap_or_else(|e| panic!("{e}"));
    Guardrails::try_from(document.guardrails.as_ref().unwrap()).unwrap()
}

fn call<'a>(client: &'a str, server: &'a str, tool: &'a str, args: &'a Value) -> CallContext<'a> {
    CallContext {
        client_id: client,
        server_id: server,
        tool,
        annotations: &ToolAnnotations::UNKNOWN,
        args,
    }
}

fn decided(guardrails: &Guardrails, call: &CallContext<'_>) -> (&'static str, Option<String>) {
    let verdict = guardrails.evaluate(call);
    let kind = match verdict.decision {
        Decision::Allow => "allow",
        Decision::Bypass { .. } => "bypass",
        Decision::Alert { .. } => "alert",
        Decision::Block { .. } => "block",
        Decision::RequireApproval { .. } => "require_approval",
        Decision::DefaultBlock => "default_block",
    };
    (kind, verdict.decision.rule().map(|r| r.name().to_owned()))
}

const RULES: &str = r#"
governance: {}
guardrails:
  default_action: allow
  rules:
    - name: ci-exempt
      clients: [ci]
      bypass: true
    - name: no-deletes
      tools: ["delete_*"]
      action: block
      message: Deletes are not allowed
      severity: high
      webhook: https://hooks.example/x
    - name: big-export
      tools: [export]
      conditions:
        - {field: limit, operator: gt, value: 1000}
        - {field: format, operator: eq, value: csv}
      action: require_approval
    - name: watch-prod
      servers: [prod]
      action: alert
      severity: low
    - name: late-bypass
      clients: [late]
      bypass: true
"#;

#[test]
fn block_by_tool_pattern_with_its_message() {
    let g = guardrails(RULES);
    let args = json!({});
    let verdict = g.evaluate(&call("a", "s", "delete_user", &args));
    let Decision::Block { rule } = verdict.decision else {
        panic!("{verdict:?}")
    };
    assert_eq!(rule.block_message(), "Deletes are not allowed");
    assert_eq!(rule.severity(), Severity::High);
    assert_eq!(rule.webhook(), Some("https://hooks.example/x"));
    assert!(!verdict.decision.allows());
    assert_eq!(decided(&g, &call("a", "s", "delete", &args)).0, "allow");
}

#[test]
fn bypass_comes_before_the_tool_scope_and_only_for_its_clients() {
    let g = guardrails(RULES);
    let args = json!({"limit": 5000, "format": "csv"});
    assert_eq!(
        decided(&g, &call("ci", "s", "delete_user", &args)),
        ("bypass", Some("ci-exempt".into()))
    );
    assert_eq!(
        decided(&g, &call("ci", "prod", "export", &args)).0,
        "bypass"
    );
    // A bypass after a matching block rule never takes effect: first match wins.
    assert_eq!(
        decided(&g, &call("late", "s", "delete_user", &args)).0,
        "block"
    );
    assert_eq!(decided(&g, &call("late", "s", "read", &args)).0, "bypass");
}

#[test]
fn conditions_are_anded() {
    let g = guardrails(RULES);
    let both = json!({"limit": 5000, "format": "csv"});
    let one = json!({"limit": 5000, "format": "json"});
    let small = json!({"limit": 10, "format": "csv"});
    assert_eq!(
        decided(&g, &call("a", "s", "export", &both)).0,
        "require_approval"
    );
    assert_eq!(decided(&g, &call("a", "s", "export", &one)).0, "allow");
    assert_eq!(decided(&g, &call("a", "s", "export", &small)).0, "allow");
    assert_eq!(
        decided(&g, &call("a", "s", "export", &Value::Null)).0,
        "allow"
    );
}

#[test]
fn alert_lets_the_call_through_and_stops() {
    let g = guardrails(RULES);
    let args = json!({});
    let verdict = g.evaluate(&call("a", "prod", "read", &args));
    assert!(matches!(verdict.decision, Decision::Alert { .. }) && verdict.decision.allows());
    // The late bypass after it is never reached.
    assert_eq!(decided(&g, &call("late", "prod", "read", &args)).0, "alert");
}

#[test]
fn default_block_blocks_unmatched_but_an_alert_rule_still_allows() {
    let g = guardrails(&RULES.replace("default_action: allow", "default_action: block"));
    let args = json!({});
    let verdict = g.evaluate(&call("a", "s", "read", &args));
    assert!(matches!(verdict.decision, Decision::DefaultBlock) && !verdict.decision.allows());
    assert_eq!(decided(&g, &call("a", "prod", "read", &args)).0, "alert");
}

#[test]
fn disabled_has_no_effect() {
    let g = guardrails(&RULES.replace(
        "default_action: allow",
        "enabled: false\n  default_action: block",
    ));
    assert_eq!(
        decided(&g, &call("a", "s", "delete_user", &json!({}))).0,
        "allow"
    );
}

#[test]
fn shadow_rules_are_recorded_and_do_not_decide() {
    let g = guardrails(
        r#"
guardrails:
  default_action: allow
  rules:
    - name: would-block
      tools: ["write_*"]
      action: block
      mode: shadow
      severity: critical
    - name: would-alert
      action: alert
      mode: shadow
    - name: real
      tools: [write_prod]
      action: block
"#,
    );
    let args = json!({});
    let verdict = g.evaluate(&call("a", "s", "write_x", &args));
    assert!(matches!(verdict.decision, Decision::Allow));
    let hits: Vec<_> = verdict
        .shadow
        .iter()
        .map(|hit| {
            (
                hit.rule.name(),
                hit.action.as_str(),
                severity_str(hit.severity),
            )
        })
        .collect();
    assert_eq!(
        hits,
        [
            ("would-block", "block", "critical"),
            ("would-alert", "alert", "medium")
        ]
    );
    let verdict = g.evaluate(&call("a", "s", "write_prod", &args));
    assert!(matches!(verdict.decision, Decision::Block { .. }));
    assert_eq!(verdict.shadow.len(), 2);
}

#[test]
fn annotation_selector_guards_destructive_tools_and_unknown_counts_as_destructive() {
    let g = guardrails(
        r#"
guardrails:
  default_action: allow
  rules:
    - name: destructive
      annotations: {destructiveHint: true}
      action: block
"#,
    );
    let args = json!({});
    let safe =
        ToolAnnotations::from_annotations(&json!({"readOnlyHint": true, "destructiveHint": false}));
    let mut context = call("a", "s", "drop", &args);
    assert_eq!(decided(&g, &context).0, "block");
    context.annotations = &safe;
    assert_eq!(decided(&g, &context).0, "allow");
}

#[test]
fn default_messages_name_the_rule() {
    let g = guardrails(
        "governance: {}\nguardrails:\n  default_action: allow\n  rules:\n  - {name: r, action: block}\n  - {name: q, action: require_approval}\n",
    );
    assert_eq!(
        g.rules()[0].block_message(),
        "blocked by guardrail rule \"r\""
    );
    assert_eq!(
        g.rule("q").unwrap().approval_message(),
        "approval required by guardrail rule \"q\""
    );
    assert_eq!(g.rules()[0].severity(), Severity::Medium);
}
