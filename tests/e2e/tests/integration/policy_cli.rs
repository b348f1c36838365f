//! conduitctl's policy commands against a real control plane: single-entry edits of the ACL
//! and guardrails become versions in `history`; `acl check` / `guardrails check` answer from
//! the current or a given stored version, or offline from a file; `acl audit` gates CI with
//! its exit code.

use conduit_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use serde_json::Value;

const BASE: &str = "servers:\n- id: crm\n  url: http://127.0.0.1:9/mcp\n";

const SUPPORT: &str = "\
name: support
clients: [\"agent-*\"]
allow:
  - server: crm
    tools: [\"get_*\"]
deny:
  - server: crm
    tools: [get_secret]
";

const FIRST: &str = "name: first\nclients: [agent-vip]\nallow: [{server: crm, tools: [\"*\"]}]\n";

const RULE: &str = "\
name: big-export
tools: [export]
conditions:
  - {field: limit, operator: gt, value: 1000}
action: block
message: exports are capped at 1000 rows
severity: high
";

fn check(cp: &ControlPlane, args: &[&str]) -> anyhow::Result<(i32, Value)> {
    let mut full = vec!["acl", "check", "-o", "json"];
    full.extend_from_slice(args);
    let output = cp.ctl().run(full)?;
    Ok((output.code, output.json()?))
}

/// `acl check` of one call on server `crm`: `kind` is `--tool`, `--resource` or `--prompt`;
/// `extra` adds flags such as `--version N`.
fn check_crm(
    cp: &ControlPlane,
    client: &str,
    kind: &str,
    name: &str,
    extra: &[&str],
) -> anyhow::Result<(i32, Value)> {
    let mut args = vec!["--client", client, "--server-id", "crm", kind, name];
    args.extend_from_slice(extra);
    check(cp, &args)
}

#[test]
fn edits_are_versions_and_checks_read_them() -> anyhow::Result<()> {
    let cp = ControlPlane::start(ControlPlaneOptions::with_tokens())?;
    let ctl = cp.ctl().env("CONDUIT_AUTHOR", "alice");
    let base = cp.write_config("base.yaml", BASE)?;
    ctl.run(["apply", "-f", &base.display().to_string()])?
        .expect_code(0)?;
    let support = cp.write_config("support.yaml", SUPPORT)?;
    let support = support.display().to_string();

    // No acl section yet: the default action must be chosen explicitly.
    let refused = ctl.run(["acl", "set-policy", "-f", &support])?;
    refused.expect_code(64)?;
    assert!(refused.stderr.contains("--default-action"), "{refused}");
    // A dry run stores nothing.
    ctl.run([
        "acl",
        "set-policy",
        "-f",
        &support,
        "--default-action",
        "deny",
        "--dry-run",
    ])?
    .expect_code(0)?;
    assert_eq!(cp.history()?.len(), 1);

    let set = ctl.run([
        "acl",
        "set-policy",
        "-f",
        &support,
        "--default-action",
        "deny",
        "-m",
        "support agents read the CRM",
    ])?;
    set.expect_code(0)?;
    let history = cp.history()?;
    let newest = history.iter().max_by_key(|v| v.version).unwrap();
    assert_eq!(newest.version, 2, "{history:?}");
    assert_eq!(
        (newest.author.as_str(), newest.message.as_str()),
        ("alice", "support agents read the CRM")
    );

    // Checks against the current version, through the control plane.
    let (code, answer) = check_crm(&cp, "agent-1", "--tool", "get_contact", &[])?;
    assert_eq!(
        (code, answer["allowed"].as_bool()),
        (0, Some(true)),
        "{answer}"
    );
    assert_eq!(answer["policy"], "support");
    let (code, answer) = check_crm(&cp, "agent-1", "--tool", "get_secret", &[])?;
    assert_eq!(
        (code, answer["reason"].as_str()),
        (1, Some("deny_rule")),
        "{answer}"
    );
    let (code, answer) = check_crm(&cp, "agent-1", "--resource", "crm://contacts/1", &[])?;
    assert_eq!(
        (code, answer["reason"].as_str()),
        (1, Some("not_allowed")),
        "{answer}"
    );
    let (code, answer) = check_crm(&cp, "human", "--tool", "get_contact", &[])?;
    assert_eq!(
        (code, answer["reason"].as_str()),
        (1, Some("default_action")),
        "{answer}"
    );

    // A second policy, placed first: it decides alone for its client.
    let first = cp.write_config("first.yaml", FIRST)?;
    ctl.run([
        "acl",
        "set-policy",
        "-f",
        &first.display().to_string(),
        "--before",
        "support",
    ])?
    .expect_code(0)?;
    let (code, answer) = check_crm(&cp, "agent-vip", "--tool", "get_secret", &[])?;
    assert_eq!(
        (code, answer["policy"].as_str()),
        (0, Some("first")),
        "{answer}"
    );
    // The version before still answers the old way.
    let (code, answer) = check_crm(
        &cp,
        "agent-vip",
        "--tool",
        "get_secret",
        &["--version", "2"],
    )?;
    assert_eq!(
        (code, answer["policy"].as_str()),
        (1, Some("support")),
        "{answer}"
    );
    let stored: Value = ctl.run(["get", "config", "-o", "json"])?.json()?;
    let names: Vec<&str> = stored["acl"]["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "support"]);

    // Deleting: an unknown name is an error and stores nothing; a known one is a version.
    ctl.run(["acl", "delete-policy", "nope"])?.expect_code(7)?;
    ctl.run(["acl", "delete-policy", "first", "-m", "vip ends"])?
        .expect_code(0)?;
    let history = cp.history()?;
    assert_eq!(history.len(), 4, "{history:?}");
    assert!(history.iter().any(|v| v.message == "vip ends"));
    let (code, _) = check_crm(&cp, "agent-vip", "--tool", "get_secret", &[])?;
    assert_eq!(code, 1);

    // Guardrails: a rule set through the control plane, checked there, then removed.
    let rule = cp.write_config("rule.yaml", RULE)?;
    ctl.run([
        "guardrails",
        "set-rule",
        "-f",
        &rule.display().to_string(),
        "--default-action",
        "allow",
    ])?
    .expect_code(0)?;
    let args = [
        "guardrails",
        "check",
        "--client",
        "c",
        "--server-id",
        "crm",
        "--tool",
        "export",
        "-o",
        "json",
    ];
    let blocked = ctl.run(args.iter().copied().chain(["--args", r#"{"limit": 5000}"#]))?;
    blocked.expect_code(1)?;
    let answer: Value = blocked.json()?;
    assert_eq!(answer["decision"], "block");
    assert_eq!(answer["rule"], "big-export");
    assert_eq!(answer["message"], "exports are capped at 1000 rows");
    ctl.run(args.iter().copied().chain(["--args", r#"{"limit": 5}"#]))?
        .expect_code(0)?;
    ctl.run(["guardrails", "delete-rule", "big-export"])?
        .expect_code(0)?;
    ctl.run(args.iter().copied().chain(["--args", r#"{"limit": 5000}"#]))?
        .expect_code(0)?;
    assert_eq!(cp.history()?.len(), 6);

    // The audit of the stored version: the prefix grant is the one finding (exit 1), and
    // client ids cannot be checked without API keys.
    let audit = ctl.run(["acl", "audit", "-o", "json"])?;
    audit.expect_code(1)?;
    let report: Value = audit.json()?;
    assert_eq!(report["source"], "version 6", "{audit}");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{audit}");
    assert_eq!(findings[0]["kind"], "wildcard_grant");
    assert_eq!(findings[0]["path"], "acl.policies[0].allow[0].tools[0]");
    assert_eq!(report["notes"].as_array().unwrap().len(), 1, "{audit}");
    Ok(())
}

#[test]
fn offline_checks_and_audit_gate() -> anyhow::Result<()> {
    // No control plane runs at this address: -f never contacts one.
    let ctl = conduit_e2e::ctl::Ctl::new("http://127.0.0.1:9");
    let dir = tempfile::tempdir()?;
    let write = |name: &str, text: &str| -> anyhow::Result<String> {
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path.display().to_string())
    };
    let wide = write(
        "wide.yaml",
        "servers:\n- {id: crm, url: 'http://127.0.0.1:9/mcp'}\nauth: {method: api-key, api_keys: [{key: k1, client_id: bot}]}\nacl:\n  default_action: allow\n  policies:\n  - name: everyone\n    clients: ['*']\n    allow: [{server: '*', tools: ['*']}]\n  - name: stale\n    clients: [ghost]\n    deny: [{server: gone, prompts: [p]}]\n",
    )?;
    let checked = ctl.run([
        "acl",
        "check",
        "--client",
        "bot",
        "--server-id",
        "crm",
        "--tool",
        "x",
        "-f",
        &wide,
    ])?;
    checked.expect_code(0)?;
    assert!(checked.stdout.starts_with("allowed:"), "{checked}");
    assert!(checked.stdout.contains("policy \"everyone\""), "{checked}");
    ctl.run([
        "acl",
        "check",
        "--client",
        "bot",
        "--server-id",
        "crm",
        "--prompt",
        "p",
        "-f",
        &wide,
    ])?
    .expect_code(1)?;

    let audit = ctl.run(["acl", "audit", "-f", &wide, "-o", "json"])?;
    audit.expect_code(1)?;
    let report: Value = audit.json()?;
    let mut kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "default_allow",
            "unknown_client",
            "unknown_server",
            "wildcard_clients",
            "wildcard_grant"
        ],
        "{audit}"
    );

    // An invalid file fails like `validate` (exit 2, with the path of the error).
    let invalid = write(
        "invalid.yaml",
        "acl:\n  default_action: deny\n  policies:\n  - {name: p, clients: [a], allow: [{server: s}]}\n",
    )?;
    let refused = ctl.run([
        "acl",
        "check",
        "--client",
        "a",
        "--server-id",
        "s",
        "--tool",
        "t",
        "-f",
        &invalid,
    ])?;
    refused.expect_code(2)?;
    assert!(
        refused.stderr.contains("acl.policies[0].allow[0]"),
        "{refused}"
    );
    // Without -f, an unreachable control plane is exit 5.
    ctl.run(["acl", "audit"])?.expect_code(5)?;
    Ok(())
}
