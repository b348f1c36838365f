//! Guardrails on the data plane (reference §8.1 "Guardrails"): rules select tool calls by
//! tool name, client, server, tool annotations and AND-ed conditions on the arguments, and
//! block them (−32004 with the rule's message), let them pass with an alert, or only record
//! what they would have done (shadow).

use conduit_e2e::mcp::McpClient;
use serde_json::{Value, json};

use super::policy_acl::{PolicyGateway, api_keys, call, error_of};

/// JSON-RPC code of a guardrail block.
const GUARDRAIL_BLOCKED: i64 = -32004;

const RULES: &str = "guardrails:
  default_action: allow
  rules:
    - name: shadow-secrets
      tools: [\"echo\"]
      mode: shadow
      conditions:
        - field: message
          operator: contains
          value: secret
      action: block
    - name: no-big-sums
      tools: [\"add\"]
      conditions:
        - field: a
          operator: gt
          value: 100
        - field: b
          operator: gt
          value: 100
      action: block
      message: sums of two numbers over 100 are not allowed
      severity: high
    - name: no-sleeping
      tools: [\"sle*\"]
      servers: [\"fixture\"]
      action: block
    - name: watch-echo
      tools: [\"echo\"]
      conditions:
        - field: message
          operator: matches
          value: \"^watch\"
      action: alert
";

fn blocked(client: &mut McpClient, tool: &str, args: Value) -> anyhow::Result<(Value, String)> {
    let exchange = call(client, tool, args)?;
    let error = error_of(&exchange)?;
    assert_eq!(exchange.response.status, 200, "{error}");
    assert_eq!(error["code"], json!(GUARDRAIL_BLOCKED), "{error}");
    let trace = exchange
        .response
        .header("x-conduit-trace-id")
        .unwrap_or_default()
        .to_owned();
    Ok((error, trace))
}

fn passes(client: &mut McpClient, tool: &str, args: Value) -> anyhow::Result<Value> {
    let exchange = call(client, tool, args)?;
    let message = exchange.message.unwrap_or_default();
    anyhow::ensure!(message.get("result").is_some(), "{tool}: {message}");
    Ok(message["result"].clone())
}

#[test]
fn rules_block_by_tool_and_by_conditions_alerts_pass_and_shadows_only_count() -> anyhow::Result<()>
{
    let gateway = PolicyGateway::start(RULES)?;
    let mut client = gateway.client("/mcp/fixture")?;

    // Block by tool pattern, with the default message.
    let (error, trace) = blocked(&mut client, "sleep", json!({"ms": 1}))?;
    assert_eq!(
        error["message"],
        json!("blocked by guardrail rule \"no-sleeping\"")
    );
    assert_eq!(
        error["data"],
        json!({"rule": "no-sleeping", "severity": "medium"})
    );
    assert!(!trace.is_empty(), "the blocked answer carries the trace id");
    // ... on the rule's servers only.
    let mut twin = gateway.client("/mcp/twin")?;
    passes(&mut twin, "sleep", json!({"ms": 1}))?;

    // Conditions, AND-ed: both must hold.
    let (error, _) = blocked(&mut client, "add", json!({"a": 200, "b": 300}))?;
    assert_eq!(
        error["message"],
        json!("sums of two numbers over 100 are not allowed")
    );
    assert_eq!(
        error["data"],
        json!({"rule": "no-big-sums", "severity": "high"})
    );
    assert_eq!(
        passes(&mut client, "add", json!({"a": 200, "b": 3}))?["content"][0]["text"],
        "203"
    );
    assert_eq!(
        passes(&mut client, "add", json!({"a": 1, "b": 2}))?["content"][0]["text"],
        "3"
    );

    // An alert passes.
    passes(&mut client, "echo", json!({"message": "watch this"}))?;
    // A shadow rule never changes the answer.
    let result = passes(&mut client, "echo", json!({"message": "a secret"}))?;
    assert_eq!(result["content"][0]["text"], "a secret");

    let metrics = gateway.metrics()?;
    for series in [
        "conduit_guardrail_actions_total{action=\"block\",mode=\"enforce\",rule=\"no-sleeping\"} 1",
        "conduit_guardrail_actions_total{action=\"block\",mode=\"enforce\",rule=\"no-big-sums\"} 1",
        "conduit_guardrail_actions_total{action=\"alert\",mode=\"enforce\",rule=\"watch-echo\"} 1",
        "conduit_guardrail_actions_total{action=\"block\",mode=\"shadow\",rule=\"shadow-secrets\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    Ok(())
}

#[test]
fn default_block_refuses_unmatched_calls_but_an_alert_rule_lets_its_calls_through()
-> anyhow::Result<()> {
    let rules = "guardrails:\n  default_action: block\n  rules:\n    - name: echo-alert\n      tools: [\"echo\"]\n      action: alert\n";
    let gateway = PolicyGateway::start(rules)?;
    let mut client = gateway.client("/mcp/fixture")?;
    passes(&mut client, "echo", json!({"message": "ok"}))?;
    let (error, _) = blocked(&mut client, "add", json!({"a": 1, "b": 2}))?;
    assert_eq!(
        error["message"],
        json!("blocked: no guardrail rule allows this call (default_action: block)")
    );

    // Turned off, guardrails do nothing.
    gateway.replace(&format!("{rules}  enabled: false\n"))?;
    passes(&mut client, "add", json!({"a": 1, "b": 2}))?;
    Ok(())
}

#[test]
fn one_rule_guards_every_destructive_tool_and_unknown_tools_count_as_destructive()
-> anyhow::Result<()> {
    let rules = "guardrails:\n  default_action: allow\n  rules:\n    - name: destructive\n      annotations:\n        destructiveHint: true\n      action: block\n      message: destructive tools are blocked\n";
    let gateway = PolicyGateway::start(rules)?;
    let mut client = gateway.client("/mcp/fixture")?;
    // Before any tools/list the gateway knows no annotations: fail-safe, destructive.
    blocked(&mut client, "echo", json!({"message": "too early"}))?;
    // `echo` and `add` are annotated non-destructive; the other tools carry no annotations.
    let tools = client.list_tools()?;
    assert!(tools.contains(&"sleep".to_owned()), "{tools:?}");
    passes(&mut client, "echo", json!({"message": "read-only"}))?;
    passes(&mut client, "add", json!({"a": 1, "b": 2}))?;
    let (error, _) = blocked(&mut client, "sleep", json!({"ms": 1}))?;
    assert_eq!(error["message"], json!("destructive tools are blocked"));
    // What one client's list taught holds for every client on this data plane.
    let mut other = gateway.client("/mcp/fixture")?;
    passes(&mut other, "echo", json!({"message": "another session"}))?;
    // A new config that keeps the server's upstream keeps what was learned.
    gateway.replace(&format!("{rules}      severity: high\n"))?;
    let mut after_reload = gateway.client("/mcp/fixture")?;
    passes(&mut after_reload, "echo", json!({"message": "still known"}))?;
    // Aggregate lists teach the annotations too (of `twin`, here).
    let mut aggregate = gateway.client("/mcp")?;
    blocked(
        &mut aggregate,
        "twin.echo",
        json!({"message": "unknown yet"}),
    )?;
    aggregate.list_tools()?;
    passes(&mut aggregate, "twin.echo", json!({"message": "known now"}))?;
    blocked(&mut aggregate, "twin.sleep", json!({"ms": 1}))?;
    Ok(())
}

#[test]
fn rules_scoped_to_clients_and_bypass_rules() -> anyhow::Result<()> {
    let rules = "guardrails:\n  default_action: block\n  rules:\n    - name: ops-bypass\n      clients: [\"ops-*\"]\n      bypass: true\n    - name: interns-no-add\n      clients: [\"intern\"]\n      tools: [\"add\"]\n      action: block\n      message: interns may not add\n    - name: allow-rest\n      tools: [\"echo\", \"add\"]\n      action: alert\n";
    let gateway =
        PolicyGateway::start(&format!("{}{rules}", api_keys(&["ops-1", "intern", "dev"])))?;
    let mut intern = gateway.client_with_key("/mcp/fixture", "key-intern")?;
    let (error, _) = blocked(&mut intern, "add", json!({"a": 1, "b": 2}))?;
    assert_eq!(error["message"], json!("interns may not add"));
    passes(&mut intern, "echo", json!({"message": "ok"}))?;
    let mut dev = gateway.client_with_key("/mcp/fixture", "key-dev")?;
    passes(&mut dev, "add", json!({"a": 1, "b": 2}))?;
    // default_action: block for what no rule lets through...
    blocked(&mut dev, "sleep", json!({"ms": 1}))?;
    // ... except for the bypassing clients.
    let mut ops = gateway.client_with_key("/mcp/fixture", "key-ops-1")?;
    passes(&mut ops, "sleep", json!({"ms": 1}))?;
    Ok(())
}
